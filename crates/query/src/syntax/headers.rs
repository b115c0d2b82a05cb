//! `Prefer`, `Accept` and `Range` headers.

use crate::error::QueryError;

/// `return=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPreference {
    /// No body.
    Minimal,
    /// The affected rows.
    Representation,
    /// Only `Location`.
    HeadersOnly,
}

/// `count=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPreference {
    /// `count(*)`.
    Exact,
    /// The planner's estimate.
    Planned,
    /// Exact below the row cap, else planned.
    Estimated,
}

impl CountPreference {
    fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Planned => "planned",
            Self::Estimated => "estimated",
        }
    }
}

/// `resolution=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// `ON CONFLICT DO UPDATE`.
    MergeDuplicates,
    /// `ON CONFLICT DO NOTHING`.
    IgnoreDuplicates,
}

/// `missing=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Missing keys take the column default.
    Default,
    /// Missing keys are NULL.
    Null,
}

/// `tx=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPreference {
    /// Commit.
    Commit,
    /// Roll back after computing the response.
    Rollback,
}

/// Every preference of the request's `Prefer` headers (first occurrence wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferences {
    /// `return=`.
    pub return_: Option<ReturnPreference>,
    /// `count=`.
    pub count: Option<CountPreference>,
    /// `resolution=`.
    pub resolution: Option<Resolution>,
    /// `missing=`.
    pub missing: Option<Missing>,
    /// `tx=`.
    pub tx: Option<TxPreference>,
    /// `handling=strict`.
    pub strict: bool,
    /// `max-affected=`.
    pub max_affected: Option<i64>,
    /// `timezone=`.
    pub timezone: Option<String>,
    /// Values that were not understood.
    pub invalid: Vec<String>,
}

impl Preferences {
    /// Parses all `Prefer` header values (each may hold several comma-separated preferences).
    /// With `handling=strict`, anything not understood is an error (PGRST122).
    pub fn parse(headers: &[&str]) -> Result<Self, QueryError> {
        let mut prefs = Self::default();
        let mut handling_seen = false;
        for token in headers.iter().flat_map(|h| h.split(',')).map(str::trim) {
            if token.is_empty() {
                continue;
            }
            let (name, value) = token
                .split_once('=')
                .map_or((token, ""), |(n, v)| (n.trim(), v.trim()));
            let understood = match name {
                "return" => set_once(
                    &mut prefs.return_,
                    match value {
                        "minimal" => Some(ReturnPreference::Minimal),
                        "representation" => Some(ReturnPreference::Representation),
                        "headers-only" => Some(ReturnPreference::HeadersOnly),
                        _ => None,
                    },
                ),
                "count" => set_once(
                    &mut prefs.count,
                    match value {
                        "exact" => Some(CountPreference::Exact),
                        "planned" => Some(CountPreference::Planned),
                        "estimated" => Some(CountPreference::Estimated),
                        _ => None,
                    },
                ),
                "resolution" => set_once(
                    &mut prefs.resolution,
                    match value {
                        "merge-duplicates" => Some(Resolution::MergeDuplicates),
                        "ignore-duplicates" => Some(Resolution::IgnoreDuplicates),
                        _ => None,
                    },
                ),
                "missing" => set_once(
                    &mut prefs.missing,
                    match value {
                        "default" => Some(Missing::Default),
                        "null" => Some(Missing::Null),
                        _ => None,
                    },
                ),
                "tx" => set_once(
                    &mut prefs.tx,
                    match value {
                        "commit" => Some(TxPreference::Commit),
                        "rollback" => Some(TxPreference::Rollback),
                        _ => None,
                    },
                ),
                "handling" => match value {
                    "strict" | "lenient" => {
                        if !handling_seen {
                            prefs.strict = value == "strict";
                            handling_seen = true;
                        }
                        true
                    }
                    _ => false,
                },
                "max-affected" => set_once(&mut prefs.max_affected, value.parse::<i64>().ok()),
                "timezone" => set_once(
                    &mut prefs.timezone,
                    (!value.is_empty()).then(|| value.to_owned()),
                ),
                _ => false,
            };
            if !understood {
                prefs.invalid.push(token.to_owned());
            }
        }
        if prefs.strict && !prefs.invalid.is_empty() {
            return Err(QueryError::invalid_preferences(&prefs.invalid));
        }
        Ok(prefs)
    }

    /// The `count=…` value for `Preference-Applied`.
    pub fn count_name(&self) -> Option<&'static str> {
        self.count.map(CountPreference::name)
    }
}

/// Keeps the first valid value; a repeated or invalid value is reported as not understood only
/// when it cannot be read at all.
fn set_once<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    match value {
        Some(value) => {
            if slot.is_none() {
                *slot = Some(value);
            }
            true
        }
        None => false,
    }
}

/// What the response body will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// A JSON array.
    Json,
    /// One JSON object (`application/vnd.pgrst.object+json`).
    SingleObject,
    /// CSV.
    Csv,
    /// The OpenAPI document (root only).
    OpenApi,
    /// EXPLAIN output (`application/vnd.pgrst.plan`), when `db-plan-enabled`.
    Plan(PlanOptions),
}

/// What `Accept: application/vnd.pgrst.plan…` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanOptions {
    /// `+json` (else text).
    pub json: bool,
    /// `options=analyze`.
    pub analyze: bool,
    /// `options=verbose`.
    pub verbose: bool,
    /// `options=settings`.
    pub settings: bool,
    /// `options=buffers`.
    pub buffers: bool,
    /// `options=wal`.
    pub wal: bool,
}

impl PlanOptions {
    /// The `explain (…) ` prefix.
    pub fn explain_prefix(self) -> &'static str {
        // Every combination is a fixed string, so no request text reaches the SQL.
        match (self.json, self.analyze, self.verbose) {
            (true, false, false) => "explain (format json) ",
            (true, true, false) => "explain (format json, analyze) ",
            (true, false, true) => "explain (format json, verbose) ",
            (true, true, true) => "explain (format json, analyze, verbose) ",
            (false, false, false) => "explain (format text) ",
            (false, true, false) => "explain (format text, analyze) ",
            (false, false, true) => "explain (format text, verbose) ",
            (false, true, true) => "explain (format text, analyze, verbose) ",
        }
    }
}

/// The negotiated representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Representation {
    /// Body format.
    pub media: MediaType,
    /// `nulls=stripped`: `json_strip_nulls` over the body.
    pub strip_nulls: bool,
}

impl Representation {
    /// Plain JSON array.
    pub const JSON: Self = Self {
        media: MediaType::Json,
        strip_nulls: false,
    };

    /// The `Content-Type` of a body in this representation.
    pub fn content_type(self) -> &'static str {
        match (self.media, self.strip_nulls) {
            (MediaType::Json, false) => "application/json; charset=utf-8",
            (MediaType::Json, true) => {
                "application/vnd.pgrst.array+json; nulls=stripped; charset=utf-8"
            }
            (MediaType::SingleObject, false) => "application/vnd.pgrst.object+json; charset=utf-8",
            (MediaType::SingleObject, true) => {
                "application/vnd.pgrst.object+json; nulls=stripped; charset=utf-8"
            }
            (MediaType::Csv, _) => "text/csv; charset=utf-8",
            (MediaType::OpenApi, _) => "application/openapi+json; charset=utf-8",
            (MediaType::Plan(options), _) if options.json => {
                "application/vnd.pgrst.plan+json; for=\"application/json\"; charset=utf-8"
            }
            (MediaType::Plan(_), _) => {
                "application/vnd.pgrst.plan+text; for=\"application/json\"; charset=utf-8"
            }
        }
    }
}

/// Picks the first media type in `Accept` that can be produced. `root` allows OpenAPI.
pub fn negotiate(
    accept: Option<&str>,
    root: bool,
    plan_enabled: bool,
) -> Result<Representation, QueryError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(if root {
            Representation {
                media: MediaType::OpenApi,
                strip_nulls: false,
            }
        } else {
            Representation::JSON
        });
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<String> = parts
            .map(|p| p.replace(' ', "").to_ascii_lowercase())
            .collect();
        let strip_nulls = params.iter().any(|p| p == "nulls=stripped");
        let found = match essence.as_str() {
            "*/*" | "application/*" | "application/json" if root => Some(MediaType::OpenApi),
            "application/openapi+json" if root => Some(MediaType::OpenApi),
            "*/*" | "application/*" | "application/json" => Some(MediaType::Json),
            "application/vnd.pgrst.array+json" | "application/vnd.pgrst.array" if !root => {
                Some(MediaType::Json)
            }
            "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" if !root => {
                Some(MediaType::SingleObject)
            }
            "text/csv" if !root => Some(MediaType::Csv),
            "application/vnd.pgrst.plan"
            | "application/vnd.pgrst.plan+text"
            | "application/vnd.pgrst.plan+json"
                if !root && plan_enabled =>
            {
                let mut options = PlanOptions {
                    json: essence.ends_with("+json"),
                    ..PlanOptions::default()
                };
                for param in &params {
                    if let Some(list) = param.strip_prefix("options=") {
                        for option in list.split('|') {
                            match option {
                                "analyze" => options.analyze = true,
                                "verbose" => options.verbose = true,
                                "settings" => options.settings = true,
                                "buffers" => options.buffers = true,
                                "wal" => options.wal = true,
                                _ => {}
                            }
                        }
                    }
                }
                Some(MediaType::Plan(options))
            }
            _ => None,
        };
        if let Some(media) = found {
            let strip_nulls =
                strip_nulls && matches!(media, MediaType::Json | MediaType::SingleObject);
            return Ok(Representation { media, strip_nulls });
        }
    }
    Err(QueryError::not_acceptable(accept))
}

/// A `Range: first-last` request header as offset and optional inclusive end.
pub fn parse_range(header: Option<&str>) -> Result<Option<(i64, Option<i64>)>, QueryError> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let spec = header.strip_prefix("items=").unwrap_or(header);
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let Ok(first) = first.trim().parse::<i64>() else {
        return Ok(None);
    };
    let last = match last.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(last) => Some(last),
            Err(_) => return Ok(None),
        },
    };
    if let Some(last) = last
        && last < first
    {
        return Err(QueryError::range(
            "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
        ));
    }
    Ok(Some((first, last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_values_split_and_first_wins() {
        let prefs = Preferences::parse(&[
            "count=exact, missing=default, return=representation",
            "return=minimal",
        ])
        .unwrap();
        assert_eq!(prefs.count, Some(CountPreference::Exact));
        assert_eq!(prefs.missing, Some(Missing::Default));
        assert_eq!(prefs.return_, Some(ReturnPreference::Representation));
        let rpc = Preferences::parse(&["count=exact,return=minimal"]).unwrap();
        assert_eq!(rpc.return_, Some(ReturnPreference::Minimal));
    }

    #[test]
    fn strict_handling_refuses_unknown_preferences() {
        let error = Preferences::parse(&["handling=strict, nope=1"]).unwrap_err();
        assert_eq!(error.code, "PGRST122");
        let prefs = Preferences::parse(&["nope=1, max-affected=5"]).unwrap();
        assert_eq!(prefs.invalid, vec!["nope=1".to_owned()]);
        assert_eq!(prefs.max_affected, Some(5));
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None, false, false).unwrap(), Representation::JSON);
        assert_eq!(
            negotiate(Some("*/*"), false, false).unwrap(),
            Representation::JSON
        );
        assert_eq!(
            negotiate(Some("application/vnd.pgrst.object+json"), false, false)
                .unwrap()
                .media,
            MediaType::SingleObject
        );
        assert!(
            negotiate(
                Some("application/vnd.pgrst.object+json;nulls=stripped"),
                false,
                false
            )
            .unwrap()
            .strip_nulls
        );
        assert_eq!(
            negotiate(Some("text/csv"), false, false).unwrap().media,
            MediaType::Csv
        );
        assert_eq!(
            negotiate(Some("text/html, text/csv"), false, false)
                .unwrap()
                .media,
            MediaType::Csv
        );
        let error = negotiate(Some("text/html"), false, false).unwrap_err();
        assert_eq!((error.status, error.code), (406, "PGRST107"));
        assert_eq!(
            negotiate(Some("application/openapi+json"), true, false)
                .unwrap()
                .media,
            MediaType::OpenApi
        );
    }

    #[test]
    fn range_header() {
        assert_eq!(parse_range(Some("0-9")).unwrap(), Some((0, Some(9))));
        assert_eq!(parse_range(Some("10-")).unwrap(), Some((10, None)));
        assert_eq!(parse_range(Some("garbage")).unwrap(), None);
        assert_eq!(parse_range(Some("5-1")).unwrap_err().code, "PGRST103");
    }
}
