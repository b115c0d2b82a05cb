//! Uploads: `POST` (create, or upsert with `x-upsert`), `PUT` (update: always upsert), raw or
//! multipart bodies, and the shared write path signed uploads use too.
//!
//! Order of a write: bucket lookup; size and MIME checks on what the headers announce; a
//! permission probe that runs the real INSERT (or upsert) as the writer and rolls it back; then
//! the body is streamed to a new blob key (limits enforced while streaming); then, in one
//! transaction under an advisory lock on the object, the row is written as the writer and the
//! previous version is read; after commit the previous blob is removed. A denied or failed write
//! leaves no blob and no row, and so does a client that goes away in the middle of the body.

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::header;
use manifold_auth::Caller;
use manifold_db::{Access, RequestTx};
use manifold_sql::Statement;
use multer::{Constraints, Multipart, SizeLimit};
use serde_json::{Value, json};

use crate::App;
use crate::access::{TokenRule, resolve_caller};
use crate::blob::Blobs;
use crate::bucket::{self, BucketInfo};
use crate::error::StorageError;
use crate::limits::{check_mime, is_placeholder, object_size_limit};
use crate::names::{check_bucket, check_key, owner_uuid};
use crate::request::{Incoming, json_response};
use crate::route::ObjectPath;
use crate::sql::statement;

/// Largest form field besides the file (`metadata` JSON, `cacheControl`, …).
const MAX_FORM_FIELD: u64 = 64 * 1024;
/// Form fields that describe the upload rather than carry it.
const FORM_FIELDS: &[&str] = &[
    "cacheControl",
    "metadata",
    "userMetadata",
    "contentType",
    "contentEncoding",
];
/// Mime type of a raw upload without a `content-type` header.
const DEFAULT_MIME: &str = "application/octet-stream";

/// The object row's columns, then the metadata object Storage writes.
macro_rules! insert_object {
    () => {
        "insert into storage.objects as o \
           (id, bucket_id, name, owner, owner_id, version, metadata, user_metadata) \
         select p.id::uuid, p.bucket_id, p.name, p.owner::uuid, p.owner_id, p.version, \
           jsonb_build_object('eTag', p.etag, 'size', p.size, 'mimetype', p.mimetype, \
             'cacheControl', p.cache_control, \
             'lastModified', to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
             'contentLength', p.size, 'httpStatusCode', 200), \
           p.user_metadata::jsonb \
         from p"
    };
}

/// How a write treats an existing object of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `POST`: create; upsert only with `x-upsert: true`.
    Create,
    /// `PUT`: replace, or create when missing.
    Update,
}

/// Who writes and how: the role the statements run as and whether an existing row is replaced.
pub(crate) struct Writer {
    /// The role (and claims) the probe and the row write run as.
    pub(crate) caller: Caller,
    /// `sub` recorded as the owner.
    pub(crate) owner: Option<String>,
    /// Replace an existing object instead of failing with ResourceAlreadyExists.
    pub(crate) upsert: bool,
    /// `storage.operation` for policies.
    pub(crate) operation: &'static str,
}

/// What the row records besides size and hash.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    /// Stored `metadata.mimetype`, served as `Content-Type`.
    pub(crate) mimetype: String,
    /// Stored `metadata.cacheControl`, served as `Cache-Control`.
    pub(crate) cache_control: String,
    /// `user_metadata` as JSON text.
    pub(crate) user_metadata: Option<String>,
}

/// A stored object.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The row id.
    pub(crate) id: String,
}

/// `POST|PUT /object/{bucket}/{path}` -> `{Id, Key}`.
pub(crate) async fn upload(
    app: &App,
    incoming: Incoming,
    body: Body,
    path: ObjectPath,
    mode: Mode,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let (upsert, operation) = match mode {
        Mode::Create => (incoming.upsert_header(), "storage.object.upload"),
        Mode::Update => (true, "storage.object.update"),
    };
    let writer = Writer {
        owner: caller.subject().map(str::to_owned),
        caller,
        upsert,
        operation,
    };
    let stored = receive(app, &incoming, body, &path, writer).await?;
    Ok(json_response(&json!({
        "Id": stored.id,
        "Key": format!("{}/{}", path.bucket, path.name),
    })))
}

/// Receives a raw or multipart body into `path` as `writer`.
pub(crate) async fn receive(
    app: &App,
    incoming: &Incoming,
    body: Body,
    path: &ObjectPath,
    writer: Writer,
) -> Result<Stored, StorageError> {
    check_bucket(&path.bucket)?;
    check_key(&path.name)?;
    let bucket = bucket::find(app, incoming, &path.bucket).await?;
    // Supabase Storage exempts a folder placeholder from the MIME check only; its size limit is
    // zero, so the marker cannot carry content past the bucket's or the server's limits.
    let placeholder = is_placeholder(&path.name);
    let limit = object_size_limit(
        &path.name,
        app.config.storage.max_file_size,
        bucket.file_size_limit,
    );
    let content_type = incoming.header(header::CONTENT_TYPE).map(str::to_owned);
    let is_multipart = content_type.as_deref().is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    if is_multipart {
        let boundary = multer::parse_boundary(content_type.as_deref().unwrap_or_default())
            .map_err(|error| StorageError::InvalidRequest(error.to_string()))?;
        let constraints = Constraints::new().size_limit(
            FORM_FIELDS.iter().fold(SizeLimit::new(), |limits, name| {
                limits.for_field(*name, MAX_FORM_FIELD)
            }),
        );
        let mut form = Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
        let mut fields = FormFields::default();
        let file = loop {
            let field = form
                .next_field()
                .await
                .map_err(|error| StorageError::InvalidRequest(error.to_string()))?
                .ok_or_else(|| StorageError::InvalidRequest("No content provided".into()))?;
            let name = field.name().unwrap_or_default().to_owned();
            if field.file_name().is_none() && FORM_FIELDS.contains(&name.as_str()) {
                let text = field
                    .text()
                    .await
                    .map_err(|error| StorageError::InvalidRequest(error.to_string()))?;
                fields.set(&name, text);
                continue;
            }
            // Exactly one file part, whatever its field name (storage-js uses "").
            break field;
        };
        let part_type = file.content_type().map(ToString::to_string);
        let described = fields.describe(part_type);
        write(
            app,
            incoming,
            path,
            &bucket,
            &writer,
            described,
            limit,
            placeholder,
            file,
        )
        .await
    } else {
        if let Some(length) = incoming
            .header(header::CONTENT_LENGTH)
            .and_then(|value| value.parse::<u64>().ok())
            && length > limit
        {
            return Err(StorageError::EntityTooLarge);
        }
        let described = Described {
            mimetype: content_type.unwrap_or_else(|| DEFAULT_MIME.to_owned()),
            cache_control: incoming
                .header(header::CACHE_CONTROL)
                .unwrap_or("no-cache")
                .to_owned(),
            user_metadata: incoming.header("x-metadata").and_then(decode_x_metadata),
        };
        let stream = raw_stream(body);
        write(
            app,
            incoming,
            path,
            &bucket,
            &writer,
            described,
            limit,
            placeholder,
            stream,
        )
        .await
    }
}

fn raw_stream(body: Body) -> impl Stream<Item = Result<Bytes, axum::Error>> {
    body.into_data_stream()
}

/// The descriptive multipart fields.
#[derive(Debug, Default)]
struct FormFields {
    cache_control: Option<String>,
    metadata: Option<String>,
    content_type: Option<String>,
}

impl FormFields {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "cacheControl" => self.cache_control = Some(value),
            "metadata" | "userMetadata" => self.metadata = Some(value),
            "contentType" => self.content_type = Some(value),
            _ => {}
        }
    }

    fn describe(self, part_type: Option<String>) -> Described {
        // A number of seconds becomes `max-age=N`, as Storage stores it.
        let cache_control = match self.cache_control.map(|value| value.trim().to_owned()) {
            Some(seconds) if !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit()) => {
                format!("max-age={seconds}")
            }
            Some(value) if !value.is_empty() => value,
            _ => "no-cache".to_owned(),
        };
        Described {
            mimetype: self
                .content_type
                .filter(|value| !value.trim().is_empty())
                .or(part_type)
                .unwrap_or_else(|| DEFAULT_MIME.to_owned()),
            cache_control,
            // Invalid JSON is ignored, as Storage does.
            user_metadata: self.metadata.and_then(|text| json_object_text(&text)),
        }
    }
}

/// `x-metadata: base64(JSON)`; anything undecodable is ignored.
fn decode_x_metadata(value: &str) -> Option<String> {
    let bytes = STANDARD.decode(value.trim()).ok()?;
    json_object_text(std::str::from_utf8(&bytes).ok()?)
}

fn json_object_text(text: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text).ok()? {
        value @ Value::Object(_) => Some(value.to_string()),
        _ => None,
    }
}

/// Probe, stream, commit; see the module documentation.
#[allow(
    clippy::too_many_arguments,
    reason = "the write path's inputs are all distinct facts of one upload"
)]
async fn write<S, E>(
    app: &App,
    incoming: &Incoming,
    path: &ObjectPath,
    bucket: &BucketInfo,
    writer: &Writer,
    described: Described,
    limit: u64,
    placeholder: bool,
    body: S,
) -> Result<Stored, StorageError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    if !placeholder {
        check_mime(&described.mimetype, bucket.allowed_mime_types.as_deref())?;
    }
    let blobs = app.blobs()?;
    let version = uuid::Uuid::new_v4().to_string();
    let ctx = incoming
        .facts
        .context(&writer.caller, Access::ReadWrite, writer.operation);

    probe(app, &ctx, path, writer, &version, &described).await?;

    let key = Blobs::key(&path.bucket, &path.name, &version);
    let written = blobs
        .write(&key, body.map_err(|e| e.to_string()), limit)
        .await?;

    let committed = commit_row(app, &ctx, path, writer, &version, &written, &described).await;
    match committed {
        Ok((stored, previous)) => {
            if let Some(previous) = previous.filter(|previous| *previous != version) {
                blobs
                    .delete_after_commit(&[Blobs::key(&path.bucket, &path.name, &previous)])
                    .await;
            }
            Ok(stored)
        }
        Err(error) => {
            blobs.delete_after_commit(&[key]).await;
            Err(error)
        }
    }
}

/// The permission probe: the real statement as the writer, rolled back. RLS, the unique name
/// and triggers all speak before a single byte is stored.
async fn probe(
    app: &App,
    ctx: &manifold_db::RequestContext,
    path: &ObjectPath,
    writer: &Writer,
    version: &str,
    described: &Described,
) -> Result<(), StorageError> {
    let tx = app.db.begin(ctx).await.map_err(StorageError::from_db)?;
    let probed = write_row(&tx, path, writer, version, "", 0, described).await;
    tx.rollback().await.map_err(StorageError::from_db)?;
    probed.map(drop)
}

/// Runs only the permission probe (creating a signed upload URL checks what the upload will).
pub(crate) async fn probe_only(
    app: &App,
    incoming: &Incoming,
    path: &ObjectPath,
    writer: &Writer,
) -> Result<(), StorageError> {
    let described = Described {
        mimetype: DEFAULT_MIME.to_owned(),
        cache_control: "no-cache".to_owned(),
        user_metadata: None,
    };
    let ctx = incoming
        .facts
        .context(&writer.caller, Access::ReadWrite, writer.operation);
    let version = uuid::Uuid::new_v4().to_string();
    probe(app, &ctx, path, writer, &version, &described).await
}

/// Writes the row under the object's advisory lock and returns it with the version it
/// replaced (read under the same lock, so concurrent writers cannot lose a blob).
async fn commit_row(
    app: &App,
    ctx: &manifold_db::RequestContext,
    path: &ObjectPath,
    writer: &Writer,
    version: &str,
    written: &crate::blob::Written,
    described: &Described,
) -> Result<(Stored, Option<String>), StorageError> {
    let tx = app.db.begin(ctx).await.map_err(StorageError::from_db)?;
    lock_object(&tx, &path.bucket, &path.name).await?;
    let previous = current_version(&tx, path).await?;
    let size = i64::try_from(written.size).unwrap_or(i64::MAX);
    let id = write_row(&tx, path, writer, version, &written.etag, size, described).await?;
    tx.commit().await.map_err(StorageError::from_db)?;
    Ok((Stored { id }, previous))
}

/// Serialises writers of one object for the rest of the transaction.
pub(crate) async fn lock_object(
    tx: &RequestTx,
    bucket: &str,
    name: &str,
) -> Result<(), StorageError> {
    tx.query(&statement(
        [
            "select pg_advisory_xact_lock(hashtextextended(",
            " || '/' || ",
            ", 0))",
        ],
        [bucket.into(), name.into()],
    ))
    .await
    .map_err(StorageError::from_db)?;
    Ok(())
}

/// The version of the object's row visible in the transaction, if any.
pub(crate) async fn current_version(
    tx: &RequestTx,
    path: &ObjectPath,
) -> Result<Option<String>, StorageError> {
    let rows = tx
        .query(&statement(
            [
                "select o.version from storage.objects o where o.bucket_id = ",
                " and o.name = ",
                "",
            ],
            [path.bucket.clone().into(), path.name.clone().into()],
        ))
        .await
        .map_err(StorageError::from_db)?;
    Ok(rows.first().and_then(|row| row.get(0)))
}

/// Writes an object's row (INSERT, or upsert) in `tx` and returns its id. A plain insert brings
/// its own id instead of `RETURNING` it: under RLS, `RETURNING` also needs the row to pass a
/// SELECT policy, and an upload on Supabase needs only INSERT. An upsert returns the id of the
/// row it inserted or updated, which needs SELECT there as well.
#[allow(
    clippy::too_many_arguments,
    reason = "the row's inputs are all distinct facts of one write"
)]
pub(crate) async fn write_row(
    tx: &RequestTx,
    path: &ObjectPath,
    writer: &Writer,
    version: &str,
    etag: &str,
    size: i64,
    described: &Described,
) -> Result<String, StorageError> {
    let id = uuid::Uuid::new_v4().to_string();
    let statement = row_statement(path, writer, &id, version, etag, size, described);
    if !writer.upsert {
        tx.execute(&statement)
            .await
            .map_err(StorageError::from_db)?;
        return Ok(id);
    }
    let rows = tx.query(&statement).await.map_err(StorageError::from_db)?;
    rows.first()
        .map(|row| row.get(0))
        .ok_or_else(|| StorageError::Internal("the object upsert returned no row".into()))
}

/// The INSERT (or upsert, returning the id) of an object row.
fn row_statement(
    path: &ObjectPath,
    writer: &Writer,
    id: &str,
    version: &str,
    etag: &str,
    size: i64,
    described: &Described,
) -> Statement {
    let mut statement = statement(
        [
            "with p as (select ",
            " as id, ",
            " as bucket_id, ",
            " as name, ",
            " as owner, ",
            " as owner_id, ",
            " as version, ",
            " as etag, ",
            " as size, ",
            " as mimetype, ",
            " as cache_control, ",
            " as user_metadata) ",
        ],
        [
            id.into(),
            path.bucket.clone().into(),
            path.name.clone().into(),
            owner_uuid(writer.owner.as_deref()).into(),
            writer.owner.clone().into(),
            version.into(),
            etag.into(),
            size.into(),
            described.mimetype.clone().into(),
            described.cache_control.clone().into(),
            described.user_metadata.clone().into(),
        ],
    );
    if writer.upsert {
        statement.push_sql(concat!(
            insert_object!(),
            " on conflict (bucket_id, name) do update set owner = excluded.owner, \
             owner_id = excluded.owner_id, version = excluded.version, \
             metadata = excluded.metadata, user_metadata = excluded.user_metadata, \
             last_accessed_at = now() \
             returning o.id::text"
        ));
    } else {
        statement.push_sql(insert_object!());
    }
    statement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_describe_the_upload() {
        let mut fields = FormFields::default();
        fields.set("cacheControl", "3600".into());
        fields.set("metadata", "{\"a\":1}".into());
        let described = fields.describe(Some("image/png".into()));
        assert_eq!(described.cache_control, "max-age=3600");
        assert_eq!(described.mimetype, "image/png");
        assert_eq!(described.user_metadata.as_deref(), Some("{\"a\":1}"));

        let mut fields = FormFields::default();
        fields.set("metadata", "not json".into());
        fields.set("contentType", "text/csv".into());
        let described = fields.describe(Some("image/png".into()));
        assert_eq!(described.cache_control, "no-cache");
        assert_eq!(described.mimetype, "text/csv");
        assert_eq!(described.user_metadata, None);
    }

    #[test]
    fn x_metadata_is_base64_json() {
        let encoded = STANDARD.encode("{\"k\":\"v\"}");
        assert_eq!(
            decode_x_metadata(&encoded).as_deref(),
            Some("{\"k\":\"v\"}")
        );
        assert_eq!(decode_x_metadata("!!"), None);
        assert_eq!(decode_x_metadata(&STANDARD.encode("[1]")), None);
    }
}
