//! The per-request transaction: role, claims and request data become transaction-local settings,
//! so RLS sees the caller and nothing leaks to the next user of a pooled connection.

use std::pin::pin;

use deadpool_postgres::{Object, Pool};
use futures_util::future::maybe_done;
use futures_util::poll;
use manifold_sql::{BindValue, Statement};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::DbError;
use crate::param::{as_refs, params};

/// Prepared statements kept per connection before the cache is emptied; request shapes repeat,
/// but a hostile client must not be able to grow the cache without bound.
const STATEMENT_CACHE_LIMIT: usize = 512;

/// Applies a request's transaction-local settings, in order, from one JSON object (`json`, not
/// `jsonb`, keeps key order). The text is fixed, so it is prepared once per connection.
const SETTINGS_SQL: &str =
    "select set_config(s.key, s.value, true) from json_each_text($1::text::json) as s";

const BEGIN_READ_ONLY: &str = "begin isolation level read committed read only";
const BEGIN_READ_WRITE: &str = "begin isolation level read committed read write";

/// Whether a request may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET and HEAD: the transaction is READ ONLY.
    ReadOnly,
    /// Everything else.
    ReadWrite,
}

/// Who is asking and how: becomes transaction-local settings before the statement runs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Database role switched to; the caller has checked it against the role allow-list.
    pub role: String,
    /// Settings applied in order (`search_path`, `role`, `request.jwt.claims`, …).
    pub settings: Vec<(String, String)>,
    /// Read-only or read-write.
    pub access: Access,
    /// A call run after the settings and before the statement (PostgREST's `db-pre-request`).
    pub pre_request: Option<Statement>,
}

/// The request data PostgREST exposes to SQL.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// JWT claims as JSON text, with `role` set.
    pub claims: String,
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path below the API prefix, e.g. `/bottles`.
    pub path: String,
    /// Request headers as a JSON object with lower-case keys, cookie excluded.
    pub headers: String,
    /// Request cookies as a JSON object.
    pub cookies: String,
}

impl RequestContext {
    /// The standard settings: `search_path`, `role`, the claims (and the legacy per-claim
    /// settings hand-written SQL still reads), method, path, headers and cookies.
    pub fn new(role: &str, search_path: String, info: RequestInfo, access: Access) -> Self {
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&info.claims).unwrap_or_default();
        let claim = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let settings = vec![
            ("search_path".to_owned(), search_path),
            ("role".to_owned(), role.to_owned()),
            ("request.jwt.claims".to_owned(), info.claims.clone()),
            ("request.jwt.claim.sub".to_owned(), claim("sub")),
            ("request.jwt.claim.role".to_owned(), role.to_owned()),
            ("request.jwt.claim.email".to_owned(), claim("email")),
            ("request.method".to_owned(), info.method),
            ("request.path".to_owned(), info.path),
            ("request.headers".to_owned(), info.headers),
            ("request.cookies".to_owned(), info.cookies),
        ];
        Self {
            role: role.to_owned(),
            settings,
            access,
            pre_request: None,
        }
    }

    /// Adds a setting applied after the standard ones (role defaults, `timezone`, …).
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    fn settings_bind(&self) -> [BindValue; 1] {
        let mut object = String::from("{");
        for (index, (name, value)) in self.settings.iter().enumerate() {
            if index > 0 {
                object.push(',');
            }
            object.push_str(&serde_json::Value::String(name.clone()).to_string());
            object.push(':');
            object.push_str(&serde_json::Value::String(value.clone()).to_string());
        }
        object.push('}');
        [BindValue::Text(object)]
    }

    fn begin_sql(&self) -> &'static str {
        match self.access {
            Access::ReadOnly => BEGIN_READ_ONLY,
            Access::ReadWrite => BEGIN_READ_WRITE,
        }
    }
}

/// The API connection pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
}

impl Db {
    /// Wraps a pool created by [`crate::pool::create_pool`].
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The underlying pool (status, metrics).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Drops every cached prepared statement, e.g. after the schema changed.
    pub fn clear_statement_caches(&self) {
        self.pool.manager().statement_caches.clear();
    }

    /// Runs one statement in its own request transaction and returns its rows. Begin, settings,
    /// statement and commit go to the server in one round trip; when the statement fails, the
    /// commit turns into a rollback on the server and the statement's error is returned.
    pub async fn run(
        &self,
        ctx: &RequestContext,
        statement: &Statement,
    ) -> Result<Vec<Row>, DbError> {
        match self.pipelined(ctx, statement, Mode::Query).await? {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Affected(_) => Ok(Vec::new()),
        }
    }

    /// Like [`Db::run`] for a statement without result rows; returns the rows it affected.
    pub async fn execute(
        &self,
        ctx: &RequestContext,
        statement: &Statement,
    ) -> Result<u64, DbError> {
        match self.pipelined(ctx, statement, Mode::Execute).await? {
            Outcome::Affected(count) => Ok(count),
            Outcome::Rows(rows) => Ok(rows.len() as u64),
        }
    }

    async fn pipelined(
        &self,
        ctx: &RequestContext,
        statement: &Statement,
        mode: Mode,
    ) -> Result<Outcome, DbError> {
        let client = self.checkout().await?;
        // If this future is dropped mid-flight (client went away), the connection may be inside
        // an open transaction: the guard then closes it instead of returning it to the pool.
        let mut guard = InFlight(Some(client));
        let result = pipeline(guard.client(), ctx, statement, mode).await;
        // Every message got its answer, so the transaction has ended one way or the other and
        // the connection is idle again, even when the statement failed.
        guard.release();
        result
    }

    /// Opens a request transaction for several statements (auth and storage flows).
    pub async fn begin(&self, ctx: &RequestContext) -> Result<RequestTx, DbError> {
        let client = self.checkout().await?;
        let mut guard = InFlight(Some(client));
        let begun = open_transaction(guard.client(), ctx).await;
        match begun {
            Ok(()) => Ok(RequestTx {
                client: guard.0.take(),
            }),
            Err(error) => {
                // The settings failed inside an open transaction: end it before reuse.
                if guard.client().execute("rollback", &[]).await.is_ok() {
                    guard.release();
                }
                Err(error)
            }
        }
    }

    async fn checkout(&self) -> Result<Object, DbError> {
        let client = self.pool.get().await?;
        if client.statement_cache.size() > STATEMENT_CACHE_LIMIT {
            client.statement_cache.clear();
        }
        Ok(client)
    }
}

/// Begin, settings, statement and commit. When the statement is already prepared on this
/// connection all four go out together (one round trip). Otherwise it is prepared after the
/// settings, inside the transaction: name resolution checks schema privileges of the current
/// role, and the pool's own login role deliberately has none.
/// Whether the statement's rows or its affected-row count are wanted.
#[derive(Clone, Copy)]
enum Mode {
    Query,
    Execute,
}

enum Outcome {
    Rows(Vec<Row>),
    Affected(u64),
}

async fn pipeline(
    client: &Object,
    ctx: &RequestContext,
    statement: &Statement,
    mode: Mode,
) -> Result<Outcome, DbError> {
    let begin = client.prepare_cached(ctx.begin_sql()).await?;
    let settings = client.prepare_cached(SETTINGS_SQL).await?;
    let commit = client.prepare_cached("commit").await?;
    let settings_binds = ctx.settings_bind();
    let settings_params = params(&settings_binds);
    let settings_refs = as_refs(&settings_params);

    let mut begun = pin!(maybe_done(client.execute(&begin, &[])));
    let mut set = pin!(maybe_done(client.execute(&settings, &settings_refs)));
    // One poll each puts BEGIN and the settings on the wire before anything else.
    let _ = poll!(begun.as_mut());
    let _ = poll!(set.as_mut());
    let pre_request = match &ctx.pre_request {
        Some(call) => Some(run_pre_request(client, call).await),
        None => None,
    };
    let prepared = client.prepare_cached(statement.text()).await;
    let main = match prepared {
        Ok(main) => main,
        Err(error) => {
            // The failed parse aborted the transaction; end it so the connection is idle.
            begun.as_mut().await;
            set.as_mut().await;
            client.execute(&commit, &[]).await?;
            begun.as_mut().take_output().expect("awaited above")?;
            set.as_mut().take_output().expect("awaited above")?;
            pre_request.transpose()?;
            return Err(error.into());
        }
    };
    let main_params = params(statement.binds());
    let main_refs: Vec<&(dyn ToSql + Sync)> = as_refs(&main_params);
    let main_call = async {
        match mode {
            Mode::Query => client.query(&main, &main_refs).await.map(Outcome::Rows),
            Mode::Execute => client
                .execute(&main, &main_refs)
                .await
                .map(Outcome::Affected),
        }
    };
    let (rows, committed) =
        futures_util::future::join(main_call, client.execute(&commit, &[])).await;
    begun.as_mut().await;
    set.as_mut().await;
    // Report the first failure: after it, later statements only say the transaction aborted.
    begun.as_mut().take_output().expect("awaited above")?;
    set.as_mut().take_output().expect("awaited above")?;
    pre_request.transpose()?;
    let outcome = rows?;
    committed?;
    Ok(outcome)
}

/// Runs the pre-request call inside the transaction (after the settings).
async fn run_pre_request(client: &Object, call: &Statement) -> Result<(), DbError> {
    let prepared = client.prepare_cached(call.text()).await?;
    let call_params = params(call.binds());
    client.query(&prepared, &as_refs(&call_params)).await?;
    Ok(())
}

async fn open_transaction(client: &Object, ctx: &RequestContext) -> Result<(), DbError> {
    let begin = client.prepare_cached(ctx.begin_sql()).await?;
    let settings = client.prepare_cached(SETTINGS_SQL).await?;
    let settings_binds = ctx.settings_bind();
    let settings_params = params(&settings_binds);
    let (begun, set) = futures_util::future::join(
        client.execute(&begin, &[]),
        client.execute(&settings, &as_refs(&settings_params)),
    )
    .await;
    begun?;
    set?;
    if let Some(call) = &ctx.pre_request {
        run_pre_request(client, call).await?;
    }
    Ok(())
}

/// A connection whose transaction state is unknown until `release` is called.
struct InFlight(Option<Object>);

impl InFlight {
    fn client(&self) -> &Object {
        self.0
            .as_ref()
            .expect("the connection is present until released")
    }

    fn release(&mut self) {
        // Back to the pool: the transaction ended (committed or rolled back by the server).
        self.0.take();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Detach from the pool: dropping the bare client closes the connection.
            drop(Object::take(client));
        }
    }
}

/// An open request transaction. Dropping it without [`RequestTx::commit`] rolls it back.
pub struct RequestTx {
    client: Option<Object>,
}

impl std::fmt::Debug for RequestTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTx").finish_non_exhaustive()
    }
}

impl RequestTx {
    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the connection is present until commit or rollback")
    }

    /// Runs a statement inside the transaction.
    pub async fn query(&self, statement: &Statement) -> Result<Vec<Row>, DbError> {
        let client = self.client();
        let prepared = client.prepare_cached(statement.text()).await?;
        let main_params = params(statement.binds());
        Ok(client.query(&prepared, &as_refs(&main_params)).await?)
    }

    /// Runs a statement without result rows; returns the rows it affected.
    pub async fn execute(&self, statement: &Statement) -> Result<u64, DbError> {
        let client = self.client();
        let prepared = client.prepare_cached(statement.text()).await?;
        let main_params = params(statement.binds());
        Ok(client.execute(&prepared, &as_refs(&main_params)).await?)
    }

    /// Runs a statement that must return exactly one row.
    pub async fn query_one(&self, statement: &Statement) -> Result<Row, DbError> {
        let client = self.client();
        let prepared = client.prepare_cached(statement.text()).await?;
        let main_params = params(statement.binds());
        Ok(client.query_one(&prepared, &as_refs(&main_params)).await?)
    }

    /// Runs a statement that may return at most one row.
    pub async fn query_opt(&self, statement: &Statement) -> Result<Option<Row>, DbError> {
        let client = self.client();
        let prepared = client.prepare_cached(statement.text()).await?;
        let main_params = params(statement.binds());
        Ok(client.query_opt(&prepared, &as_refs(&main_params)).await?)
    }

    /// Commits. On error the transaction is gone and the connection is closed.
    pub async fn commit(mut self) -> Result<(), DbError> {
        self.finish("commit").await
    }

    /// Rolls back explicitly (dropping does the same in the background).
    pub async fn rollback(mut self) -> Result<(), DbError> {
        self.finish("rollback").await
    }

    async fn finish(&mut self, sql: &'static str) -> Result<(), DbError> {
        let client = self.client.take().expect("finish runs once");
        let mut guard = InFlight(Some(client));
        let prepared = guard.client().prepare_cached(sql).await?;
        guard.client().execute(&prepared, &[]).await?;
        guard.release();
        Ok(())
    }
}

impl Drop for RequestTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if client.execute("rollback", &[]).await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}
