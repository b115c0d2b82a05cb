//! Shared state of the router; each API takes the parts it needs through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use manifold_auth::Gatekeeper;
use manifold_auth::api::AuthState;
use manifold_config::Config;
use manifold_db::Db;
use manifold_db::schema_cache::SchemaCacheStore;
use manifold_realtime::RealtimeState;
use manifold_rest::RestState;
use manifold_storage::StorageState;

/// Everything request handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Settings.
    pub config: Arc<Config>,
    /// The API connection pool.
    pub db: Db,
    /// Keys, token verification and role rules.
    pub gatekeeper: Arc<Gatekeeper>,
    /// The schema cache.
    pub cache: Arc<SchemaCacheStore>,
    /// Superuser URL of the database (replication, maintenance).
    pub admin_url: manifold_config::Secret,
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

impl AppState {
    /// The `/rest/v1` part of the state.
    pub fn rest(&self) -> RestState {
        RestState {
            db: self.db.clone(),
            cache: self.cache.clone(),
            gatekeeper: self.gatekeeper.clone(),
            config: Arc::new(self.config.rest.clone()),
            max_body_bytes: self.config.api.max_body_bytes,
        }
    }

    /// The `/auth/v1` part of the state.
    pub fn auth(&self) -> AuthState {
        AuthState {
            db: self.db.clone(),
            gatekeeper: self.gatekeeper.clone(),
            config: self.config.clone(),
        }
    }

    /// The `/storage/v1` part of the state.
    pub fn storage(&self) -> StorageState {
        StorageState {
            db: self.db.clone(),
            gatekeeper: self.gatekeeper.clone(),
            config: self.config.clone(),
            local_root: self.config.data_dir.join("storage"),
        }
    }

    /// The `/realtime/v1` part of the state.
    pub fn realtime(&self) -> RealtimeState {
        RealtimeState {
            db: self.db.clone(),
            gatekeeper: self.gatekeeper.clone(),
            config: self.config.clone(),
            admin_url: self.admin_url.clone(),
        }
    }
}
