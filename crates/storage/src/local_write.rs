//! Blob writes to the local disk. A large object's bytes after its first part bypass the page
//! cache (`O_DIRECT`): copying every byte into the page cache and writing it back later costs
//! more CPU than the disk's own transfer (on the reference machine page-cache writes ran at a
//! third of the disk's direct-write speed), and a gigabyte upload would evict the small, hot
//! objects (delivery photos, signatures) that downloads serve from memory. Small objects and the
//! first part of large ones stay in the page cache, so recent uploads download from memory.
//!
//! The bytes go to a staging file next to the destination and are renamed into place when
//! complete, the layout `object_store`'s `LocalFileSystem` reads. A filesystem without
//! `O_DIRECT` (tmpfs on older kernels) is written through the page cache instead.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::JoinSet;

/// Bytes per write handed to the disk: a multiple of any block size `O_DIRECT` aligns to.
pub(crate) const PART_SIZE: usize = 4 * 1024 * 1024;
/// Writes of one upload in flight; with [`PART_SIZE`] this bounds an upload's memory.
pub(crate) const WRITES_IN_FLIGHT: usize = 4;
/// Alignment of direct-write buffers, offsets and lengths (covers 512 B and 4 KiB sectors).
const ALIGN: usize = 4096;

/// The staging file and what writes to it.
struct Staging {
    path: PathBuf,
    buffered: File,
    direct: Option<File>,
    /// Buffers of finished writes, reused: an upload allocates one per write in flight.
    spare: Mutex<Vec<Aligned>>,
}

impl Staging {
    /// Writes the first part through the page cache, straight from the request's chunks.
    fn write_head(&self, parts: &[Bytes]) -> std::io::Result<()> {
        let mut at = 0;
        for part in parts {
            self.buffered.write_all_at(part, at)?;
            at += part.len() as u64;
        }
        Ok(())
    }

    /// Writes `length` bytes of an aligned buffer at `offset`: directly when they are a whole
    /// part, else (the tail) through the page cache. The buffer goes back to the spares.
    fn write_part(&self, offset: u64, buffer: Aligned, length: usize) -> std::io::Result<()> {
        let bytes = &buffer.bytes[buffer.start..buffer.start + length];
        let outcome = match &self.direct {
            Some(direct) if length == PART_SIZE => match direct.write_all_at(bytes, offset) {
                // The filesystem opened the file for direct I/O but refuses this write.
                Err(error) if error.kind() == ErrorKind::InvalidInput => {
                    self.buffered.write_all_at(bytes, offset)
                }
                other => other,
            },
            _ => self.buffered.write_all_at(bytes, offset),
        };
        if let Ok(mut spare) = self.spare.lock() {
            spare.push(buffer);
        }
        outcome
    }

    fn aligned(&self) -> Aligned {
        self.spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_else(Aligned::new)
    }
}

/// A part's buffer whose bytes from `start` are aligned for direct I/O.
struct Aligned {
    bytes: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Self {
        let bytes = vec![0u8; PART_SIZE + ALIGN];
        let start = bytes.as_ptr().align_offset(ALIGN);
        Self { bytes, start }
    }

    fn slot(&mut self, at: usize, length: usize) -> &mut [u8] {
        &mut self.bytes[self.start + at..self.start + at + length]
    }
}

/// An upload that has neither completed nor been cleaned up.
struct Pending {
    staging: Arc<Staging>,
    target: PathBuf,
    /// The first part, as it arrived (zero copy: small objects never copy).
    head: Vec<Bytes>,
    /// A later part, copied as it arrives so the request's chunks are freed at once.
    current: Option<Aligned>,
    filled: usize,
    offset: u64,
    writes: JoinSet<std::io::Result<()>>,
}

/// A local blob being written; removes its staging file unless [`LocalUpload::finish`]
/// renamed it into place.
pub(crate) struct LocalUpload {
    pending: Option<Pending>,
}

fn gone() -> std::io::Error {
    std::io::Error::other("the upload was already finished")
}

impl LocalUpload {
    /// Creates the staging file next to `target` (and the directories to it).
    pub(crate) async fn start(target: PathBuf) -> std::io::Result<Self> {
        let (staging, target) = tokio::task::spawn_blocking(move || {
            open_staging(&target).map(|staging| (staging, target))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Self {
            pending: Some(Pending {
                staging: Arc::new(staging),
                target,
                head: Vec::new(),
                current: None,
                filled: 0,
                offset: 0,
                writes: JoinSet::new(),
            }),
        })
    }

    /// Waits until fewer than `max` writes are in flight (back pressure on the body).
    pub(crate) async fn wait_for_capacity(&mut self, max: usize) -> std::io::Result<()> {
        let pending = self.pending.as_mut().ok_or_else(gone)?;
        while !pending.writes.is_empty() && pending.writes.len() >= max {
            match pending.writes.join_next().await {
                Some(Ok(result)) => result?,
                Some(Err(join)) => return Err(std::io::Error::other(join)),
                None => break,
            }
        }
        Ok(())
    }

    /// Buffers `bytes`, handing each full part to the blocking pool.
    pub(crate) fn put(&mut self, mut bytes: Bytes) -> std::io::Result<()> {
        let pending = self.pending.as_mut().ok_or_else(gone)?;
        while !bytes.is_empty() {
            let take = bytes.len().min(PART_SIZE - pending.filled);
            let piece = bytes.split_to(take);
            if pending.offset == 0 {
                pending.head.push(piece);
            } else {
                let at = pending.filled;
                let staging = &pending.staging;
                pending
                    .current
                    .get_or_insert_with(|| staging.aligned())
                    .slot(at, take)
                    .copy_from_slice(&piece);
            }
            pending.filled += take;
            if pending.filled == PART_SIZE {
                pending.spawn_write();
            }
        }
        Ok(())
    }

    /// Writes the rest, waits for every write and renames the file into place. On failure the
    /// staging file is removed before the error returns.
    pub(crate) async fn finish(mut self) -> std::io::Result<()> {
        let outcome = self.complete().await;
        if outcome.is_err() {
            self.abort().await;
        }
        outcome
    }

    async fn complete(&mut self) -> std::io::Result<()> {
        let pending = self.pending.as_mut().ok_or_else(gone)?;
        if pending.filled > 0 {
            pending.spawn_write();
        }
        self.wait_for_capacity(1).await?;
        let pending = self.pending.as_ref().ok_or_else(gone)?;
        let staging = pending.staging.clone();
        let target = pending.target.clone();
        tokio::task::spawn_blocking(move || std::fs::rename(&staging.path, &target))
            .await
            .map_err(std::io::Error::other)??;
        // In place: the blob is the caller's to keep (or remove) from here on.
        self.pending = None;
        Ok(())
    }

    /// Removes the staging file now (the body failed or crossed the size limit).
    pub(crate) async fn abort(mut self) {
        if let Some(pending) = self.pending.take() {
            pending.clean_up().await;
        }
    }
}

impl Pending {
    /// Hands the part being filled to the blocking pool.
    fn spawn_write(&mut self) {
        let staging = self.staging.clone();
        let (offset, length) = (self.offset, self.filled);
        self.offset += length as u64;
        self.filled = 0;
        if offset == 0 {
            let head = std::mem::take(&mut self.head);
            self.writes
                .spawn_blocking(move || staging.write_head(&head));
        } else if let Some(buffer) = self.current.take() {
            self.writes
                .spawn_blocking(move || staging.write_part(offset, buffer, length));
        }
    }

    async fn clean_up(mut self) {
        self.writes.shutdown().await;
        let path = self.staging.path.clone();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(&path)).await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(error)) if error.kind() == ErrorKind::NotFound => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, path = %self.staging.path.display(), "removing an unfinished upload failed");
            }
            Err(error) => {
                tracing::warn!(%error, path = %self.staging.path.display(), "removing an unfinished upload failed");
            }
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        // The request went away mid-body: the staging file is removed in the background. A
        // killed server leaves it behind, never visible (no row names it, and the name is not
        // one an object key maps to).
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(pending.clean_up())),
            Err(_) => {
                let _ = std::fs::remove_file(&pending.staging.path);
            }
        }
    }
}

/// Creates `<target>#<random digits>` with a buffered and, where the filesystem allows, a
/// direct handle. A `#` never appears in a path an object key maps to, and `LocalFileSystem`
/// leaves names ending in `#<digits>` (its own staging files) out of listings.
fn open_staging(target: &Path) -> std::io::Result<Staging> {
    let parent = target
        .parent()
        .ok_or_else(|| std::io::Error::other("an object path without a directory"))?;
    let mut name = target.as_os_str().to_owned();
    name.push(format!("#{}", uuid::Uuid::new_v4().as_u128()));
    let path = PathBuf::from(name);
    let mut attempts = 0;
    let buffered = loop {
        std::fs::create_dir_all(parent)?;
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => break file,
            // A delete of another object removed the (then empty) directory in between.
            Err(error) if error.kind() == ErrorKind::NotFound && attempts < 3 => attempts += 1,
            Err(error) => return Err(error),
        }
    };
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(&path)
        .ok();
    Ok(Staging {
        path,
        buffered,
        direct,
        spare: Mutex::new(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `total` bytes of a pattern that shows misplaced parts, cut into uneven chunks.
    fn content(total: usize) -> (Vec<u8>, Vec<Bytes>) {
        let all: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut chunks = Vec::new();
        let mut at = 0;
        let mut step = 1;
        while at < all.len() {
            let end = (at + step).min(all.len());
            chunks.push(Bytes::copy_from_slice(&all[at..end]));
            at = end;
            step = step * 7 % 1_000_003 + 65_536;
        }
        (all, chunks)
    }

    async fn write_all(target: PathBuf, chunks: Vec<Bytes>) -> std::io::Result<()> {
        let mut upload = LocalUpload::start(target).await?;
        for chunk in chunks {
            upload.wait_for_capacity(2).await?;
            upload.put(chunk)?;
        }
        upload.finish().await
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        walk(dir)
            .into_iter()
            .filter(|name| name.contains('#'))
            .collect()
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
        found
    }

    #[tokio::test]
    async fn large_and_small_objects_are_written_whole_and_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        for total in [0, 10, PART_SIZE - 1, PART_SIZE, 3 * PART_SIZE + 12_345] {
            let target = dir
                .path()
                .join("bucket")
                .join(format!("{total}"))
                .join("v1");
            let (all, chunks) = content(total);
            write_all(target.clone(), chunks).await.unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), all, "{total} bytes");
        }
        assert!(leftovers(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_filesystem_without_direct_io_is_written_through_the_page_cache() {
        // tmpfs refuses O_DIRECT on many kernels; either way the content must be whole.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let target = dir.path().join("b").join("o").join("v");
        let (all, chunks) = content(2 * PART_SIZE + 77);
        write_all(target.clone(), chunks).await.unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), all);
    }

    #[tokio::test]
    async fn an_aborted_or_dropped_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("b").join("o").join("v1");
        let (_, chunks) = content(2 * PART_SIZE + 5);
        let mut upload = LocalUpload::start(target.clone()).await.unwrap();
        for chunk in chunks.clone() {
            upload.put(chunk).unwrap();
        }
        upload.abort().await;
        assert!(!target.exists());
        assert!(leftovers(dir.path()).is_empty());

        let mut upload = LocalUpload::start(target.clone()).await.unwrap();
        for chunk in chunks {
            upload.put(chunk).unwrap();
        }
        assert_eq!(leftovers(dir.path()).len(), 1);
        drop(upload);
        for _ in 0..100 {
            if leftovers(dir.path()).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!target.exists());
        assert!(leftovers(dir.path()).is_empty());
    }
}
