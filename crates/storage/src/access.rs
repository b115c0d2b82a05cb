//! Who a storage request runs as, and the transaction settings that make RLS see them. Storage
//! has no `apikey` gateway: it reads the bearer itself, and on plain download and info routes a
//! missing or invalid token quietly becomes the anon role (public buckets need nothing).

use http::{HeaderMap, Method};
use manifold_auth::gateway::authorization_header;
use manifold_auth::{ApiKeyRole, Caller, Gatekeeper};
use manifold_db::{Access, RequestContext, RequestInfo};
use serde_json::{Map, Value};

use crate::error::StorageError;

/// `search_path` of storage transactions: policies may call storage helpers unqualified.
const SEARCH_PATH: &str = "storage, public, extensions";

/// What an invalid bearer token means on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRule {
    /// Refuse with AccessDenied (every route that changes or lists something).
    Require,
    /// Run as anon instead (downloads and info), as Supabase Storage does.
    DegradeToAnon,
}

/// The caller of a request, from its `apikey` and `Authorization` headers.
pub(crate) fn resolve_caller(
    gatekeeper: &Gatekeeper,
    headers: &HeaderMap,
    rule: TokenRule,
) -> Result<Caller, StorageError> {
    let key = headers
        .get("apikey")
        .and_then(|value| value.to_str().ok())
        .and_then(|key| gatekeeper.api_key_role(key));
    match gatekeeper.caller(key, authorization_header(headers)) {
        Ok(caller) => Ok(caller),
        Err(_) if rule == TokenRule::DegradeToAnon => anon_caller(gatekeeper),
        // The verifier's own message ("JWT expired"), as Storage reports it.
        Err(error) => Err(StorageError::AccessDenied(error.to_string())),
    }
}

/// The anon role with no claims.
pub(crate) fn anon_caller(gatekeeper: &Gatekeeper) -> Result<Caller, StorageError> {
    gatekeeper
        .caller(None, None)
        .map_err(|error| StorageError::Internal(format!("anon role refused: {error}")))
}

/// The service role, for bucket lookups, public reads and signed-URL flows (which Supabase
/// Storage runs as its superuser); RLS is bypassed.
pub(crate) fn service_caller(gatekeeper: &Gatekeeper) -> Result<Caller, StorageError> {
    gatekeeper
        .caller(Some(ApiKeyRole::Service), None)
        .map_err(|error| StorageError::Internal(format!("service role refused: {error}")))
}

/// The service role acting for `owner` (a signed upload carries its creator as owner).
pub(crate) fn service_caller_for(
    gatekeeper: &Gatekeeper,
    owner: Option<&str>,
) -> Result<Caller, StorageError> {
    let mut claims = service_caller(gatekeeper)?.claims().clone();
    match owner {
        Some(sub) => claims.insert("sub".into(), Value::String(sub.to_owned())),
        None => claims.remove("sub"),
    };
    gatekeeper
        .caller_from_claims(claims)
        .map_err(|error| StorageError::Internal(format!("service role refused: {error}")))
}

/// The request facts policies may read (`request.method`, `request.path`, `request.headers`).
#[derive(Debug, Clone)]
pub(crate) struct RequestFacts {
    method: String,
    path: String,
    headers: String,
}

impl RequestFacts {
    /// Captures method, path and headers; `authorization`, `apikey` and `cookie` are left out
    /// so tokens and keys never reach SQL settings.
    pub(crate) fn new(method: &Method, path: &str, headers: &HeaderMap) -> Self {
        let mut map = Map::new();
        for (name, value) in headers {
            if name == http::header::AUTHORIZATION
                || name == http::header::COOKIE
                || name.as_str() == "apikey"
            {
                continue;
            }
            if let Ok(text) = value.to_str() {
                map.insert(name.as_str().to_owned(), Value::String(text.to_owned()));
            }
        }
        Self {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            headers: Value::Object(map).to_string(),
        }
    }

    /// The transaction settings for `caller` doing `operation` (`storage.operation`).
    pub(crate) fn context(
        &self,
        caller: &Caller,
        access: Access,
        operation: &'static str,
    ) -> RequestContext {
        RequestContext::new(
            caller.role(),
            SEARCH_PATH.to_owned(),
            RequestInfo {
                claims: caller.claims_json(),
                method: self.method.clone(),
                path: self.path.clone(),
                headers: self.headers.clone(),
                cookies: "{}".to_owned(),
            },
            access,
        )
        .with_setting("storage.operation", operation)
    }

    /// Like [`RequestFacts::context`], allowed to delete rows past the delete guard.
    pub(crate) fn deleting_context(
        &self,
        caller: &Caller,
        operation: &'static str,
    ) -> RequestContext {
        self.context(caller, Access::ReadWrite, operation)
            .with_setting("storage.allow_delete_query", "true")
    }
}
