//! Connecting: the API pool and one-off admin connections.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Client, NoTls};

use crate::error::DbError;

/// Name shown in `pg_stat_activity` for Manifold's connections.
const APPLICATION_NAME: &str = "manifold";

/// Creates the API pool. Connections open lazily, on first use.
pub fn create_pool(url: &str, size: usize, wait_timeout: Duration) -> Result<Pool, DbError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.application_name(APPLICATION_NAME);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(wait_timeout))
        .create_timeout(Some(wait_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|error| DbError::Unavailable(Box::new(error)))
}

/// Opens a single connection (migrations, bootstrap) whose driver task runs in the background.
pub async fn connect(url: &str) -> Result<Client, DbError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.application_name(APPLICATION_NAME);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "admin connection closed");
        }
    });
    Ok(client)
}
