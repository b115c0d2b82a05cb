//! Object keys and bucket ids: Supabase Storage's allowed characters, and decoding the raw path
//! segments the client sends.

use percent_encoding::percent_decode_str;

use crate::error::StorageError;

/// Longest object key Storage accepts, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Longest bucket id Storage accepts, in characters.
const MAX_BUCKET_CHARS: usize = 100;
/// Punctuation Storage allows in object keys besides ASCII letters and digits.
const KEY_PUNCTUATION: &[u8] = b"_/!.*'() &$=@;:+,?-";

/// Decodes one percent-encoded URL path segment. storage-js never encodes paths, but `fetch`
/// percent-encodes spaces and non-ASCII characters, so every segment is decoded once.
pub(crate) fn decode_segment(segment: &str) -> Result<String, StorageError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| StorageError::InvalidKey(segment.to_owned()))
}

/// Checks an object key: Storage's character set, no empty segments (they could not be told
/// apart from folders), at most 1024 bytes.
pub(crate) fn check_key(key: &str) -> Result<(), StorageError> {
    let valid_chars = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || KEY_PUNCTUATION.contains(&b));
    let valid_shape = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.split('/').all(|segment| !segment.is_empty());
    if valid_chars && valid_shape {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.to_owned()))
    }
}

/// Checks a bucket id: the key characters minus `/`, 1 to 100 characters.
pub(crate) fn check_bucket(bucket: &str) -> Result<(), StorageError> {
    let valid = !bucket.is_empty()
        && bucket.len() <= MAX_BUCKET_CHARS
        && bucket
            .bytes()
            .all(|b| b != b'/' && (b.is_ascii_alphanumeric() || KEY_PUNCTUATION.contains(&b)))
        && bucket != "."
        && bucket != "..";
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidBucketName)
    }
}

/// The owner uuid Storage records: the `sub` claim when it is a uuid (`owner` is a uuid
/// column; `owner_id` keeps any `sub`).
pub(crate) fn owner_uuid(subject: Option<&str>) -> Option<String> {
    subject
        .and_then(|sub| uuid::Uuid::parse_str(sub).ok())
        .map(|uuid| uuid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_storage_rules() {
        for key in [
            "a.png",
            "org/deliveries/7/signature.png",
            "with space/and (parens) & more!.txt",
            "x=1;y@2:z+3,?-'*$",
        ] {
            assert!(check_key(key).is_ok(), "{key}");
        }
        for key in ["", "ü.png", "a//b", "/a", "a/", "tab\there", "a#b", "a%b"] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
        assert!(check_key(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn bucket_ids() {
        assert!(check_bucket("org-files").is_ok());
        assert!(check_bucket("bucket!.*'()+,?-").is_ok());
        assert!(check_bucket(&"a".repeat(100)).is_ok());
        for bad in ["", "my/bucket", "文件夹", "..", &"a".repeat(101)] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_are_decoded_once() {
        assert_eq!(decode_segment("a%20b").unwrap(), "a b");
        assert_eq!(decode_segment("%C3%BC").unwrap(), "ü");
        assert_eq!(decode_segment("100%25").unwrap(), "100%");
        assert!(decode_segment("%FF").is_err());
    }

    #[test]
    fn owner_is_a_uuid_or_nothing() {
        let id = "0b4a6b3e-8f5e-4f47-9a52-1c7f0ad6b0b1";
        assert_eq!(owner_uuid(Some(id)).as_deref(), Some(id));
        assert_eq!(owner_uuid(Some("user-7")), None);
        assert_eq!(owner_uuid(None), None);
    }
}
