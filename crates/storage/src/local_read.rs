//! Downloads from the local disk: positional reads of 1 MiB on the blocking pool, two ahead of
//! the socket, into buffers that return to a small shared pool once the socket has sent them.
//! (object_store's own file stream reads 8 KiB at a time, which caps downloads well below disk
//! speed; a fresh buffer per read costs a page fault per 4 KiB as the kernel copies into it,
//! which on a virtual machine cost more than the copy itself.)
//!
//! Ranges of [`DIRECT_FROM`] bytes or more are read with `O_DIRECT`, straight from the disk into
//! the pooled buffers: filling the page cache on the way costs more CPU than the disk transfer,
//! and a large download would evict the small, hot objects. Smaller ranges, and filesystems
//! without direct I/O, read through the page cache.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// Bytes per read.
const READ_SIZE: usize = 1024 * 1024;
/// Reads in flight ahead of the socket.
const READ_AHEAD: usize = 2;
/// Buffers the pool keeps between downloads (the rest are freed).
const POOLED: usize = 8;
/// Ranges at least this long are read with `O_DIRECT`.
pub(crate) const DIRECT_FROM: u64 = 8 * 1024 * 1024;
/// Alignment of direct reads' buffers, offsets and lengths (512 B and 4 KiB sectors).
const ALIGN: usize = 4096;
/// Size of a pooled buffer: a whole read plus room to align it.
const BUFFER_SIZE: usize = READ_SIZE + ALIGN;

/// Full-size read buffers, shared by all downloads.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A read buffer handed to the socket as [`Bytes`] (the bytes at `window`); back to the pool
/// when sent.
struct Pooled {
    buffer: Vec<u8>,
    window: Range<usize>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[self.window.clone()]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.buffer.len() == BUFFER_SIZE
            && let Ok(mut pool) = POOL.lock()
            && pool.len() < POOLED
        {
            pool.push(std::mem::take(&mut self.buffer));
        }
    }
}

fn pooled_buffer() -> Vec<u8> {
    POOL.lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .unwrap_or_else(|| vec![0u8; BUFFER_SIZE])
}

fn shorter() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "object file shorter than recorded",
    )
}

/// Reads `offset..offset + length` of `file` fully, through the page cache.
fn read_part(file: &File, offset: u64, length: usize) -> std::io::Result<Bytes> {
    // Short reads (small objects, the ends of a range) get a buffer of their own size.
    let mut buffer = if length == READ_SIZE {
        pooled_buffer()
    } else {
        vec![0u8; length]
    };
    file.read_exact_at(&mut buffer[..length], offset)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => shorter(),
            _ => error,
        })?;
    Ok(Bytes::from_owner(Pooled {
        buffer,
        window: 0..length,
    }))
}

/// Reads `offset..offset + length` of a file opened with `O_DIRECT`: whole aligned blocks
/// around the range into an aligned pooled buffer, then the range's window of it.
fn read_direct(file: &File, offset: u64, length: usize) -> std::io::Result<Bytes> {
    let mut buffer = pooled_buffer();
    let start = buffer.as_ptr().align_offset(ALIGN);
    let skip = (offset % ALIGN as u64) as usize;
    let aligned_offset = offset - skip as u64;
    let want = skip + length;
    let span = want.div_ceil(ALIGN) * ALIGN;
    if start + span > buffer.len() {
        return Err(std::io::Error::other(
            "a direct read larger than its buffer",
        ));
    }
    let mut filled = 0;
    while filled < want {
        // The last block may run past the end of the file: the read then returns short.
        let read = file.read_at(
            &mut buffer[start + filled..start + span],
            aligned_offset + filled as u64,
        )?;
        if read == 0 || (filled + read < want && read % ALIGN != 0) {
            return Err(shorter());
        }
        filled += read;
    }
    Ok(Bytes::from_owner(Pooled {
        buffer,
        window: start + skip..start + skip + length,
    }))
}

/// `range` of `file` as a stream of chunks, in order.
pub(crate) fn stream(
    file: File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    // Direct reads where the range is long and the filesystem allows it.
    let direct = range.end - range.start >= DIRECT_FROM
        && nix::fcntl::fcntl(
            &file,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_DIRECT),
        )
        .is_ok();
    let file = Arc::new(file);
    // Parts end on multiples of READ_SIZE, so a direct read's aligned span fits one buffer.
    let step = READ_SIZE as u64;
    let mut next = range.start;
    let parts = std::iter::from_fn(move || {
        if next >= range.end {
            return None;
        }
        let end = ((next / step + 1) * step).min(range.end);
        let part = (next, usize::try_from(end - next).unwrap_or(READ_SIZE));
        next = end;
        Some(part)
    });
    futures_util::stream::iter(parts)
        .map(move |(offset, length)| {
            let file = file.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    if direct {
                        read_direct(&file, offset, length)
                    } else {
                        read_part(&file, offset, length)
                    }
                })
                .await
                .map_err(std::io::Error::other)?
            }
        })
        .buffered(READ_AHEAD)
        .boxed()
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    async fn read(file: &std::path::Path, range: Range<u64>) -> std::io::Result<Vec<u8>> {
        stream(File::open(file)?, range)
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
    }

    #[tokio::test]
    async fn ranges_come_back_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let content: Vec<u8> = (0..9 * READ_SIZE + 4321).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let len = content.len() as u64;
        // Short ranges read through the page cache, long ones directly; ends inside blocks.
        for range in [
            0..len,
            0..0,
            5..6,
            17..len - 3,
            1..READ_SIZE as u64 + 1,
            4095..4095 + DIRECT_FROM,
            len - DIRECT_FROM - 1..len,
        ] {
            let got = read(&path, range.clone()).await.unwrap();
            let (start, end) = (range.start as usize, range.end as usize);
            assert!(got == content[start..end], "{range:?}");
        }
        // Twice more: the second and third downloads read into pooled buffers.
        for _ in 0..2 {
            assert!(read(&path, 0..len).await.unwrap() == content);
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_recorded_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, b"short").unwrap();
        let error = read(&path, 0..100).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
