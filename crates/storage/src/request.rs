//! The parts of an HTTP request handlers use, and small response helpers.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use crate::access::RequestFacts;
use crate::error::StorageError;
use crate::route::{self, Route};

/// Largest JSON request body (bucket settings, list options, remove lists) accepted.
const MAX_JSON_BODY: usize = 1024 * 1024;

/// A request, taken apart.
pub(crate) struct Incoming {
    /// Method.
    pub(crate) method: Method,
    /// Decoded query parameters, in order.
    pub(crate) query: Vec<(String, String)>,
    /// Headers.
    pub(crate) headers: HeaderMap,
    /// Method, path and headers for the transaction settings.
    pub(crate) facts: RequestFacts,
}

impl Incoming {
    /// Splits the request into its facts, its unread body and its route. The body travels
    /// separately because it is not `Sync`, and handlers hold `&Incoming` across awaits.
    pub(crate) fn from_request(request: Request) -> Result<(Self, Body, Route), StorageError> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let route = route::parse(&parts.method, &path)?;
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        let facts = RequestFacts::new(&parts.method, &path, &parts.headers);
        Ok((
            Self {
                method: parts.method,
                query,
                headers: parts.headers,
                facts,
            },
            body,
            route,
        ))
    }

    /// The first value of query parameter `name`.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A header as text.
    pub(crate) fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// True when `x-upsert: true` was sent.
    pub(crate) fn upsert_header(&self) -> bool {
        self.header("x-upsert")
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }
}

/// Reads a body as JSON; an empty body reads as `{}` (storage-js sends bodies on DELETE and
/// POST that servers must accept, and sometimes none).
pub(crate) async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, StorageError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|error| StorageError::InvalidRequest(format!("invalid body: {error}")))?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|error| StorageError::InvalidRequest(format!("invalid JSON body: {error}")))
}

/// Decodes `a=1&b=x%20y` (and `+` as space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// A 200 JSON response from JSON text PostgreSQL built.
pub(crate) fn json_text_response(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A 200 JSON response from a value.
pub(crate) fn json_response(value: &serde_json::Value) -> Response {
    json_text_response(value.to_string())
}

/// A 200 plain-text response.
pub(crate) fn text_response(text: &'static str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            parse_query("token=a.b.c&download=my%20file.txt&x+y=1&flag"),
            vec![
                ("token".to_owned(), "a.b.c".to_owned()),
                ("download".to_owned(), "my file.txt".to_owned()),
                ("x y".to_owned(), "1".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }
}
