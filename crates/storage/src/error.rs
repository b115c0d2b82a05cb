//! `StorageError`: every way a `/storage/v1` request fails, rendered in Supabase Storage's
//! envelope `{statusCode: "<string>", code, error, message}`.

use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use manifold_db::DbError;
use serde_json::json;

/// Why a storage request failed. Client errors keep Supabase's codes, which storage-js and app
/// code match on (`NoSuchKey` in particular).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist or is not visible to the caller.
    #[error("Bucket not found")]
    NoSuchBucket,
    /// The object does not exist or is not visible to the caller.
    #[error("Object not found")]
    NoSuchKey,
    /// An object already has this name (upload without upsert, move/copy onto it).
    #[error("The resource already exists")]
    ResourceAlreadyExists,
    /// A bucket with this id already exists.
    #[error("The resource already exists")]
    BucketAlreadyExists,
    /// The bucket still holds objects.
    #[error("The bucket you tried to delete is not empty")]
    ResourceNotEmpty,
    /// Row-level security refused, or the bearer token did not verify.
    #[error("{0}")]
    AccessDenied(String),
    /// The object exceeds the bucket's or the server's size limit.
    #[error("The object exceeded the maximum allowed size")]
    EntityTooLarge,
    /// The bucket does not accept this content type.
    #[error("mime type {0} is not supported")]
    InvalidMimeType(String),
    /// An object name outside Storage's allowed characters.
    #[error("Invalid key: {0}")]
    InvalidKey(String),
    /// A bucket id outside Storage's allowed characters or length.
    #[error("Bucket name invalid")]
    InvalidBucketName,
    /// A signed URL's token did not verify (signature, expiry).
    #[error("{0}")]
    InvalidJwt(String),
    /// A signed URL's token is valid but not for this URL or operation.
    #[error("{0}")]
    InvalidSignature(String),
    /// A malformed request (body, multipart, missing file).
    #[error("{0}")]
    InvalidRequest(String),
    /// A request field with a value of the wrong kind.
    #[error("{0}")]
    InvalidParameter(String),
    /// A required request field is absent.
    #[error("Missing Required Parameter {0}")]
    MissingParameter(&'static str),
    /// A `Range` header that cannot be satisfied.
    #[error("invalid range provided")]
    InvalidRange {
        /// The object's size, for `Content-Range: bytes */size`.
        size: u64,
    },
    /// No route serves this method and path.
    #[error("Route {0} not found")]
    RouteNotFound(String),
    /// A statement ran longer than the role's statement timeout.
    #[error("The connection to the database timed out")]
    DatabaseTimeout(#[source] DbError),
    /// Too many connections: no pooled connection became free in time, or PostgreSQL refused
    /// another one (`53300`). Supabase Storage answers these with a real 429 `SlowDown`.
    #[error("Too many connections issued to the database")]
    DatabaseSlowDown(#[source] DbError),
    /// The database could not be reached or the connection broke.
    #[error("The database is not available. Please try again later.")]
    DatabaseUnavailable(#[source] DbError),
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] DbError),
    /// The object store failed.
    #[error("object store error")]
    Backend(#[source] object_store::Error),
    /// Reading the request body failed (client went away, broken multipart).
    #[error("{0}")]
    Body(String),
    /// A server-side invariant or configuration problem.
    #[error("{0}")]
    Internal(String),
}

impl StorageError {
    /// Maps a database error by SQLSTATE, as Supabase Storage does (42501 -> AccessDenied,
    /// 23505 -> ResourceAlreadyExists, other class 23 -> InvalidRequest, 57014 ->
    /// DatabaseTimeout, 22P02 -> InvalidParameter, connection pressure -> SlowDown).
    pub fn from_db(error: DbError) -> Self {
        if matches!(error, DbError::PoolTimeout) || error.sqlstate() == Some("53300") {
            return Self::DatabaseSlowDown(error);
        }
        if error.is_unavailable() {
            return Self::DatabaseUnavailable(error);
        }
        let (code, message) = match error.db_error() {
            Some(db) => (db.code().code().to_owned(), db.message().to_owned()),
            None => return Self::Database(error),
        };
        match code.as_str() {
            "42501" => Self::AccessDenied(message),
            "23505" => Self::ResourceAlreadyExists,
            "57014" => Self::DatabaseTimeout(error),
            // Other integrity violations (a trigger's or a constraint's refusal, a bucket that
            // vanished under a write) are the request's fault, never a 500.
            "P0001" => Self::InvalidRequest(message),
            c if c.starts_with("23") => Self::InvalidRequest(message),
            c if c.starts_with("22") => Self::InvalidParameter(message),
            _ => Self::Database(error),
        }
    }

    /// The status Storage reports inside the body.
    fn body_status(&self) -> u16 {
        match self {
            Self::NoSuchBucket | Self::NoSuchKey | Self::RouteNotFound(_) => 404,
            Self::ResourceAlreadyExists | Self::BucketAlreadyExists | Self::ResourceNotEmpty => 409,
            Self::AccessDenied(_) => 403,
            Self::EntityTooLarge => 413,
            Self::InvalidMimeType(_) => 415,
            Self::InvalidRange { .. } => 416,
            Self::DatabaseTimeout(_) => 544,
            Self::DatabaseSlowDown(_) => 429,
            Self::Database(_)
            | Self::DatabaseUnavailable(_)
            | Self::Backend(_)
            | Self::Internal(_) => 500,
            _ => 400,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NoSuchBucket => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::ResourceAlreadyExists => "ResourceAlreadyExists",
            Self::BucketAlreadyExists => "BucketAlreadyExists",
            Self::ResourceNotEmpty => "ResourceNotEmpty",
            Self::AccessDenied(_) => "AccessDenied",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::InvalidMimeType(_) => "InvalidMimeType",
            Self::InvalidKey(_) => "InvalidKey",
            Self::InvalidBucketName => "InvalidBucketName",
            Self::InvalidJwt(_) => "InvalidJWT",
            Self::InvalidSignature(_) => "InvalidSignature",
            Self::InvalidRequest(_) | Self::Body(_) => "InvalidRequest",
            Self::InvalidParameter(_) => "InvalidParameter",
            Self::MissingParameter(_) => "MissingParameter",
            Self::InvalidRange { .. } => "InvalidRange",
            Self::RouteNotFound(_) => "not_found",
            Self::DatabaseTimeout(_) => "DatabaseTimeout",
            Self::DatabaseSlowDown(_) => "SlowDown",
            Self::Database(_) | Self::DatabaseUnavailable(_) => "DatabaseError",
            Self::Backend(_) | Self::Internal(_) => "InternalError",
        }
    }

    /// Storage's legacy `error` label; the code itself where Storage sets none.
    fn label(&self) -> &'static str {
        match self {
            Self::NoSuchBucket => "Bucket not found",
            Self::NoSuchKey | Self::RouteNotFound(_) => "not_found",
            Self::ResourceAlreadyExists | Self::BucketAlreadyExists => "Duplicate",
            Self::AccessDenied(_) => "Unauthorized",
            Self::EntityTooLarge => "Payload too large",
            Self::InvalidMimeType(_) => "invalid_mime_type",
            Self::InvalidBucketName => "Invalid Input",
            Self::InvalidRange { .. } => "invalid_range",
            Self::DatabaseSlowDown(_) => "too_many_connections",
            Self::Database(_)
            | Self::DatabaseUnavailable(_)
            | Self::Backend(_)
            | Self::Internal(_) => "Internal",
            other => other.code(),
        }
    }

    /// The real HTTP status: Storage answers 400 for every client error (the real status is
    /// only in the body) and keeps 416, 429, 5xx and 544 as they are.
    fn http_status(&self) -> StatusCode {
        let body_status = self.body_status();
        match body_status {
            404 if matches!(self, Self::RouteNotFound(_)) => StatusCode::NOT_FOUND,
            416 => StatusCode::RANGE_NOT_SATISFIABLE,
            429 => StatusCode::TOO_MANY_REQUESTS,
            status if status >= 500 => {
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Backend(_) => "Internal Server Error".to_owned(),
            Self::Internal(_) => "Internal Server Error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let body = json!({
            "statusCode": self.body_status().to_string(),
            "code": self.code(),
            "error": self.label(),
            "message": self.public_message(),
        });
        let mut response = (status, Json(body)).into_response();
        if let Self::InvalidRange { size } = &self
            && let Ok(value) = http::HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response
                .headers_mut()
                .insert(http::header::CONTENT_RANGE, value);
        }
        if status.is_server_error() {
            // The trace layer logs the full error once; the body above stays generic.
            tracing::error!(error = %ErrorChain(&self), "storage request failed");
            response.extensions_mut().insert(Arc::new(self));
        }
        response
    }
}

/// Formats an error with its sources, for logs.
struct ErrorChain<'e>(&'e (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: StorageError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn client_errors_are_http_400_with_the_real_status_as_a_string() {
        let (status, body) = body_of(StorageError::NoSuchKey).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"statusCode": "404", "code": "NoSuchKey", "error": "not_found",
                   "message": "Object not found"})
        );
        let (_, body) = body_of(StorageError::InvalidMimeType("text/html".into())).await;
        assert_eq!(body["statusCode"], "415");
        assert_eq!(body["message"], "mime type text/html is not supported");
        let (_, body) = body_of(StorageError::AccessDenied("jwt expired".into())).await;
        assert_eq!(body["statusCode"], "403");
        assert_eq!(body["error"], "Unauthorized");
        let (_, body) = body_of(StorageError::InvalidKey("ü".into())).await;
        assert_eq!(body["error"], "InvalidKey");
    }

    #[tokio::test]
    async fn server_errors_keep_their_status_and_hide_details() {
        let (status, body) = body_of(StorageError::Internal("secret detail".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["message"], "Internal Server Error");
        let (status, _) = body_of(StorageError::InvalidRange { size: 3 }).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        let (status, body) = body_of(StorageError::DatabaseUnavailable(DbError::Unavailable(
            "connection refused".into(),
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "DatabaseError");
    }

    #[tokio::test]
    async fn connection_pressure_is_a_real_429_slow_down() {
        let error = StorageError::from_db(DbError::PoolTimeout);
        let (status, body) = body_of(error).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body,
            json!({"statusCode": "429", "code": "SlowDown", "error": "too_many_connections",
                   "message": "Too many connections issued to the database"})
        );
    }
}
