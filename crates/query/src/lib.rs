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
use render::{
    BodyKind, Count, WriteOutput, render_call, render_count_plan, render_read, render_write,
};
use syntax::headers::{
    CountPreference, Missing, Preferences, Resolution, ReturnPreference, TxPreference,
};

/// A statement and how to turn its result row into a reply.
#[derive(Debug)]
pub struct TranslatedRead {
    /// The SQL to run.
    pub statement: Statement,
    /// `count=planned|estimated`: the planner's estimate, and when to use it.
    pub planned_count: Option<PlannedCount>,
    /// How to read its result.
    pub reply: ReadReply,
}

/// `Prefer: count=planned|estimated`: an `explain (format json)` of the count query, run in the
/// same request transaction, whose top "Plan Rows" becomes the total (see [`planned_total`]).
#[derive(Debug)]
pub struct PlannedCount {
    /// The EXPLAIN statement.
    pub statement: Statement,
    /// `None` (planned): always use the estimate. `Some(cap)` (estimated): the main statement
    /// counted exactly up to `cap + 1` rows; use the estimate only when the count passed `cap`.
    pub above: Option<i64>,
}

impl PlannedCount {
    /// True when the estimate replaces the counted total.
    pub fn applies_to(&self, counted: Option<i64>) -> bool {
        match self.above {
            None => true,
            Some(cap) => counted.is_some_and(|total| total > cap),
        }
    }
}

/// The total from an `explain (format json)` result: the top plan's "Plan Rows", but never less
/// than the rows already known to exist (`at_least`), so an estimate cannot turn a page that
/// was read into a 416.
pub fn planned_total(explain: &serde_json::Value, at_least: i64) -> Option<i64> {
    let rows = explain.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64()?;
    // Plan Rows is a non-negative float estimate; saturate instead of wrapping.
    let rows = if rows >= i64::MAX as f64 {
        i64::MAX
    } else {
        rows.max(0.0).round() as i64
    };
    Some(rows.max(at_least))
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
    let cap = settings.max_rows.and_then(|cap| i64::try_from(cap).ok());
    // PostgREST: `planned` is the planner's estimate; `estimated` is exact up to db-max-rows
    // and the estimate beyond it.
    let explain = matches!(request.representation.media, MediaType::Plan(_));
    let (count, planned_count) = match request.prefer.count {
        // EXPLAIN output has no total to fill in.
        _ if explain => (Count::None, None),
        None => (Count::None, None),
        Some(CountPreference::Exact) => (Count::Exact, None),
        Some(CountPreference::Planned) => (
            Count::None,
            Some(PlannedCount {
                statement: render_count_plan(&plan),
                above: None,
            }),
        ),
        Some(CountPreference::Estimated) => match cap {
            None => (Count::Exact, None),
            Some(cap) => (
                Count::UpTo(cap.saturating_add(1)),
                Some(PlannedCount {
                    statement: render_count_plan(&plan),
                    above: Some(cap),
                }),
            ),
        },
    };
    let mut statement = render_read(&plan, body, count);
    if let MediaType::Plan(options) = request.representation.media {
        statement = Statement::prefixed(options.explain_prefix(), statement);
    }
    Ok(TranslatedRead {
        statement,
        planned_count,
        reply: ReadReply {
            representation: request.representation,
            offset,
            applied: request
                .prefer
                .count_name()
                .map(|name| vec![format!("count={name}")])
                .unwrap_or_default(),
            max_affected: None,
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
    /// The result must be checked before commit (singular, max-affected on a function that
    /// may write) or the transaction ends in a rollback: run it in a multi-statement
    /// transaction and commit only after [`CallReply::finish`] accepted the result.
    pub checked: bool,
    /// End the transaction with a rollback (`Prefer: tx=rollback` or `db-tx-end`).
    pub rollback: bool,
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
    let prefer = &request.prefer;
    let head = request.method == Method::Head;
    let count = prefer.count.is_some();
    let profile = request.profile_sent.then(|| request.schema.clone());
    let strip_nulls = request.representation.strip_nulls;
    let single = request.representation.media == MediaType::SingleObject;
    let max_affected = if prefer.strict {
        prefer.max_affected
    } else {
        None
    };
    let returns_set = matches!(
        plan.result,
        CallResult::Scalar { set: true } | CallResult::Rows { set: true, .. }
    );
    if max_affected.is_some() && !returns_set {
        return Err(QueryError::max_affected_needs_set());
    }
    let rollback = ends_in_rollback(settings, prefer);
    let mut applied = Vec::new();
    // Call results are always counted exactly, whatever `count=` asked for.
    if count {
        applied.push("count=exact".to_owned());
    }
    if let Some(max) = max_affected {
        applied.push(format!("handling=strict, max-affected={max}"));
    }
    applied.extend(tx_applied(settings, prefer, rollback));
    let (body, reply) = match &mut plan.result {
        CallResult::Void => (BodyKind::None, CallReply::Void { profile, applied }),
        CallResult::Scalar { set: false } | CallResult::Rows { set: false, .. } => {
            let body = if head {
                BodyKind::None
            } else {
                BodyKind::Object { strip_nulls }
            };
            (body, CallReply::Value { profile, applied })
        }
        CallResult::Scalar { set: true } => {
            let body = match request.representation.media {
                _ if head => BodyKind::None,
                _ if single => BodyKind::Object { strip_nulls },
                _ => BodyKind::Array { strip_nulls },
            };
            let reply = ReadReply {
                representation: request.representation,
                offset: 0,
                applied,
                max_affected,
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
                applied,
                max_affected,
                head,
                profile,
            };
            (body, CallReply::Rows(reply))
        }
    };
    let statement = render_call(&plan, body, if count { Count::Exact } else { Count::None });
    let read_only =
        request.method != Method::Post || plan.function.volatility != Volatility::Volatile;
    // PostgREST rolls back a call whose result is refused (PGRST116, PGRST124), so a function
    // that wrote must run in a transaction that is still open when the result is checked.
    let checked = rollback || (!read_only && (single || max_affected.is_some()));
    Ok(TranslatedCall {
        statement,
        read_only,
        checked,
        rollback,
        reply,
    })
}

/// True when the request transaction ends in a rollback (`db-tx-end`, and `Prefer: tx=` where
/// the setting allows an override).
fn ends_in_rollback(settings: &Settings, prefer: &Preferences) -> bool {
    match (settings.tx_end, prefer.tx) {
        (TxEnd::Commit, _) => false,
        (TxEnd::Rollback, _) => true,
        (TxEnd::CommitAllowOverride, tx) => tx == Some(TxPreference::Rollback),
        (TxEnd::RollbackAllowOverride, tx) => tx != Some(TxPreference::Commit),
    }
}

/// `tx=…` for `Preference-Applied`: listed only when the client asked and may override.
fn tx_applied(settings: &Settings, prefer: &Preferences, rollback: bool) -> Option<String> {
    let may_override = matches!(
        settings.tx_end,
        TxEnd::CommitAllowOverride | TxEnd::RollbackAllowOverride
    );
    (prefer.tx.is_some() && may_override)
        .then(|| if rollback { "tx=rollback" } else { "tx=commit" }.to_owned())
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
    // PostgREST applies max-affected to PATCH, DELETE and RPC only.
    let limited = matches!(method, WriteMethod::Update | WriteMethod::Delete);
    let max_affected = if prefer.strict && limited {
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
    let rollback = ends_in_rollback(settings, prefer);
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
            count: if count { Count::Exact } else { Count::None },
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
    // Affected rows are always counted exactly, whatever `count=` asked for.
    if count {
        applied.push("count=exact".to_owned());
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
    if let Some(missing) = prefer
        .missing
        .filter(|_| matches!(method, WriteMethod::Insert | WriteMethod::Update))
    {
        applied.push(
            match missing {
                Missing::Default => "missing=default",
                Missing::Null => "missing=null",
            }
            .to_owned(),
        );
    }
    if let Some(max) = max_affected {
        applied.push(format!("handling=strict, max-affected={max}"));
    }
    applied.extend(tx_applied(settings, prefer, rollback));
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
