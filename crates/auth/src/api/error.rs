//! GoTrue's error responses. Handlers return [`AuthError`]; the [`error_format`] middleware
//! renders it in the 2024-01-01 shape (`{code, message}` plus the echoed
//! `X-Supabase-Api-Version` header) when the request asked for that API version, else in the
//! legacy shape (`{code: <status>, error_code, msg}` plus `x-sb-error-code`).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use manifold_db::DbError;
use serde_json::{Value, json};

/// The only API version GoTrue knows besides the legacy one.
const API_VERSION_2024: &str = "2024-01-01";
const API_VERSION_HEADER: &str = "x-supabase-api-version";

/// Why an `/auth/v1` request failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An error with a GoTrue error code.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// GoTrue's error code, e.g. `invalid_credentials`.
        code: &'static str,
        /// Human-readable message.
        message: String,
    },
    /// The password does not meet the policy (422 `weak_password` with reasons).
    #[error("{message}")]
    WeakPassword {
        /// Human-readable message.
        message: String,
        /// `length`, `characters` or `pwned`.
        reasons: Vec<&'static str>,
    },
    /// An OAuth-style error (`{error, error_description}`), as `/token` uses for a missing
    /// refresh token.
    #[error("{description}")]
    OAuth {
        /// OAuth error, e.g. `invalid_request`.
        error: &'static str,
        /// Description.
        description: String,
    },
    /// The database failed; answered 5xx so clients retry rather than sign the user out.
    #[error("database error")]
    Db(#[from] DbError),
    /// Anything else on our side (signing, mail transport).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Api {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `validation_failed`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403 with `code`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 422 with `code`.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 429 `over_request_rate_limit`.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "over_request_rate_limit",
            "Request rate limit reached",
        )
    }

    /// 429 `over_email_send_rate_limit` with the seconds left.
    pub fn email_throttled(seconds: i64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "over_email_send_rate_limit",
            format!("For security purposes, you can only request this after {seconds} seconds."),
        )
    }

    /// 500 for a failure on our side; the detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api { status, .. } => *status,
            Self::WeakPassword { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OAuth { .. } => StatusCode::BAD_REQUEST,
            Self::Db(error) if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Db(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error code, as GoTrue names it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api { code, .. } => code,
            Self::WeakPassword { .. } => "weak_password",
            Self::OAuth { .. } => "invalid_request",
            Self::Db(_) | Self::Internal(_) => "unexpected_failure",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Db(error) if error.is_unavailable() => {
                "Database temporarily unavailable, please retry".to_owned()
            }
            Self::Db(_) | Self::Internal(_) => "Unexpected failure, please retry".to_owned(),
            other => other.to_string(),
        }
    }
}

/// What the format middleware needs to render an error.
#[derive(Debug, Clone)]
struct ErrorShape {
    status: StatusCode,
    code: &'static str,
    message: String,
    weak_password: Option<Vec<&'static str>>,
    oauth: Option<&'static str>,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The full chain goes to the log (with the request id from the trace span); the
            // client gets a generic message.
            let source = std::error::Error::source(&self).map(ToString::to_string);
            tracing::error!(error = %self, source = ?source, "auth request failed");
        }
        let shape = ErrorShape {
            status,
            code: self.code(),
            message: self.public_message(),
            weak_password: match &self {
                Self::WeakPassword { reasons, .. } => Some(reasons.clone()),
                _ => None,
            },
            oauth: match &self {
                Self::OAuth { error, .. } => Some(error),
                _ => None,
            },
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(Arc::new(shape));
        response
    }
}

/// True when the request asks for the 2024-01-01 API (any valid date from then on).
fn wants_2024_format(headers: &HeaderMap) -> bool {
    headers
        .get(API_VERSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_date(value))
        .is_some_and(|value| value >= API_VERSION_2024)
}

fn is_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

/// Middleware around every `/auth/v1` route: renders [`AuthError`]s in the format the request
/// asked for and echoes `X-Supabase-Api-Version` (auth-js reads error codes only when it is
/// echoed).
pub(crate) async fn error_format(request: Request, next: Next) -> Response {
    let modern = wants_2024_format(request.headers());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    if let Some(shape) = response.extensions_mut().remove::<Arc<ErrorShape>>() {
        response = render(&shape, modern, request_id);
    }
    if modern {
        response.headers_mut().insert(
            API_VERSION_HEADER,
            HeaderValue::from_static(API_VERSION_2024),
        );
    }
    response
}

fn render(shape: &ErrorShape, modern: bool, request_id: Option<String>) -> Response {
    let mut body = if let Some(error) = shape.oauth {
        json!({"error": error, "error_description": shape.message})
    } else if modern {
        json!({"code": shape.code, "message": shape.message})
    } else {
        let mut legacy = json!({
            "code": shape.status.as_u16(),
            "error_code": shape.code,
            "msg": shape.message,
        });
        if shape.status.is_server_error()
            && let Some(id) = request_id
        {
            legacy["error_id"] = Value::String(id);
        }
        legacy
    };
    if let Some(reasons) = &shape.weak_password {
        body["weak_password"] = json!({ "reasons": reasons });
    }
    let mut response = (shape.status, axum::Json(body)).into_response();
    if !modern && let Ok(code) = HeaderValue::from_str(shape.code) {
        response.headers_mut().insert("x-sb-error-code", code);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_header_parsing() {
        let mut headers = HeaderMap::new();
        assert!(!wants_2024_format(&headers));
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("2024-01-01"));
        assert!(wants_2024_format(&headers));
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("2025-06-30"));
        assert!(wants_2024_format(&headers));
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("2023-12-31"));
        assert!(!wants_2024_format(&headers));
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("latest"));
        assert!(!wants_2024_format(&headers));
    }

    #[test]
    fn server_errors_hide_details() {
        let error = AuthError::internal("signing key exploded");
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.code(), "unexpected_failure");
        assert!(!error.public_message().contains("exploded"));
    }
}
