//! Turning the statement's single result row into status, headers and body. Pure, so every
//! header rule (Content-Range, 206/416, singular responses, profiles) is unit-tested.

use serde_json::Value;

use crate::error::QueryError;
use crate::syntax::headers::Representation;

/// The result row of a read statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Total rows matching, when counted.
    pub total: Option<i64>,
    /// Rows in this page.
    pub page: i64,
    /// The body text (`None` for HEAD).
    pub body: Option<String>,
    /// `response.headers` setting (a JSON array of one-key objects), if set by SQL.
    pub response_headers: Option<String>,
    /// `response.status` setting, if set by SQL.
    pub response_status: Option<String>,
}

/// What the HTTP layer sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body (empty for HEAD and minimal returns).
    pub body: String,
}

/// How to read a read's result.
#[derive(Debug, Clone)]
pub struct ReadReply {
    /// Body format.
    pub representation: Representation,
    /// Offset of the first row returned.
    pub offset: i64,
    /// Preferences to list in `Preference-Applied`.
    pub applied: Vec<String>,
    /// `max-affected` with `handling=strict` (RPC): more result rows is PGRST124.
    pub max_affected: Option<i64>,
    /// HEAD: no body.
    pub head: bool,
    /// Schema to name in `Content-Profile`, when the client sent a profile header.
    pub profile: Option<String>,
}

impl ReadReply {
    /// Builds the reply, or the error the result implies (PGRST116, PGRST103).
    pub fn finish(&self, result: ReadResult) -> Result<Reply, QueryError> {
        let single = matches!(
            self.representation.media,
            crate::syntax::headers::MediaType::SingleObject
        );
        if single && result.page != 1 {
            return Err(QueryError::singular(result.page));
        }
        if let Some(max) = self.max_affected
            && result.page > max
        {
            return Err(QueryError::max_affected(result.page));
        }
        let mut status = 200;
        if let Some(total) = result.total {
            if self.offset > total {
                return Err(QueryError::range(format!(
                    "An offset of {} was requested, but there are only {total} rows.",
                    self.offset
                )));
            }
            if result.page < total {
                status = 206;
            }
        }
        let range = if result.page > 0 {
            format!("{}-{}", self.offset, self.offset + result.page - 1)
        } else {
            "*".to_owned()
        };
        let total = result
            .total
            .map_or_else(|| "*".to_owned(), |total| total.to_string());
        let mut headers = vec![
            (
                "Content-Type".to_owned(),
                self.representation.content_type().to_owned(),
            ),
            ("Content-Range".to_owned(), format!("{range}/{total}")),
        ];
        if let Some(schema) = &self.profile {
            headers.push(("Content-Profile".to_owned(), schema.clone()));
        }
        if !self.applied.is_empty() {
            headers.push(("Preference-Applied".to_owned(), self.applied.join(", ")));
        }
        apply_response_settings(&mut status, &mut headers, &result)?;
        let body = if self.head {
            String::new()
        } else {
            result.body.unwrap_or_default()
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Applies `response.status` and `response.headers` set by SQL (functions, pre-request).
pub fn apply_response_settings(
    status: &mut u16,
    headers: &mut Vec<(String, String)>,
    result: &ReadResult,
) -> Result<(), QueryError> {
    if let Some(text) = &result.response_status {
        *status = text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|code| (100..=599).contains(code))
            .ok_or_else(|| {
                QueryError::new(500, "PGRST112", "Invalid response status")
                    .with_details(format!("\"{text}\" is not a valid status code"))
            })?;
    }
    if let Some(text) = &result.response_headers {
        let invalid = || {
            QueryError::new(500, "PGRST111", "Invalid response.headers").with_details(
                "response.headers must be a JSON array of objects with single key-value pairs",
            )
        };
        let Value::Array(entries) = serde_json::from_str::<Value>(text).map_err(|_| invalid())?
        else {
            return Err(invalid());
        };
        for entry in entries {
            let Value::Object(map) = entry else {
                return Err(invalid());
            };
            if map.len() != 1 {
                return Err(invalid());
            }
            for (name, value) in map {
                let Value::String(value) = value else {
                    return Err(invalid());
                };
                headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
                headers.push((name, value));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::headers::{MediaType, Representation};

    fn reply(offset: i64, count: bool) -> ReadReply {
        ReadReply {
            representation: Representation::JSON,
            offset,
            applied: if count {
                vec!["count=exact".to_owned()]
            } else {
                Vec::new()
            },
            max_affected: None,
            head: false,
            profile: Some("public".into()),
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn content_range_forms_and_statuses() {
        let cases = [
            (0, false, None, 10, 200, "0-9/*"),
            (0, true, Some(100), 10, 206, "0-9/100"),
            (0, true, Some(10), 10, 200, "0-9/10"),
            (0, false, None, 0, 200, "*/*"),
            (0, true, Some(0), 0, 200, "*/0"),
            (20, true, Some(25), 5, 206, "20-24/25"),
        ];
        for (offset, count, total, page, status, range) in cases {
            let result = ReadResult {
                total,
                page,
                body: Some("[]".into()),
                ..ReadResult::default()
            };
            let built = reply(offset, count).finish(result).unwrap();
            assert_eq!(built.status, status, "{range}");
            assert_eq!(header(&built, "Content-Range"), Some(range));
            assert_eq!(header(&built, "Content-Profile"), Some("public"));
        }
    }

    #[test]
    fn offset_beyond_total_is_416() {
        let result = ReadResult {
            total: Some(15),
            page: 0,
            ..ReadResult::default()
        };
        let error = reply(100, true).finish(result).unwrap_err();
        assert_eq!((error.status, error.code), (416, "PGRST103"));
        assert_eq!(
            error.details,
            "An offset of 100 was requested, but there are only 15 rows."
        );
    }

    #[test]
    fn singular_needs_exactly_one_row() {
        let mut single = reply(0, false);
        single.representation = Representation {
            media: MediaType::SingleObject,
            strip_nulls: false,
        };
        let error = single
            .finish(ReadResult {
                page: 2,
                ..ReadResult::default()
            })
            .unwrap_err();
        assert_eq!((error.status, error.code), (406, "PGRST116"));
        assert_eq!(error.details, "The result contains 2 rows");
        let ok = single
            .finish(ReadResult {
                page: 1,
                body: Some("{}".into()),
                ..ReadResult::default()
            })
            .unwrap();
        assert_eq!(
            header(&ok, "Content-Type"),
            Some("application/vnd.pgrst.object+json; charset=utf-8")
        );
    }

    #[test]
    fn sql_can_set_status_and_headers() {
        let result = ReadResult {
            page: 1,
            response_status: Some("418".into()),
            response_headers: Some(r#"[{"X-Tea": "yes"}, {"Content-Type": "text/plain"}]"#.into()),
            ..ReadResult::default()
        };
        let built = reply(0, false).finish(result).unwrap();
        assert_eq!(built.status, 418);
        assert_eq!(header(&built, "X-Tea"), Some("yes"));
        assert_eq!(header(&built, "Content-Type"), Some("text/plain"));
        let bad = ReadResult {
            response_headers: Some("{}".into()),
            ..ReadResult::default()
        };
        assert_eq!(reply(0, false).finish(bad).unwrap_err().code, "PGRST111");
    }
}

/// The result row of a write (or what `execute` reported for a bare write).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteResult {
    /// Rows affected.
    pub affected: i64,
    /// Counted rows, when asked.
    pub total: Option<i64>,
    /// Body text, when rows were returned.
    pub body: Option<String>,
    /// Rows inserted (upserts).
    pub inserted: Option<i64>,
    /// Primary key values of the first row, as a JSON array of text.
    pub location: Option<String>,
    /// `response.headers`.
    pub response_headers: Option<String>,
    /// `response.status`.
    pub response_status: Option<String>,
}

/// What kind of write produced the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// POST.
    Insert,
    /// PATCH.
    Update,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

/// How to turn a write's result into a reply.
#[derive(Debug, Clone)]
pub struct WriteReply {
    /// The write.
    pub method: WriteMethod,
    /// Body format when rows are returned.
    pub representation: Representation,
    /// `return=representation`.
    pub return_rows: bool,
    /// `return=headers-only`.
    pub headers_only: bool,
    /// Upsert with merge-duplicates: 200 when nothing was inserted.
    pub merge_upsert: bool,
    /// `max-affected` with `handling=strict`.
    pub max_affected: Option<i64>,
    /// Preferences to list in `Preference-Applied`.
    pub applied: Vec<String>,
    /// Schema for `Content-Profile`.
    pub profile: Option<String>,
    /// Relation name and primary-key columns, for `Location`.
    pub location: Option<(String, Vec<String>)>,
}

impl WriteReply {
    /// Checks the result (singular, max-affected) and builds the reply. An error here means
    /// the transaction must be rolled back.
    pub fn finish(&self, result: WriteResult) -> Result<Reply, QueryError> {
        let single = matches!(
            self.representation.media,
            crate::syntax::headers::MediaType::SingleObject
        );
        if single && result.affected != 1 {
            return Err(QueryError::singular(result.affected));
        }
        if let Some(max) = self.max_affected
            && result.affected > max
        {
            return Err(QueryError::max_affected(result.affected));
        }
        let mut status = match self.method {
            WriteMethod::Insert if self.merge_upsert && result.inserted == Some(0) => 200,
            WriteMethod::Insert => 201,
            WriteMethod::Put if self.return_rows => {
                if result.inserted.unwrap_or(0) > 0 {
                    201
                } else {
                    200
                }
            }
            _ if self.return_rows => 200,
            _ => 204,
        };
        let total = result
            .total
            .map_or_else(|| "*".to_owned(), |n| n.to_string());
        let range = match self.method {
            WriteMethod::Update if result.affected > 0 => {
                format!("0-{}/{total}", result.affected - 1)
            }
            _ => format!("*/{total}"),
        };
        let mut headers = Vec::new();
        let body = if self.return_rows {
            result.body.clone().unwrap_or_default()
        } else {
            String::new()
        };
        if self.return_rows {
            headers.push((
                "Content-Type".to_owned(),
                self.representation.content_type().to_owned(),
            ));
        }
        headers.push(("Content-Range".to_owned(), range));
        if let Some(schema) = &self.profile {
            headers.push(("Content-Profile".to_owned(), schema.clone()));
        }
        if self.headers_only
            && let (Some((table, keys)), Some(values)) = (&self.location, &result.location)
        {
            let values: Vec<String> = serde_json::from_str(values).unwrap_or_default();
            let query: Vec<String> = keys
                .iter()
                .zip(values)
                .map(|(key, value)| format!("{}=eq.{}", encode(key), encode(&value)))
                .collect();
            headers.push((
                "Location".to_owned(),
                format!("/{}?{}", encode(table), query.join("&")),
            ));
        }
        if !self.applied.is_empty() {
            headers.push(("Preference-Applied".to_owned(), self.applied.join(", ")));
        }
        let read = ReadResult {
            response_headers: result.response_headers,
            response_status: result.response_status,
            ..ReadResult::default()
        };
        apply_response_settings(&mut status, &mut headers, &read)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Percent-encodes a query-string component.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod write_tests {
    use super::*;

    fn reply(method: WriteMethod, return_rows: bool) -> WriteReply {
        WriteReply {
            method,
            representation: Representation::JSON,
            return_rows,
            headers_only: false,
            merge_upsert: false,
            max_affected: None,
            applied: Vec::new(),
            profile: None,
            location: Some(("t".into(), vec!["id".into()])),
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn statuses_and_ranges() {
        let insert = reply(WriteMethod::Insert, false)
            .finish(WriteResult {
                affected: 2,
                ..WriteResult::default()
            })
            .unwrap();
        assert_eq!(
            (insert.status, header(&insert, "Content-Range")),
            (201, Some("*/*"))
        );
        assert_eq!(insert.body, "");
        let update = reply(WriteMethod::Update, true)
            .finish(WriteResult {
                affected: 3,
                total: Some(3),
                body: Some("[]".into()),
                ..WriteResult::default()
            })
            .unwrap();
        assert_eq!(
            (update.status, header(&update, "Content-Range")),
            (200, Some("0-2/3"))
        );
        let delete = reply(WriteMethod::Delete, false)
            .finish(WriteResult::default())
            .unwrap();
        assert_eq!(
            (delete.status, header(&delete, "Content-Range")),
            (204, Some("*/*"))
        );
        let mut upsert = reply(WriteMethod::Insert, false);
        upsert.merge_upsert = true;
        let updated_only = upsert
            .finish(WriteResult {
                affected: 1,
                inserted: Some(0),
                ..WriteResult::default()
            })
            .unwrap();
        assert_eq!(updated_only.status, 200);
        let put = reply(WriteMethod::Put, true)
            .finish(WriteResult {
                affected: 1,
                inserted: Some(1),
                body: Some("[]".into()),
                ..WriteResult::default()
            })
            .unwrap();
        assert_eq!(put.status, 201);
    }

    #[test]
    fn location_and_limits() {
        let mut headers_only = reply(WriteMethod::Insert, false);
        headers_only.headers_only = true;
        let built = headers_only
            .finish(WriteResult {
                affected: 1,
                location: Some(r#"["a b"]"#.into()),
                ..WriteResult::default()
            })
            .unwrap();
        assert_eq!(header(&built, "Location"), Some("/t?id=eq.a%20b"));
        let mut strict = reply(WriteMethod::Delete, false);
        strict.max_affected = Some(1);
        let error = strict
            .finish(WriteResult {
                affected: 2,
                ..WriteResult::default()
            })
            .unwrap_err();
        assert_eq!((error.status, error.code), (400, "PGRST124"));
        assert_eq!(error.details, "The query affects 2 rows");
    }
}

/// How to turn a call's result into a reply.
#[derive(Debug, Clone)]
pub enum CallReply {
    /// `void`: 204 without a body.
    Void {
        /// Schema for `Content-Profile`.
        profile: Option<String>,
        /// Preferences to list in `Preference-Applied`.
        applied: Vec<String>,
    },
    /// One JSON value (a scalar or a single composite): 200.
    Value {
        /// Schema for `Content-Profile`.
        profile: Option<String>,
        /// Preferences to list in `Preference-Applied`.
        applied: Vec<String>,
    },
    /// A set of rows or values, answered like a read.
    Rows(ReadReply),
}

impl CallReply {
    /// Builds the reply.
    pub fn finish(&self, result: ReadResult) -> Result<Reply, QueryError> {
        let (status, profile, applied, body) = match self {
            Self::Rows(read) => return read.finish(result),
            Self::Void { profile, applied } => (204, profile, applied, String::new()),
            Self::Value { profile, applied } => (
                200,
                profile,
                applied,
                result.body.clone().unwrap_or_default(),
            ),
        };
        let mut status = status;
        let mut headers = Vec::new();
        if status == 200 {
            headers.push((
                "Content-Type".to_owned(),
                Representation::JSON.content_type().to_owned(),
            ));
        }
        if let Some(schema) = profile {
            headers.push(("Content-Profile".to_owned(), schema.clone()));
        }
        if !applied.is_empty() {
            headers.push(("Preference-Applied".to_owned(), applied.join(", ")));
        }
        apply_response_settings(&mut status, &mut headers, &result)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
