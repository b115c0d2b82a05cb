//! Object bytes in `object_store`: a local directory by default, any S3-compatible store by
//! configuration. Every write goes to a new immutable key `{bucket}/{name}/{version}`, is
//! streamed in parts (never buffered whole), measured and hashed on the way, and checked against
//! the size limit as it arrives.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use manifold_config::{EtagAlgorithm, StorageBackend, StorageConfig};
use md5::{Digest, Md5};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt};

use crate::error::StorageError;
use crate::local_write::LocalUpload;
use crate::staging::StagedUpload;

/// Why a streamed write did not complete. In every case the partial blob has been removed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// More bytes arrived than the limit allows.
    #[error("the object exceeded the size limit")]
    TooLarge,
    /// The request body failed (client went away, malformed multipart).
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// The store refused or failed.
    #[error("object store write failed")]
    Store(#[source] object_store::Error),
    /// Hashing the content stopped (the runtime is shutting down).
    #[error("hashing the object failed")]
    Hash,
}

impl From<WriteError> for StorageError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::TooLarge => StorageError::EntityTooLarge,
            WriteError::Body(message) => StorageError::Body(message),
            WriteError::Store(source) => StorageError::Backend(source),
            WriteError::Hash => StorageError::Internal("hashing the object failed".into()),
        }
    }
}

/// What a completed write stored.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    /// Bytes stored.
    pub(crate) size: u64,
    /// The ETag Storage reports: `"<md5 hex>"` of the content, or with
    /// [`EtagAlgorithm::Mtime`] one made from the write time, the size and the version.
    pub(crate) etag: String,
}

/// The object store and how uploads are cut into parts.
#[derive(Debug, Clone)]
pub(crate) struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The same store when it is the local disk: writes then go through [`LocalUpload`].
    local: Option<Arc<LocalFileSystem>>,
    part_size: usize,
    concurrency: usize,
    etag: EtagAlgorithm,
}

/// A download's bytes as a stream, with the range actually served.
pub(crate) struct BlobRead {
    /// The bytes.
    pub(crate) stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl Blobs {
    /// Opens the configured store: `local_root` (created if missing) for the local backend,
    /// or the `[storage.s3]` bucket.
    pub(crate) fn from_config(
        config: &StorageConfig,
        local_root: &FsPath,
    ) -> Result<Self, object_store::Error> {
        let mut local = None;
        let store: Arc<dyn ObjectStore> = match config.backend {
            StorageBackend::Local => {
                let root = config.local_dir.as_deref().unwrap_or(local_root);
                std::fs::create_dir_all(root).map_err(|source| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(source),
                })?;
                // Cleanup removes the per-object directories a delete leaves empty.
                let store =
                    Arc::new(LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true));
                local = Some(store.clone());
                store
            }
            StorageBackend::S3 => {
                let s3 = &config.s3;
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(s3.region.as_deref().unwrap_or("us-east-1"))
                    .with_virtual_hosted_style_request(!s3.force_path_style);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key.expose());
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose());
                }
                Arc::new(builder.build()?)
            }
        };
        let mut blobs = Self::new(store, config.upload_part_size, config.upload_concurrency)
            .with_etag(config.etag_algorithm);
        blobs.local = local;
        Ok(blobs)
    }

    /// Wraps any store (tests use this with other stores).
    pub(crate) fn new(store: Arc<dyn ObjectStore>, part_size: usize, concurrency: usize) -> Self {
        Self {
            store,
            local: None,
            part_size,
            concurrency: concurrency.max(1),
            etag: EtagAlgorithm::Md5,
        }
    }

    /// Makes ETags with `algorithm`.
    pub(crate) fn with_etag(mut self, algorithm: EtagAlgorithm) -> Self {
        self.etag = algorithm;
        self
    }

    /// The immutable key of one version of an object. Each segment is encoded by object_store,
    /// so `..` or reserved characters in a name cannot escape the bucket's prefix.
    pub(crate) fn key(bucket: &str, name: &str, version: &str) -> Path {
        std::iter::once(bucket)
            .chain(name.split('/'))
            .chain(std::iter::once(version))
            .map(PathPart::from)
            .collect()
    }

    /// Streams `body` to `key` in parts, counting and hashing as it goes. More than `limit`
    /// bytes aborts with [`WriteError::TooLarge`]; any failure aborts the upload, and so does
    /// dropping this future (the client went away mid-body), so no blob is left at `key`.
    pub(crate) async fn write<S, E>(
        &self,
        key: &Path,
        body: S,
        limit: u64,
    ) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut upload = match &self.local {
            Some(local) => {
                let target = local.path_to_filesystem(key).map_err(WriteError::Store)?;
                Sink::Local(LocalUpload::start(target).await.map_err(local_error)?)
            }
            None => Sink::Store(
                StagedUpload::start(Arc::clone(&self.store), key, self.part_size)
                    .await
                    .map_err(WriteError::Store)?,
            ),
        };
        let mut hasher = (self.etag == EtagAlgorithm::Md5).then(PipelinedMd5::default);
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        let outcome = loop {
            let chunk = match body.next().await {
                None => break Ok(()),
                Some(Err(error)) => break Err(WriteError::Body(error.to_string())),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if size > limit {
                break Err(WriteError::TooLarge);
            }
            if let Some(hasher) = &mut hasher
                && let Err(error) = hasher.update(chunk.clone()).await
            {
                break Err(error);
            }
            // Bounded parts in flight keep an upload's memory at about
            // part_size * (concurrency + 1), whatever the object's size.
            if let Err(error) = upload.wait_for_capacity(self.concurrency).await {
                break Err(error);
            }
            if let Err(error) = upload.put(chunk) {
                break Err(error);
            }
        };
        match outcome {
            Ok(()) => {
                let digest = match hasher {
                    Some(hasher) => match hasher.finalize().await {
                        Ok(digest) => Some(digest),
                        Err(error) => {
                            upload.abort().await;
                            return Err(error);
                        }
                    },
                    None => None,
                };
                upload.finish().await?;
                let etag = match digest {
                    Some(digest) => format!("\"{}\"", hex_lower(&digest)),
                    None => write_time_etag(key, size),
                };
                Ok(Written { size, etag })
            }
            Err(error) => {
                upload.abort().await;
                Err(error)
            }
        }
    }

    /// Opens `key`, optionally a byte range of it, as a stream.
    pub(crate) async fn read(
        &self,
        key: &Path,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BlobRead, object_store::Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(key, options).await?;
        let served = result.range.clone();
        let stream = match result.payload {
            GetResultPayload::File(file, _path) => crate::local_read::stream(file, served),
            GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
        };
        Ok(BlobRead { stream })
    }

    /// Removes `key`; a missing blob is not an error (deletes are retried after failures).
    pub(crate) async fn delete(&self, key: &Path) -> Result<(), object_store::Error> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Removes blobs that are no longer referenced, after the transaction that dropped them
    /// committed. Failures only leave garbage behind, so they are logged, not returned.
    pub(crate) async fn delete_after_commit(&self, keys: &[Path]) {
        for key in keys {
            if let Err(error) = self.delete(key).await {
                tracing::warn!(%error, key = %key, "removing an unreferenced blob failed");
            }
        }
    }

    /// Copies `from` to `to` inside the store (server-side on S3).
    pub(crate) async fn copy(&self, from: &Path, to: &Path) -> Result<(), object_store::Error> {
        self.store.copy(from, to).await
    }

    /// True when `key` exists.
    #[cfg(test)]
    pub(crate) async fn exists(&self, key: &Path) -> Result<bool, object_store::Error> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// Where a write's bytes go: the local disk's own writer, or any store's multipart upload.
enum Sink {
    Local(LocalUpload),
    Store(StagedUpload),
}

impl Sink {
    async fn wait_for_capacity(&mut self, max: usize) -> Result<(), WriteError> {
        match self {
            // The disk takes a few writes at once better than one; the local writer's parts
            // are its own size, so its bound is its own.
            Self::Local(upload) => upload
                .wait_for_capacity(crate::local_write::WRITES_IN_FLIGHT)
                .await
                .map_err(local_error),
            Self::Store(upload) => upload
                .wait_for_capacity(max)
                .await
                .map_err(WriteError::Store),
        }
    }

    fn put(&mut self, chunk: Bytes) -> Result<(), WriteError> {
        match self {
            Self::Local(upload) => upload.put(chunk).map_err(local_error),
            Self::Store(upload) => upload.put(chunk).map_err(WriteError::Store),
        }
    }

    async fn finish(self) -> Result<(), WriteError> {
        match self {
            Self::Local(upload) => upload.finish().await.map_err(local_error),
            Self::Store(upload) => upload.finish().await.map_err(WriteError::Store),
        }
    }

    async fn abort(self) {
        match self {
            Self::Local(upload) => upload.abort().await,
            Self::Store(upload) => upload.abort().await,
        }
    }
}

fn local_error(source: std::io::Error) -> WriteError {
    WriteError::Store(object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(source),
    })
}

/// MD5 of a streamed body, hashed on the blocking pool one chunk behind the stream: the next
/// chunk is received and written while the previous one is hashed, and the runtime's workers
/// never spend the hashing time (MD5 runs at well under a core's memory bandwidth). No thread is
/// held between chunks, so slow uploads cost nothing while they wait.
#[derive(Default)]
struct PipelinedMd5 {
    idle: Option<Md5>,
    busy: Option<tokio::task::JoinHandle<Md5>>,
}

impl PipelinedMd5 {
    /// Chunks smaller than this are hashed inline: a hand-off would cost more than it saves.
    const INLINE_BELOW: usize = 16 * 1024;

    async fn take(&mut self) -> Result<Md5, WriteError> {
        match self.busy.take() {
            // Hashing a slice cannot panic; a join error means the runtime is shutting down.
            Some(task) => task.await.map_err(|_| WriteError::Hash),
            None => Ok(self.idle.take().unwrap_or_default()),
        }
    }

    async fn update(&mut self, chunk: Bytes) -> Result<(), WriteError> {
        let mut hasher = self.take().await?;
        if chunk.len() < Self::INLINE_BELOW {
            hasher.update(&chunk);
            self.idle = Some(hasher);
        } else {
            self.busy = Some(tokio::task::spawn_blocking(move || {
                hasher.update(&chunk);
                hasher
            }));
        }
        Ok(())
    }

    async fn finalize(mut self) -> Result<[u8; 16], WriteError> {
        Ok(self.take().await?.finalize().into())
    }
}

/// `"<ms since the epoch, hex>-<size hex>-<version prefix>"`: Supabase's `mtime` ETag with
/// the first characters of the version (the key's last segment) added, so two writes of the
/// same size in the same millisecond still differ.
fn write_time_etag(key: &Path, size: u64) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let version = key.filename().unwrap_or_default();
    let prefix: String = version
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("\"{millis:x}-{size:x}-{prefix}\"")
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn blobs() -> Blobs {
        Blobs::new(Arc::new(InMemory::new()), 5 * 1024 * 1024, 2)
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    async fn collect(read: BlobRead) -> Vec<u8> {
        read.stream
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
            .unwrap()
    }

    #[test]
    fn keys_are_encoded_per_segment() {
        assert_eq!(
            Blobs::key("b", "a/../c d.png", "v1").as_ref(),
            "b/a/%2E%2E/c d.png/v1"
        );
        assert_eq!(Blobs::key("b", "x#y", "v").as_ref(), "b/x%23y/v");
    }

    #[tokio::test]
    async fn write_hashes_counts_and_reads_back_ranges() {
        let blobs = blobs();
        let key = Blobs::key("b", "hello.txt", "v1");
        let written = blobs
            .write(&key, chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert_eq!(written.size, 11);
        // md5("hello world")
        assert_eq!(written.etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
        assert_eq!(
            collect(blobs.read(&key, None).await.unwrap()).await,
            b"hello world"
        );
        assert_eq!(
            collect(blobs.read(&key, Some(6..11)).await.unwrap()).await,
            b"world"
        );
    }

    #[tokio::test]
    async fn mtime_etags_skip_the_hash_and_differ_per_version() {
        let blobs = blobs().with_etag(EtagAlgorithm::Mtime);
        let first = Blobs::key("b", "same.txt", "0f1e2d3c-aaaa-4bbb-8ccc-000000000001");
        let second = Blobs::key("b", "same.txt", "9a8b7c6d-aaaa-4bbb-8ccc-000000000002");
        let a = blobs
            .write(&first, chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        let b = blobs
            .write(&second, chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert_eq!(a.size, 11);
        assert!(
            a.etag.starts_with('"') && a.etag.ends_with("-b-0f1e2d3c\""),
            "{}",
            a.etag
        );
        assert!(b.etag.ends_with("-b-9a8b7c6d\""), "{}", b.etag);
        assert_ne!(a.etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
        assert_eq!(
            collect(blobs.read(&second, None).await.unwrap()).await,
            b"hello world"
        );
    }

    #[tokio::test]
    async fn over_limit_and_body_errors_leave_no_blob() {
        let blobs = blobs();
        let key = Blobs::key("b", "big", "v1");
        let error = blobs
            .write(&key, chunks(&[b"12345", b"678"]), 7)
            .await
            .unwrap_err();
        assert!(matches!(error, WriteError::TooLarge));
        assert!(!blobs.exists(&key).await.unwrap());

        let failing = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err("connection reset".to_owned()),
        ]);
        let error = blobs.write(&key, failing, 100).await.unwrap_err();
        assert!(matches!(error, WriteError::Body(_)));
        assert!(!blobs.exists(&key).await.unwrap());
    }

    #[tokio::test]
    async fn local_files_stream_in_large_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig::default();
        let blobs = Blobs::from_config(&config, dir.path()).unwrap();
        let key = Blobs::key("b", "f", "v");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let body = futures_util::stream::iter(
            data.chunks(10_000)
                .map(|c| Ok::<_, String>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        blobs.write(&key, body, u64::MAX).await.unwrap();
        assert_eq!(collect(blobs.read(&key, None).await.unwrap()).await, data);
        assert_eq!(
            collect(blobs.read(&key, Some(1000..300_000)).await.unwrap()).await,
            data[1000..300_000]
        );
        blobs.delete(&key).await.unwrap();
        assert!(!blobs.exists(&key).await.unwrap());
        // Automatic cleanup removed the object's now-empty directories.
        assert!(!dir.path().join("b").exists());
    }
}
