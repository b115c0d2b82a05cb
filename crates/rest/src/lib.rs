//! `/rest/v1`: PostgREST-compatible reads, writes and RPC over the schema cache and the
//! per-request transaction.

mod context;
mod error;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use manifold_auth::Gatekeeper;
use manifold_auth::gateway::{PresentedKey, authorization_header};
use manifold_config::RestConfig;
use manifold_db::schema_cache::SchemaCacheStore;
use manifold_db::{Access, Db};
use manifold_query::{
    ApiRequest, ErrorKind, Method, QueryError, ReadResult, Reply, RestInput, Settings, Target,
    TranslatedWrite, TxEnd, WriteResult,
};
use manifold_sql::Statement;

use crate::context::request_context;
use crate::error::RestError;

/// The prefix every REST path starts with.
const PREFIX: &str = "/rest/v1";

/// What the REST handlers share.
#[derive(Clone, Debug)]
pub struct RestState {
    /// The API pool.
    pub db: Db,
    /// The schema cache.
    pub cache: Arc<SchemaCacheStore>,
    /// Keys and roles.
    pub gatekeeper: Arc<Gatekeeper>,
    /// PostgREST knobs.
    pub config: Arc<RestConfig>,
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl RestState {
    fn settings(&self) -> Settings {
        Settings {
            schemas: self.config.schemas.clone(),
            max_rows: self.config.max_rows,
            aggregates_enabled: self.config.aggregates_enabled,
            tx_end: match self.config.tx_end {
                manifold_config::TxEnd::Commit => TxEnd::Commit,
                manifold_config::TxEnd::CommitAllowOverride => TxEnd::CommitAllowOverride,
                manifold_config::TxEnd::Rollback => TxEnd::Rollback,
                manifold_config::TxEnd::RollbackAllowOverride => TxEnd::RollbackAllowOverride,
            },
            plan_enabled: self.config.plan_enabled,
        }
    }
}

/// Routes for `/rest/v1`, `/rest/v1/` and everything below.
pub fn router(state: RestState) -> Router {
    Router::new()
        .route(PREFIX, any(handle))
        .route("/rest/v1/", any(handle))
        .route("/rest/v1/{*path}", any(handle))
        .with_state(state)
}

async fn handle(State(state): State<RestState>, request: Request) -> Response {
    match serve(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(state: &RestState, request: Request) -> Result<Response, RestError> {
    let (parts, body) = request.into_parts();
    let presented = parts.extensions.get::<PresentedKey>().and_then(|key| key.0);
    let caller = state
        .gatekeeper
        .caller(presented, authorization_header(&parts.headers))
        .map_err(RestError::Auth)?;
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    let body = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| {
            RestError::Body(format!(
                "Request body exceeds {} bytes",
                state.max_body_bytes
            ))
        })?;
    let headers = &parts.headers;
    let input = RestInput {
        method: Some(Method::from_name(parts.method.as_str())),
        path,
        query: parts.uri.query().unwrap_or(""),
        prefer: all_values(headers, "prefer"),
        accept: header_text(headers, header::ACCEPT.as_str()),
        range: header_text(headers, header::RANGE.as_str()),
        accept_profile: header_text(headers, "accept-profile"),
        content_profile: header_text(headers, "content-profile"),
        content_type: header_text(headers, header::CONTENT_TYPE.as_str()),
        body: &body,
    };
    let settings = state.settings();
    let api = manifold_query::parse(&input, &settings)?;
    if api.method == Method::Options {
        return Ok(options_response(&api));
    }
    match (&api.target, api.method) {
        (Target::Relation(_), Method::Get | Method::Head) => {
            read(state, &api, &caller, headers, path, &settings).await
        }
        (Target::Relation(_), Method::Post | Method::Patch | Method::Put | Method::Delete) => {
            write(state, &api, &caller, headers, path, &settings).await
        }
        (Target::Function(_), _) => call(state, &api, &caller, headers, path, &settings).await,
        (Target::Root, Method::Get | Method::Head) => Ok(openapi_response(state, &api, headers)),
        _ => Err(QueryError::new_unsupported(api.method).into()),
    }
}

async fn read(
    state: &RestState,
    api: &ApiRequest<'_>,
    caller: &manifold_auth::Caller,
    headers: &HeaderMap,
    path: &str,
    settings: &Settings,
) -> Result<Response, RestError> {
    let (mut cache, generation) = state.cache.current();
    let translated = match manifold_query::translate_read(api, &cache, settings) {
        Err(error)
            if error.kind == ErrorKind::UnknownName
                && state.cache.reload_after_miss(generation).await =>
        {
            cache = state.cache.current().0;
            manifold_query::translate_read(api, &cache, settings)?
        }
        other => other?,
    };
    let ctx = request_context(state, &cache, api, caller, headers, path, Access::ReadOnly)?;
    let db_error = |error| RestError::Db {
        error,
        is_anon: caller.is_anon(),
    };
    let Some(planned) = &translated.planned_count else {
        let rows = state
            .db
            .run(&ctx, &translated.statement)
            .await
            .map_err(db_error)?;
        if let manifold_query::MediaType::Plan(options) = api.representation.media {
            return Ok(plan_response(&rows, options, api));
        }
        let result = read_result(rows.first(), "the read statement returned no row")?;
        return Ok(reply_response(translated.reply.finish(result)?));
    };
    // `count=planned|estimated`: the estimate comes from EXPLAIN in the same read-only
    // transaction, after the page itself.
    let tx = state.db.begin(&ctx).await.map_err(db_error)?;
    let rows = tx.query(&translated.statement).await.map_err(db_error)?;
    let mut result = read_result(rows.first(), "the read statement returned no row")?;
    if planned.applies_to(result.total) {
        let explain = tx.query(&planned.statement).await.map_err(db_error)?;
        let plan = explain
            .first()
            .and_then(|row| row.try_get::<_, serde_json::Value>(0).ok())
            .ok_or(RestError::Internal("explain returned no plan"))?;
        let seen = translated.reply.offset.saturating_add(result.page);
        result.total = manifold_query::planned_total(&plan, seen);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(reply_response(translated.reply.finish(result)?))
}

/// The single result row of a read or call statement.
fn read_result(
    row: Option<&manifold_db::Row>,
    missing: &'static str,
) -> Result<ReadResult, RestError> {
    // The statement aggregates, so it always returns exactly one row.
    let row = row.ok_or(RestError::Internal(missing))?;
    Ok(ReadResult {
        total: row.get(0),
        page: row.get(1),
        body: row.get(2),
        response_headers: row.get(3),
        response_status: row.get(4),
    })
}

/// Runs `work` in an open request transaction and ends it as PostgREST does: roll back when
/// the result is refused (PGRST116, PGRST124…) or `rollback` is set (after checking deferred
/// constraints, so they still fail), else commit.
async fn checked_transaction(
    state: &RestState,
    ctx: &manifold_db::RequestContext,
    caller: &manifold_auth::Caller,
    rollback: bool,
    work: impl AsyncFnOnce(
        &manifold_db::RequestTx,
    ) -> Result<Result<Reply, RestError>, manifold_db::DbError>,
) -> Result<Reply, RestError> {
    let db_error = |error| RestError::Db {
        error,
        is_anon: caller.is_anon(),
    };
    let tx = state.db.begin(ctx).await.map_err(db_error)?;
    let outcome = work(&tx).await.map_err(db_error)?;
    match outcome {
        Ok(reply) if rollback => {
            tx.execute(&Statement::from_static("set constraints all immediate"))
                .await
                .map_err(db_error)?;
            tx.rollback().await.map_err(db_error)?;
            Ok(reply)
        }
        Ok(reply) => {
            tx.commit().await.map_err(db_error)?;
            Ok(reply)
        }
        Err(error) => {
            tx.rollback().await.map_err(db_error)?;
            Err(error)
        }
    }
}

async fn write(
    state: &RestState,
    api: &ApiRequest<'_>,
    caller: &manifold_auth::Caller,
    headers: &HeaderMap,
    path: &str,
    settings: &Settings,
) -> Result<Response, RestError> {
    let (mut cache, generation) = state.cache.current();
    let translated = match manifold_query::translate_write(api, &cache, settings) {
        Err(error)
            if error.kind == ErrorKind::UnknownName
                && state.cache.reload_after_miss(generation).await =>
        {
            cache = state.cache.current().0;
            manifold_query::translate_write(api, &cache, settings)?
        }
        other => other?,
    };
    let ctx = request_context(state, &cache, api, caller, headers, path, Access::ReadWrite)?;
    let db_error = |error| RestError::Db {
        error,
        is_anon: caller.is_anon(),
    };
    let reply = if translated.checked {
        checked_transaction(state, &ctx, caller, translated.rollback, async |tx| {
            let result = run_in(tx, &translated).await?;
            Ok(translated.reply.finish(result).map_err(RestError::from))
        })
        .await?
    } else if translated.returning {
        let rows = state
            .db
            .run(&ctx, &translated.statement)
            .await
            .map_err(db_error)?;
        translated.reply.finish(write_result(rows.first()))?
    } else {
        let affected = state
            .db
            .execute(&ctx, &translated.statement)
            .await
            .map_err(db_error)?;
        translated.reply.finish(WriteResult {
            affected: i64::try_from(affected).unwrap_or(i64::MAX),
            ..WriteResult::default()
        })?
    };
    Ok(reply_response(reply))
}

async fn run_in(
    tx: &manifold_db::RequestTx,
    translated: &TranslatedWrite,
) -> Result<WriteResult, manifold_db::DbError> {
    if translated.returning {
        let rows = tx.query(&translated.statement).await?;
        Ok(write_result(rows.first()))
    } else {
        let affected = tx.execute(&translated.statement).await?;
        Ok(WriteResult {
            affected: i64::try_from(affected).unwrap_or(i64::MAX),
            ..WriteResult::default()
        })
    }
}

fn write_result(row: Option<&manifold_db::Row>) -> WriteResult {
    match row {
        Some(row) => WriteResult {
            total: row.get(0),
            affected: row.get(1),
            body: row.get(2),
            response_headers: row.get(3),
            response_status: row.get(4),
            inserted: row.get(5),
            location: row.get(6),
        },
        None => WriteResult::default(),
    }
}

async fn call(
    state: &RestState,
    api: &ApiRequest<'_>,
    caller: &manifold_auth::Caller,
    headers: &HeaderMap,
    path: &str,
    settings: &Settings,
) -> Result<Response, RestError> {
    let (mut cache, generation) = state.cache.current();
    let translated = match manifold_query::translate_call(api, &cache, settings) {
        Err(error)
            if error.kind == ErrorKind::UnknownName
                && state.cache.reload_after_miss(generation).await =>
        {
            cache = state.cache.current().0;
            manifold_query::translate_call(api, &cache, settings)?
        }
        other => other?,
    };
    let access = if translated.read_only {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let ctx = request_context(state, &cache, api, caller, headers, path, access)?;
    const NO_ROW: &str = "the call statement returned no row";
    let reply = if translated.checked {
        checked_transaction(state, &ctx, caller, translated.rollback, async |tx| {
            let rows = tx.query(&translated.statement).await?;
            Ok(read_result(rows.first(), NO_ROW)
                .and_then(|result| translated.reply.finish(result).map_err(RestError::from)))
        })
        .await?
    } else {
        let rows = state
            .db
            .run(&ctx, &translated.statement)
            .await
            .map_err(|error| RestError::Db {
                error,
                is_anon: caller.is_anon(),
            })?;
        translated
            .reply
            .finish(read_result(rows.first(), NO_ROW)?)?
    };
    Ok(reply_response(reply))
}

/// `GET /rest/v1/`: the OpenAPI document of the requested schema.
fn openapi_response(state: &RestState, api: &ApiRequest<'_>, headers: &HeaderMap) -> Response {
    let (cache, _) = state.cache.current();
    let host = header_text(headers, header::HOST.as_str());
    let document = manifold_query::openapi::openapi(&cache, &api.schema, host);
    let mut response = Response::new(Body::from(if api.method == Method::Head {
        String::new()
    } else {
        document.to_string()
    }));
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openapi+json; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&api.schema) {
        response_headers.insert("content-profile", value);
    }
    response
}

/// EXPLAIN output: one JSON document, or the text plan's lines.
fn plan_response(
    rows: &[manifold_db::Row],
    options: manifold_query::PlanOptions,
    api: &ApiRequest<'_>,
) -> Response {
    let body = if options.json {
        rows.first()
            .and_then(|row| row.try_get::<_, serde_json::Value>(0).ok())
            .map(|plan| plan.to_string())
            .unwrap_or_default()
    } else {
        rows.iter()
            .filter_map(|row| row.try_get::<_, String>(0).ok())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut response = Response::new(Body::from(body));
    if let Ok(value) = HeaderValue::from_str(api.representation.content_type()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// `OPTIONS` without CORS preflight headers: the methods the target supports.
fn options_response(api: &ApiRequest<'_>) -> Response {
    let allow = match api.target {
        Target::Root => "OPTIONS,GET,HEAD",
        Target::Function(_) => "OPTIONS,GET,HEAD,POST",
        Target::Relation(_) => "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE",
    };
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn reply_response(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    response
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn all_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect()
}
