//! Listing as the caller (rows hidden by RLS simply do not appear): v1 returns one directory
//! level with folders synthesised from name prefixes; v2 pages with an opaque cursor.

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use manifold_db::Access;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::access::{TokenRule, resolve_caller};
use crate::error::StorageError;
use crate::names::check_bucket;
use crate::request::{Incoming, json_response, json_text_response, read_json};
use crate::sql::{run, statement};

/// v1 page size when none is given (storage-js always sends 100).
const DEFAULT_LIMIT: i64 = 100;
/// v2 page size when none is given, as Storage.
const DEFAULT_LIMIT_V2: i64 = 1000;
/// Largest page either version returns.
const MAX_LIMIT: i64 = 10_000;

#[derive(Deserialize, Default)]
struct SortBy {
    column: Option<String>,
    order: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    prefix: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    sort_by: Option<SortBy>,
    search: Option<String>,
}

#[derive(Deserialize)]
struct ListV2Body {
    prefix: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    with_delimiter: Option<bool>,
    #[serde(rename = "sortBy")]
    sort_by: Option<SortBy>,
}

/// The sort column and direction, checked against the allowed words.
fn sort(
    sort_by: Option<SortBy>,
    columns: &[&'static str],
) -> Result<(String, String), StorageError> {
    let sort_by = sort_by.unwrap_or_default();
    let column = sort_by.column.unwrap_or_else(|| "name".to_owned());
    if !columns.contains(&column.as_str()) {
        return Err(StorageError::InvalidParameter(format!(
            "Invalid Parameter sortBy.column: {column}"
        )));
    }
    let order = sort_by
        .order
        .unwrap_or_else(|| "asc".to_owned())
        .to_ascii_lowercase();
    if order != "asc" && order != "desc" {
        return Err(StorageError::InvalidParameter(format!(
            "Invalid Parameter sortBy.order: {order}"
        )));
    }
    Ok((column, order))
}

/// A v1 prefix names a folder: leading slashes dropped, a trailing `/` added when non-empty.
fn folder_prefix(prefix: Option<String>) -> String {
    let prefix = prefix.unwrap_or_default();
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// `POST /object/list/{bucket}` `{prefix, limit, offset, sortBy, search}`.
pub(crate) async fn list_v1(
    app: &App,
    incoming: Incoming,
    body: Body,
    bucket: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    check_bucket(&bucket)?;
    let body: ListBody = read_json(body).await?;
    let (column, order) = sort(
        body.sort_by,
        &["name", "updated_at", "created_at", "last_accessed_at"],
    )?;
    let prefix = folder_prefix(body.prefix);
    let levels = i64::try_from(prefix.matches('/').count()).unwrap_or(0) + 1;
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadOnly, "storage.object.list");
    let rows = run(
        &app.db,
        &ctx,
        &statement(
            [
                "select coalesce(json_agg(json_build_object('name', s.name, 'id', s.id, \
                   'updated_at', s.updated_at, 'created_at', s.created_at, \
                   'last_accessed_at', s.last_accessed_at, 'metadata', s.metadata) \
                   order by s.ord), '[]')::text \
                 from storage.search(",
                ", ",
                ", ",
                "::int, ",
                "::int, ",
                "::int, ",
                ", ",
                ", ",
                ") with ordinality as s(name, id, updated_at, created_at, last_accessed_at, \
                   metadata, ord)",
            ],
            [
                prefix.into(),
                bucket.into(),
                body.limit
                    .unwrap_or(DEFAULT_LIMIT)
                    .clamp(0, MAX_LIMIT)
                    .into(),
                levels.into(),
                body.offset.unwrap_or(0).max(0).into(),
                body.search.unwrap_or_default().into(),
                column.into(),
                order.into(),
            ],
        ),
    )
    .await?;
    let text = rows
        .first()
        .map(|row| row.get(0))
        .unwrap_or_else(|| "[]".to_owned());
    Ok(json_text_response(text))
}

/// `POST /object/list-v2/{bucket}` `{prefix, limit, cursor, with_delimiter, sortBy}` ->
/// `{hasNext, nextCursor?, folders, objects}`. Names are full keys; the cursor is an opaque
/// base64 position.
pub(crate) async fn list_v2(
    app: &App,
    incoming: Incoming,
    body: Body,
    bucket: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    check_bucket(&bucket)?;
    let body: ListV2Body = read_json(body).await?;
    let (column, order) = sort(body.sort_by, &["name", "updated_at", "created_at"])?;
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT_V2).clamp(1, MAX_LIMIT);
    let offset = match body.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => decode_cursor(cursor)?,
        None => 0,
    };
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadOnly, "storage.object.list");
    let rows = run(
        &app.db,
        &ctx,
        &statement(
            [
                "with p as (select ",
                " as bucket, ",
                " as prefix, ",
                " as delimited, ",
                " as sort_column, ",
                " as sort_order), \
                 scoped as ( \
                   select o.*, substr(o.name, length(p.prefix) + 1) as rest \
                   from storage.objects o, p \
                   where o.bucket_id = p.bucket and left(o.name, length(p.prefix)) = p.prefix), \
                 entries as ( \
                   select distinct p.prefix || split_part(s.rest, '/', 1) || '/' as key, \
                     true as is_folder, null::uuid as id, null::text as version, \
                     null::timestamptz as updated_at, null::timestamptz as created_at, \
                     null::timestamptz as last_accessed_at, null::jsonb as metadata \
                   from scoped s, p where p.delimited and position('/' in s.rest) > 0 \
                   union all \
                   select s.name, false, s.id, s.version, s.updated_at, s.created_at, \
                     s.last_accessed_at, s.metadata \
                   from scoped s, p where not p.delimited or position('/' in s.rest) = 0) \
                 select e.is_folder, case when e.is_folder \
                   then json_build_object('name', e.key, 'key', e.key) \
                   else json_build_object('id', e.id, 'name', e.key, 'key', e.key, \
                     'version', e.version, 'updated_at', e.updated_at, \
                     'created_at', e.created_at, 'last_accessed_at', e.last_accessed_at, \
                     'metadata', e.metadata) end::text \
                 from entries e, p \
                 order by \
                   case when p.sort_column <> 'name' then e.is_folder end desc, \
                   case when p.sort_column = 'name' and p.sort_order = 'desc' \
                     then e.key collate \"C\" end desc, \
                   case when p.sort_column = 'updated_at' and p.sort_order = 'desc' \
                     then e.updated_at end desc nulls last, \
                   case when p.sort_column = 'updated_at' and p.sort_order = 'asc' \
                     then e.updated_at end asc nulls first, \
                   case when p.sort_column = 'created_at' and p.sort_order = 'desc' \
                     then e.created_at end desc nulls last, \
                   case when p.sort_column = 'created_at' and p.sort_order = 'asc' \
                     then e.created_at end asc nulls first, \
                   e.key collate \"C\" \
                 limit ",
                " offset ",
                "",
            ],
            [
                bucket.into(),
                body.prefix.unwrap_or_default().into(),
                body.with_delimiter.unwrap_or(false).into(),
                column.into(),
                order.into(),
                (limit + 1).into(),
                offset.into(),
            ],
        ),
    )
    .await?;
    let has_next = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
    let mut folders = Vec::new();
    let mut objects = Vec::new();
    for row in rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        let is_folder: bool = row.get(0);
        let item: Value = serde_json::from_str(row.get::<_, &str>(1))
            .map_err(|error| StorageError::Internal(format!("list row JSON: {error}")))?;
        if is_folder {
            folders.push(item);
        } else {
            objects.push(item);
        }
    }
    let mut result = json!({ "hasNext": has_next, "folders": folders, "objects": objects });
    if has_next {
        result["nextCursor"] = Value::String(URL_SAFE_NO_PAD.encode((offset + limit).to_string()));
    }
    Ok(json_response(&result))
}

fn decode_cursor(cursor: &str) -> Result<i64, StorageError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<i64>().ok())
        .filter(|offset| *offset >= 0)
        .ok_or_else(|| StorageError::InvalidParameter("Invalid Parameter cursor".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_folders() {
        assert_eq!(folder_prefix(None), "");
        assert_eq!(folder_prefix(Some("a".into())), "a/");
        assert_eq!(folder_prefix(Some("/a/b/".into())), "a/b/");
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = URL_SAFE_NO_PAD.encode("42");
        assert_eq!(decode_cursor(&cursor).unwrap(), 42);
        assert!(decode_cursor("!!").is_err());
    }

    #[test]
    fn sort_words_are_checked() {
        assert_eq!(
            sort(None, &["name"]).unwrap(),
            ("name".to_owned(), "asc".to_owned())
        );
        let bad = SortBy {
            column: Some("size; drop".into()),
            order: None,
        };
        assert!(sort(Some(bad), &["name"]).is_err());
    }
}
