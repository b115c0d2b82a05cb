//! Tokens of realtime: the `apikey` at connect, `access_token` at join and on refresh. A
//! known project key stands for its role; anything else must be a project JWT with `role` and
//! `exp`. Error texts are Supabase's, which apps may show.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use manifold_auth::{Caller, Gatekeeper, JwtError};
use serde_json::Value;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("API key is missing")]
    Missing,
    #[error("Token has expired {0} seconds ago")]
    Expired(i64),
    #[error("Fields `role` and `exp` are required in JWT")]
    MissingClaims,
    #[error("The token provided is not a valid JWT")]
    Malformed,
    #[error("Failed to validate JWT signature")]
    Signature,
    #[error("Role is not allowed")]
    Role,
}

/// A verified token: who it stands for and when it expires (Unix seconds).
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) caller: Caller,
    pub(crate) expires_at: Option<i64>,
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn exp_of(claims: &serde_json::Map<String, Value>) -> Option<i64> {
    claims
        .get("exp")
        .and_then(|exp| exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64)))
}

/// The unverified `exp` of a token, only to word the expiry message.
fn unverified_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    exp_of(&claims)
}

/// Verifies a key or JWT.
pub(crate) fn verify(gatekeeper: &Gatekeeper, token: &str) -> Result<Verified, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if let Some(role) = gatekeeper.api_key_role(token) {
        let caller = gatekeeper
            .caller(Some(role), None)
            .map_err(|_| TokenError::Role)?;
        let expires_at = exp_of(caller.claims());
        return Ok(Verified { caller, expires_at });
    }
    let claims = gatekeeper
        .verifier()
        .verify(token)
        .map_err(|error| match error {
            JwtError::Expired => {
                TokenError::Expired(unverified_exp(token).map_or(0, |exp| unix_now() - exp))
            }
            JwtError::Signature | JwtError::NoKey | JwtError::Algorithm => TokenError::Signature,
            _ => TokenError::Malformed,
        })?;
    let has_role = claims.get("role").and_then(Value::as_str).is_some();
    let Some(expires_at) = exp_of(&claims).filter(|_| has_role) else {
        return Err(TokenError::MissingClaims);
    };
    let caller = gatekeeper
        .caller_from_claims(claims)
        .map_err(|_| TokenError::Role)?;
    Ok(Verified {
        caller,
        expires_at: Some(expires_at),
    })
}
