//! Building storage statements: fixed SQL fragments interleaved with bind values, so no request
//! data is ever spliced into SQL text.

use manifold_db::{Db, RequestContext, Row};
use manifold_sql::{BindValue, Statement};

use crate::error::StorageError;

/// `fragments[0] bind[0] fragments[1] bind[1] … fragments[n]`. Each bind renders as a typed
/// placeholder (`$3::text`); the fragment after it may cast further (`::uuid`, `::jsonb`).
pub(crate) fn statement<const F: usize, const B: usize>(
    fragments: [&'static str; F],
    binds: [BindValue; B],
) -> Statement {
    const { assert!(F == B + 1, "one more fragment than binds") };
    let mut statement = Statement::new();
    let mut binds = binds.into_iter();
    for fragment in fragments {
        statement.push_sql(fragment);
        if let Some(bind) = binds.next() {
            statement.push_bind(bind);
        }
    }
    statement
}

/// Runs one statement in its own transaction.
pub(crate) async fn run(
    db: &Db,
    ctx: &RequestContext,
    statement: &Statement,
) -> Result<Vec<Row>, StorageError> {
    db.run(ctx, statement).await.map_err(StorageError::from_db)
}

/// A nullable integer bind.
pub(crate) fn int_or_null(value: Option<i64>) -> BindValue {
    value.map_or(BindValue::Null, BindValue::Int)
}

/// The JSON text of a bucket row aliased `b`, as Supabase Storage returns it.
macro_rules! bucket_json {
    () => {
        "json_build_object('id', b.id, 'name', b.name, 'owner', coalesce(b.owner::text, ''), \
         'owner_id', b.owner_id, 'public', b.public, 'type', b.type, \
         'file_size_limit', b.file_size_limit, 'allowed_mime_types', b.allowed_mime_types, \
         'created_at', b.created_at, 'updated_at', b.updated_at)::text"
    };
}
pub(crate) use bucket_json;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_and_binds_interleave() {
        let statement = statement(
            ["select ", "::uuid, ", ""],
            [BindValue::from("x"), BindValue::Int(2)],
        );
        assert_eq!(statement.text(), "select $1::text::uuid, $2::int8");
        assert_eq!(statement.binds().len(), 2);
    }
}
