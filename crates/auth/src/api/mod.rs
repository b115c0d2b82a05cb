//! The GoTrue-compatible `/auth/v1` API. Routes not served yet answer a JSON 404.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use manifold_config::Config;
use manifold_db::Db;
use serde_json::json;

use crate::Gatekeeper;
use crate::gateway::require_api_key;

/// What the `/auth/v1` handlers share.
#[derive(Clone, Debug)]
pub struct AuthState {
    /// The API pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
    /// Settings.
    pub config: Arc<Config>,
}

/// Routes for `/auth/v1/…`. The gateway's `apikey` rule applies to all of them except the
/// browser-facing ones Supabase's gateway leaves open (`/verify`, `/callback`, `/authorize`,
/// `/.well-known/jwks.json`).
pub fn router(state: AuthState) -> Router {
    let gateway = from_fn_with_state(state.gatekeeper.clone(), require_api_key);
    Router::new()
        .route("/auth/v1/{*path}", any(not_implemented))
        .layer(gateway)
        .with_state(state)
}

async fn not_implemented() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"code": "not_found", "message": "This endpoint is not available on this server"})),
    )
        .into_response()
}
