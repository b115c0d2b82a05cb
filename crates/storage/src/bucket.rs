//! Bucket endpoints: list, get, create, update, empty, delete. Each runs as the caller, so RLS
//! on `storage.buckets` decides; the service role bypasses it.

use axum::body::Body;
use axum::response::Response;
use manifold_db::Access;
use manifold_sql::BindValue;
use serde_json::{Map, Value, json};

use crate::App;
use crate::access::{TokenRule, resolve_caller, service_caller};
use crate::blob::Blobs;
use crate::error::StorageError;
use crate::limits::valid_mime_pattern;
use crate::names::{check_bucket, owner_uuid};
use crate::request::{Incoming, json_response, json_text_response, read_json};
use crate::sql::{bucket_json, int_or_null, run, statement};

/// Most names of undeletable objects an empty-bucket refusal lists.
const MAX_NAMED_REMAINING: usize = 100;

/// What uploads and downloads need to know about a bucket.
#[derive(Debug, Clone)]
pub(crate) struct BucketInfo {
    /// Readable without a token.
    pub(crate) public: bool,
    /// The bucket's own size limit, in bytes.
    pub(crate) file_size_limit: Option<i64>,
    /// The bucket's MIME allow-list.
    pub(crate) allowed_mime_types: Option<Vec<String>>,
}

/// Looks a bucket up as the service role (Storage reads buckets as its superuser before
/// deciding how to treat an object request).
pub(crate) async fn find(
    app: &App,
    incoming: &Incoming,
    bucket: &str,
) -> Result<BucketInfo, StorageError> {
    check_bucket(bucket).map_err(|_| StorageError::NoSuchBucket)?;
    let service = service_caller(&app.gatekeeper)?;
    let ctx = incoming
        .facts
        .context(&service, Access::ReadOnly, "storage.bucket.get");
    let rows = run(
        &app.db,
        &ctx,
        &statement(
            [
                "select b.public, b.file_size_limit, b.allowed_mime_types \
                 from storage.buckets b where b.id = ",
                "",
            ],
            [bucket.into()],
        ),
    )
    .await?;
    let row = rows.first().ok_or(StorageError::NoSuchBucket)?;
    Ok(BucketInfo {
        public: row.get(0),
        file_size_limit: row.get(1),
        allowed_mime_types: row.get(2),
    })
}

/// `GET /bucket?limit&offset&search&sortColumn&sortOrder`.
pub(crate) async fn list(app: &App, incoming: Incoming) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let number = |name: &str| -> Result<Option<i64>, StorageError> {
        incoming
            .query(name)
            .map(|text| {
                text.parse::<i64>().map_err(|_| {
                    StorageError::InvalidParameter(format!("Invalid Parameter {name}"))
                })
            })
            .transpose()
    };
    let limit = number("limit")?;
    let offset = number("offset")?.unwrap_or(0);
    let search = incoming.query("search").filter(|s| !s.is_empty());
    let column = incoming.query("sortColumn").unwrap_or("name");
    if !["id", "name", "created_at", "updated_at"].contains(&column) {
        return Err(StorageError::InvalidParameter(
            "Invalid Parameter sortColumn".into(),
        ));
    }
    let order = incoming.query("sortOrder").unwrap_or("asc");
    if !["asc", "desc"].contains(&order) {
        return Err(StorageError::InvalidParameter(
            "Invalid Parameter sortOrder".into(),
        ));
    }
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadOnly, "storage.bucket.list");
    let statement = statement(
        [
            "with p as (select ",
            " as search, ",
            " as sort_column, ",
            concat!(
                " as sort_order) select ",
                bucket_json!(),
                " from storage.buckets b, p \
                 where p.search is null or strpos(lower(b.name), lower(p.search)) > 0 \
                 order by \
                   case when p.sort_order = 'asc' then case p.sort_column \
                     when 'id' then b.id when 'name' then b.name end end asc, \
                   case when p.sort_order = 'desc' then case p.sort_column \
                     when 'id' then b.id when 'name' then b.name end end desc, \
                   case when p.sort_order = 'asc' then case p.sort_column \
                     when 'created_at' then b.created_at when 'updated_at' then b.updated_at end \
                     end asc, \
                   case when p.sort_order = 'desc' then case p.sort_column \
                     when 'created_at' then b.created_at when 'updated_at' then b.updated_at end \
                     end desc, \
                   b.id \
                 limit "
            ),
            "::int8 offset ",
            "",
        ],
        [
            search.map(str::to_owned).into(),
            column.into(),
            order.into(),
            int_or_null(limit),
            offset.max(0).into(),
        ],
    );
    let rows = run(&app.db, &ctx, &statement).await?;
    let items: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    Ok(json_text_response(format!("[{}]", items.join(","))))
}

/// `GET /bucket/{id}`.
pub(crate) async fn get(
    app: &App,
    incoming: Incoming,
    id: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadOnly, "storage.bucket.get");
    let rows = run(
        &app.db,
        &ctx,
        &statement(
            [
                concat!(
                    "select ",
                    bucket_json!(),
                    " from storage.buckets b where b.id = "
                ),
                "",
            ],
            [id.into()],
        ),
    )
    .await?;
    let row = rows.first().ok_or(StorageError::NoSuchBucket)?;
    Ok(json_text_response(row.get(0)))
}

/// The settable fields of a create or update body. `None` means the field was absent (left
/// unchanged on update); `Some(None)` means an explicit `null` (no limit).
struct BucketFields {
    public: Option<bool>,
    file_size_limit: Option<Option<i64>>,
    allowed_mime_types: Option<Option<String>>,
}

fn bucket_fields(
    body: &Map<String, Value>,
    global_limit: u64,
) -> Result<BucketFields, StorageError> {
    let public = match body.get("public") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(*flag),
        Some(_) => {
            return Err(StorageError::InvalidParameter(
                "public must be a boolean".into(),
            ));
        }
    };
    let file_size_limit = match body.get("file_size_limit") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(value) => {
            let bytes = match value {
                Value::Number(number) => number.as_u64(),
                Value::String(text) => manifold_config::parse_byte_size(text),
                _ => None,
            }
            .ok_or_else(|| {
                StorageError::InvalidRequest(
                    "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B".into(),
                )
            })?;
            if bytes > global_limit {
                return Err(StorageError::InvalidRequest(
                    "file_size_limit exceeds the maximum allowed size".into(),
                ));
            }
            // 0 means "no limit" in storage-js and in Storage itself.
            let bytes = i64::try_from(bytes).ok().filter(|bytes| *bytes > 0);
            Some(bytes)
        }
    };
    let allowed_mime_types = match body.get("allowed_mime_types") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => {
            let mut patterns = Vec::new();
            for item in items {
                let Value::String(pattern) = item else {
                    return Err(StorageError::InvalidParameter(
                        "allowed_mime_types must be strings".into(),
                    ));
                };
                let pattern = pattern.trim();
                if pattern.is_empty() {
                    continue;
                }
                if !valid_mime_pattern(pattern) {
                    return Err(StorageError::InvalidRequest(format!(
                        "invalid mime type pattern {pattern}"
                    )));
                }
                patterns.push(Value::String(pattern.to_owned()));
            }
            Some((!patterns.is_empty()).then(|| Value::Array(patterns).to_string()))
        }
        Some(_) => {
            return Err(StorageError::InvalidParameter(
                "allowed_mime_types must be an array".into(),
            ));
        }
    };
    Ok(BucketFields {
        public,
        file_size_limit,
        allowed_mime_types,
    })
}

/// `POST /bucket` `{id, name, public, file_size_limit, allowed_mime_types}` -> `{name}`.
pub(crate) async fn create(
    app: &App,
    incoming: Incoming,
    body: Body,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let body: Map<String, Value> = read_json(body).await?;
    let id = ["id", "name"]
        .iter()
        .find_map(|key| body.get(*key).and_then(Value::as_str))
        .ok_or(StorageError::MissingParameter("name"))?
        .to_owned();
    check_bucket(&id)?;
    let fields = bucket_fields(&body, app.config.storage.max_file_size)?;
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadWrite, "storage.bucket.create");
    let statement = statement(
        [
            "insert into storage.buckets \
               (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types) \
             select p.id, p.id, p.owner::uuid, p.owner_id, coalesce(p.public, false), \
               p.size_limit, (select array_agg(m) from jsonb_array_elements_text(p.mimes) m) \
             from (select ",
            " as id, ",
            " as owner, ",
            " as owner_id, ",
            "::bool as public, ",
            "::int8 as size_limit, ",
            "::jsonb as mimes) p",
        ],
        [
            id.clone().into(),
            owner_uuid(caller.subject()).into(),
            caller.subject().map(str::to_owned).into(),
            fields.public.map_or(BindValue::Null, BindValue::Bool),
            int_or_null(fields.file_size_limit.flatten()),
            fields.allowed_mime_types.flatten().into(),
        ],
    );
    match run(&app.db, &ctx, &statement).await {
        Ok(_) => Ok(json_response(&json!({ "name": id }))),
        Err(StorageError::ResourceAlreadyExists) => Err(StorageError::BucketAlreadyExists),
        Err(error) => Err(error),
    }
}

/// `PUT /bucket/{id}`: changes only the fields present in the body.
pub(crate) async fn update(
    app: &App,
    incoming: Incoming,
    body: Body,
    id: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let body: Map<String, Value> = read_json(body).await?;
    let fields = bucket_fields(&body, app.config.storage.max_file_size)?;
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadWrite, "storage.bucket.update");
    let statement = statement(
        [
            "update storage.buckets b set \
               public = case when p.set_public then p.public else b.public end, \
               file_size_limit = case when p.set_limit then p.size_limit \
                 else b.file_size_limit end, \
               allowed_mime_types = case when p.set_mimes \
                 then (select array_agg(m) from jsonb_array_elements_text(p.mimes) m) \
                 else b.allowed_mime_types end \
             from (select ",
            " as id, ",
            " as set_public, ",
            "::bool as public, ",
            " as set_limit, ",
            "::int8 as size_limit, ",
            " as set_mimes, ",
            "::jsonb as mimes) p \
             where b.id = p.id returning b.id",
        ],
        [
            id.into(),
            fields.public.is_some().into(),
            fields.public.map_or(BindValue::Null, BindValue::Bool),
            fields.file_size_limit.is_some().into(),
            int_or_null(fields.file_size_limit.flatten()),
            fields.allowed_mime_types.is_some().into(),
            fields.allowed_mime_types.flatten().into(),
        ],
    );
    let rows = run(&app.db, &ctx, &statement).await?;
    if rows.is_empty() {
        return Err(StorageError::NoSuchBucket);
    }
    Ok(json_response(&json!({ "message": "Successfully updated" })))
}

/// `DELETE /bucket/{id}`: only an empty bucket can go.
pub(crate) async fn delete(
    app: &App,
    incoming: Incoming,
    id: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let ctx = incoming
        .facts
        .deleting_context(&caller, "storage.bucket.delete");
    let statement = statement(
        [
            "delete from storage.buckets b where b.id = ",
            " returning b.id",
        ],
        [id.into()],
    );
    let rows = match app.db.run(&ctx, &statement).await {
        Ok(rows) => rows,
        // Objects still reference the bucket.
        Err(error) if error.sqlstate() == Some("23503") => {
            return Err(StorageError::ResourceNotEmpty);
        }
        Err(error) => return Err(StorageError::from_db(error)),
    };
    if rows.is_empty() {
        return Err(StorageError::NoSuchBucket);
    }
    Ok(json_response(&json!({ "message": "Successfully deleted" })))
}

/// `POST /bucket/{id}/empty`: deletes every object the caller may delete, then their blobs;
/// AccessDenied when some visible objects could not be deleted.
pub(crate) async fn empty(
    app: &App,
    incoming: Incoming,
    id: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let blobs = app.blobs()?;
    let ctx = incoming
        .facts
        .deleting_context(&caller, "storage.bucket.empty");
    let tx = app.db.begin(&ctx).await.map_err(StorageError::from_db)?;
    let visible = tx
        .query(&statement(
            ["select 1 from storage.buckets b where b.id = ", ""],
            [id.clone().into()],
        ))
        .await
        .map_err(StorageError::from_db)?;
    if visible.is_empty() {
        return Err(StorageError::NoSuchBucket);
    }
    let listed = tx
        .query(&statement(
            [
                "select o.name from storage.objects o where o.bucket_id = ",
                " order by o.name collate \"C\"",
            ],
            [id.clone().into()],
        ))
        .await
        .map_err(StorageError::from_db)?;
    let deleted = tx
        .query(&statement(
            [
                "delete from storage.objects o where o.bucket_id = ",
                " returning o.name, o.version",
            ],
            [id.clone().into()],
        ))
        .await
        .map_err(StorageError::from_db)?;
    tx.commit().await.map_err(StorageError::from_db)?;
    let keys: Vec<_> = deleted
        .iter()
        .filter_map(|row| {
            let version: Option<String> = row.get(1);
            version.map(|version| Blobs::key(&id, row.get::<_, &str>(0), &version))
        })
        .collect();
    blobs.delete_after_commit(&keys).await;
    // As Supabase Storage: what the caller may delete is gone; objects it can see but not
    // delete are named in an AccessDenied.
    let gone: std::collections::HashSet<&str> = deleted.iter().map(|row| row.get(0)).collect();
    let remaining: Vec<&str> = listed
        .iter()
        .map(|row| row.get::<_, &str>(0))
        .filter(|name| !gone.contains(name))
        .take(MAX_NAMED_REMAINING)
        .collect();
    if !remaining.is_empty() {
        return Err(StorageError::AccessDenied(format!(
            "Cannot delete: {}, you may have SELECT but not DELETE permissions",
            remaining.join(" ,")
        )));
    }
    Ok(json_response(&json!({ "message": "Successfully emptied" })))
}
