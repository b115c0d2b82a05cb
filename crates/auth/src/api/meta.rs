//! Endpoints about the service itself: `/health`, `/settings`, the public JWK set, and the OAuth
//! entry points this server does not offer (no external providers are configured).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Auth;
use super::error::AuthError;
use super::request::Params;

/// supabase-js caches the JWK set for 10 minutes; say the same to HTTP caches.
const JWKS_CACHE_CONTROL: &str = "public, max-age=600";

/// `GET /health`, GoTrue's shape.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API (Manifold)",
    }))
}

/// `GET /settings`: which providers are on.
pub(crate) async fn settings(State(auth): State<Arc<Auth>>) -> Json<Value> {
    let settings = auth.settings();
    Json(json!({
        "external": {
            "anonymous_users": settings.anonymous_sign_ins,
            "email": settings.email_enabled,
            "phone": false,
            "apple": false, "azure": false, "bitbucket": false, "discord": false,
            "facebook": false, "figma": false, "fly": false, "github": false, "gitlab": false,
            "google": false, "keycloak": false, "kakao": false, "linkedin_oidc": false,
            "notion": false, "slack_oidc": false, "spotify": false, "twitch": false,
            "twitter": false, "workos": false, "zoom": false,
        },
        "disable_signup": settings.disable_signup,
        "mailer_autoconfirm": settings.autoconfirm(),
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "passkeys_enabled": false,
    }))
}

/// `GET /.well-known/jwks.json`: the public halves of the asymmetric signing keys (empty with
/// the HS256 secret only; symmetric keys are never listed).
pub(crate) async fn jwks(State(auth): State<Arc<Auth>>) -> Result<Response, AuthError> {
    let keys = auth
        .gatekeeper
        .signing_keys()
        .map_err(|error| AuthError::internal(format!("signing keys unusable: {error}")))?;
    let mut response = Json(keys.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(JWKS_CACHE_CONTROL),
    );
    Ok(response)
}

/// `GET /authorize`: OAuth providers are not configured on this server.
pub(crate) async fn authorize(params: Params) -> AuthError {
    let provider = params.get("provider").unwrap_or("");
    AuthError::validation(format!(
        "Unsupported provider: provider {provider} is not enabled"
    ))
}

/// `GET /callback`: no OAuth flow can be in progress.
pub(crate) async fn callback() -> AuthError {
    AuthError::bad_request("bad_oauth_callback", "OAuth state parameter missing")
}

/// Anything else under `/auth/v1`.
pub(crate) async fn not_found() -> AuthError {
    AuthError::new(StatusCode::NOT_FOUND, "not_found", "Not Found")
}
