//! Supabase Realtime at `/realtime/v1`: the Phoenix-channel websocket protocol realtime-js
//! speaks (serializers 1.0.0 and 2.0.0), postgres_changes streamed from logical replication
//! and authorized by the tables' RLS policies on the committed row images, broadcast (socket
//! and HTTP), presence, and private channels authorized by `realtime.messages` policies.

mod changes;
mod error;
mod http;
mod hub;
mod outbox;
mod private;
mod protocol;
mod runtime;
mod socket;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use manifold_auth::Gatekeeper;
use manifold_config::Config;
use manifold_config::Secret;
use manifold_db::Db;
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

/// Starts realtime's background work until `shutdown`: resumes the durable slot if it exists
/// (the reader otherwise starts with the first join) and watches DDL to refresh policies. The
/// server awaits the returned task after the HTTP server stopped; by then every socket is
/// closed and the reader has confirmed what it delivered.
pub fn start(state: RealtimeState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let runtime = runtime::runtime_for(&state);
    tokio::spawn(async move {
        let listener = runtime.clone();
        runtime.tracker.spawn(listener.listen_for_ddl());
        if let Err(error) = runtime.replication.resume_existing().await {
            tracing::warn!(%error, "could not check the realtime replication slot");
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = runtime.shutdown.cancelled() => {}
        }
        runtime.shutdown.cancel();
        runtime.tracker.close();
        runtime.tracker.wait().await;
        runtime::forget(&state);
    })
}

/// Routes for `/realtime/v1/…`.
pub fn router(state: RealtimeState) -> Router {
    Router::new()
        .route("/realtime/v1/websocket", get(socket::websocket))
        .route("/realtime/v1/api/broadcast", post(http::broadcast_batch))
        .route(
            "/realtime/v1/api/broadcast/{topic}/events/{event}",
            post(http::broadcast_one),
        )
        .route(
            "/realtime/v1/api/replication",
            get(http::replication_status),
        )
        .with_state(state)
}
