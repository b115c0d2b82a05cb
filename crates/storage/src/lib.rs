//! The Supabase Storage API at `/storage/v1`. Routes not served yet answer a JSON 404 in
//! Storage's error envelope.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use manifold_auth::Gatekeeper;
use manifold_config::Config;
use manifold_db::Db;
use serde_json::json;

/// What the `/storage/v1` handlers share.
#[derive(Clone, Debug)]
pub struct StorageState {
    /// The API pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
    /// Settings.
    pub config: Arc<Config>,
    /// Directory for locally stored objects (under the data dir).
    pub local_root: PathBuf,
}

/// Routes for `/storage/v1/…`.
pub fn router(state: StorageState) -> Router {
    Router::new()
        .route("/storage/v1/{*path}", any(not_implemented))
        .with_state(state)
}

async fn not_implemented() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "statusCode": "404",
            "code": "not_found",
            "error": "not_found",
            "message": "This endpoint is not available on this server",
        })),
    )
        .into_response()
}
