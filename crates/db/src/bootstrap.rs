//! Getting a database ready for the API: logical WAL checked, migrations applied, the
//! `authenticator` login role given its password.

use tokio_postgres::Client;

use crate::DbError;
use crate::migrate::{self, EMBEDDED, MigrateError, MigrationReport};
use crate::pool::connect;

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The admin connection failed.
    #[error("cannot connect to the database at {target}")]
    Connect {
        /// Host, port and database (no credentials).
        target: String,
        /// The connection error.
        #[source]
        source: DbError,
    },
    /// Realtime needs logical decoding.
    #[error(
        "the database at {target} runs with wal_level={actual}; manifold needs wal_level=logical \
         for realtime. Run `ALTER SYSTEM SET wal_level = logical;` (or set it in \
         postgresql.conf) and restart PostgreSQL"
    )]
    WalLevel {
        /// Host, port and database (no credentials).
        target: String,
        /// The current setting.
        actual: String,
    },
    /// A migration failed or was edited.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// Another bootstrap query failed.
    #[error("database bootstrap failed")]
    Query(#[from] tokio_postgres::Error),
}

/// Checks `wal_level`, applies the embedded migrations and, when given, sets the password of the
/// `authenticator` role, through a superuser (or owner) connection at `admin_url`.
pub async fn prepare_database(
    admin_url: &str,
    authenticator_password: Option<&str>,
) -> Result<MigrationReport, BootstrapError> {
    let target = describe_target(admin_url);
    let mut client = connect(admin_url)
        .await
        .map_err(|source| BootstrapError::Connect {
            target: target.clone(),
            source,
        })?;
    let wal_level: String = client.query_one("show wal_level", &[]).await?.get(0);
    if wal_level != "logical" {
        return Err(BootstrapError::WalLevel {
            target,
            actual: wal_level,
        });
    }
    let report = migrate::migrate(&mut client, EMBEDDED).await?;
    if let Some(password) = authenticator_password {
        set_authenticator_password(&client, password).await?;
    }
    Ok(report)
}

/// `ALTER ROLE` takes no bind parameters, so the password travels as a bound session setting
/// and a fixed DO block reads it; it never appears in SQL text.
async fn set_authenticator_password(
    client: &Client,
    password: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "select set_config('manifold.authenticator_password', $1, false)",
            &[&password],
        )
        .await?;
    client
        .execute(
            "do $$ begin execute format('alter role authenticator with login password %L', \
             current_setting('manifold.authenticator_password')); end $$",
            &[],
        )
        .await?;
    client
        .execute(
            "select set_config('manifold.authenticator_password', '', false)",
            &[],
        )
        .await?;
    Ok(())
}

/// `host:port/dbname` of a connection URL, without user or password, for messages.
pub fn describe_target(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let dbname = config.get_dbname().unwrap_or("postgres");
            format!("{host}:{port}/{dbname}")
        }
        Err(_) => "an unparsable URL".into(),
    }
}
