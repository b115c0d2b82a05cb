//! The PostgREST translator. A request (method, path, query string, headers, body) is parsed into
//! a typed [`ApiRequest`], planned against the schema cache (every name resolved there, so
//! unknown names fail before the database is touched), and rendered into one
//! [`manifold_sql::Statement`] whose single result row holds the finished response body.
//!
//! Pure: no async runtime, no database client, no web framework.

pub mod ast;
mod error;
mod fuzzy;
mod input;
pub mod openapi;

pub mod payload;
pub mod plan;
pub mod render;
mod request;
pub mod response;
pub mod syntax;

use manifold_sql::{SchemaCache, Statement};

pub use error::{ErrorBody, ErrorKind, QueryError};
pub use input::{Method, RestInput, form_decode, query_pairs};
pub use request::{ApiRequest, Settings, Target, TxEnd, parse};
pub use response::{CallReply, ReadReply, ReadResult, Reply, WriteMethod, WriteReply, WriteResult};
pub use syntax::headers::{MediaType, PlanOptions, Representation};

use manifold_sql::cache::Volatility;
use plan::{CallResult, Planner, WriteKind};
use render::{BodyKind, WriteOutput, render_call, render_read, render_write};
use syntax::headers::{CountPreference, Resolution, ReturnPreference, TxPreference};

/// A statement and how to turn its result row into a reply.
#[derive(Debug)]
pub struct TranslatedRead {
    /// The SQL to run.
    pub statement: Statement,
    /// How to read its result.
    pub reply: ReadReply,
}

/// Plans and renders a GET/HEAD on a table or view.
pub fn translate_read(
    request: &ApiRequest<'_>,
    cache: &SchemaCache,
    settings: &Settings,
) -> Result<TranslatedRead, QueryError> {
    let Target::Relation(name) = &request.target else {
        return Err(QueryError::invalid_path());
    };
    let planner = Planner {
        cache,
        aggregates_enabled: settings.aggregates_enabled,
    };
    let relation = planner.relation(&request.schema, name)?;
    let mut plan = planner.read(relation, request.params.select.as_deref(), &request.params)?;
    let (offset, limit) = paging(plan.offset, plan.limit, request.range, settings.max_rows);
    plan.offset = Some(offset);
    plan.limit = limit;
    let head = request.method == Method::Head;
    let strip_nulls = request.representation.strip_nulls;
    let body = match request.representation.media {
        _ if head => BodyKind::None,
        MediaType::SingleObject => BodyKind::Object { strip_nulls },
        MediaType::Csv => BodyKind::Csv,
        MediaType::Json | MediaType::OpenApi | MediaType::Plan(_) => {
            BodyKind::Array { strip_nulls }
        }
    };
    let mut statement = render_read(&plan, body, request.prefer.count.is_some());
    if let MediaType::Plan(options) = request.representation.media {
        statement = Statement::prefixed(options.explain_prefix(), statement);
    }
    Ok(TranslatedRead {
        statement,
        reply: ReadReply {
            representation: request.representation,
            offset,
            count: request.prefer.count_name(),
            head,
            profile: request.profile_sent.then(|| request.schema.clone()),
        },
    })
}

/// A call statement, the access it needs and how to read its result.
#[derive(Debug)]
pub struct TranslatedCall {
    /// The SQL to run.
    pub statement: Statement,
    /// GET/HEAD, or a STABLE/IMMUTABLE function: the transaction is READ ONLY.
    pub read_only: bool,
    /// How to read its result.
    pub reply: CallReply,
}

/// Plans and renders `/rpc/<fn>`.
pub fn translate_call(
    request: &ApiRequest<'_>,
    cache: &SchemaCache,
    settings: &Settings,
) -> Result<TranslatedCall, QueryError> {
    let Target::Function(name) = &request.target else {
        return Err(QueryError::invalid_path());
    };
    let planner = Planner {
        cache,
        aggregates_enabled: settings.aggregates_enabled,
    };
    let mut plan = planner.call(&request.schema, name, request)?;
    let head = request.method == Method::Head;
    let count = request.prefer.count.is_some();
    let profile = request.profile_sent.then(|| request.schema.clone());
    let strip_nulls = request.representation.strip_nulls;
    let single = request.representation.media == MediaType::SingleObject;
    let (body, reply) = match &mut plan.result {
        CallResult::Void => (BodyKind::None, CallReply::Void { profile }),
        CallResult::Scalar { set: false } | CallResult::Rows { set: false, .. } => {
            let body = if head {
                BodyKind::None
            } else {
                BodyKind::Object { strip_nulls }
            };
            (body, CallReply::Value { profile })
        }
        CallResult::Scalar { set: true } => {
            let body = if head {
                BodyKind::None
            } else {
                BodyKind::Array { strip_nulls }
            };
            let reply = ReadReply {
                representation: request.representation,
                offset: 0,
                count: request.prefer.count_name(),
                head,
                profile,
            };
            (body, CallReply::Rows(reply))
        }
        CallResult::Rows {
            set: true,
            plan: read,
        } => {
            let (offset, limit) = paging(read.offset, read.limit, request.range, settings.max_rows);
            read.offset = Some(offset);
            read.limit = limit;
            let body = match request.representation.media {
                _ if head => BodyKind::None,
                MediaType::Csv => BodyKind::Csv,
                _ if single => BodyKind::Object { strip_nulls },
                _ => BodyKind::Array { strip_nulls },
            };
            let reply = ReadReply {
                representation: request.representation,
                offset,
                count: request.prefer.count_name(),
                head,
                profile,
            };
            (body, CallReply::Rows(reply))
        }
    };
    let statement = render_call(&plan, body, count);
    let read_only =
        request.method != Method::Post || plan.function.volatility != Volatility::Volatile;
    Ok(TranslatedCall {
        statement,
        read_only,
        reply,
    })
}

/// A write statement and how to run it and read its result.
#[derive(Debug)]
pub struct TranslatedWrite {
    /// The SQL to run.
    pub statement: Statement,
    /// True when the statement returns a result row; false for a bare write (run it for its
    /// affected-row count).
    pub returning: bool,
    /// The result must be checked before commit (singular, max-affected) or the transaction
    /// ends in a rollback: run it in a multi-statement transaction.
    pub checked: bool,
    /// End the transaction with a rollback (`Prefer: tx=rollback` or `db-tx-end`).
    pub rollback: bool,
    /// How to read its result.
    pub reply: WriteReply,
}

/// Plans and renders a POST, PATCH, PUT or DELETE on a table or view.
pub fn translate_write(
    request: &ApiRequest<'_>,
    cache: &SchemaCache,
    settings: &Settings,
) -> Result<TranslatedWrite, QueryError> {
    let Target::Relation(name) = &request.target else {
        return Err(QueryError::invalid_path());
    };
    let planner = Planner {
        cache,
        aggregates_enabled: settings.aggregates_enabled,
    };
    let relation = planner.relation(&request.schema, name)?;
    let plan = planner.write(relation, request)?;
    let prefer = &request.prefer;
    let method = match request.method {
        Method::Post => WriteMethod::Insert,
        Method::Patch => WriteMethod::Update,
        Method::Put => WriteMethod::Put,
        _ => WriteMethod::Delete,
    };
    let single = request.representation.media == MediaType::SingleObject;
    let return_rows = prefer.return_ == Some(ReturnPreference::Representation);
    let headers_only =
        method == WriteMethod::Insert && prefer.return_ == Some(ReturnPreference::HeadersOnly);
    let count = prefer.count.is_some();
    let max_affected = if prefer.strict {
        prefer.max_affected
    } else {
        None
    };
    let conflict = match &plan.kind {
        WriteKind::Insert { conflict } => conflict.as_ref().map(|(_, resolution)| *resolution),
        _ => None,
    };
    let merge_upsert =
        method == WriteMethod::Insert && conflict == Some(Resolution::MergeDuplicates);
    let inserted = merge_upsert || method == WriteMethod::Put;
    let rollback = match (settings.tx_end, prefer.tx) {
        (TxEnd::Commit, _) => false,
        (TxEnd::Rollback, _) => true,
        (TxEnd::CommitAllowOverride, tx) => tx == Some(TxPreference::Rollback),
        (TxEnd::RollbackAllowOverride, tx) => tx != Some(TxPreference::Commit),
    };
    let returning =
        return_rows || count || single || max_affected.is_some() || headers_only || inserted;
    let body = match (return_rows, single) {
        (false, _) => BodyKind::None,
        (true, true) => BodyKind::Object {
            strip_nulls: request.representation.strip_nulls,
        },
        (true, false) => BodyKind::Array {
            strip_nulls: request.representation.strip_nulls,
        },
    };
    let statement = render_write(
        &plan,
        WriteOutput {
            returning,
            body,
            count,
            inserted,
            location: headers_only,
        },
    );

    let mut applied = Vec::new();
    if let Some(ret) = prefer.return_ {
        applied.push(
            match ret {
                ReturnPreference::Minimal => "return=minimal",
                ReturnPreference::Representation => "return=representation",
                ReturnPreference::HeadersOnly => "return=headers-only",
            }
            .to_owned(),
        );
    }
    if let Some(count) = prefer.count {
        applied.push(format!(
            "count={}",
            match count {
                CountPreference::Exact => "exact",
                CountPreference::Planned => "planned",
                CountPreference::Estimated => "estimated",
            }
        ));
    }
    if let Some(resolution) = conflict.filter(|_| method == WriteMethod::Insert) {
        applied.push(
            match resolution {
                Resolution::MergeDuplicates => "resolution=merge-duplicates",
                Resolution::IgnoreDuplicates => "resolution=ignore-duplicates",
            }
            .to_owned(),
        );
    }
    if plan.missing_default {
        applied.push("missing=default".to_owned());
    }
    if let Some(max) = max_affected {
        applied.push(format!("handling=strict, max-affected={max}"));
    }
    if prefer.tx.is_some()
        && matches!(
            settings.tx_end,
            TxEnd::CommitAllowOverride | TxEnd::RollbackAllowOverride
        )
    {
        applied.push(if rollback { "tx=rollback" } else { "tx=commit" }.to_owned());
    }
    Ok(TranslatedWrite {
        statement,
        returning,
        checked: single || max_affected.is_some() || rollback,
        rollback,
        reply: WriteReply {
            method,
            representation: request.representation,
            return_rows,
            headers_only,
            count: prefer.count_name(),
            merge_upsert,
            max_affected,
            applied,
            profile: request.profile_sent.then(|| request.schema.clone()),
            location: Some((
                relation.name().as_str().to_owned(),
                relation.primary_key.clone(),
            )),
        },
    })
}

/// Offset and limit of the top level: `offset`/`limit` parameters intersected with a `Range`
/// header, capped by `db-max-rows`.
fn paging(
    offset: Option<i64>,
    limit: Option<i64>,
    range: Option<(i64, Option<i64>)>,
    max_rows: Option<u64>,
) -> (i64, Option<i64>) {
    let mut start = offset.unwrap_or(0);
    let mut end = limit.map(|limit| start + limit - 1);
    if let Some((first, last)) = range {
        start = start.max(first);
        end = match (end, last) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut limit = end.map(|end| (end - start + 1).max(0));
    if let Some(cap) = max_rows.and_then(|cap| i64::try_from(cap).ok()) {
        limit = Some(limit.map_or(cap, |limit| limit.min(cap)));
    }
    (start, limit)
}

#[cfg(test)]
mod tests {
    use super::paging;

    #[test]
    fn paging_rules() {
        assert_eq!(paging(None, None, None, Some(1000)), (0, Some(1000)));
        assert_eq!(paging(Some(20), Some(10), None, Some(1000)), (20, Some(10)));
        assert_eq!(paging(None, Some(5000), None, Some(1000)), (0, Some(1000)));
        assert_eq!(
            paging(None, None, Some((10, Some(19))), None),
            (10, Some(10))
        );
        assert_eq!(
            paging(Some(0), Some(5), Some((2, None)), None),
            (2, Some(3))
        );
        assert_eq!(paging(None, None, None, None), (0, None));
    }
}
