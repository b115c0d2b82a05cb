//! `/rest/v1` error responses: PostgREST's `{code, details, hint, message}` with its statuses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use manifold_auth::GatewayError;
use manifold_db::{DbError, status_for_sqlstate};
use manifold_query::QueryError;
use serde_json::{Value, json};

/// Everything that can go wrong serving a REST request.
#[derive(Debug)]
pub(crate) enum RestError {
    /// Translator errors (parse, plan, negotiation, singular responses…).
    Query(QueryError),
    /// The token or role was refused.
    Auth(GatewayError),
    /// The database refused or failed; `is_anon` picks 401 vs 403 for permission errors.
    Db { error: DbError, is_anon: bool },
    /// The body could not be read.
    Body(String),
    /// A broken invariant; logged, answered with a generic 500.
    Internal(&'static str),
}

impl From<QueryError> for RestError {
    fn from(error: QueryError) -> Self {
        Self::Query(error)
    }
}

fn json_response(status: StatusCode, code: &str, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("PostgREST; error={code}")) {
        headers.insert("proxy-status", value);
    }
    response
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        match self {
            Self::Query(error) => {
                let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
                json_response(status, error.code, &error.body())
            }
            Self::Auth(GatewayError::Jwt(jwt)) => {
                let message = jwt.to_string();
                let mut response = json_response(
                    StatusCode::UNAUTHORIZED,
                    jwt.pgrst_code(),
                    &json!({"code": jwt.pgrst_code(), "details": null, "hint": null, "message": message}),
                );
                let challenge = format!(
                    "Bearer error=\"invalid_token\", error_description={}",
                    Value::String(message)
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
            Self::Auth(GatewayError::RoleNotAllowed(role)) => {
                // PostgreSQL's answer to SET ROLE of an unknown role, as PostgREST passes it on.
                let mut response = json_response(
                    StatusCode::UNAUTHORIZED,
                    "22023",
                    &json!({"code": "22023", "details": null, "hint": null, "message": format!("role \"{role}\" does not exist")}),
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::Auth(other) => json_response(
                StatusCode::UNAUTHORIZED,
                "PGRST301",
                &json!({"code": "PGRST301", "details": null, "hint": null, "message": other.to_string()}),
            ),
            Self::Body(message) => json_response(
                StatusCode::BAD_REQUEST,
                "PGRST102",
                &json!({"code": "PGRST102", "details": null, "hint": null, "message": message}),
            ),
            Self::Db { error, is_anon } => db_error_response(&error, is_anon),
            Self::Internal(what) => {
                tracing::error!(what, "internal error");
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "PGRSTX00",
                    &json!({"code": "PGRSTX00", "details": null, "hint": null, "message": "Internal server error"}),
                )
            }
        }
    }
}

fn db_error_response(error: &DbError, is_anon: bool) -> Response {
    if let Some(db) = error.db_error()
        && db.code().code() == "PGRST"
    {
        return raised_pgrst(db.message(), db.detail());
    }
    if let Some(db) = error.db_error() {
        let code = db.code().code();
        let status = status_for_sqlstate(code, db.message(), is_anon);
        if status.is_server_error() {
            tracing::error!(sqlstate = code, message = db.message(), "database error");
        }
        let body = json!({
            "code": code,
            "details": db.detail(),
            "hint": db.hint(),
            "message": db.message(),
        });
        let mut response = json_response(status, code, &body);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return response;
    }
    tracing::error!(error = %error, "database unavailable");
    let (status, code, message) = match error {
        DbError::PoolTimeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "PGRST003",
            "Timed out acquiring connection from connection pool.",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            "Database client error. Retrying the connection.",
        ),
    };
    let mut response = json_response(
        status,
        code,
        &json!({"code": code, "details": null, "hint": null, "message": message}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
    response
}

/// `RAISE SQLSTATE 'PGRST' USING message = '{"code": …}', detail = '{"status": …}'`: the SQL
/// chooses the whole response, as PostgREST allows. Anything unparsable is PGRST121.
fn raised_pgrst(message: &str, detail: Option<&str>) -> Response {
    let body = serde_json::from_str::<Value>(message)
        .ok()
        .filter(Value::is_object);
    let control = detail
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .filter(Value::is_object);
    let status = control
        .as_ref()
        .and_then(|c| c.get("status"))
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let (Some(body), Some(control), Some(status)) = (body, control, status) else {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "PGRST121",
            &json!({
                "code": "PGRST121",
                "details": null,
                "hint": "The message must be a JSON object with code, message, details and hint, and the detail a JSON object with status and headers",
                "message": "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
            }),
        );
    };
    let code = body
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let full = json!({
        "code": body.get("code").cloned().unwrap_or(Value::Null),
        "details": body.get("details").cloned().unwrap_or(Value::Null),
        "hint": body.get("hint").cloned().unwrap_or(Value::Null),
        "message": body.get("message").cloned().unwrap_or(Value::Null),
    });
    let mut response = json_response(status, &code, &full);
    if let Some(Value::Object(extra)) = control.get("headers") {
        for (name, value) in extra {
            if let (Some(value), Ok(name)) =
                (value.as_str(), http::HeaderName::try_from(name.as_str()))
                && let Ok(value) = HeaderValue::from_str(value)
            {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}
