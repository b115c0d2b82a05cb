//! Signed URLs: short HS256 tokens over `bucket/path`, signed with the project JWT secret.
//! Download tokens (`scope: download`) are minted for objects the caller can SELECT; upload
//! tokens (`scope: upload`) after the same permission probe an upload runs, and carry the owner
//! and the upsert flag. Using either needs no other credential.

use axum::body::Body;
use axum::response::Response;
use manifold_auth::keys::{sign_hs256, unix_now};
use manifold_db::Access;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::access::{TokenRule, resolve_caller, service_caller, service_caller_for};
use crate::download::{read_row, serve};
use crate::error::StorageError;
use crate::names::{check_bucket, check_key};
use crate::request::{Incoming, json_response, read_json};
use crate::route::ObjectPath;
use crate::sql::{run, statement};
use crate::upload::{self, Writer};
use crate::{App, bucket};

/// The per-item error of a batch sign, Storage's wording.
const NOT_VISIBLE: &str = "Either the object does not exist or you do not have access to it";
/// Most paths one batch sign accepts.
const MAX_BATCH: usize = 1000;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Download,
    Upload,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignBody {
    expires_in: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignManyBody {
    expires_in: Option<Value>,
    paths: Option<Vec<String>>,
}

/// `expiresIn`: a whole number of seconds, at least 1.
fn expires_in(value: Option<&Value>) -> Result<u64, StorageError> {
    let value = value.ok_or(StorageError::MissingParameter("expiresIn"))?;
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
        .or_else(|| {
            value
                .as_f64()
                .filter(|seconds| seconds.fract() == 0.0 && *seconds >= 1.0)
                .map(|seconds| seconds as u64)
        })
        .filter(|seconds| *seconds >= 1)
        .ok_or_else(|| StorageError::InvalidParameter("expiresIn must be a number >= 1".into()))
}

fn mint(app: &App, claims: Value) -> Result<String, StorageError> {
    sign_hs256(&claims, &app.gatekeeper.keys().jwt_secret)
        .map_err(|error| StorageError::Internal(format!("signing a URL token: {error}")))
}

fn download_token(app: &App, path: &ObjectPath, seconds: u64) -> Result<String, StorageError> {
    let now = unix_now();
    mint(
        app,
        json!({
            "url": format!("{}/{}", path.bucket, path.name),
            "iat": now,
            "exp": now.saturating_add(seconds),
            "scope": Scope::Download.as_str(),
        }),
    )
}

/// The relative signed URL storage-js expects: the path raw (not percent-encoded), because the
/// client runs `encodeURI` over the whole URL itself.
fn signed_url(prefix: &str, path: &ObjectPath, token: &str) -> String {
    format!("/{prefix}/{}/{}?token={token}", path.bucket, path.name)
}

/// `POST /object/sign/{bucket}/{path}` `{expiresIn}` -> `{signedURL}`.
pub(crate) async fn sign_one(
    app: &App,
    incoming: Incoming,
    body: Body,
    path: ObjectPath,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let body: SignBody = read_json(body).await?;
    let seconds = expires_in(body.expires_in.as_ref())?;
    check_key(&path.name)?;
    // Signing needs the object to exist and be SELECT-visible to the caller.
    if read_row(app, &incoming, &caller, &path).await?.is_none() {
        return Err(StorageError::NoSuchKey);
    }
    let token = download_token(app, &path, seconds)?;
    Ok(json_response(
        &json!({ "signedURL": signed_url("object/sign", &path, &token) }),
    ))
}

/// `POST /object/sign/{bucket}` `{expiresIn, paths}` -> one entry per path, in order.
pub(crate) async fn sign_many(
    app: &App,
    incoming: Incoming,
    body: Body,
    bucket: String,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    let body: SignManyBody = read_json(body).await?;
    let seconds = expires_in(body.expires_in.as_ref())?;
    let paths = body.paths.ok_or(StorageError::MissingParameter("paths"))?;
    if paths.len() > MAX_BATCH {
        return Err(StorageError::InvalidParameter(format!(
            "at most {MAX_BATCH} paths may be signed at once"
        )));
    }
    check_bucket(&bucket)?;
    let ctx = incoming
        .facts
        .context(&caller, Access::ReadOnly, "storage.object.sign");
    let rows = run(
        &app.db,
        &ctx,
        &statement(
            [
                "select o.name from storage.objects o where o.bucket_id = ",
                " and o.name in (select jsonb_array_elements_text(",
                "::jsonb))",
            ],
            [
                bucket.clone().into(),
                Value::from(paths.clone()).to_string().into(),
            ],
        ),
    )
    .await?;
    let visible: std::collections::HashSet<String> = rows.iter().map(|row| row.get(0)).collect();
    let mut items = Vec::with_capacity(paths.len());
    for name in paths {
        let item = if visible.contains(&name) {
            let path = ObjectPath {
                bucket: bucket.clone(),
                name,
            };
            let token = download_token(app, &path, seconds)?;
            json!({
                "error": null,
                "path": path.name,
                "signedURL": signed_url("object/sign", &path, &token),
            })
        } else {
            json!({ "error": NOT_VISIBLE, "path": name, "signedURL": null })
        };
        items.push(item);
    }
    Ok(json_response(&Value::Array(items)))
}

/// Verifies a signed-URL token for `path` and `scope`; returns its claims.
fn verify(
    app: &App,
    token: Option<&str>,
    path: &ObjectPath,
    scope: Scope,
) -> Result<Map<String, Value>, StorageError> {
    let token = token
        .filter(|token| !token.is_empty())
        .ok_or(StorageError::MissingParameter("token"))?;
    let claims = app
        .gatekeeper
        .verifier()
        .verify(token)
        .map_err(|error| StorageError::InvalidJwt(error.to_string()))?;
    let url = format!("{}/{}", path.bucket, path.name);
    if claims.get("url").and_then(Value::as_str) != Some(url.as_str()) {
        return Err(StorageError::InvalidSignature("Invalid signature".into()));
    }
    let claimed_scope = claims.get("scope").and_then(Value::as_str);
    if claimed_scope != Some(scope.as_str()) {
        return Err(StorageError::InvalidSignature("Invalid token scope".into()));
    }
    Ok(claims)
}

/// `GET|HEAD /object/sign/{bucket}/{path}?token=…[&download]`: no other credential needed.
pub(crate) async fn signed_download(
    app: &App,
    incoming: Incoming,
    path: ObjectPath,
) -> Result<Response, StorageError> {
    verify(app, incoming.query("token"), &path, Scope::Download)?;
    let service = service_caller(&app.gatekeeper)?;
    let mut attempts = 0;
    loop {
        let row = read_row(app, &incoming, &service, &path)
            .await?
            .ok_or(StorageError::NoSuchKey)?;
        match serve(app, &incoming, &path, &row).await {
            // Replaced between row and blob: serve the new version (see download::download).
            Err(StorageError::Backend(object_store::Error::NotFound { .. })) if attempts < 3 => {
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// `POST /object/upload/sign/{bucket}/{path}` (+`x-upsert`) -> `{url, token}`, after probing
/// that the caller may write there.
pub(crate) async fn sign_upload(
    app: &App,
    incoming: Incoming,
    path: ObjectPath,
) -> Result<Response, StorageError> {
    let caller = resolve_caller(&app.gatekeeper, &incoming.headers, TokenRule::Require)?;
    check_bucket(&path.bucket)?;
    check_key(&path.name)?;
    bucket::find(app, &incoming, &path.bucket).await?;
    let upsert = incoming.upsert_header();
    let writer = Writer {
        owner: caller.subject().map(str::to_owned),
        caller,
        upsert,
        operation: "storage.object.upload_sign",
    };
    upload::probe_only(app, &incoming, &path, &writer).await?;
    let now = unix_now();
    let token = mint(
        app,
        json!({
            "url": format!("{}/{}", path.bucket, path.name),
            "owner": writer.owner,
            "upsert": upsert,
            "iat": now,
            "exp": now.saturating_add(app.config.storage.signed_upload_expiry_secs),
            "scope": Scope::Upload.as_str(),
        }),
    )?;
    Ok(json_response(&json!({
        "url": signed_url("object/upload/sign", &path, &token),
        "token": token,
    })))
}

/// `PUT /object/upload/sign/{bucket}/{path}?token=…`: the upload runs as the service role with
/// the token's owner and upsert flag; any `Authorization` header is ignored.
pub(crate) async fn signed_upload(
    app: &App,
    incoming: Incoming,
    body: Body,
    path: ObjectPath,
) -> Result<Response, StorageError> {
    let claims = verify(app, incoming.query("token"), &path, Scope::Upload)?;
    let owner = claims
        .get("owner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let writer = Writer {
        caller: service_caller_for(&app.gatekeeper, owner.as_deref())?,
        owner,
        upsert: claims
            .get("upsert")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        operation: "storage.object.upload_signed",
    };
    let stored = upload::receive(app, &incoming, body, &path, writer).await?;
    Ok(json_response(&json!({
        "Id": stored.id,
        "Key": format!("{}/{}", path.bucket, path.name),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_must_be_a_positive_whole_number() {
        assert_eq!(expires_in(Some(&json!(60))).unwrap(), 60);
        assert_eq!(expires_in(Some(&json!("120"))).unwrap(), 120);
        assert!(expires_in(Some(&json!(0))).is_err());
        assert!(expires_in(Some(&json!(-5))).is_err());
        assert!(expires_in(Some(&json!(1.5))).is_err());
        assert!(matches!(
            expires_in(None),
            Err(StorageError::MissingParameter("expiresIn"))
        ));
    }

    #[test]
    fn signed_urls_keep_the_path_raw() {
        let path = ObjectPath {
            bucket: "b".into(),
            name: "a folder/x y.png".into(),
        };
        assert_eq!(
            signed_url("object/sign", &path, "t"),
            "/object/sign/b/a folder/x y.png?token=t"
        );
    }
}
