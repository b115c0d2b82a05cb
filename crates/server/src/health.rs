//! `GET /health`: the process is up and the database answers.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use manifold_db::Db;
use serde_json::json;

/// How long the health check waits for the database.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 when a pooled connection answers `select 1`, else 503.
pub(crate) async fn health(State(db): State<Db>) -> Response {
    let check = async {
        let client = db.pool().get().await.ok()?;
        client.query_one("select 1", &[]).await.ok()
    };
    match tokio::time::timeout(DB_CHECK_TIMEOUT, check).await {
        Ok(Some(_)) => (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "database": "ok"})),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "database": "unreachable"})),
        )
            .into_response(),
    }
}
