//! One blob being written: a multipart upload to a fresh immutable key, its parts in flight, and
//! the cleanup that runs when it is dropped unfinished. An upload's request future is dropped
//! when the client goes away in the middle of the body (or a timeout fires); without this, an
//! S3 multipart upload (and its parts) would stay on the store, and a completed-but-unreferenced
//! blob could remain if the drop came during completion.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayloadMut};
use tokio::task::JoinSet;

/// A blob write that has neither completed nor been cleaned up yet.
struct Pending {
    store: Arc<dyn ObjectStore>,
    key: Path,
    upload: Box<dyn MultipartUpload>,
    buffer: PutPayloadMut,
    part_size: usize,
    parts: JoinSet<object_store::Result<()>>,
}

impl Pending {
    /// Stops the parts in flight, aborts the store's upload (S3 drops the parts, the local
    /// store removes its staging file) and removes the key in case completion got through.
    /// Failures only leave unreferenced garbage behind, so they are logged.
    async fn clean_up(mut self) {
        self.parts.shutdown().await;
        if let Err(error) = self.upload.abort().await {
            tracing::warn!(%error, key = %self.key, "aborting an unfinished upload failed");
        }
        match self.store.delete(&self.key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(%error, key = %self.key, "removing an unfinished blob failed");
            }
        }
    }
}

/// A multipart upload that cleans up after itself unless [`StagedUpload::finish`] completed it.
pub(crate) struct StagedUpload {
    pending: Option<Pending>,
}

impl StagedUpload {
    /// Starts a multipart upload to `key`, cut into parts of `part_size` bytes.
    pub(crate) async fn start(
        store: Arc<dyn ObjectStore>,
        key: &Path,
        part_size: usize,
    ) -> object_store::Result<Self> {
        let upload = store.put_multipart(key).await?;
        Ok(Self::new(store, key, upload, part_size))
    }

    fn new(
        store: Arc<dyn ObjectStore>,
        key: &Path,
        upload: Box<dyn MultipartUpload>,
        part_size: usize,
    ) -> Self {
        Self {
            pending: Some(Pending {
                store,
                key: key.clone(),
                upload,
                buffer: PutPayloadMut::new(),
                part_size: part_size.max(1),
                parts: JoinSet::new(),
            }),
        }
    }

    fn pending(&mut self) -> object_store::Result<&mut Pending> {
        self.pending.as_mut().ok_or(object_store::Error::Generic {
            store: "manifold",
            source: "the upload was already finished".into(),
        })
    }

    /// Waits until fewer than `max_parts` parts are in flight (back pressure on the body).
    pub(crate) async fn wait_for_capacity(&mut self, max_parts: usize) -> object_store::Result<()> {
        let pending = self.pending()?;
        while !pending.parts.is_empty() && pending.parts.len() >= max_parts {
            match pending.parts.join_next().await {
                Some(Ok(result)) => result?,
                Some(Err(join)) => {
                    return Err(object_store::Error::Generic {
                        store: "manifold",
                        source: Box::new(join),
                    });
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Buffers `bytes`, starting a part upload each time a part is full.
    pub(crate) fn put(&mut self, mut bytes: Bytes) -> object_store::Result<()> {
        let pending = self.pending()?;
        while !bytes.is_empty() {
            let room = pending.part_size - pending.buffer.content_length();
            if bytes.len() < room {
                pending.buffer.push(bytes);
                return Ok(());
            }
            pending.buffer.push(bytes.split_to(room));
            let part = std::mem::take(&mut pending.buffer);
            pending.parts.spawn(pending.upload.put_part(part.into()));
        }
        Ok(())
    }

    /// Uploads the last part, waits for every part and completes the upload. On failure the
    /// upload is cleaned up before the error returns; if this future is dropped midway, the
    /// drop cleans up instead.
    pub(crate) async fn finish(mut self) -> object_store::Result<()> {
        let pending = self.pending()?;
        if !pending.buffer.is_empty() {
            let part = std::mem::take(&mut pending.buffer);
            pending.parts.spawn(pending.upload.put_part(part.into()));
        }
        let outcome = match self.wait_for_capacity(0).await {
            Ok(()) => self.pending()?.upload.complete().await.map(drop),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                // Completed: the blob is the caller's to keep (or remove) from here on.
                self.pending = None;
                Ok(())
            }
            Err(error) => {
                self.abort().await;
                Err(error)
            }
        }
    }

    /// Cleans the upload up now (the body failed or crossed the size limit).
    pub(crate) async fn abort(mut self) {
        if let Some(pending) = self.pending.take() {
            pending.clean_up().await;
        }
    }
}

impl Drop for StagedUpload {
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        // Drop cannot wait, so the cleanup runs on its own: a few store calls. Outside a runtime
        // (or when the runtime is shutting down and drops the task) the upload stays as a
        // killed server would leave it: never a visible object, since no row names its key.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(pending.clean_up())),
            Err(_) => tracing::warn!(key = %pending.key, "an unfinished upload was left behind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use futures_util::FutureExt;
    use object_store::memory::InMemory;
    use object_store::{PutPayload, PutResult, UploadPart};
    use tokio::sync::Notify;

    use super::*;

    type Boxed<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

    /// A store-side upload that reports `complete` and `abort` calls; `complete` can be told
    /// never to finish, to drop an upload in the middle of completing.
    #[derive(Debug)]
    struct Recorder {
        completing: Arc<Notify>,
        aborted: Arc<Notify>,
        complete_hangs: bool,
    }

    impl MultipartUpload for Recorder {
        fn put_part(&mut self, _data: PutPayload) -> UploadPart {
            Box::pin(async { Ok(()) })
        }

        fn complete<'a, 'b>(&'a mut self) -> Boxed<'b, PutResult>
        where
            'a: 'b,
            Self: 'b,
        {
            self.completing.notify_one();
            let hangs = self.complete_hangs;
            Box::pin(async move {
                if hangs {
                    std::future::pending::<()>().await;
                }
                Ok(PutResult {
                    e_tag: None,
                    version: None,
                    extensions: Default::default(),
                })
            })
        }

        fn abort<'a, 'b>(&'a mut self) -> Boxed<'b, ()>
        where
            'a: 'b,
            Self: 'b,
        {
            self.aborted.notify_one();
            Box::pin(async { Ok(()) })
        }
    }

    fn staged(complete_hangs: bool) -> (StagedUpload, Arc<Notify>, Arc<Notify>) {
        let (completing, aborted) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let recorder = Recorder {
            completing: Arc::clone(&completing),
            aborted: Arc::clone(&aborted),
            complete_hangs,
        };
        let upload = StagedUpload::new(
            Arc::new(InMemory::new()),
            &Path::from("b/name/v1"),
            Box::new(recorder),
            4,
        );
        (upload, completing, aborted)
    }

    /// Waits for the abort; the bound only turns a missing cleanup into a failure, not a hang.
    async fn aborted_within_patience(aborted: &Notify) {
        tokio::time::timeout(std::time::Duration::from_secs(20), aborted.notified())
            .await
            .expect("the dropped upload was never aborted");
    }

    #[tokio::test]
    async fn dropping_an_unfinished_upload_aborts_it() {
        let (mut upload, _, aborted) = staged(false);
        upload.put(Bytes::from_static(b"0123456789")).unwrap();
        drop(upload);
        // Resolves only once the background cleanup called abort.
        aborted_within_patience(&aborted).await;
    }

    #[tokio::test]
    async fn dropping_an_upload_while_it_completes_aborts_it() {
        let (mut upload, completing, aborted) = staged(true);
        upload.put(Bytes::from_static(b"01234")).unwrap();
        let mut finishing = Box::pin(upload.finish());
        tokio::select! {
            _ = &mut finishing => panic!("a hanging completion cannot finish"),
            () = completing.notified() => {}
        }
        drop(finishing);
        aborted_within_patience(&aborted).await;
    }

    #[tokio::test]
    async fn a_finished_upload_is_kept() {
        let (mut upload, completing, aborted) = staged(false);
        upload.put(Bytes::from_static(b"01234")).unwrap();
        upload.finish().await.unwrap();
        completing.notified().await;
        // No abort was recorded: a stored permit would make this resolve on its first poll.
        assert!(
            aborted.notified().now_or_never().is_none(),
            "a completed upload was aborted"
        );
    }
}
