//! What handlers read from a request: a lenient JSON body, the client's IP and user agent, query
//! parameters, and the bearer token of a user or an admin.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::Auth;
use super::error::AuthError;
use crate::gateway::{ApiKeyRole, authorization_header, bearer_token};

/// GoTrue refuses request bodies over 1 MiB.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Roles whose tokens may call the admin API, as GoTrue's `GOTRUE_JWT_ADMIN_ROLES`.
const ADMIN_ROLES: &[&str] = &["service_role", "supabase_admin"];

/// A JSON body; an empty body (auth-js sends `POST /logout` with none) reads as the default.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for Body<T> {
    type Rejection = AuthError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                AuthError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_entity_too_large",
                    "Request body too large",
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let bad_json = |error: serde_json::Error| {
            AuthError::bad_request(
                "bad_json",
                format!("Could not parse request body as JSON: {error}"),
            )
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(bad_json)?;
        // PostgreSQL text cannot hold NUL: refuse it here instead of failing in the database.
        if contains_nul(&value) {
            return Err(nul_refused());
        }
        serde_json::from_value(value).map(Self).map_err(bad_json)
    }
}

/// Whether any string (or object key) in `value` contains a NUL character.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn nul_refused() -> AuthError {
    AuthError::validation("Request contains a NUL character")
}

/// The query string as decoded pairs (last one wins).
pub(crate) struct Params(pub(crate) HashMap<String, String>);

impl Params {
    /// A parameter, if present and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = parts
            .uri
            .query()
            .map(manifold_query::query_pairs)
            .unwrap_or_default();
        if pairs
            .iter()
            .any(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(nul_refused());
        }
        Ok(Self(pairs.into_iter().collect()))
    }
}

/// Who is calling from where: IP (trusted header or TCP peer) and user agent, kept on sessions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub(crate) ip: Option<IpAddr>,
    pub(crate) user_agent: Option<String>,
}

impl Client {
    /// The IP as text for an `inet` column, if known.
    pub(crate) fn ip_text(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

/// The client IP: the configured header's first address, else the TCP peer.
pub(crate) fn client_ip<B>(request: &http::Request<B>, header: Option<&str>) -> Option<IpAddr> {
    client_ip_from(request.headers(), request.extensions(), header)
}

fn client_ip_from(
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
    header: Option<&str>,
) -> Option<IpAddr> {
    if let Some(name) = header
        && let Some(ip) = headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse().ok())
    {
        return Some(ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

impl FromRequestParts<Arc<Auth>> for Client {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Auth>,
    ) -> Result<Self, Self::Rejection> {
        let header = state.settings().rate_limit.ip_header.as_deref();
        Ok(Self {
            ip: client_ip_from(&parts.headers, &parts.extensions, header),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        })
    }
}

/// A verified user access token: its subject, session and claims. The user and session rows
/// are checked by the handler inside its transaction.
#[derive(Debug, Clone)]
pub(crate) struct UserToken {
    pub(crate) user_id: Uuid,
    pub(crate) session_id: Option<Uuid>,
    pub(crate) claims: Map<String, Value>,
}

impl UserToken {
    /// The token's `aal` claim.
    pub(crate) fn aal(&self) -> &str {
        self.claims
            .get("aal")
            .and_then(Value::as_str)
            .unwrap_or("aal1")
    }
}

fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    authorization_header(&parts.headers)
        .and_then(bearer_token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            AuthError::new(
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a valid Bearer token",
            )
        })
}

fn bad_jwt(detail: impl std::fmt::Display) -> AuthError {
    AuthError::forbidden(
        "bad_jwt",
        format!("invalid JWT: unable to parse or verify signature, {detail}"),
    )
}

impl FromRequestParts<Arc<Auth>> for UserToken {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Auth>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        // The anon key (or any API key) as bearer has no user: GoTrue says "missing sub claim".
        if state.gatekeeper.api_key_role(token).is_some() {
            return Err(AuthError::forbidden(
                "bad_jwt",
                "invalid claim: missing sub claim",
            ));
        }
        let claims = state.gatekeeper.verifier().verify(token).map_err(bad_jwt)?;
        if let Some(aud) = claims.get("aud")
            && !audience_matches(aud, super::AUDIENCE)
        {
            return Err(AuthError::validation(format!(
                "Invalid audience, expected {}",
                super::AUDIENCE
            )));
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| AuthError::forbidden("bad_jwt", "invalid claim: missing sub claim"))?;
        let user_id = Uuid::parse_str(sub).map_err(|_| {
            AuthError::bad_request("bad_jwt", "invalid claim: sub claim must be a UUID")
        })?;
        let session_id = claims
            .get("session_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok());
        Ok(Self {
            user_id,
            session_id,
            claims,
        })
    }
}

fn audience_matches(aud: &Value, wanted: &str) -> bool {
    match aud {
        Value::String(aud) => aud == wanted,
        Value::Array(list) => list.iter().any(|item| item.as_str() == Some(wanted)),
        _ => false,
    }
}

/// A caller of the admin API: a service-role key or a JWT whose role is an admin role.
pub(crate) struct Admin;

impl FromRequestParts<Arc<Auth>> for Admin {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Auth>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let not_admin = || AuthError::forbidden("not_admin", "User not allowed");
        match state.gatekeeper.api_key_role(token) {
            Some(ApiKeyRole::Service) => return Ok(Self),
            Some(ApiKeyRole::Anon) => return Err(not_admin()),
            None => {}
        }
        let claims = state.gatekeeper.verifier().verify(token).map_err(bad_jwt)?;
        let role = claims.get("role").and_then(Value::as_str).unwrap_or("");
        if ADMIN_ROLES.contains(&role) {
            Ok(Self)
        } else {
            Err(not_admin())
        }
    }
}
