//! The sending half of a socket as everything else sees it: a bounded queue drained by the
//! socket's one writer task, and the overflow signal that closes a slow consumer instead of
//! letting it stall the sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::changes::authorizer::Identity;
use crate::protocol::{Vsn, encode};

/// Frames held for a channel whose join reply is not out yet.
const MAX_HELD: usize = 1024;

static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);

/// A socket's outgoing queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Message>,
    overflow: CancellationToken,
}

impl Outbox {
    pub(crate) fn new(queue: mpsc::Sender<Message>, overflow: CancellationToken) -> Self {
        Self { queue, overflow }
    }

    /// Queues a frame without waiting. A full queue marks the socket as a slow consumer: it
    /// is closed by its own task, and nobody else waits for it.
    pub(crate) fn push(&self, message: Message) -> bool {
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// True once the socket overflowed or closed.
    pub(crate) fn is_gone(&self) -> bool {
        self.overflow.is_cancelled() || self.queue.is_closed()
    }
}

/// One joined channel as fan-out sees it: where to send, under which topic and serializer,
/// and who the subscriber currently is (replaced when the token is refreshed).
#[derive(Debug)]
pub(crate) struct ChannelLink {
    /// Unique per join.
    pub(crate) id: u64,
    pub(crate) outbox: Outbox,
    pub(crate) topic: String,
    pub(crate) vsn: Vsn,
    /// Whether the channel's own broadcasts come back to it (`config.broadcast.self`).
    pub(crate) broadcast_self: bool,
    /// Whether presence diffs are wanted (private channels: only with read permission).
    pub(crate) presence_enabled: bool,
    identity: std::sync::RwLock<Arc<Identity>>,
    /// Frames produced before the join reply was queued wait here (`None` once open), so the
    /// reply always precedes them on the wire.
    pending: std::sync::Mutex<Option<Vec<Message>>>,
}

impl ChannelLink {
    pub(crate) fn new(
        outbox: Outbox,
        topic: String,
        vsn: Vsn,
        broadcast_self: bool,
        presence_enabled: bool,
        identity: Arc<Identity>,
    ) -> Self {
        Self {
            id: NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed),
            outbox,
            topic,
            vsn,
            broadcast_self,
            presence_enabled,
            identity: std::sync::RwLock::new(identity),
            pending: std::sync::Mutex::new(Some(Vec::new())),
        }
    }

    /// Sends a fan-out frame (held back until the join reply went out).
    pub(crate) fn deliver(&self, message: Message) {
        let mut pending = match self.pending.lock() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        match pending.as_mut() {
            Some(held) if held.len() < MAX_HELD => held.push(message),
            Some(_) => self.outbox.overflow.cancel(),
            None => {
                self.outbox.push(message);
            }
        }
    }

    /// A `system` message about the channel, e.g. `("postgres_changes", "error", text)`: the
    /// channel stays open.
    pub(crate) fn system(&self, extension: &str, status: &str, message: &str) {
        let channel = self.topic.strip_prefix("realtime:").unwrap_or(&self.topic);
        let payload = serde_json::json!({
            "extension": extension,
            "status": status,
            "message": message,
            "channel": channel,
        })
        .to_string();
        self.deliver(encode(
            self.vsn,
            None,
            None,
            &self.topic,
            "system",
            &payload,
        ));
    }

    /// Called right after the join reply was queued: releases held frames, in order.
    pub(crate) fn open(&self) {
        let mut pending = match self.pending.lock() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        for message in pending.take().unwrap_or_default() {
            self.outbox.push(message);
        }
    }

    /// The subscriber's current identity.
    pub(crate) fn identity(&self) -> Arc<Identity> {
        match self.identity.read() {
            Ok(identity) => identity.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the identity after an `access_token` refresh.
    pub(crate) fn set_identity(&self, identity: Arc<Identity>) {
        match self.identity.write() {
            Ok(mut current) => *current = identity,
            Err(poisoned) => *poisoned.into_inner() = identity,
        }
    }
}
