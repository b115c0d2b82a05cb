//! Loading the schema cache, keeping the current one, and reloading it: on `NOTIFY pgrst,
//! 'reload schema'` (sent by the DDL event trigger too) and, single-flight, when a request names
//! something the cache does not know.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use manifold_sql::SchemaCache;
use manifold_sql::cache::{Catalog, INTROSPECTION_SQL, ViewColumnOrigin};
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_util::sync::CancellationToken;

use crate::{Db, DbError};

/// Notifications on this channel reload the cache, as PostgREST's `db-channel`.
const CHANNEL: &str = "pgrst";
/// Bursts of notifications within this window cause one reload.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Without a schema version to compare (no DDL event trigger), a request naming an unknown
/// object reloads the cache at most this often.
const MISS_RELOAD_INTERVAL: Duration = Duration::from_millis(500);
/// Advanced by the DDL event trigger (schema/0005); readable by the API pool's role.
const VERSION_SQL: &str = "select last_value from manifold.schema_version";
/// `loaded_version` when the version is unknown.
const UNKNOWN_VERSION: i64 = -1;
/// Wait before reconnecting the listener after its connection broke.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// Why the cache could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaCacheError {
    /// A catalog query failed.
    #[error("schema introspection failed")]
    Query(#[from] tokio_postgres::Error),
    /// Connecting failed.
    #[error("schema introspection could not connect")]
    Connect(#[from] DbError),
    /// The introspection result could not be read.
    #[error(transparent)]
    Document(#[from] serde_json::Error),
}

/// Reads the catalog of `schemas` through `client` (a superuser or owner connection).
pub async fn load(client: &Client, schemas: &[String]) -> Result<SchemaCache, SchemaCacheError> {
    // Inside a transaction with search_path = pg_catalog: every type and view definition comes
    // back schema-qualified, and nothing leaks into the session.
    client.execute("begin read only", &[]).await?;
    let result = load_in_transaction(client, schemas).await;
    client.execute("rollback", &[]).await?;
    result
}

async fn load_in_transaction(
    client: &Client,
    schemas: &[String],
) -> Result<SchemaCache, SchemaCacheError> {
    client
        .execute("set local search_path = pg_catalog", &[])
        .await?;
    let schemas_json = serde_json::to_string(schemas)?;
    let row = client
        .query_one(INTROSPECTION_SQL, &[&schemas_json])
        .await?;
    let document: String = row.get(0);
    let catalog: Catalog = serde_json::from_str(&document)?;
    let mut origins = Vec::new();
    for relation in &catalog.relations {
        let Some(definition) = &relation.view_definition else {
            continue;
        };
        // The view's own query, prepared (never run): PostgreSQL reports for each output column
        // the table and column it comes from. The text is the catalog's own view definition.
        let query = definition.trim().trim_end_matches(';');
        match client.prepare(query).await {
            Ok(statement) => {
                for (index, column) in statement.columns().iter().enumerate() {
                    if let (Some(table), Some(attnum)) = (column.table_oid(), column.column_id())
                        && let Ok(position) = i16::try_from(index + 1)
                    {
                        origins.push(ViewColumnOrigin {
                            view_oid: relation.oid,
                            view_column: position,
                            source_oid: table,
                            source_column: attnum,
                        });
                    }
                }
            }
            Err(error) => {
                tracing::warn!(view = %relation.name, %error, "cannot trace the columns of a view; it will have no relationships");
            }
        }
    }
    Ok(SchemaCache::from_catalog(schemas, catalog, &origins))
}

/// The schema version kept by the DDL event trigger, or `None` where there is none.
async fn schema_version(client: &Client) -> Option<i64> {
    let row = client.query_one(VERSION_SQL, &[]).await.ok()?;
    row.try_get(0).ok()
}

/// The current schema cache, swapped whole on reload.
#[derive(Debug)]
pub struct SchemaCacheStore {
    current: RwLock<Arc<SchemaCache>>,
    generation: AtomicU64,
    /// The schema version read just before the current cache was introspected.
    loaded_version: AtomicI64,
    /// Serialises reloads; holds when the last reload caused by a miss ran.
    reload_lock: tokio::sync::Mutex<Option<Instant>>,
    admin_url: String,
    schemas: Vec<String>,
    db: Db,
}

impl SchemaCacheStore {
    /// Loads the first cache.
    pub async fn load(
        admin_url: &str,
        schemas: Vec<String>,
        db: Db,
    ) -> Result<Arc<Self>, SchemaCacheError> {
        let client = crate::connect(admin_url).await?;
        let version = schema_version(&client).await;
        let cache = load(&client, &schemas).await?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(cache)),
            generation: AtomicU64::new(1),
            loaded_version: AtomicI64::new(version.unwrap_or(UNKNOWN_VERSION)),
            reload_lock: tokio::sync::Mutex::new(None),
            admin_url: admin_url.to_owned(),
            schemas,
            db,
        }))
    }

    /// The cache to plan a request with, and its generation.
    pub fn current(&self) -> (Arc<SchemaCache>, u64) {
        let cache = self
            .current
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |c| c.clone());
        (cache, self.generation.load(Ordering::Acquire))
    }

    /// Reloads now (after a notification). Reloads are serialised; one that waited for another
    /// still runs, since the other may have read the catalog before the change it is told of.
    pub async fn reload(&self) -> Result<(), SchemaCacheError> {
        let _serialised = self.reload_lock.lock().await;
        self.reload_locked().await
    }

    /// Called when a request planned with generation `seen` named something unknown. Reloads
    /// once unless another reload already happened since; when the DDL event trigger keeps a
    /// schema version, only if it moved since the cache was loaded (so made-up names cost one
    /// cheap query, never a reload); without it, at most once per interval of misses.
    pub async fn reload_after_miss(&self, seen: u64) -> bool {
        let mut last_miss = self.reload_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        let loaded = self.loaded_version.load(Ordering::Acquire);
        if loaded != UNKNOWN_VERSION {
            if self.current_version().await == Some(loaded) {
                return false;
            }
        } else if last_miss.is_some_and(|at| at.elapsed() < MISS_RELOAD_INTERVAL) {
            return false;
        }
        *last_miss = Some(Instant::now());
        match self.reload_locked().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "schema cache reload failed; the old cache keeps serving");
                false
            }
        }
    }

    async fn reload_locked(&self) -> Result<(), SchemaCacheError> {
        let started = Instant::now();
        let client = crate::connect(&self.admin_url).await?;
        // Read before introspecting: DDL after this point moves the version past it.
        let version = schema_version(&client).await;
        let cache = load(&client, &self.schemas).await?;
        self.loaded_version
            .store(version.unwrap_or(UNKNOWN_VERSION), Ordering::Release);
        {
            let mut current = self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *current = Arc::new(cache);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Prepared statements may describe old column types; start afresh.
        self.db.clear_statement_caches();
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "schema cache reloaded"
        );
        Ok(())
    }

    /// The schema version now, through the API pool; `None` when it cannot be read.
    async fn current_version(&self) -> Option<i64> {
        let client = self.db.pool().get().await.ok()?;
        schema_version(&client).await
    }

    /// Listens for `NOTIFY pgrst` until `shutdown`; reconnects when the connection breaks (and
    /// reloads then, since notifications may have been missed).
    pub async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.listen_once(&shutdown) => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "schema reload listener lost its connection; retrying");
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(LISTENER_RETRY) => {}
            }
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "schema cache reload failed");
            }
        }
    }

    async fn listen_once(&self, shutdown: &CancellationToken) -> Result<(), SchemaCacheError> {
        let config: tokio_postgres::Config = self.admin_url.parse().map_err(DbError::from)?;
        let (client, mut connection) = config.connect(NoTls).await?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(16);
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(note)) if note.channel() == CHANNEL => {
                        // A full queue already holds a pending reload; dropping is fine.
                        let _ = sender.try_send(note.payload().to_owned());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        client.execute("listen pgrst", &[]).await?;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                payload = receiver.recv() => {
                    let Some(payload) = payload else { break };
                    if !matches!(payload.as_str(), "" | "reload schema") {
                        continue;
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                    while receiver.try_recv().is_ok() {}
                    if let Err(error) = self.reload().await {
                        tracing::warn!(%error, "schema cache reload failed; the old cache keeps serving");
                    }
                }
            }
        }
        drop(client);
        driver.abort();
        Ok(())
    }
}
