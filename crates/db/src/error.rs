//! Database errors and PostgREST's SQLSTATE -> HTTP status table.

use http::StatusCode;

/// A failure while running a request's statements.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No pooled connection became available in time.
    #[error("timed out waiting for a database connection")]
    PoolTimeout,
    /// The pool could not open a connection.
    #[error("cannot connect to the database")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// PostgreSQL answered with an error, or the connection broke.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Timeout(_) => Self::PoolTimeout,
            deadpool_postgres::PoolError::Backend(source) => Self::Postgres(source),
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl DbError {
    /// The error PostgreSQL raised, when it raised one (as opposed to a connection failure).
    pub fn db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            Self::Postgres(error) => error.as_db_error(),
            _ => None,
        }
    }

    /// The SQLSTATE, when PostgreSQL raised the error.
    pub fn sqlstate(&self) -> Option<&str> {
        self.db_error().map(|db| db.code().code())
    }

    /// True when the database could not be reached or the connection broke, as opposed to an
    /// error the statement raised.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::PoolTimeout | Self::Unavailable(_) => true,
            Self::Postgres(error) => error.as_db_error().is_none(),
        }
    }
}

/// PostgREST's `mapSQLtoHTTP`: the HTTP status for an error PostgreSQL raised. `is_anon` is
/// true when the request ran as the anon role (42501 is then 401, else 403).
pub fn status_for_sqlstate(code: &str, message: &str, is_anon: bool) -> StatusCode {
    let class = code.get(..2).unwrap_or("");
    match code {
        "23503" | "23505" => return StatusCode::CONFLICT,
        "25006" => return StatusCode::METHOD_NOT_ALLOWED,
        "42501" if is_anon => return StatusCode::UNAUTHORIZED,
        "42501" => return StatusCode::FORBIDDEN,
        "42883" | "42P01" => return StatusCode::NOT_FOUND,
        "42P17" | "53400" => return StatusCode::INTERNAL_SERVER_ERROR,
        "57P01" => return StatusCode::SERVICE_UNAVAILABLE,
        "P0001" => return StatusCode::BAD_REQUEST,
        "21000" if message.ends_with("requires a WHERE clause") => {
            return StatusCode::BAD_REQUEST;
        }
        "21000" => return StatusCode::INTERNAL_SERVER_ERROR,
        "22023" if message.starts_with("role") && message.ends_with("does not exist") => {
            return StatusCode::UNAUTHORIZED;
        }
        _ => {}
    }
    if let Some(status) = code.strip_prefix("PT").and_then(custom_status) {
        return status;
    }
    match class {
        "08" | "53" => StatusCode::SERVICE_UNAVAILABLE,
        "0L" | "0P" | "28" => StatusCode::FORBIDDEN,
        "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
        | "HV" | "XX" | "P0" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `PTxyz` raises choose HTTP status `xyz`.
fn custom_status(digits: &str) -> Option<StatusCode> {
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u16>()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgrest_table() {
        let cases = [
            ("23505", "", false, 409),
            ("23503", "", false, 409),
            ("23502", "", false, 400),
            ("23514", "", false, 400),
            ("42501", "", true, 401),
            ("42501", "", false, 403),
            ("42883", "", false, 404),
            ("42P01", "", false, 404),
            ("25006", "", false, 405),
            ("P0001", "", false, 400),
            ("P0002", "", false, 500),
            ("PT402", "", false, 402),
            ("PTabc", "", false, 400),
            ("08006", "", false, 503),
            ("53300", "", false, 503),
            ("53400", "", false, 500),
            ("57014", "", false, 500),
            ("57P01", "", false, 503),
            ("40001", "", false, 500),
            ("0P000", "", false, 403),
            ("28000", "", false, 403),
            ("22P02", "", false, 400),
            ("42703", "", false, 400),
            ("21000", "DELETE requires a WHERE clause", false, 400),
            ("21000", "more than one row", false, 500),
            ("22023", "role \"x\" does not exist", false, 401),
            ("22023", "invalid value", false, 400),
            ("42P17", "", false, 500),
        ];
        for (code, message, anon, expected) in cases {
            assert_eq!(
                status_for_sqlstate(code, message, anon).as_u16(),
                expected,
                "{code} {message}"
            );
        }
    }
}
