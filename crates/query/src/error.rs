//! Errors of the translator, each with the PostgREST code, HTTP status and body fields that
//! supabase-js users see.

use serde_json::{Value, json};

/// Why an error happened, for callers that react to it (e.g. reload a stale schema cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request.
    BadRequest,
    /// A name (relation, column, function, relationship) the schema cache does not know: the
    /// cache may be stale.
    UnknownName,
    /// Refused for another reason (media type, range, preferences…).
    Refused,
}

/// The fields of a PostgREST-shaped error: `{code, details, hint, message}` plus the status.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// HTTP status.
    pub status: u16,
    /// `PGRST…` code, or a SQLSTATE for errors PostgreSQL would raise.
    pub code: &'static str,
    /// `message`.
    pub message: String,
    /// `details`: null, a string, or (for ambiguity) an array.
    pub details: Value,
    /// `hint`: null or a string.
    pub hint: Value,
    /// What kind of failure.
    pub kind: ErrorKind,
}

/// A translator error. Boxed so `Result`s stay small; fields are reachable through `Deref`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", .0.code, .0.message)]
pub struct QueryError(Box<ErrorBody>);

impl std::ops::Deref for QueryError {
    type Target = ErrorBody;

    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl QueryError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            hint: Value::Null,
            kind: ErrorKind::Refused,
        }))
    }

    pub(crate) fn with_details(mut self, details: impl Into<Value>) -> Self {
        self.0.details = details.into();
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<Value>) -> Self {
        self.0.hint = hint.into();
        self
    }

    pub(crate) fn kind(mut self, kind: ErrorKind) -> Self {
        self.0.kind = kind;
        self
    }

    /// The JSON body, keys in PostgREST's order.
    pub fn body(&self) -> Value {
        json!({
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        })
    }

    /// PGRST100: a query parameter could not be parsed.
    pub(crate) fn parse(what: &str, value: &str, column: usize, details: String) -> Self {
        Self::new(
            400,
            "PGRST100",
            format!("\"failed to parse {what} ({value})\" (line 1, column {column})"),
        )
        .with_details(details)
        .kind(ErrorKind::BadRequest)
    }

    /// PGRST124: more rows affected than `max-affected` allows.
    pub fn max_affected(rows: i64) -> Self {
        Self::new(
            400,
            "PGRST124",
            "Query result exceeds max-affected preference constraint",
        )
        .with_details(format!("The query affects {rows} rows"))
    }

    /// PGRST128: `max-affected` with `handling=strict` on a function that does not return a set.
    pub(crate) fn max_affected_needs_set() -> Self {
        Self::new(
            400,
            "PGRST128",
            "Function must return SETOF or TABLE when max-affected preference is used with handling=strict",
        )
    }

    /// PGRST120: an embedded resource filtered with an operator other than `is.null` or
    /// `not.is.null`.
    pub(crate) fn embed_filter(name: &str) -> Self {
        Self::new(
            400,
            "PGRST120",
            format!("Bad operator on the '{name}' embedded resource"),
        )
        .with_details("Only is null or not is null filters are allowed on embedded resources")
        .kind(ErrorKind::BadRequest)
    }

    /// PGRST103: the requested range cannot be satisfied.
    pub fn range(details: impl Into<Value>) -> Self {
        Self::new(416, "PGRST103", "Requested range not satisfiable").with_details(details)
    }

    /// PGRST106: the profile names a schema that is not exposed.
    pub(crate) fn invalid_schema(schema: &str, exposed: &[String]) -> Self {
        Self::new(406, "PGRST106", format!("Invalid schema: {schema}")).with_hint(format!(
            "Only the following schemas are exposed: {}",
            exposed.join(", ")
        ))
    }

    /// PGRST107: nothing in `Accept` can be produced.
    pub(crate) fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "PGRST107",
            format!("None of these media types are available: {accept}"),
        )
    }

    /// PGRST108: a filter, order or limit names an embed that is not selected.
    pub(crate) fn not_embedded(name: &str) -> Self {
        Self::new(
            400,
            "PGRST108",
            format!("'{name}' is not an embedded resource in this request"),
        )
        .with_hint(format!(
            "Verify that '{name}' is included in the 'select' query parameter."
        ))
        .kind(ErrorKind::BadRequest)
    }

    /// PGRST116: a singular response was requested but the rows were not exactly one.
    pub fn singular(rows: i64) -> Self {
        Self::new(
            406,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
        )
        .with_details(format!("The result contains {rows} rows"))
    }

    /// PGRST117 for a method this path does not serve.
    pub fn new_unsupported(method: crate::input::Method) -> Self {
        Self::unsupported_method(&format!("{method:?}").to_uppercase())
    }

    /// PGRST202: no function of that name and arguments.
    pub fn function_not_found(schema: &str, name: &str) -> Self {
        Self::new(
            404,
            "PGRST202",
            format!("Could not find the function {schema}.{name} without parameters in the schema cache"),
        )
        .with_details(format!(
            "Searched for the function {schema}.{name} without parameters, but no matches were found in the schema cache."
        ))
        .kind(ErrorKind::UnknownName)
    }

    /// PGRST117: a method the path does not support.
    pub(crate) fn unsupported_method(method: &str) -> Self {
        Self::new(
            405,
            "PGRST117",
            format!("Unsupported HTTP method: {method}"),
        )
    }

    /// PGRST118: ordering by a column of a to-many embed.
    pub(crate) fn related_order_not_to_one(origin: &str, target: &str) -> Self {
        Self::new(
            400,
            "PGRST118",
            format!("A related order on '{target}' is not possible"),
        )
        .with_details(format!(
            "'{origin}' and '{target}' do not form a many-to-one or one-to-one relationship"
        ))
        .kind(ErrorKind::BadRequest)
    }

    /// PGRST122: unknown preferences with `handling=strict`.
    pub(crate) fn invalid_preferences(invalid: &[String]) -> Self {
        Self::new(
            400,
            "PGRST122",
            "Invalid preferences given with handling=strict",
        )
        .with_details(format!("Invalid preferences: {}", invalid.join(", ")))
    }

    /// PGRST123: aggregates are disabled.
    pub(crate) fn aggregates_disabled() -> Self {
        Self::new(400, "PGRST123", "Use of aggregate functions is not allowed")
            .kind(ErrorKind::BadRequest)
    }

    /// PGRST125: a path the API does not have.
    pub fn invalid_path() -> Self {
        Self::new(404, "PGRST125", "Invalid path specified in request URL")
    }

    /// PGRST127: a feature not implemented.
    pub(crate) fn not_implemented(details: impl Into<String>) -> Self {
        Self::new(400, "PGRST127", "Feature not implemented").with_details(details.into())
    }
}
