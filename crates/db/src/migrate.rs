//! Applies the embedded SQL migrations once each, in order, recording a checksum per file. An
//! applied file whose text changed is refused: migrations are fixed forward, never edited.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// One SQL file from `schema/`, `policies/`, `storage/` or `realtime/`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The folder it came from.
    pub folder: &'static str,
    /// The file name, e.g. `0001_roles.sql`.
    pub name: &'static str,
    /// The file's text.
    pub sql: &'static str,
}

impl Migration {
    /// `folder/name`, as errors and logs show it.
    pub fn path(&self) -> String {
        format!("{}/{}", self.folder, self.name)
    }

    fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// The migrations compiled into this binary, in apply order.
pub const EMBEDDED: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Serialises migrators of several processes starting against one database.
const MIGRATION_LOCK_KEY: i64 = 0x6d61_6e69_666f_6c64;

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// An applied migration's text differs from what was applied.
    #[error(
        "migration {path} was edited after it was applied (checksum {applied} in the database, \
         {current} now); migrations are never edited: restore the file and add a new one"
    )]
    Edited {
        /// `folder/name` of the file.
        path: String,
        /// Checksum recorded when it was applied.
        applied: String,
        /// Checksum of the file now.
        current: String,
    },
    /// A migration failed to run; nothing of it was kept.
    #[error("migration {path} failed: {message}")]
    Failed {
        /// `folder/name` of the file.
        path: String,
        /// The database's message, with detail and position.
        message: String,
        /// The database error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Talking to the database failed.
    #[error("migration bookkeeping failed")]
    Database(#[from] tokio_postgres::Error),
}

/// What a migrator run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Files applied by this run, as `folder/name`.
    pub applied: Vec<String>,
    /// Files that were already applied.
    pub unchanged: usize,
}

/// Applies `migrations` not yet recorded in `manifold.migrations`, each in its own transaction.
/// Every recorded file is checked first, so an edited file stops the run before anything new is
/// applied. `client` must be a superuser or the database owner.
#[allow(
    clippy::disallowed_methods,
    reason = "migrations are trusted files compiled into the binary; simple-query execution is how multi-statement SQL files run"
)]
pub async fn migrate(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = migrate_locked(client, migrations).await;
    client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    result
}

#[allow(
    clippy::disallowed_methods,
    reason = "migrations are trusted files compiled into the binary; simple-query execution is how multi-statement SQL files run"
)]
async fn migrate_locked(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(
            "create schema if not exists manifold;
             create table if not exists manifold.migrations (
                 folder text not null,
                 name text not null,
                 checksum text not null,
                 applied_at timestamptz not null default now(),
                 primary key (folder, name)
             );
             revoke all on schema manifold from public;",
        )
        .await?;
    let applied: HashMap<(String, String), String> = client
        .query(
            "select folder, name, checksum from manifold.migrations",
            &[],
        )
        .await?
        .into_iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect();

    let mut report = MigrationReport::default();
    for migration in migrations {
        let key = (migration.folder.to_owned(), migration.name.to_owned());
        if let Some(recorded) = applied.get(&key) {
            let current = migration.checksum();
            if *recorded != current {
                return Err(MigrateError::Edited {
                    path: migration.path(),
                    applied: recorded.clone(),
                    current,
                });
            }
        }
    }
    for migration in migrations {
        let key = (migration.folder.to_owned(), migration.name.to_owned());
        if applied.contains_key(&key) {
            report.unchanged += 1;
            continue;
        }
        let transaction = client.transaction().await?;
        transaction
            .batch_execute("set local search_path = public, extensions")
            .await?;
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(|source| MigrateError::Failed {
                path: migration.path(),
                message: describe(&source),
                source,
            })?;
        transaction
            .execute(
                "insert into manifold.migrations (folder, name, checksum) values ($1, $2, $3)",
                &[&migration.folder, &migration.name, &migration.checksum()],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(migration = %migration.path(), "applied migration");
        report.applied.push(migration.path());
    }
    let known: Vec<(&str, &str)> = migrations.iter().map(|m| (m.folder, m.name)).collect();
    for (folder, name) in applied.keys() {
        if !known.contains(&(folder.as_str(), name.as_str())) {
            tracing::warn!(migration = %format!("{folder}/{name}"), "database has a migration this binary does not know; is it older than the database?");
        }
    }
    Ok(report)
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; detail: {detail}"));
            }
            if let Some(tokio_postgres::error::ErrorPosition::Original(position)) = db.position() {
                text.push_str(&format!("; at character {position}"));
            }
            text
        }
        None => error.to_string(),
    }
}
