//! Which endpoint a method and path name. Paths are matched by hand rather than by the router:
//! object names contain `/`, arrive unencoded, and share their first segments with fixed words
//! (`list`, `sign`, `info`, `public`, …), exactly as Supabase Storage lays them out.

use http::Method;

use crate::error::StorageError;
use crate::names::decode_segment;

/// The API prefix every route lives under.
pub(crate) const PREFIX: &str = "/storage/v1/";

/// How a download route decides access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAccess {
    /// `/object/{b}/{p}` and `/object/authenticated/…`: RLS as the caller (public buckets open).
    Caller,
    /// `/object/public/…`: the bucket must be public.
    Public,
}

/// An object addressed by bucket and name (both decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectPath {
    /// Bucket id.
    pub(crate) bucket: String,
    /// Object name, segments joined by `/`.
    pub(crate) name: String,
}

/// A `/storage/v1` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Status,
    Version,
    ListBuckets,
    CreateBucket,
    GetBucket(String),
    UpdateBucket(String),
    DeleteBucket(String),
    EmptyBucket(String),
    List(String),
    ListV2(String),
    Move,
    Copy,
    SignMany(String),
    Sign(ObjectPath),
    SignedDownload(ObjectPath),
    SignUpload(ObjectPath),
    SignedUpload(ObjectPath),
    Info(ObjectPath, ReadAccess),
    Download(ObjectPath, ReadAccess),
    Upload(ObjectPath),
    Update(ObjectPath),
    DeleteObject(ObjectPath),
    RemoveMany(String),
}

/// Parses `method` + `path` (the full request path, still percent-encoded).
pub(crate) fn parse(method: &Method, path: &str) -> Result<Route, StorageError> {
    let not_found = || StorageError::RouteNotFound(format!("{method}:{path}"));
    let rest = path.strip_prefix(PREFIX).ok_or_else(not_found)?;
    let raw: Vec<&str> = rest.split('/').collect();
    let words: Vec<&str> = raw.iter().take(4).copied().collect();
    let is_read = *method == Method::GET || *method == Method::HEAD;
    let route = match (method.as_str(), words.as_slice()) {
        ("GET", ["status"]) => Route::Status,
        ("GET", ["version"]) => Route::Version,
        ("GET", ["bucket"] | ["bucket", ""]) => Route::ListBuckets,
        ("POST", ["bucket"] | ["bucket", ""]) => Route::CreateBucket,
        ("GET", ["bucket", id]) => Route::GetBucket(decode_segment(id)?),
        ("PUT", ["bucket", id]) => Route::UpdateBucket(decode_segment(id)?),
        ("DELETE", ["bucket", id]) => Route::DeleteBucket(decode_segment(id)?),
        ("POST", ["bucket", id, "empty"]) if raw.len() == 3 => {
            Route::EmptyBucket(decode_segment(id)?)
        }
        ("POST", ["object", "list", bucket]) => Route::List(decode_segment(bucket)?),
        ("POST", ["object", "list-v2", bucket]) => Route::ListV2(decode_segment(bucket)?),
        ("POST", ["object", "move"]) => Route::Move,
        ("POST", ["object", "copy"]) => Route::Copy,
        ("POST", ["object", "sign", bucket]) => Route::SignMany(decode_segment(bucket)?),
        ("POST", ["object", "sign", ..]) => Route::Sign(object_path(&raw[2..])?),
        (_, ["object", "sign", ..]) if is_read => Route::SignedDownload(object_path(&raw[2..])?),
        ("POST", ["object", "upload", "sign", ..]) => Route::SignUpload(object_path(&raw[3..])?),
        ("PUT", ["object", "upload", "sign", ..]) => Route::SignedUpload(object_path(&raw[3..])?),
        (_, ["object", "info", "public", ..]) if is_read => {
            Route::Info(object_path(&raw[3..])?, ReadAccess::Public)
        }
        (_, ["object", "info", "authenticated", ..]) if is_read => {
            Route::Info(object_path(&raw[3..])?, ReadAccess::Caller)
        }
        (_, ["object", "info", ..]) if is_read => {
            Route::Info(object_path(&raw[2..])?, ReadAccess::Caller)
        }
        (_, ["object", "public", ..] | ["render", "image", "public", ..]) if is_read => {
            let skip = if raw[0] == "render" { 3 } else { 2 };
            Route::Download(object_path(&raw[skip..])?, ReadAccess::Public)
        }
        (_, ["object", "authenticated", ..] | ["render", "image", "authenticated", ..])
            if is_read =>
        {
            let skip = if raw[0] == "render" { 3 } else { 2 };
            Route::Download(object_path(&raw[skip..])?, ReadAccess::Caller)
        }
        (_, ["render", "image", "sign", ..]) if is_read => {
            Route::SignedDownload(object_path(&raw[3..])?)
        }
        ("DELETE", ["object", bucket] | ["object", bucket, ""]) => {
            Route::RemoveMany(decode_segment(bucket)?)
        }
        (_, ["object", _, _, ..]) => {
            let path = object_path(&raw[1..])?;
            match method.as_str() {
                "GET" | "HEAD" => Route::Download(path, ReadAccess::Caller),
                "POST" => Route::Upload(path),
                "PUT" => Route::Update(path),
                "DELETE" => Route::DeleteObject(path),
                _ => return Err(not_found()),
            }
        }
        _ => return Err(not_found()),
    };
    Ok(route)
}

/// `bucket/name/with/slashes` from the remaining raw segments.
fn object_path(segments: &[&str]) -> Result<ObjectPath, StorageError> {
    let (bucket, name) = segments
        .split_first()
        .ok_or_else(|| StorageError::InvalidKey(String::new()))?;
    let mut decoded = Vec::with_capacity(name.len());
    for segment in name {
        decoded.push(decode_segment(segment)?);
    }
    Ok(ObjectPath {
        bucket: decode_segment(bucket)?,
        name: decoded.join("/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Route {
        parse(&method, &format!("/storage/v1/{path}")).unwrap()
    }

    fn object(bucket: &str, name: &str) -> ObjectPath {
        ObjectPath {
            bucket: bucket.into(),
            name: name.into(),
        }
    }

    #[test]
    fn object_routes_keep_slashes_and_decode_segments() {
        assert_eq!(
            route(Method::POST, "object/photos/a%20b/c.png"),
            Route::Upload(object("photos", "a b/c.png"))
        );
        assert_eq!(
            route(Method::GET, "object/photos/x/y"),
            Route::Download(object("photos", "x/y"), ReadAccess::Caller)
        );
        assert_eq!(
            route(Method::HEAD, "object/public/photos/x"),
            Route::Download(object("photos", "x"), ReadAccess::Public)
        );
        assert_eq!(
            route(Method::GET, "object/authenticated/photos/x"),
            Route::Download(object("photos", "x"), ReadAccess::Caller)
        );
        assert_eq!(
            route(Method::GET, "object/info/photos/x/y"),
            Route::Info(object("photos", "x/y"), ReadAccess::Caller)
        );
        assert_eq!(
            route(Method::GET, "object/info/public/photos/x"),
            Route::Info(object("photos", "x"), ReadAccess::Public)
        );
        assert_eq!(
            route(Method::DELETE, "object/photos"),
            Route::RemoveMany("photos".into())
        );
        assert_eq!(
            route(Method::DELETE, "object/photos/x"),
            Route::DeleteObject(object("photos", "x"))
        );
        assert_eq!(
            route(Method::PUT, "object/photos/x"),
            Route::Update(object("photos", "x"))
        );
    }

    #[test]
    fn fixed_words_win_over_bucket_names() {
        assert_eq!(
            route(Method::POST, "object/list/photos"),
            Route::List("photos".into())
        );
        assert_eq!(
            route(Method::POST, "object/list-v2/photos"),
            Route::ListV2("photos".into())
        );
        assert_eq!(route(Method::POST, "object/move"), Route::Move);
        assert_eq!(route(Method::POST, "object/copy"), Route::Copy);
        assert_eq!(
            route(Method::POST, "object/sign/photos"),
            Route::SignMany("photos".into())
        );
        assert_eq!(
            route(Method::POST, "object/sign/photos/a/b"),
            Route::Sign(object("photos", "a/b"))
        );
        assert_eq!(
            route(Method::GET, "object/sign/photos/a/b"),
            Route::SignedDownload(object("photos", "a/b"))
        );
        assert_eq!(
            route(Method::POST, "object/upload/sign/photos/a"),
            Route::SignUpload(object("photos", "a"))
        );
        assert_eq!(
            route(Method::PUT, "object/upload/sign/photos/a"),
            Route::SignedUpload(object("photos", "a"))
        );
        assert_eq!(
            route(Method::GET, "render/image/public/photos/a.png"),
            Route::Download(object("photos", "a.png"), ReadAccess::Public)
        );
    }

    #[test]
    fn bucket_routes() {
        assert_eq!(route(Method::GET, "bucket"), Route::ListBuckets);
        assert_eq!(route(Method::POST, "bucket"), Route::CreateBucket);
        assert_eq!(route(Method::GET, "bucket/b"), Route::GetBucket("b".into()));
        assert_eq!(
            route(Method::PUT, "bucket/b"),
            Route::UpdateBucket("b".into())
        );
        assert_eq!(
            route(Method::DELETE, "bucket/b"),
            Route::DeleteBucket("b".into())
        );
        assert_eq!(
            route(Method::POST, "bucket/b/empty"),
            Route::EmptyBucket("b".into())
        );
        assert_eq!(route(Method::GET, "status"), Route::Status);
    }

    #[test]
    fn unknown_routes_are_not_found() {
        for (method, path) in [
            (Method::PATCH, "/storage/v1/object/b/x"),
            (Method::GET, "/storage/v1/nope"),
            (Method::POST, "/storage/v1/object/b"),
            (Method::GET, "/other"),
        ] {
            assert!(matches!(
                parse(&method, path),
                Err(StorageError::RouteNotFound(_))
            ));
        }
        assert!(matches!(
            parse(&Method::GET, "/storage/v1/object/b/%FF"),
            Err(StorageError::InvalidKey(_))
        ));
    }
}
