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
    /// A `count=` preference was given.
    pub count: Option<&'static str>,
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
        if let Some(count) = self.count {
            headers.push(("Preference-Applied".to_owned(), format!("count={count}")));
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
            count: count.then_some("exact"),
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
