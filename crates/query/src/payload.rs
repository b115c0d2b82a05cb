//! Request bodies of writes and RPC calls. Only the shape and keys are read here; the original
//! text is bound as one `json` parameter and expanded in SQL, so numbers keep their precision.

use serde_json::Value;

use crate::error::{ErrorKind, QueryError};

/// A JSON body and the keys it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The body as sent.
    pub text: String,
    /// True for a JSON array (bulk).
    pub is_array: bool,
    /// Number of rows (1 for an object).
    pub rows: usize,
    /// The keys to write, in order: `columns=` when given, else the body's keys.
    pub keys: Vec<String>,
    /// For a single object: its values by key (used to check PUT's primary key).
    pub object: Option<serde_json::Map<String, Value>>,
}

fn invalid_json() -> QueryError {
    QueryError::new(400, "PGRST102", "Empty or invalid json").kind(ErrorKind::BadRequest)
}

fn keys_must_match() -> QueryError {
    QueryError::new(400, "PGRST102", "All object keys must match").kind(ErrorKind::BadRequest)
}

/// Reads a write body. Arrays must hold objects with identical key sets unless `columns` names
/// the keys; a scalar is treated as an empty array, as PostgREST does.
pub fn inspect(body: &[u8], columns: Option<&[String]>) -> Result<Payload, QueryError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid_json())?;
    if text.trim().is_empty() {
        return Err(invalid_json());
    }
    let value: Value = serde_json::from_str(text).map_err(|_| invalid_json())?;
    match value {
        Value::Object(map) => Ok(Payload {
            text: text.to_owned(),
            is_array: false,
            rows: 1,
            keys: columns.map_or_else(|| map.keys().cloned().collect(), <[String]>::to_vec),
            object: Some(map),
        }),
        Value::Array(items) => {
            let keys = match columns {
                Some(columns) => {
                    if items.iter().any(|item| !item.is_object()) {
                        return Err(keys_must_match());
                    }
                    columns.to_vec()
                }
                None => {
                    let mut objects = items
                        .iter()
                        .map(|item| item.as_object().ok_or_else(keys_must_match));
                    let first: Vec<String> = match objects.next() {
                        Some(first) => first?.keys().cloned().collect(),
                        None => Vec::new(),
                    };
                    for object in objects {
                        let object = object?;
                        if object.len() != first.len()
                            || !first.iter().all(|key| object.contains_key(key))
                        {
                            return Err(keys_must_match());
                        }
                    }
                    first
                }
            };
            Ok(Payload {
                text: text.to_owned(),
                is_array: true,
                rows: items.len(),
                keys,
                object: None,
            })
        }
        _ => Ok(Payload {
            text: "[]".to_owned(),
            is_array: true,
            rows: 0,
            keys: Vec::new(),
            object: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_arrays_and_columns() {
        let one = inspect(br#"{"b": 1, "a": "x"}"#, None).unwrap();
        assert_eq!(one.keys, ["b", "a"]);
        assert!(!one.is_array);
        let many = inspect(br#"[{"a": 1, "b": 2}, {"b": 3, "a": 4}]"#, None).unwrap();
        assert_eq!(
            (many.rows, many.keys),
            (2, vec!["a".to_owned(), "b".to_owned()])
        );
        let error = inspect(br#"[{"a": 1}, {"b": 2}]"#, None).unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            ("PGRST102", "All object keys must match")
        );
        let columns = vec!["a".to_owned(), "b".to_owned()];
        let ragged = inspect(br#"[{"a": 1}, {"b": 2}]"#, Some(&columns)).unwrap();
        assert_eq!(ragged.keys, columns);
        assert_eq!(inspect(b"[]", None).unwrap().rows, 0);
        assert_eq!(inspect(b"42", None).unwrap().rows, 0);
        assert_eq!(
            inspect(b"", None).unwrap_err().message,
            "Empty or invalid json"
        );
        assert_eq!(
            inspect(b"{oops", None).unwrap_err().message,
            "Empty or invalid json"
        );
    }

    #[test]
    fn numbers_keep_their_text() {
        let big = inspect(br#"{"n": 0.12345678901234567890123}"#, None).unwrap();
        assert!(big.text.contains("0.12345678901234567890123"));
    }
}
