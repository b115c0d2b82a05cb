//! Downloads (authenticated, public, signed), `HEAD`, and `info`. The row decides which blob
//! version is served; blobs are immutable per version, so a download never mixes versions even
//! while the object is being overwritten.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use manifold_auth::Caller;
use manifold_db::Access;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::App;
use crate::access::{TokenRule, resolve_caller, service_caller};
use crate::blob::Blobs;
use crate::bucket;
use crate::error::StorageError;
use crate::limits::{none_match, parse_range};
use crate::names::check_key;
use crate::request::{Incoming, json_text_response};
use crate::route::{ObjectPath, ReadAccess};
use crate::sql::{run, statement};

/// Times a download re-reads the row when the blob it named was just replaced and removed.
const STALE_VERSION_RETRIES: usize = 3;
/// Characters `encodeURIComponent` leaves alone, for `Content-Disposition` file names.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The stored facts a download needs.
#[derive(Debug, Clone)]
pub(crate) struct ObjectRow {
    version: String,
    size: u64,
    mimetype: String,
    cache_control: String,
    etag: String,
    updated_epoch: i64,
    info_json: String,
}

/// Reads an object's row as `caller` (RLS applies unless it is the service role).
pub(crate) async fn read_row(
    app: &App,
    incoming: &Incoming,
    caller: &Caller,
    path: &ObjectPath,
) -> Result<Option<ObjectRow>, StorageError> {
    let ctx = incoming
        .facts
        .context(caller, Access::ReadOnly, "storage.object.get");
    let rows = run(
        &app.db,
        &ctx,
        &statement(
            [
                "select o.version, coalesce((o.metadata ->> 'size')::int8, 0), \
                   coalesce(o.metadata ->> 'mimetype', 'application/octet-stream'), \
                   coalesce(o.metadata ->> 'cacheControl', 'no-cache'), \
                   coalesce(o.metadata ->> 'eTag', ''), \
                   extract(epoch from coalesce(o.updated_at, o.created_at, now()))::int8, \
                   json_build_object('id', o.id, 'name', o.name, 'version', o.version, \
                     'bucket_id', o.bucket_id, 'size', (o.metadata ->> 'size')::int8, \
                     'content_type', o.metadata ->> 'mimetype', \
                     'cache_control', o.metadata ->> 'cacheControl', \
                     'etag', o.metadata ->> 'eTag', 'metadata', o.user_metadata, \
                     'last_modified', o.updated_at, 'created_at', o.created_at)::text \
                 from storage.objects o where o.bucket_id = ",
                " and o.name = ",
                "",
            ],
            [path.bucket.clone().into(), path.name.clone().into()],
        ),
    )
    .await?;
    Ok(rows.first().map(|row| {
        let version: Option<String> = row.get(0);
        ObjectRow {
            version: version.unwrap_or_default(),
            size: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            mimetype: row.get(2),
            cache_control: row.get(3),
            etag: row.get(4),
            updated_epoch: row.get(5),
            info_json: row.get(6),
        }
    }))
}

/// Finds the row a plain (non-signed) read may see: public buckets are read as the service
/// role, private ones as the caller; an anonymous caller of a private bucket learns nothing
/// about the bucket (NoSuchBucket), as on Supabase.
async fn visible_row(
    app: &App,
    incoming: &Incoming,
    path: &ObjectPath,
    access: ReadAccess,
) -> Result<ObjectRow, StorageError> {
    check_key(&path.name)?;
    let bucket = bucket::find(app, incoming, &path.bucket).await?;
    let caller = match (access, bucket.public) {
        (_, true) => service_caller(&app.gatekeeper)?,
        (ReadAccess::Public, false) => return Err(StorageError::NoSuchBucket),
        (ReadAccess::Caller, false) => {
            resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::DegradeToAnon)?
        }
    };
    match read_row(app, incoming, &caller, path).await? {
        Some(row) => Ok(row),
        None if caller.is_anon() => Err(StorageError::NoSuchBucket),
        None => Err(StorageError::NoSuchKey),
    }
}

/// `GET|HEAD /object/{bucket}/{path}`, `/object/authenticated/…`, `/object/public/…`.
pub(crate) async fn download(
    app: &App,
    incoming: Incoming,
    path: ObjectPath,
    access: ReadAccess,
) -> Result<Response, StorageError> {
    let mut attempts = 0;
    loop {
        let row = visible_row(app, &incoming, &path, access).await?;
        match serve(app, &incoming, &path, &row).await {
            Err(StorageError::Backend(object_store::Error::NotFound { .. }))
                if attempts < STALE_VERSION_RETRIES =>
            {
                // The version was replaced and its blob removed between reading the row and
                // opening the blob: read the row again and serve the new version whole.
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// `GET /object/info/{bucket}/{path}` (and `/info/public`, `/info/authenticated`).
pub(crate) async fn info(
    app: &App,
    incoming: Incoming,
    path: ObjectPath,
    access: ReadAccess,
) -> Result<Response, StorageError> {
    let row = visible_row(app, &incoming, &path, access).await?;
    Ok(json_text_response(row.info_json))
}

/// Streams `row`'s blob with Storage's headers, honouring `If-None-Match`, `If-Modified-Since`,
/// `Range` and `?download`.
pub(crate) async fn serve(
    app: &App,
    incoming: &Incoming,
    path: &ObjectPath,
    row: &ObjectRow,
) -> Result<Response, StorageError> {
    let last_modified =
        UNIX_EPOCH + Duration::from_secs(u64::try_from(row.updated_epoch).unwrap_or(0));
    let not_modified = match incoming.header(header::IF_NONE_MATCH) {
        Some(tags) => !row.etag.is_empty() && none_match(tags, &row.etag),
        None => incoming
            .header(header::IF_MODIFIED_SINCE)
            .and_then(|since| httpdate::parse_http_date(since).ok())
            .is_some_and(|since| last_modified <= since),
    };
    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, header_value(&row.cache_control))
        .header(header::ETAG, header_value(&row.etag))
        .header(
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(last_modified)),
        )
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-robots-tag", "none");
    if not_modified {
        return response(builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()));
    }
    builder = builder.header(header::CONTENT_TYPE, header_value(&row.mimetype));
    if let Some(name) = incoming.query("download") {
        builder = builder.header(header::CONTENT_DISPOSITION, disposition(name));
    }
    let range = parse_range(incoming.header(header::RANGE), row.size)?;
    let (status, length) = match &range {
        Some(range) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                header_value(&format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end - 1,
                    row.size
                )),
            );
            (StatusCode::PARTIAL_CONTENT, range.end - range.start)
        }
        None => (StatusCode::OK, row.size),
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    if incoming.method == Method::HEAD || length == 0 {
        return response(builder.body(Body::empty()));
    }
    let key = Blobs::key(&path.bucket, &path.name, &row.version);
    let read = app
        .blobs()?
        .read(&key, range)
        .await
        .map_err(StorageError::Backend)?;
    response(builder.body(Body::from_stream(read.stream)))
}

fn response(built: Result<Response, http::Error>) -> Result<Response, StorageError> {
    built
        .map(IntoResponse::into_response)
        .map_err(|error| StorageError::Internal(format!("building a download response: {error}")))
}

/// Stored metadata as a header value; anything unrepresentable degrades to empty.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `?download` -> `attachment;`, `?download=name` -> with an encoded file name.
fn disposition(name: &str) -> HeaderValue {
    if name.is_empty() {
        return HeaderValue::from_static("attachment;");
    }
    let encoded = utf8_percent_encode(name, URI_COMPONENT).to_string();
    header_value(&format!(
        "attachment; filename={encoded}; filename*=UTF-8''{encoded}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(disposition(""), "attachment;");
        assert_eq!(
            disposition("my file (1).txt"),
            "attachment; filename=my%20file%20(1).txt; filename*=UTF-8''my%20file%20(1).txt"
        );
    }
}
