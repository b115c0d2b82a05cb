//! Supabase Realtime at `/realtime/v1`. Routes not served yet answer a JSON 404.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use manifold_auth::Gatekeeper;
use manifold_config::Config;
use manifold_config::Secret;
use manifold_db::Db;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What the `/realtime/v1` handlers share.
#[derive(Clone, Debug)]
pub struct RealtimeState {
    /// The API pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
    /// Settings.
    pub config: Arc<Config>,
    /// Superuser (or replication-capable) URL of the database, for the replication reader.
    pub admin_url: Secret,
}

/// Starts realtime's background work (the replication reader) until `shutdown`. The server
/// awaits the returned task after the HTTP server stopped.
pub fn start(state: RealtimeState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let _ = state;
    tokio::spawn(async move { shutdown.cancelled().await })
}

/// Routes for `/realtime/v1/…`.
pub fn router(state: RealtimeState) -> Router {
    Router::new()
        .route("/realtime/v1/{*path}", any(not_implemented))
        .with_state(state)
}

async fn not_implemented() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not found"})),
    )
        .into_response()
}
