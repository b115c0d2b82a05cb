//! From [`RestInput`] to [`ApiRequest`]: the path's target, method rules, the schema profile,
//! preferences, the negotiated media type and the typed query string.

use crate::error::QueryError;
use crate::input::{Method, RestInput, form_decode, query_pairs};
use crate::syntax::headers::{Preferences, Representation, negotiate, parse_range};
use crate::syntax::{QueryParams, parse_params};

/// Translator settings (PostgREST's knobs that affect parsing and planning).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Exposed schemas; the first is the default profile.
    pub schemas: Vec<String>,
    /// Cap on rows per read (`db-max-rows`).
    pub max_rows: Option<u64>,
    /// Aggregates in `select` (`db-aggregates-enabled`).
    pub aggregates_enabled: bool,
    /// How write transactions end (`db-tx-end`).
    pub tx_end: TxEnd,
    /// Serve EXPLAIN output for `Accept: application/vnd.pgrst.plan` (`db-plan-enabled`).
    pub plan_enabled: bool,
}

/// PostgREST's `db-tx-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEnd {
    /// Always commit.
    Commit,
    /// Commit unless `Prefer: tx=rollback`.
    CommitAllowOverride,
    /// Always roll back.
    Rollback,
    /// Roll back unless `Prefer: tx=commit`.
    RollbackAllowOverride,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            schemas: vec!["public".into()],
            max_rows: Some(1000),
            aggregates_enabled: false,
            tx_end: TxEnd::CommitAllowOverride,
            plan_enabled: false,
        }
    }
}

/// What the path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`: the OpenAPI document.
    Root,
    /// `/<table-or-view>`.
    Relation(String),
    /// `/rpc/<function>`.
    Function(String),
}

/// A parsed request, ready to be planned.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    /// Method.
    pub method: Method,
    /// Target.
    pub target: Target,
    /// The negotiated schema.
    pub schema: String,
    /// True when the client sent a profile header (supabase-js always does): the response then
    /// names the schema in `Content-Profile`.
    pub profile_sent: bool,
    /// Query string.
    pub params: QueryParams,
    /// `Prefer`.
    pub prefer: Preferences,
    /// Body format.
    pub representation: Representation,
    /// `Range` header (GET only).
    pub range: Option<(i64, Option<i64>)>,
    /// Request body.
    pub body: &'a [u8],
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
}

/// Parses a request. Nothing here looks at the schema cache.
pub fn parse<'a>(input: &RestInput<'a>, settings: &Settings) -> Result<ApiRequest<'a>, QueryError> {
    let method = input.method();
    let target = parse_target(input.path)?;
    match (&target, method) {
        (_, Method::Other) => {
            return Err(QueryError::unsupported_method("unknown"));
        }
        (Target::Root, Method::Get | Method::Head | Method::Options) => {}
        (Target::Root, _) => return Err(QueryError::unsupported_method(method_name(method))),
        (Target::Function(_), Method::Get | Method::Head | Method::Post | Method::Options) => {}
        (Target::Function(_), _) => {
            return Err(QueryError::new(
                405,
                "PGRST101",
                format!("Cannot use the {} method on RPC", method_name(method)),
            ));
        }
        (Target::Relation(_), _) => {}
    }
    let profile = if method.is_read() {
        input.accept_profile
    } else {
        input.content_profile
    };
    let schema = match profile.map(str::trim).filter(|p| !p.is_empty()) {
        Some(name) if settings.schemas.iter().any(|s| s == name) => name.to_owned(),
        Some(name) => return Err(QueryError::invalid_schema(name, &settings.schemas)),
        None => settings
            .schemas
            .first()
            .cloned()
            .unwrap_or_else(|| "public".into()),
    };
    let prefer = Preferences::parse(&input.prefer)?;
    let representation = negotiate(input.accept, target == Target::Root, settings.plan_enabled)?;
    let rpc_read = matches!(target, Target::Function(_)) && method.is_read();
    let params = parse_params(&query_pairs(input.query), rpc_read)?;
    let range = if method == Method::Get {
        parse_range(input.range)?
    } else {
        None
    };
    Ok(ApiRequest {
        method,
        target,
        schema,
        profile_sent: profile.is_some(),
        params,
        prefer,
        representation,
        range,
        body: input.body,
        content_type: input.content_type,
    })
}

fn parse_target(path: &str) -> Result<Target, QueryError> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode_path)
        .collect();
    match segments.as_slice() {
        [] => Ok(Target::Root),
        [name] => Ok(Target::Relation(name.clone())),
        [rpc, name] if rpc == "rpc" => Ok(Target::Function(name.clone())),
        _ => Err(QueryError::invalid_path()),
    }
}

/// Path segments are percent-encoded, but `+` is a literal plus there.
fn percent_decode_path(segment: &str) -> String {
    form_decode(&segment.replace('+', "%2B"))
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Patch => "PATCH",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(method: Method, path: &str) -> RestInput<'_> {
        RestInput {
            method: Some(method),
            path,
            ..RestInput::default()
        }
    }

    #[test]
    fn targets_and_methods() {
        let settings = Settings::default();
        assert_eq!(
            parse(&input(Method::Get, "/"), &settings).unwrap().target,
            Target::Root
        );
        assert_eq!(
            parse(&input(Method::Get, "/my%20table"), &settings)
                .unwrap()
                .target,
            Target::Relation("my table".into())
        );
        assert_eq!(
            parse(&input(Method::Post, "/rpc/do_it"), &settings)
                .unwrap()
                .target,
            Target::Function("do_it".into())
        );
        let error = parse(&input(Method::Get, "/a/b/c"), &settings).unwrap_err();
        assert_eq!((error.status, error.code), (404, "PGRST125"));
        let error = parse(&input(Method::Patch, "/rpc/f"), &settings).unwrap_err();
        assert_eq!((error.status, error.code), (405, "PGRST101"));
        assert_eq!(error.message, "Cannot use the PATCH method on RPC");
    }

    #[test]
    fn profiles_choose_exposed_schemas() {
        let settings = Settings {
            schemas: vec!["public".into(), "api".into()],
            ..Settings::default()
        };
        let mut request = input(Method::Get, "/t");
        request.accept_profile = Some("api");
        assert_eq!(parse(&request, &settings).unwrap().schema, "api");
        request.accept_profile = Some("secret");
        let error = parse(&request, &settings).unwrap_err();
        assert_eq!((error.status, error.code), (406, "PGRST106"));
        assert_eq!(error.message, "Invalid schema: secret");
        assert_eq!(
            error.hint,
            "Only the following schemas are exposed: public, api"
        );
        let mut write = input(Method::Post, "/t");
        write.content_profile = Some("api");
        write.accept_profile = Some("secret");
        assert_eq!(parse(&write, &settings).unwrap().schema, "api");
    }
}
