//! JWT verification with PostgREST's rules and messages: signature first, then `exp`, `nbf` and
//! `iat` with 30 s of clock skew, then `aud` when one is configured. HS tokens verify with the
//! project secret; ES256/RS256 tokens with the configured public keys, chosen by `kid`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::keys::unix_now;

/// Clock skew tolerated on time claims, as PostgREST.
const CLOCK_SKEW_SECS: i64 = 30;

/// Why a bearer token was refused. Messages are PostgREST's, which supabase-js users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// `Authorization: Bearer` with nothing after it.
    #[error("Empty JWT is sent in Authorization header")]
    Empty,
    /// Not three dot-separated parts.
    #[error("Expected 3 parts in JWT; got {0}")]
    Parts(usize),
    /// The header names an algorithm we do not accept (including `none`).
    #[error("Wrong or unsupported encoding algorithm")]
    Algorithm,
    /// No configured key matches the token's algorithm or `kid`.
    #[error("No suitable key or wrong key type")]
    NoKey,
    /// The signature does not verify, or the token is malformed.
    #[error("JWT cryptographic operation failed")]
    Signature,
    /// `exp` is in the past.
    #[error("JWT expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("JWT not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("JWT issued at future")]
    IssuedInFuture,
    /// `aud` does not contain the configured audience.
    #[error("JWT not in audience")]
    Audience,
    /// A time claim is not a number.
    #[error("The JWT '{0}' claim must be a number")]
    NotANumber(&'static str),
    /// The payload is not a JSON object.
    #[error("Parsing claims failed")]
    Claims,
}

impl JwtError {
    /// PostgREST's error code: PGRST303 for claim checks, PGRST301 for decoding and signature.
    pub fn pgrst_code(&self) -> &'static str {
        match self {
            Self::Expired
            | Self::NotYetValid
            | Self::IssuedInFuture
            | Self::Audience
            | Self::NotANumber(_)
            | Self::Claims => "PGRST303",
            _ => "PGRST301",
        }
    }
}

/// A verification key with the algorithms it may be used for.
#[derive(Clone)]
struct VerificationKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// Verifies tokens signed with the project secret (HS256/384/512) or, by `kid`, with any
/// configured asymmetric public key.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Vec<VerificationKey>,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for the shared HS secret; `audience` is PostgREST's `jwt-aud`.
    pub fn hs256(secret: &str, audience: Option<String>) -> Self {
        Self {
            keys: vec![VerificationKey {
                kid: None,
                algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
                key: DecodingKey::from_secret(secret.as_bytes()),
            }],
            audience,
        }
    }

    /// Also accepts tokens signed by `key` (an ES256/RS256 signing key's public half, or a
    /// trusted key of another project), selected by the token's `kid`.
    pub fn add_public_key(&mut self, key: crate::signing::PublicKey) {
        self.keys.push(VerificationKey {
            kid: key.kid,
            algorithms: vec![key.algorithm],
            key: key.key,
        });
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JwtError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(JwtError::Empty);
        }
        let parts = token.split('.').count();
        if parts != 3 {
            return Err(JwtError::Parts(parts));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Algorithm)?;
        let candidates: Vec<&VerificationKey> = self
            .keys
            .iter()
            .filter(|key| key.algorithms.contains(&header.alg))
            .filter(|key| match (&header.kid, &key.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                // HS tokens from Supabase may carry a kid; the shared secret still applies.
                (_, None) => true,
                (None, Some(_)) => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::NoKey);
        }
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = candidates
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Value>(token, &key.key, &validation).ok())
            .ok_or(JwtError::Signature)?
            .claims;
        let Value::Object(claims) = claims else {
            return Err(JwtError::Claims);
        };
        check_time_claims(&claims, unix_now_signed())?;
        if let Some(audience) = &self.audience {
            check_audience(&claims, audience)?;
        }
        Ok(claims)
    }
}

fn unix_now_signed() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float as i64))
            .map(Some)
            .ok_or(JwtError::NotANumber(name)),
        Some(_) => Err(JwtError::NotANumber(name)),
    }
}

fn check_time_claims(claims: &Map<String, Value>, now: i64) -> Result<(), JwtError> {
    if let Some(exp) = time_claim(claims, "exp")?
        && now - CLOCK_SKEW_SECS > exp
    {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && now + CLOCK_SKEW_SECS < nbf
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = time_claim(claims, "iat")?
        && now + CLOCK_SKEW_SECS < iat
    {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(())
}

fn check_audience(claims: &Map<String, Value>, audience: &str) -> Result<(), JwtError> {
    let matches = match claims.get("aud") {
        // PostgREST accepts a token without `aud` even when jwt-aud is set.
        None | Some(Value::Null) => true,
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
        Some(_) => false,
    };
    if matches {
        Ok(())
    } else {
        Err(JwtError::Audience)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;
    use crate::keys::sign_hs256;

    const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";

    fn verifier() -> JwtVerifier {
        JwtVerifier::hs256(SECRET, None)
    }

    #[test]
    fn valid_token_returns_claims() {
        let token = sign_hs256(&json!({"sub": "u1", "role": "authenticated"}), SECRET).unwrap();
        assert_eq!(verifier().verify(&token).unwrap()["sub"], "u1");
    }

    #[test]
    fn malformed_tokens() {
        assert_eq!(verifier().verify(""), Err(JwtError::Empty));
        assert_eq!(verifier().verify("abc"), Err(JwtError::Parts(1)));
        assert_eq!(verifier().verify("a.b.c.d"), Err(JwtError::Parts(4)));
        assert_eq!(verifier().verify("a.b.c"), Err(JwtError::Algorithm));
    }

    #[test]
    fn wrong_secret_fails_signature() {
        let token =
            sign_hs256(&json!({"role": "anon"}), "another-secret-of-sufficient-len").unwrap();
        assert_eq!(verifier().verify(&token), Err(JwtError::Signature));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"role":"service_role"}"#);
        assert_eq!(
            verifier().verify(&format!("{header}.{payload}.")),
            Err(JwtError::Algorithm)
        );
    }

    #[test]
    fn time_claims_with_skew() {
        let now = unix_now_signed();
        let sign = |claims: Value| sign_hs256(&claims, SECRET).unwrap();
        assert_eq!(
            verifier().verify(&sign(json!({"exp": now - 60}))),
            Err(JwtError::Expired)
        );
        assert!(verifier().verify(&sign(json!({"exp": now - 10}))).is_ok());
        assert_eq!(
            verifier().verify(&sign(json!({"nbf": now + 60}))),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            verifier().verify(&sign(json!({"iat": now + 60}))),
            Err(JwtError::IssuedInFuture)
        );
        assert_eq!(
            verifier().verify(&sign(json!({"exp": "soon"}))),
            Err(JwtError::NotANumber("exp"))
        );
    }

    #[test]
    fn audience_only_when_configured() {
        let token = sign_hs256(&json!({"aud": "other"}), SECRET).unwrap();
        assert!(verifier().verify(&token).is_ok());
        let strict = JwtVerifier::hs256(SECRET, Some("authenticated".into()));
        assert_eq!(strict.verify(&token), Err(JwtError::Audience));
        let good = sign_hs256(&json!({"aud": ["x", "authenticated"]}), SECRET).unwrap();
        assert!(strict.verify(&good).is_ok());
    }

    #[test]
    fn codes_follow_postgrest() {
        assert_eq!(JwtError::Expired.pgrst_code(), "PGRST303");
        assert_eq!(JwtError::Signature.pgrst_code(), "PGRST301");
    }
}
