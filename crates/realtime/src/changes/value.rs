//! Column values from pgoutput's text output to JSON written the way `to_jsonb` writes them,
//! so payloads match Supabase's (compat §2.8): numbers and booleans typed, json as JSON,
//! arrays as arrays, timestamps ISO 8601 in UTC, everything else a string.

use serde_json::Value;

/// How a type's text output becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    /// int2/int4/int8/oid/float4/float8/numeric: a JSON number (specials stay strings).
    Number,
    /// `t`/`f`.
    Bool,
    /// json and jsonb: the text is JSON.
    Json,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD HH:MM:SS[.f]` → `T` separator.
    Timestamp,
    /// With an offset → UTC, `+00:00`.
    TimestampTz,
    /// An array literal whose elements are of the element kind.
    Array(ElementKind),
    /// Anything else: the text itself.
    Text,
}

/// The kind of an array's elements (arrays of arrays do not exist in PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementKind {
    Number,
    Bool,
    Json,
    Date,
    Timestamp,
    TimestampTz,
    Text,
}

impl ElementKind {
    /// The JSON kind of a scalar of this element type.
    pub(crate) fn scalar(self) -> JsonKind {
        match self {
            Self::Number => JsonKind::Number,
            Self::Bool => JsonKind::Bool,
            Self::Json => JsonKind::Json,
            Self::Date => JsonKind::Date,
            Self::Timestamp => JsonKind::Timestamp,
            Self::TimestampTz => JsonKind::TimestampTz,
            Self::Text => JsonKind::Text,
        }
    }

    /// The element kind of a base type, by OID.
    pub(crate) fn of_base_oid(oid: u32) -> Self {
        match oid {
            20 | 21 | 23 | 26 | 700 | 701 | 1700 => Self::Number,
            16 => Self::Bool,
            114 | 3802 => Self::Json,
            1082 => Self::Date,
            1114 => Self::Timestamp,
            1184 => Self::TimestampTz,
            _ => Self::Text,
        }
    }
}

/// Appends one non-null text value as JSON text. Numbers and json/jsonb documents are copied
/// as PostgreSQL wrote them (after checking they are valid JSON), never through `f64`, so a
/// `numeric` keeps every digit as `to_jsonb` does.
pub(crate) fn write_json(out: &mut String, kind: JsonKind, text: &str) {
    match kind {
        JsonKind::Number => write_number(out, text),
        JsonKind::Bool => match text {
            "t" => out.push_str("true"),
            "f" => out.push_str("false"),
            other => write_string(out, other),
        },
        JsonKind::Json => {
            if serde_json::from_str::<Value>(text).is_ok() {
                out.push_str(text.trim());
            } else {
                write_string(out, text);
            }
        }
        JsonKind::Date | JsonKind::Text => write_string(out, text),
        JsonKind::Timestamp => write_string(out, &text.replacen(' ', "T", 1)),
        JsonKind::TimestampTz => match timestamptz_micros(text) {
            Some(micros) => write_string(out, &format_utc(micros)),
            None => write_string(out, text),
        },
        JsonKind::Array(element) => match parse_array(text) {
            Some(items) => write_array(out, &items, element),
            None => write_string(out, text),
        },
    }
}

/// A JSON string literal.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push_str(&Value::String(text.to_owned()).to_string());
}

fn write_number(out: &mut String, text: &str) {
    // `to_jsonb` writes NaN and the infinities as strings; other outputs are valid JSON
    // numbers, copied digit for digit.
    if is_json_number(text) {
        out.push_str(text);
    } else {
        write_string(out, text);
    }
}

/// The JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => {
            digits(&mut at);
        }
        _ => return false,
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

/// A parsed array literal: nested levels, elements as text or NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArrayItem {
    Null,
    Text(String),
    Nested(Vec<ArrayItem>),
}

fn write_array(out: &mut String, items: &[ArrayItem], element: ElementKind) {
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        match item {
            ArrayItem::Null => out.push_str("null"),
            ArrayItem::Text(text) => write_json(out, element.scalar(), text),
            ArrayItem::Nested(inner) => write_array(out, inner, element),
        }
    }
    out.push(']');
}

/// Parses PostgreSQL's array output (`{1,2}`, `{"a b",NULL}`, `{{1,2},{3,4}}`, and the
/// `[0:1]={…}` form with explicit bounds, whose bounds are dropped as `to_jsonb` does).
pub(crate) fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let body = match text.find("={") {
        Some(at) if text.starts_with('[') => text.get(at + 1..)?,
        _ => text,
    };
    let chars: Vec<char> = body.chars().collect();
    let mut at = 0;
    let items = parse_level(&chars, &mut at)?;
    (at == chars.len()).then_some(items)
}

fn parse_level(chars: &[char], at: &mut usize) -> Option<Vec<ArrayItem>> {
    if chars.get(*at) != Some(&'{') {
        return None;
    }
    *at += 1;
    let mut items = Vec::new();
    if chars.get(*at) == Some(&'}') {
        *at += 1;
        return Some(items);
    }
    loop {
        let item = match chars.get(*at)? {
            '{' => ArrayItem::Nested(parse_level(chars, at)?),
            '"' => {
                *at += 1;
                let mut value = String::new();
                loop {
                    match chars.get(*at)? {
                        '\\' => {
                            value.push(*chars.get(*at + 1)?);
                            *at += 2;
                        }
                        '"' => {
                            *at += 1;
                            break;
                        }
                        other => {
                            value.push(*other);
                            *at += 1;
                        }
                    }
                }
                ArrayItem::Text(value)
            }
            _ => {
                let start = *at;
                while !matches!(chars.get(*at)?, ',' | '}') {
                    *at += 1;
                }
                let raw: String = chars.get(start..*at)?.iter().collect();
                if raw == "NULL" {
                    ArrayItem::Null
                } else {
                    ArrayItem::Text(raw)
                }
            }
        };
        items.push(item);
        match chars.get(*at)? {
            ',' => *at += 1,
            '}' => {
                *at += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn digits(text: &str) -> Option<i64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Microseconds since the Unix epoch of an ISO `timestamptz` output such as
/// `2025-11-03 09:32:55.12+05:30`; `None` for anything else (infinity, BC, other DateStyles).
pub(crate) fn timestamptz_micros(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once(' ')?;
    let sign_at = rest.find(['+', '-'])?;
    let (time, offset) = rest.split_at(sign_at);
    let local = local_micros(date, time)?;
    let negative = offset.starts_with('-');
    let mut offset_seconds = 0;
    for (index, part) in offset.get(1..)?.split(':').enumerate() {
        let scale = [3600, 60, 1].get(index)?;
        offset_seconds += digits(part)? * scale;
    }
    let offset_micros = offset_seconds * 1_000_000;
    Some(if negative {
        local + offset_micros
    } else {
        local - offset_micros
    })
}

fn local_micros(date: &str, time: &str) -> Option<i64> {
    let mut date_parts = date.split('-');
    let year = digits(date_parts.next()?)?;
    let month = digits(date_parts.next()?)?;
    let day = digits(date_parts.next()?)?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let mut clock_parts = clock.split(':');
    let hour = digits(clock_parts.next()?)?;
    let minute = digits(clock_parts.next()?)?;
    let second = digits(clock_parts.next()?)?;
    if clock_parts.next().is_some() || fraction.len() > 6 {
        return None;
    }
    let fraction_micros = if fraction.is_empty() {
        0
    } else {
        digits(fraction)? * 10_i64.pow(6 - fraction.len() as u32)
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + fraction_micros)
}

/// `to_jsonb` style for a UTC instant: `2025-11-03T09:32:55.12+00:00`.
fn format_utc(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let of_day = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let seconds = of_day / 1_000_000;
    let fraction = of_day % 1_000_000;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction > 0 {
        let text = format!("{fraction:06}");
        out.push('.');
        out.push_str(text.trim_end_matches('0'));
    }
    out.push_str("+00:00");
    out
}

/// pgoutput times are microseconds since 2000-01-01 UTC.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// `commit_timestamp` as Supabase writes it: UTC with milliseconds, `…T09:32:55.123Z`.
pub(crate) fn commit_timestamp(postgres_micros: i64) -> String {
    let micros = postgres_micros.saturating_add(POSTGRES_EPOCH_MICROS);
    let days = micros.div_euclid(86_400_000_000);
    let of_day = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let millis = of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// One value as JSON text.
    fn to_json_text(kind: JsonKind, text: &str) -> String {
        let mut out = String::new();
        write_json(&mut out, kind, text);
        out
    }

    /// The value as JSON (tests compare structure; precision is checked on the text).
    fn to_json(kind: JsonKind, text: &str) -> Value {
        serde_json::from_str(&to_json_text(kind, text)).unwrap()
    }

    #[test]
    fn scalars_follow_to_jsonb() {
        assert_eq!(to_json(JsonKind::Number, "42"), json!(42));
        assert_eq!(to_json(JsonKind::Number, "1.50"), json!(1.5));
        assert_eq!(to_json(JsonKind::Number, "NaN"), json!("NaN"));
        assert_eq!(to_json(JsonKind::Number, "-Infinity"), json!("-Infinity"));
        assert_eq!(to_json(JsonKind::Bool, "t"), json!(true));
        assert_eq!(to_json(JsonKind::Json, r#"{"x": 1}"#), json!({"x": 1}));
        assert_eq!(
            to_json(JsonKind::Timestamp, "2025-11-03 09:32:55.5"),
            json!("2025-11-03T09:32:55.5")
        );
        assert_eq!(
            to_json(JsonKind::TimestampTz, "2025-11-03 09:32:55+00"),
            json!("2025-11-03T09:32:55+00:00")
        );
        assert_eq!(
            to_json(JsonKind::TimestampTz, "2025-11-03 01:02:03.25+05:30"),
            json!("2025-11-02T19:32:03.25+00:00")
        );
        assert_eq!(
            to_json(JsonKind::TimestampTz, "infinity"),
            json!("infinity")
        );
    }

    #[test]
    fn numbers_and_json_documents_keep_every_digit() {
        let exact = "12345678901234567890.123456789012345678901";
        assert_eq!(to_json_text(JsonKind::Number, exact), exact);
        assert_eq!(to_json_text(JsonKind::Number, "1.50"), "1.50");
        assert_eq!(to_json_text(JsonKind::Number, "-0.000001"), "-0.000001");
        assert_eq!(to_json_text(JsonKind::Number, "1e+100"), "1e+100");
        assert_eq!(to_json_text(JsonKind::Number, "NaN"), "\"NaN\"");
        assert_eq!(to_json_text(JsonKind::Number, "Infinity"), "\"Infinity\"");
        for not_json in ["", "-", "01", "1.", ".5", "1e", "+1", "1_000", "0x10"] {
            assert_eq!(
                to_json_text(JsonKind::Number, not_json),
                Value::String(not_json.to_owned()).to_string()
            );
        }
        assert_eq!(
            to_json_text(
                JsonKind::Array(ElementKind::Number),
                "{0.10000000000000000000001,NULL}"
            ),
            "[0.10000000000000000000001,null]"
        );
        assert_eq!(
            to_json_text(JsonKind::Json, r#"{"n": 0.10000000000000000000001}"#),
            r#"{"n": 0.10000000000000000000001}"#
        );
        assert_eq!(to_json_text(JsonKind::Json, "{bad"), r#""{bad""#);
        assert_eq!(
            to_json_text(JsonKind::Text, "quote \" and \\"),
            r#""quote \" and \\""#
        );
    }

    #[test]
    fn arrays_parse_with_quotes_nulls_and_nesting() {
        assert_eq!(
            to_json(
                JsonKind::Array(ElementKind::Text),
                r#"{a,"b c","d\"e",NULL}"#
            ),
            json!(["a", "b c", "d\"e", null])
        );
        assert_eq!(
            to_json(JsonKind::Array(ElementKind::Number), "{{1,2},{3,4}}"),
            json!([[1, 2], [3, 4]])
        );
        assert_eq!(
            to_json(JsonKind::Array(ElementKind::Number), "[0:1]={5,6}"),
            json!([5, 6])
        );
        assert_eq!(to_json(JsonKind::Array(ElementKind::Bool), "{}"), json!([]));
        assert_eq!(
            to_json(JsonKind::Array(ElementKind::Text), "{unterminated"),
            json!("{unterminated")
        );
    }

    #[test]
    fn commit_timestamps_have_milliseconds() {
        assert_eq!(commit_timestamp(0), "2000-01-01T00:00:00.000Z");
        assert_eq!(
            commit_timestamp(815_000_000_123_456),
            "2025-10-28T20:53:20.123Z"
        );
        let micros = timestamptz_micros("2025-10-28 20:53:20.123456+00").unwrap();
        assert_eq!(micros, 815_000_000_123_456 + POSTGRES_EPOCH_MICROS);
    }
}
