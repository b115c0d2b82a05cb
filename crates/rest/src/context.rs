//! The per-request transaction settings PostgREST sets: search_path, role (and its defaults),
//! claims, method, path, headers, cookies, timezone, and the pre-request call.

use http::HeaderMap;
use manifold_auth::Caller;
use manifold_db::{Access, RequestContext, RequestInfo};
use manifold_query::{ApiRequest, QueryError};
use manifold_sql::{SchemaCache, Statement};
use serde_json::{Map, Value};

use crate::RestState;

/// Builds the transaction context of one request.
pub(crate) fn request_context(
    state: &RestState,
    cache: &SchemaCache,
    api: &ApiRequest<'_>,
    caller: &Caller,
    headers: &HeaderMap,
    path: &str,
    access: Access,
) -> Result<RequestContext, QueryError> {
    let info = RequestInfo {
        claims: caller.claims_json(),
        method: method_name(api).to_owned(),
        path: path.to_owned(),
        headers: headers_json(headers),
        cookies: cookies_json(headers),
    };
    let mut ctx = RequestContext::new(caller.role(), search_path(state, &api.schema), info, access);
    for (name, value) in cache.role_settings(caller.role()) {
        ctx = ctx.with_setting(name.clone(), value.clone());
    }
    if let Some(timezone) = &api.prefer.timezone {
        ctx = ctx.with_setting("timezone", timezone.clone());
    }
    ctx.pre_request = pre_request(state, cache)?;
    Ok(ctx)
}

fn method_name(api: &ApiRequest<'_>) -> &'static str {
    match api.method {
        manifold_query::Method::Get => "GET",
        manifold_query::Method::Head => "HEAD",
        manifold_query::Method::Post => "POST",
        manifold_query::Method::Patch => "PATCH",
        manifold_query::Method::Put => "PUT",
        manifold_query::Method::Delete => "DELETE",
        manifold_query::Method::Options => "OPTIONS",
        manifold_query::Method::Other => "OTHER",
    }
}

/// The request's schema, then `db-extra-search-path`, each quoted.
fn search_path(state: &RestState, schema: &str) -> String {
    let mut names = vec![schema];
    for extra in &state.config.extra_search_path {
        if !names.contains(&extra.as_str()) {
            names.push(extra);
        }
    }
    names
        .iter()
        .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `db-pre-request`: `schema.function` (or a function of the first exposed schema), resolved in
/// the schema cache.
fn pre_request(state: &RestState, cache: &SchemaCache) -> Result<Option<Statement>, QueryError> {
    let Some(spec) = &state.config.pre_request else {
        return Ok(None);
    };
    let (schema, name) = match spec.split_once('.') {
        Some((schema, name)) => (schema.to_owned(), name.to_owned()),
        None => (
            state.config.schemas.first().cloned().unwrap_or_default(),
            spec.clone(),
        ),
    };
    let function = cache
        .functions(&schema, &name)
        .iter()
        .find(|function| function.params.iter().all(|param| param.has_default))
        .ok_or_else(|| QueryError::function_not_found(&schema, &name))?;
    let mut statement = Statement::from_static("select ");
    statement.push_qualified(&function.qualified.schema, &function.qualified.name);
    statement.push_sql("()");
    Ok(Some(statement))
}

/// Request headers as PostgREST exposes them: lower-case names, cookie excluded.
fn headers_json(headers: &HeaderMap) -> String {
    let mut map = Map::new();
    for (name, value) in headers {
        if name == http::header::COOKIE {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                if let Value::String(text) = existing {
                    text.push_str(", ");
                    text.push_str(&value);
                }
            })
            .or_insert(Value::String(value));
    }
    Value::Object(map).to_string()
}

fn cookies_json(headers: &HeaderMap) -> String {
    let mut map = Map::new();
    for header in headers.get_all(http::header::COOKIE) {
        for pair in String::from_utf8_lossy(header.as_bytes()).split(';') {
            if let Some((name, value)) = pair.split_once('=') {
                map.insert(
                    name.trim().to_owned(),
                    Value::String(value.trim().to_owned()),
                );
            }
        }
    }
    Value::Object(map).to_string()
}
