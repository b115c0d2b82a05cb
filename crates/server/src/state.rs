//! Shared state of the router; each API takes the parts it needs through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use manifold_auth::Gatekeeper;
use manifold_config::Config;
use manifold_db::Db;

/// Everything request handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Settings.
    pub config: Arc<Config>,
    /// The API connection pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
}

impl FromRef<AppState> for Arc<Gatekeeper> {
    fn from_ref(state: &AppState) -> Self {
        state.gatekeeper.clone()
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
