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
pub mod plan;
pub mod render;
mod request;
pub mod response;
pub mod syntax;

use manifold_sql::{SchemaCache, Statement};

pub use error::{ErrorBody, ErrorKind, QueryError};
pub use input::{Method, RestInput, form_decode, query_pairs};
pub use request::{ApiRequest, Settings, Target, parse};
pub use response::{ReadReply, ReadResult, Reply};
pub use syntax::headers::{MediaType, Representation};

use plan::Planner;
use render::{BodyKind, render_read};

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
        MediaType::Json | MediaType::OpenApi => BodyKind::Array { strip_nulls },
    };
    let statement = render_read(&plan, body, request.prefer.count.is_some());
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
