//! postgres_changes `filter` strings (`org_id=eq.7`, `id=in.(1,2)`, `a=gt.1,a=lt.9`): parsing,
//! and matching a row's text values in Rust with the column type's semantics. Literals are
//! canonicalized by PostgreSQL at subscribe time (see `subscribe`), so equality on the text
//! output is exact and a subscription costs nothing per change beyond these comparisons.

use std::cmp::Ordering;

use super::value::timestamptz_micros;

/// Most values an `in` filter may list, as Supabase.
pub(crate) const MAX_IN_VALUES: usize = 100;

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Like,
    Ilike,
    Is,
}

impl Operator {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "in" => Self::In,
            "like" => Self::Like,
            "ilike" => Self::Ilike,
            "is" => Self::Is,
            _ => return None,
        })
    }
}

/// One parsed condition before the column is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCondition {
    pub(crate) column: String,
    pub(crate) operator: Operator,
    pub(crate) negated: bool,
    /// One value, or several for `in`.
    pub(crate) values: Vec<String>,
}

/// Why a filter string is refused; the text is what the `system` message shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    #[error("Error parsing `filter` params: {0}")]
    Parse(String),
    #[error("filter must not contain empty segments (check for extra commas)")]
    EmptySegment,
    #[error("`in` filter value must be wrapped by parentheses")]
    InParentheses,
    #[error("too many values for `in` filter. Maximum 100")]
    TooManyValues,
}

/// Splits on commas outside quotes and parentheses.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for ch in text.chars() {
        if escaped {
            current.push(ch);
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted => {
                escaped = true;
                current.push(ch);
            }
            '"' => {
                quoted = !quoted;
                current.push(ch);
            }
            '(' if !quoted => {
                depth += 1;
                current.push(ch);
            }
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                current.push(ch);
            }
            ',' if !quoted && depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(ch),
        }
    }
    parts.push(current);
    parts
}

/// PostgREST value quoting: `"a,b"` with backslash escapes, otherwise trimmed as is.
fn unquote(value: &str) -> String {
    let trimmed = value.trim();
    match trimmed
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(ch);
                }
            }
            out
        }
        None => trimmed.to_owned(),
    }
}

/// Parses a whole filter string; empty or blank means no condition.
pub(crate) fn parse_filter(filter: &str) -> Result<Vec<RawCondition>, FilterError> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top_level(filter)
        .iter()
        .map(|segment| parse_condition(segment))
        .collect()
}

fn parse_condition(segment: &str) -> Result<RawCondition, FilterError> {
    if segment.trim().is_empty() {
        return Err(FilterError::EmptySegment);
    }
    let (column, rest) = segment
        .split_once('=')
        .ok_or_else(|| FilterError::Parse(format!("[\"{segment}\"]")))?;
    let (negated, rest) = match rest.strip_prefix("not.") {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let (word, value) = rest
        .split_once('.')
        .ok_or_else(|| FilterError::Parse(format!("[\"{column}\", \"{rest}\"]")))?;
    let operator = Operator::parse(word)
        .ok_or_else(|| FilterError::Parse(format!("[\"{column}\", \"{word}\"]")))?;
    let values = if operator == Operator::In {
        let inner = value
            .trim()
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or(FilterError::InParentheses)?;
        let mut items: Vec<String> = if inner.trim().is_empty() {
            Vec::new()
        } else {
            split_top_level(inner).iter().map(|v| unquote(v)).collect()
        };
        if items.len() > MAX_IN_VALUES {
            return Err(FilterError::TooManyValues);
        }
        items.dedup();
        items
    } else {
        vec![unquote(value)]
    };
    Ok(RawCondition {
        column: column.trim().to_owned(),
        operator,
        negated,
        values,
    })
}

/// How values of a column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// int2/int4/int8/oid.
    Integer,
    /// float4/float8.
    Float,
    /// numeric (scale-insensitive, NaN largest).
    Numeric,
    /// timestamptz, by instant.
    Instant,
    /// Text-like: bytes (equality is exact for deterministic collations; ordering uses C order).
    Text,
    /// date and timestamp: ISO output orders lexicographically.
    IsoText,
    /// Anything else: canonical text equality only.
    Opaque,
    /// bool.
    Bool,
}

impl Comparison {
    /// The comparison of a base type, by OID.
    pub(crate) fn of_oid(oid: u32) -> Self {
        match oid {
            20 | 21 | 23 | 26 => Self::Integer,
            700 | 701 => Self::Float,
            1700 => Self::Numeric,
            1184 => Self::Instant,
            25 | 1043 | 19 | 1042 => Self::Text,
            1082 | 1114 => Self::IsoText,
            16 => Self::Bool,
            _ => Self::Opaque,
        }
    }

    /// Whether `operator` can be evaluated for this type.
    pub(crate) fn supports(self, operator: Operator) -> bool {
        match operator {
            Operator::Eq | Operator::Neq | Operator::In | Operator::Is => true,
            Operator::Like | Operator::Ilike => self == Self::Text,
            _ => !matches!(self, Self::Opaque | Self::Bool),
        }
    }

    fn compare(self, left: &str, right: &str) -> Option<Ordering> {
        match self {
            Self::Integer => Some(left.parse::<i128>().ok()?.cmp(&right.parse::<i128>().ok()?)),
            Self::Float => left
                .parse::<f64>()
                .ok()?
                .partial_cmp(&right.parse::<f64>().ok()?),
            Self::Numeric => compare_numeric(left, right),
            Self::Instant => Some(timestamptz_micros(left)?.cmp(&timestamptz_micros(right)?)),
            Self::Text | Self::IsoText | Self::Opaque | Self::Bool => Some(left.cmp(right)),
        }
    }
}

/// A resolved condition: column index, operator and canonical literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    pub(crate) column: usize,
    pub(crate) operator: Operator,
    pub(crate) negated: bool,
    pub(crate) comparison: Comparison,
    /// Canonical text of the literal(s); for `is`, `null`/`true`/`false`/`unknown`.
    pub(crate) values: Vec<String>,
}

impl Condition {
    /// Evaluates against a row value (`None` = SQL NULL or absent), with SQL's three-valued
    /// logic collapsed to "matches or not": NULL never matches except `is null`.
    pub(crate) fn matches(&self, value: Option<&str>) -> bool {
        if self.operator == Operator::Is {
            let keyword = self.values.first().map(String::as_str).unwrap_or("null");
            let result = match (keyword, value) {
                ("null" | "unknown", None) => true,
                ("null" | "unknown", Some(_)) => false,
                (_, None) => false,
                ("true", Some(text)) => text == "t",
                ("false", Some(text)) => text == "f",
                _ => false,
            };
            return result != self.negated;
        }
        let Some(value) = value else {
            return false;
        };
        let result = match self.operator {
            Operator::In => self
                .values
                .iter()
                .any(|literal| self.comparison.compare(value, literal) == Some(Ordering::Equal)),
            Operator::Like | Operator::Ilike => {
                let Some(pattern) = self.values.first() else {
                    return false;
                };
                if self.operator == Operator::Ilike {
                    like(&value.to_lowercase(), &pattern.to_lowercase())
                } else {
                    like(value, pattern)
                }
            }
            operator => {
                let Some(literal) = self.values.first() else {
                    return false;
                };
                let Some(order) = self.comparison.compare(value, literal) else {
                    return false;
                };
                match operator {
                    Operator::Eq => order == Ordering::Equal,
                    Operator::Neq => order != Ordering::Equal,
                    Operator::Lt => order == Ordering::Less,
                    Operator::Lte => order != Ordering::Greater,
                    Operator::Gt => order == Ordering::Greater,
                    _ => order != Ordering::Less,
                }
            }
        };
        result != self.negated
    }
}

/// SQL LIKE with `%`, `_` and backslash escapes.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    like_at(&text, &pattern)
}

fn like_at(text: &[char], pattern: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return text.is_empty();
    };
    match first {
        '%' => (0..=text.len()).any(|skip| like_at(&text[skip..], rest)),
        '_' => !text.is_empty() && like_at(&text[1..], rest),
        '\\' => match rest.split_first() {
            Some((&literal, after)) => text.first() == Some(&literal) && like_at(&text[1..], after),
            None => text.first() == Some(&'\\') && text.len() == 1,
        },
        literal => text.first() == Some(&literal) && like_at(&text[1..], rest),
    }
}

/// Orders numeric output texts: NaN > Infinity > finite > -Infinity, scale-insensitive.
fn compare_numeric(left: &str, right: &str) -> Option<Ordering> {
    fn rank(text: &str) -> i8 {
        match text {
            "NaN" => 2,
            "Infinity" => 1,
            "-Infinity" => -2,
            _ => 0,
        }
    }
    let (left_rank, right_rank) = (rank(left), rank(right));
    if left_rank != 0 || right_rank != 0 {
        return Some(left_rank.cmp(&right_rank));
    }
    let parse = |text: &str| -> Option<(bool, String, String)> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole = whole.trim_start_matches('0').to_owned();
        let fraction = fraction.trim_end_matches('0').to_owned();
        let zero = whole.is_empty() && fraction.is_empty();
        Some((negative && !zero, whole, fraction))
    };
    let (left_negative, left_whole, left_fraction) = parse(left)?;
    let (right_negative, right_whole, right_fraction) = parse(right)?;
    let magnitude = left_whole
        .len()
        .cmp(&right_whole.len())
        .then_with(|| left_whole.cmp(&right_whole))
        .then_with(|| left_fraction.cmp(&right_fraction));
    Some(match (left_negative, right_negative) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(operator: Operator, comparison: Comparison, values: &[&str]) -> Condition {
        Condition {
            column: 0,
            operator,
            negated: false,
            comparison,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn parses_supabase_filter_strings() {
        let parsed = parse_filter("org_id=eq.7").unwrap();
        assert_eq!(parsed[0].column, "org_id");
        assert_eq!(parsed[0].operator, Operator::Eq);
        assert_eq!(parsed[0].values, ["7"]);
        let parsed = parse_filter(r#"name=in.(a,"b,c", d ),id=gt.1"#).unwrap();
        assert_eq!(parsed[0].values, ["a", "b,c", "d"]);
        assert_eq!(parsed[1].operator, Operator::Gt);
        let parsed = parse_filter("status=not.in.(x,y)").unwrap();
        assert!(parsed[0].negated);
        assert_eq!(parse_filter("  ").unwrap(), vec![]);
        assert_eq!(parse_filter("a=eq.1,"), Err(FilterError::EmptySegment));
        assert_eq!(parse_filter("a=in.1"), Err(FilterError::InParentheses));
        assert!(matches!(
            parse_filter("a=foo.1"),
            Err(FilterError::Parse(_))
        ));
        let many = (0..101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            parse_filter(&format!("a=in.({many})")),
            Err(FilterError::TooManyValues)
        );
    }

    #[test]
    fn typed_comparisons() {
        let gt = condition(Operator::Gt, Comparison::Integer, &["9"]);
        assert!(gt.matches(Some("10")) && !gt.matches(Some("9")) && !gt.matches(None));
        let eq = condition(Operator::Eq, Comparison::Numeric, &["1.5"]);
        assert!(eq.matches(Some("1.50")) && !eq.matches(Some("-1.5")));
        let lt = condition(Operator::Lt, Comparison::Numeric, &["-2"]);
        assert!(lt.matches(Some("-10.5")) && !lt.matches(Some("0")));
        assert!(condition(Operator::Gt, Comparison::Numeric, &["5"]).matches(Some("NaN")));
        let instant = condition(
            Operator::Eq,
            Comparison::Instant,
            &["2025-01-01 00:00:00+00"],
        );
        assert!(instant.matches(Some("2025-01-01 05:30:00+05:30")));
        let neq = condition(Operator::Neq, Comparison::Text, &["a"]);
        assert!(neq.matches(Some("b")) && !neq.matches(None));
        let within = condition(Operator::In, Comparison::Integer, &["1", "2"]);
        assert!(within.matches(Some("2")) && !within.matches(Some("3")));
    }

    #[test]
    fn like_is_and_negation() {
        assert!(like("hello", "h%o") && like("hello", "_ello") && !like("hello", "h_o"));
        assert!(like("50%", "50\\%") && !like("500", "50\\%"));
        let ilike = condition(Operator::Ilike, Comparison::Text, &["%LL%"]);
        assert!(ilike.matches(Some("hello")));
        let is_null = condition(Operator::Is, Comparison::Text, &["null"]);
        assert!(is_null.matches(None) && !is_null.matches(Some("x")));
        let mut is_true = condition(Operator::Is, Comparison::Bool, &["true"]);
        assert!(is_true.matches(Some("t")) && !is_true.matches(None));
        is_true.negated = true;
        assert!(is_true.matches(Some("f")) && is_true.matches(None));
        let mut not_eq = condition(Operator::Eq, Comparison::Integer, &["1"]);
        not_eq.negated = true;
        assert!(not_eq.matches(Some("2")) && !not_eq.matches(None));
    }
}
