//! Remove (exact names), single delete, move and copy, all as the caller. Rows change inside a
//! transaction; blobs that stop being referenced are removed only after it commits, and a blob
//! made for a change that did not commit is removed again.

use axum::body::Body;
use axum::response::Response;
use manifold_db::{Access, RequestTx};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::access::{TokenRule, resolve_caller};
use crate::blob::Blobs;
use crate::bucket;
use crate::error::StorageError;
use crate::limits::{check_mime, is_placeholder, object_size_limit};
use crate::names::{check_bucket, check_key};
use crate::request::{Incoming, json_response, json_text_response, read_json};
use crate::route::ObjectPath;
use crate::sql::statement;
use crate::upload::{Described, Writer, current_version, lock_object, write_row};

/// Most names one remove call accepts, as Storage.
const MAX_REMOVE: usize = 1000;

#[derive(Deserialize)]
struct RemoveBody {
    prefixes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferBody {
    bucket_id: Option<String>,
    source_key: Option<String>,
    destination_key: Option<String>,
    destination_bucket: Option<String>,
    copy_metadata: Option<bool>,
    metadata: Option<Value>,
}

/// Deletes rows `names` of `bucket` as the caller and returns them as JSON texts with their
/// blob keys; the caller removes the blobs after committing.
async fn delete_rows(
    tx: &RequestTx,
    bucket: &str,
    names: &[String],
) -> Result<(Vec<String>, Vec<object_store::path::Path>), StorageError> {
    let rows = tx
        .query(&statement(
            [
                "delete from storage.objects o where o.bucket_id = ",
                " and o.name in (select jsonb_array_elements_text(",
                "::jsonb)) \
                 returning json_build_object('bucket_id', o.bucket_id, 'name', o.name, \
                   'id', o.id, 'owner', o.owner, 'owner_id', o.owner_id, 'version', o.version, \
                   'created_at', o.created_at, 'updated_at', o.updated_at, \
                   'last_accessed_at', o.last_accessed_at, 'metadata', o.metadata, \
                   'user_metadata', o.user_metadata)::text, o.name, o.version",
            ],
            [
                bucket.into(),
                Value::from(names.to_vec()).to_string().into(),
            ],
        ))
        .await
        .map_err(StorageError::from_db)?;
    let mut deleted = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        deleted.push(row.get::<_, String>(0));
        if let Some(version) = row.get::<_, Option<String>>(2) {
            keys.push(Blobs::key(bucket, row.get::<_, &str>(1), &version));
        }
    }
    Ok((deleted, keys))
}

/// `DELETE /object/{bucket}` `{prefixes: [names]}` -> the rows deleted (names are exact;
/// missing or forbidden ones are skipped silently, as Storage).
pub(crate) async fn remove_many(
    app: &App,
    incoming: Incoming,
    body: Body,
    bucket: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    check_bucket(&bucket)?;
    let body: RemoveBody = read_json(body).await?;
    let names = body
        .prefixes
        .ok_or(StorageError::MissingParameter("prefixes"))?;
    if names.len() > MAX_REMOVE {
        return Err(StorageError::InvalidParameter(format!(
            "at most {MAX_REMOVE} objects may be removed at once"
        )));
    }
    let blobs = app.blobs()?;
    let ctx = incoming
        .facts
        .deleting_context(&caller, "storage.object.delete");
    let tx = app.db.begin(&ctx).await.map_err(StorageError::from_db)?;
    let (deleted, keys) = delete_rows(&tx, &bucket, &names).await?;
    tx.commit().await.map_err(StorageError::from_db)?;
    blobs.delete_after_commit(&keys).await;
    Ok(json_text_response(format!("[{}]", deleted.join(","))))
}

/// `DELETE /object/{bucket}/{path}` -> `{message}`; NoSuchKey when nothing was deleted.
pub(crate) async fn delete_one(
    app: &App,
    incoming: Incoming,
    path: ObjectPath,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    check_bucket(&path.bucket)?;
    check_key(&path.name)?;
    let blobs = app.blobs()?;
    let ctx = incoming
        .facts
        .deleting_context(&caller, "storage.object.delete");
    let tx = app.db.begin(&ctx).await.map_err(StorageError::from_db)?;
    let (deleted, keys) = delete_rows(&tx, &path.bucket, std::slice::from_ref(&path.name)).await?;
    if deleted.is_empty() {
        return Err(StorageError::NoSuchKey);
    }
    tx.commit().await.map_err(StorageError::from_db)?;
    blobs.delete_after_commit(&keys).await;
    Ok(json_response(&json!({ "message": "Successfully deleted" })))
}

/// Source and destination of a move or copy, checked.
struct Transfer {
    source: ObjectPath,
    destination: ObjectPath,
}

fn transfer(body: &TransferBody) -> Result<Transfer, StorageError> {
    let bucket = body
        .bucket_id
        .clone()
        .ok_or(StorageError::MissingParameter("bucketId"))?;
    let source_key = body
        .source_key
        .clone()
        .ok_or(StorageError::MissingParameter("sourceKey"))?;
    let destination_key = body
        .destination_key
        .clone()
        .ok_or(StorageError::MissingParameter("destinationKey"))?;
    let destination_bucket = body
        .destination_bucket
        .clone()
        .filter(|bucket| !bucket.is_empty())
        .unwrap_or_else(|| bucket.clone());
    check_bucket(&bucket)?;
    check_bucket(&destination_bucket)?;
    check_key(&source_key)?;
    check_key(&destination_key)?;
    Ok(Transfer {
        source: ObjectPath {
            bucket,
            name: source_key,
        },
        destination: ObjectPath {
            bucket: destination_bucket,
            name: destination_key,
        },
    })
}

/// The source row of a move or copy, as the caller sees it.
struct SourceRow {
    version: String,
    size: u64,
    etag: String,
    described: Described,
}

async fn source_row(tx: &RequestTx, source: &ObjectPath) -> Result<SourceRow, StorageError> {
    let rows = tx
        .query(&statement(
            [
                "select o.version, coalesce((o.metadata ->> 'size')::int8, 0), \
                   coalesce(o.metadata ->> 'eTag', ''), \
                   coalesce(o.metadata ->> 'mimetype', 'application/octet-stream'), \
                   coalesce(o.metadata ->> 'cacheControl', 'no-cache'), o.user_metadata::text \
                 from storage.objects o where o.bucket_id = ",
                " and o.name = ",
                "",
            ],
            [source.bucket.clone().into(), source.name.clone().into()],
        ))
        .await
        .map_err(StorageError::from_db)?;
    let row = rows.first().ok_or(StorageError::NoSuchKey)?;
    let version: Option<String> = row.get(0);
    Ok(SourceRow {
        version: version.ok_or(StorageError::NoSuchKey)?,
        size: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        etag: row.get(2),
        described: Described {
            mimetype: row.get(3),
            cache_control: row.get(4),
            user_metadata: row.get(5),
        },
    })
}

/// Locks both objects in a fixed order, so two transfers in opposite directions cannot
/// deadlock.
async fn lock_pair(tx: &RequestTx, a: &ObjectPath, b: &ObjectPath) -> Result<(), StorageError> {
    let mut pair = [a, b];
    pair.sort_by(|x, y| (&x.bucket, &x.name).cmp(&(&y.bucket, &y.name)));
    for path in pair {
        lock_object(tx, &path.bucket, &path.name).await?;
    }
    Ok(())
}

/// The destination bucket's limits apply to what arrives there.
async fn check_destination(
    app: &App,
    incoming: &Incoming,
    destination: &ObjectPath,
    source: &SourceRow,
) -> Result<(), StorageError> {
    let bucket = bucket::find(app, incoming, &destination.bucket).await?;
    let limit = object_size_limit(
        &destination.name,
        app.config.storage.max_file_size,
        bucket.file_size_limit,
    );
    if source.size > limit {
        return Err(StorageError::EntityTooLarge);
    }
    // A folder placeholder skips only the MIME check (its limit above is zero bytes).
    if is_placeholder(&destination.name) {
        return Ok(());
    }
    check_mime(
        &source.described.mimetype,
        bucket.allowed_mime_types.as_deref(),
    )
}

/// `POST /object/move` `{bucketId, sourceKey, destinationKey, destinationBucket?}`: needs
/// SELECT and UPDATE on the source and the destination passing UPDATE's check.
pub(crate) async fn move_object(
    app: &App,
    incoming: Incoming,
    body: Body,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let body: TransferBody = read_json(body).await?;
    let Transfer {
        source,
        destination,
    } = transfer(&body)?;
    let blobs = app.blobs()?;
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadWrite, "storage.object.move");
    let tx = app.db.begin(&ctx).await.map_err(StorageError::from_db)?;
    lock_pair(&tx, &source, &destination).await?;
    let row = source_row(&tx, &source).await?;
    check_destination(app, &incoming, &destination, &row).await?;
    let moved = tx
        .query(&statement(
            [
                "update storage.objects o set bucket_id = ",
                ", name = ",
                ", last_accessed_at = now() where o.bucket_id = ",
                " and o.name = ",
                " returning o.id::text",
            ],
            [
                destination.bucket.clone().into(),
                destination.name.clone().into(),
                source.bucket.clone().into(),
                source.name.clone().into(),
            ],
        ))
        .await
        .map_err(StorageError::from_db)?;
    let id: String = moved
        .first()
        .map(|row| row.get(0))
        // Visible but not updatable: the UPDATE policy filtered the row out.
        .ok_or_else(|| {
            StorageError::AccessDenied("You do not have permission to move this object".into())
        })?;
    let from = Blobs::key(&source.bucket, &source.name, &row.version);
    let to = Blobs::key(&destination.bucket, &destination.name, &row.version);
    if from != to {
        blobs
            .copy(&from, &to)
            .await
            .map_err(StorageError::Backend)?;
    }
    if let Err(error) = tx.commit().await {
        if from != to {
            blobs.delete_after_commit(&[to]).await;
        }
        return Err(StorageError::from_db(error));
    }
    if from != to {
        blobs.delete_after_commit(&[from]).await;
    }
    Ok(json_response(&json!({
        "message": "Successfully moved",
        "Id": id,
        "Key": format!("{}/{}", destination.bucket, destination.name),
    })))
}

/// `POST /object/copy` `{bucketId, sourceKey, destinationKey, destinationBucket?,
/// copyMetadata?, metadata?}` (+`x-upsert`): needs SELECT on the source and INSERT (upsert:
/// INSERT + SELECT + UPDATE) on the destination. The copy gets its own version and blob.
pub(crate) async fn copy_object(
    app: &App,
    incoming: Incoming,
    body: Body,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let body: TransferBody = read_json(body).await?;
    let Transfer {
        source,
        destination,
    } = transfer(&body)?;
    let blobs = app.blobs()?;
    let upsert = incoming.upsert_header();
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadWrite, "storage.object.copy");
    let tx = app.db.begin(&ctx).await.map_err(StorageError::from_db)?;
    lock_pair(&tx, &source, &destination).await?;
    let row = source_row(&tx, &source).await?;
    check_destination(app, &incoming, &destination, &row).await?;
    let previous = if upsert {
        current_version(&tx, &destination).await?
    } else {
        None
    };
    let mut described = row.described.clone();
    if body.copy_metadata == Some(false) {
        described.user_metadata = body
            .metadata
            .as_ref()
            .filter(|metadata| metadata.is_object())
            .map(Value::to_string);
    }
    let writer = Writer {
        owner: caller.subject().map(str::to_owned),
        caller,
        upsert,
        operation: "storage.object.copy",
    };
    let version = uuid::Uuid::new_v4().to_string();
    let size = i64::try_from(row.size).unwrap_or(i64::MAX);
    // The row first: RLS and the unique name decide before any bytes are copied.
    let id = write_row(
        &tx,
        &destination,
        &writer,
        &version,
        &row.etag,
        size,
        &described,
    )
    .await?;
    let from = Blobs::key(&source.bucket, &source.name, &row.version);
    let to = Blobs::key(&destination.bucket, &destination.name, &version);
    blobs
        .copy(&from, &to)
        .await
        .map_err(StorageError::Backend)?;
    if let Err(error) = tx.commit().await {
        blobs.delete_after_commit(&[to]).await;
        return Err(StorageError::from_db(error));
    }
    if let Some(previous) = previous {
        blobs
            .delete_after_commit(&[Blobs::key(
                &destination.bucket,
                &destination.name,
                &previous,
            )])
            .await;
    }
    Ok(json_response(&json!({
        "Id": id,
        "Key": format!("{}/{}", destination.bucket, destination.name),
    })))
}
