//! The real router, served on 127.0.0.1:0 against a test database.

use std::time::Duration;

use manifold_auth::ProjectKeys;
use manifold_config::{AuthConfig, Config};
use manifold_db::schema_cache::SchemaCacheStore;
use manifold_db::{Db, create_pool};
use manifold_server::{AppState, build_state, serve};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cluster::TestDb;

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The server's keys.
    pub keys: ProjectKeys,
    /// Its router state (pool, config).
    pub state: AppState,
    shutdown: CancellationToken,
}

impl TestServer {
    /// Starts a server with default settings against `db`.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server after `adjust` changed the default settings.
    pub async fn start_with(db: &TestDb, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::default();
        config.api.listen = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        let keys = ProjectKeys::generate(&AuthConfig::default()).unwrap();
        let pool = create_pool(
            &db.api_url,
            config.database.pool_size,
            Duration::from_millis(config.database.pool_timeout_ms),
        )
        .unwrap();
        let db_pool = Db::new(pool);
        let cache =
            SchemaCacheStore::load(&db.admin_url, config.rest.schemas.clone(), db_pool.clone())
                .await
                .unwrap();
        let state = build_state(config, db_pool, cache, &db.admin_url, keys.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), shutdown.clone()));
        TestServer {
            url,
            keys,
            state,
            shutdown,
        }
    }

    /// `url` + `path`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A token signed with this server's secret.
    pub fn jwt(&self, claims: &Value) -> String {
        mint_jwt(&self.keys.jwt_secret, claims)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Signs `claims` (HS256) with `secret`.
pub fn mint_jwt(secret: &str, claims: &Value) -> String {
    manifold_auth::keys::sign_hs256(claims, secret).unwrap()
}
