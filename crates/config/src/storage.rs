//! `[storage]`: where object bytes live and the limits uploads obey.
//!
//! ```toml
//! [storage]
//! backend = "s3"                 # or "local" (default): files under <data_dir>/storage
//! max_file_size = "50GB"         # bytes as an integer, or "500KB" / "1.5GB" strings
//! etag_algorithm = "md5"         # or "mtime": no content hash (uploads run at disk speed)
//! [storage.s3]
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! bucket = "manifold"
//! access_key_id = "…"
//! secret_access_key = "…"
//! force_path_style = true
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::Secret;

/// Default largest object: Supabase's self-hosted default is 50 GB.
const DEFAULT_MAX_FILE_SIZE: u64 = 50 * 1000 * 1000 * 1000;
/// Supabase's default lifetime of a signed upload URL: two hours.
const DEFAULT_SIGNED_UPLOAD_EXPIRY_SECS: u64 = 2 * 3600;
/// S3 refuses multipart parts under 5 MiB (except the last one).
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight per upload; with the part size this bounds an upload's memory.
const DEFAULT_UPLOAD_CONCURRENCY: usize = 2;

/// Where object bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// A directory on the local filesystem (`local_dir`, default `<data_dir>/storage`).
    #[default]
    Local,
    /// Any S3-compatible service (AWS, MinIO, Garage, …), configured in `[storage.s3]`.
    S3,
}

/// How an object's ETag is made, as Supabase Storage's `STORAGE_FILE_ETAG_ALGORITHM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EtagAlgorithm {
    /// `"<md5 hex>"` of the content (the default, what Supabase reports). Hashing runs at about
    /// one core's MD5 speed, which bounds a single upload's throughput.
    #[default]
    Md5,
    /// `"<write time ms hex>-<size hex>-<version prefix>"`: no hash, so uploads are limited
    /// by the disk and network only. Still changes with every write (each write is a new
    /// version), so If-None-Match and caches stay correct.
    Mtime,
}

/// Storage settings, validated while they are read (an S3 backend needs a bucket).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawStorageConfig")]
pub struct StorageConfig {
    /// Where object bytes live.
    pub backend: StorageBackend,
    /// Directory of the local backend; `None` means `<data_dir>/storage`.
    pub local_dir: Option<PathBuf>,
    /// The S3 backend's connection.
    pub s3: S3Config,
    /// Largest object accepted by any bucket, in bytes (a bucket's own limit may only lower it).
    pub max_file_size: u64,
    /// Lifetime of signed upload URLs, in seconds.
    pub signed_upload_expiry_secs: u64,
    /// Size of each part an upload is streamed to S3 in, in bytes (at least 5 MiB). The local
    /// disk is written in 4 MiB parts, 4 at a time, large objects bypassing the page cache.
    pub upload_part_size: usize,
    /// Parts of one upload written to S3 at the same time.
    pub upload_concurrency: usize,
    /// How ETags are made.
    pub etag_algorithm: EtagAlgorithm,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Local,
            local_dir: None,
            s3: S3Config::default(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            signed_upload_expiry_secs: DEFAULT_SIGNED_UPLOAD_EXPIRY_SECS,
            upload_part_size: MIN_PART_SIZE,
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            etag_algorithm: EtagAlgorithm::Md5,
        }
    }
}

/// Connection to an S3-compatible object store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; unset means AWS itself. A plain `http://`
    /// endpoint is allowed (local MinIO/Garage).
    pub endpoint: Option<String>,
    /// Region; `us-east-1` when unset.
    pub region: Option<String>,
    /// The bucket holding every object (required for the S3 backend).
    pub bucket: String,
    /// Access key id; unset means the usual AWS environment/instance credentials.
    pub access_key_id: Option<Secret>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
    /// Path-style requests (`endpoint/bucket/key`), as most self-hosted servers need.
    pub force_path_style: bool,
}

/// `[storage]` as written, before validation.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStorageConfig {
    backend: StorageBackend,
    local_dir: Option<PathBuf>,
    s3: S3Config,
    max_file_size: ByteSize,
    signed_upload_expiry_secs: u64,
    upload_part_size: ByteSize,
    upload_concurrency: usize,
    etag_algorithm: EtagAlgorithm,
}

impl Default for RawStorageConfig {
    fn default() -> Self {
        let defaults = StorageConfig::default();
        Self {
            backend: defaults.backend,
            local_dir: defaults.local_dir,
            s3: defaults.s3,
            max_file_size: ByteSize::Bytes(defaults.max_file_size),
            signed_upload_expiry_secs: defaults.signed_upload_expiry_secs,
            upload_part_size: ByteSize::Bytes(defaults.upload_part_size as u64),
            upload_concurrency: defaults.upload_concurrency,
            etag_algorithm: defaults.etag_algorithm,
        }
    }
}

impl TryFrom<RawStorageConfig> for StorageConfig {
    type Error = String;

    fn try_from(raw: RawStorageConfig) -> Result<Self, Self::Error> {
        let max_file_size = raw.max_file_size.bytes("storage.max_file_size")?;
        let upload_part_size = raw.upload_part_size.bytes("storage.upload_part_size")?;
        let upload_part_size = usize::try_from(upload_part_size)
            .map_err(|_| "storage.upload_part_size is too large".to_owned())?;
        if upload_part_size < MIN_PART_SIZE {
            return Err(format!(
                "storage.upload_part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)"
            ));
        }
        if raw.upload_concurrency == 0 {
            return Err("storage.upload_concurrency must be at least 1".to_owned());
        }
        if raw.backend == StorageBackend::S3 && raw.s3.bucket.trim().is_empty() {
            return Err("storage.s3.bucket must be set when storage.backend = \"s3\"".to_owned());
        }
        Ok(Self {
            backend: raw.backend,
            local_dir: raw.local_dir,
            s3: raw.s3,
            max_file_size,
            signed_upload_expiry_secs: raw.signed_upload_expiry_secs,
            upload_part_size,
            upload_concurrency: raw.upload_concurrency,
            etag_algorithm: raw.etag_algorithm,
        })
    }
}

/// A size written as a number of bytes or as Supabase's `"50MB"` strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    fn bytes(&self, setting: &str) -> Result<u64, String> {
        match self {
            Self::Bytes(bytes) => Ok(*bytes),
            Self::Text(text) => parse_byte_size(text).ok_or_else(|| {
                format!("{setting}: invalid size `{text}`, use e.g. 20GB / 20MB / 30KB / 3B")
            }),
        }
    }
}

/// Parses Supabase Storage's size strings: a decimal number and a unit `B`, `KB`, `MB` or `GB`
/// (case-insensitive, powers of 1000, as Storage's `parseFileSizeToBytes`), or bare digits.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let upper = text.to_ascii_uppercase();
    let (number, multiplier) = [("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1.0)]
        .iter()
        .find_map(|(unit, multiplier)| {
            upper
                .strip_suffix(unit)
                .map(|number| (number.trim(), *multiplier))
        })?;
    let valid_number = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1;
    if !valid_number {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let bytes = (value * multiplier).round();
    // Beyond 2^63 a float no longer converts exactly; no real limit is that large.
    (0.0..9.2e18).contains(&bytes).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_supabase_storage() {
        assert_eq!(parse_byte_size("1.5MB"), Some(1_500_000));
        assert_eq!(parse_byte_size("2.25GB"), Some(2_250_000_000));
        assert_eq!(parse_byte_size("500kb"), Some(500_000));
        assert_eq!(parse_byte_size("10B"), Some(10));
        assert_eq!(parse_byte_size("42"), Some(42));
        assert_eq!(parse_byte_size("50 MB"), Some(50_000_000));
        assert_eq!(parse_byte_size("bad"), None);
        assert_eq!(parse_byte_size("1TB"), None);
        assert_eq!(parse_byte_size("MB"), None);
        assert_eq!(parse_byte_size("1.2.3MB"), None);
        assert_eq!(parse_byte_size("-1MB"), None);
    }

    fn parse(text: &str) -> Result<StorageConfig, String> {
        toml::from_str::<StorageConfig>(text).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_are_the_local_backend() {
        let config = parse("").unwrap();
        assert_eq!(config.backend, StorageBackend::Local);
        assert_eq!(config.max_file_size, DEFAULT_MAX_FILE_SIZE);
        assert_eq!(config.upload_part_size, MIN_PART_SIZE);
        assert_eq!(config.etag_algorithm, EtagAlgorithm::Md5);
    }

    #[test]
    fn etag_algorithm_is_md5_or_mtime() {
        assert_eq!(
            parse("etag_algorithm = \"mtime\"").unwrap().etag_algorithm,
            EtagAlgorithm::Mtime
        );
        assert_eq!(
            parse("etag_algorithm = \"md5\"").unwrap().etag_algorithm,
            EtagAlgorithm::Md5
        );
        assert!(parse("etag_algorithm = \"sha1\"").is_err());
    }

    #[test]
    fn s3_needs_a_bucket_and_sizes_accept_strings() {
        let error = parse("backend = \"s3\"").unwrap_err();
        assert!(error.contains("storage.s3.bucket"), "{error}");
        let config = parse(
            "backend = \"s3\"\nmax_file_size = \"1GB\"\n[s3]\nbucket = \"b\"\n\
             endpoint = \"http://127.0.0.1:9000\"\nsecret_access_key = \"k\"\nforce_path_style = true",
        )
        .unwrap();
        assert_eq!(config.backend, StorageBackend::S3);
        assert_eq!(config.max_file_size, 1_000_000_000);
        assert!(config.s3.force_path_style);
        assert_eq!(
            format!("{:?}", config.s3.secret_access_key),
            "Some(Secret([redacted]))"
        );
    }

    #[test]
    fn small_parts_and_unknown_keys_are_refused() {
        assert!(parse("upload_part_size = \"1MB\"").is_err());
        assert!(parse("nope = 1").is_err());
        assert!(parse("max_file_size = \"lots\"").is_err());
    }
}
