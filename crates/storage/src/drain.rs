//! Uploads refused before their body was read (no such bucket, a policy denial, a size or MIME
//! refusal) are answered at once; but a connection closed with request bytes still unread is
//! reset by the kernel, and a client still sending (fetch in Node and browsers) then reports a
//! network failure instead of the answer. So a refused upload's remaining body is read and
//! discarded first, when it is small: a large refused upload (or one announced as large) is
//! answered at once and its connection closed rather than streamed through for nothing.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use futures_util::{Stream, StreamExt};

/// Most bytes read after a refusal; photos and signatures fit, gigabyte uploads do not.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;
/// Longest time spent reading them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A request body the handler reads while the dispatcher keeps a handle to what is left.
#[derive(Clone)]
pub(crate) struct SharedBody {
    stream: Arc<Mutex<BodyDataStream>>,
    /// The request's Content-Length, when it announced one.
    announced: Option<u64>,
}

impl SharedBody {
    pub(crate) fn new(body: Body, announced: Option<u64>) -> Self {
        Self {
            stream: Arc::new(Mutex::new(body.into_data_stream())),
            announced,
        }
    }

    /// A body for the handler, reading from the shared stream.
    pub(crate) fn body(&self) -> Body {
        Body::from_stream(self.clone())
    }

    /// Reads and discards what the handler left, within [`DRAIN_LIMIT`] and [`DRAIN_TIMEOUT`];
    /// nothing when the request announced more than the limit.
    pub(crate) async fn drain(mut self) {
        if self.announced.is_some_and(|length| length > DRAIN_LIMIT) {
            return;
        }
        let read = async {
            let mut total: u64 = 0;
            while let Some(Ok(chunk)) = self.next().await {
                total += chunk.len() as u64;
                if total > DRAIN_LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
    }
}

impl Stream for SharedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Locked only for one poll, never across an await.
        let mut inner = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *inner).poll_next(cx)
    }
}
