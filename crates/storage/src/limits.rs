//! Bucket limits (size, MIME allow-list) and the request headers downloads honour (`Range`,
//! `If-None-Match`), as pure functions.

use std::ops::Range;

use crate::error::StorageError;

/// Objects with this suffix are the dashboard's empty-folder markers. Supabase Storage skips the
/// MIME check for them and limits them to zero bytes.
const FOLDER_PLACEHOLDER: &str = ".emptyFolderPlaceholder";

/// The effective size limit: the server's, lowered by the bucket's own.
fn size_limit(global: u64, bucket: Option<i64>) -> u64 {
    match bucket.and_then(|limit| u64::try_from(limit).ok()) {
        Some(limit) => limit.min(global),
        None => global,
    }
}

/// True when `name` is an empty-folder marker.
pub(crate) fn is_placeholder(name: &str) -> bool {
    name.ends_with(FOLDER_PLACEHOLDER)
}

/// The most bytes object `name` may hold: the smaller of the server's and the bucket's limit,
/// and nothing at all for an empty-folder marker (a marker is how an empty folder exists, never
/// a way around the limits).
pub(crate) fn object_size_limit(name: &str, global: u64, bucket: Option<i64>) -> u64 {
    if is_placeholder(name) {
        0
    } else {
        size_limit(global, bucket)
    }
}

/// Checks `content_type` against a bucket's allow-list (`image/*` patterns allowed). The
/// comparison ignores parameters and case: `text/plain;charset=UTF-8` is `text/plain`.
pub(crate) fn check_mime(
    content_type: &str,
    allowed: Option<&[String]>,
) -> Result<(), StorageError> {
    let Some(allowed) = allowed.filter(|list| !list.is_empty()) else {
        return Ok(());
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let matches = allowed.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_suffix("/*") {
            Some(kind) => essence.split('/').next() == Some(kind),
            None => pattern == essence || pattern == "*/*" || pattern == "*",
        }
    });
    if matches {
        Ok(())
    } else {
        Err(StorageError::InvalidMimeType(content_type.to_owned()))
    }
}

/// A checked MIME pattern for a bucket's `allowed_mime_types`: `type/subtype` or `type/*`.
pub(crate) fn valid_mime_pattern(pattern: &str) -> bool {
    let mut parts = pattern.split('/');
    let token = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-*".contains(&b))
        })
    };
    token(parts.next()) && token(parts.next()) && parts.next().is_none()
}

/// The byte range a `Range` header asks for, against an object of `size` bytes. `None` means
/// serve everything (no header, several ranges, or a unit other than bytes); an unsatisfiable
/// range is [`StorageError::InvalidRange`].
pub(crate) fn parse_range(
    header: Option<&str>,
    size: u64,
) -> Result<Option<Range<u64>>, StorageError> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec
        .split_once('-')
        .ok_or(StorageError::InvalidRange { size })?;
    let (start, end) = (start.trim(), end.trim());
    let parse = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| StorageError::InvalidRange { size })
    };
    let range = match (start.is_empty(), end.is_empty()) {
        (true, true) => return Err(StorageError::InvalidRange { size }),
        // `bytes=-N`: the last N bytes.
        (true, false) => {
            let suffix = parse(end)?;
            if suffix == 0 || size == 0 {
                return Err(StorageError::InvalidRange { size });
            }
            size.saturating_sub(suffix)..size
        }
        (false, true) => parse(start)?..size,
        (false, false) => {
            let (first, last) = (parse(start)?, parse(end)?);
            if last < first {
                return Err(StorageError::InvalidRange { size });
            }
            first..last.saturating_add(1).min(size)
        }
    };
    if range.start >= size {
        return Err(StorageError::InvalidRange { size });
    }
    Ok(Some(range))
}

/// True when an `If-None-Match` header matches `etag` (weak comparison, `*`, lists).
pub(crate) fn none_match(header: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    header
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == bare(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_the_smaller() {
        assert_eq!(size_limit(100, None), 100);
        assert_eq!(size_limit(100, Some(10)), 10);
        assert_eq!(size_limit(100, Some(1000)), 100);
    }

    #[test]
    fn mime_patterns() {
        let allowed = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        assert!(check_mime("image/png", Some(&allowed)).is_ok());
        assert!(check_mime("IMAGE/JPEG; q=1", Some(&allowed)).is_ok());
        assert!(check_mime("application/pdf", Some(&allowed)).is_ok());
        assert!(matches!(
            check_mime("text/plain;charset=UTF-8", Some(&allowed)),
            Err(StorageError::InvalidMimeType(m)) if m == "text/plain;charset=UTF-8"
        ));
        assert!(check_mime("anything/x", None).is_ok());
        assert!(check_mime("anything/x", Some(&[])).is_ok());
        assert!(valid_mime_pattern("image/*"));
        assert!(valid_mime_pattern("application/vnd.ms-excel"));
        assert!(!valid_mime_pattern("image"));
        assert!(!valid_mime_pattern("a/b/c"));
        assert!(is_placeholder("a/.emptyFolderPlaceholder"));
    }

    #[test]
    fn folder_placeholders_hold_no_bytes() {
        assert_eq!(object_size_limit("a/.emptyFolderPlaceholder", 100, None), 0);
        assert_eq!(
            object_size_limit("x.emptyFolderPlaceholder", 100, Some(50)),
            0
        );
        assert_eq!(object_size_limit("a/photo.png", 100, Some(50)), 50);
        assert_eq!(object_size_limit("a/photo.png", 100, None), 100);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-4"), 10).unwrap(), Some(0..5));
        assert_eq!(parse_range(Some("bytes=5-"), 10).unwrap(), Some(5..10));
        assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), Some(7..10));
        assert_eq!(parse_range(Some("bytes=-30"), 10).unwrap(), Some(0..10));
        assert_eq!(parse_range(Some("bytes=8-100"), 10).unwrap(), Some(8..10));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("items=0-1"), 10).unwrap(), None);
        for bad in ["bytes=10-", "bytes=5-2", "bytes=-0", "bytes=x-1", "bytes=-"] {
            assert!(
                matches!(
                    parse_range(Some(bad), 10),
                    Err(StorageError::InvalidRange { size: 10 })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn etag_matching() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\", \"x\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
