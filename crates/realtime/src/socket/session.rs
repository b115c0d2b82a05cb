//! One websocket session: reads frames, answers heartbeats, routes channel events, closes
//! channels whose token expired and sockets that went silent or could not keep up.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::token::unix_now;
use crate::hub::TopicKey;
use crate::outbox::{ChannelLink, Outbox};
use crate::protocol::{Inbound, Vsn, decode_binary, decode_text, encode};
use crate::runtime::Runtime;

/// Far enough to mean "no timer".
const NO_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A joined channel.
pub(super) struct Channel {
    pub(super) join_ref: String,
    pub(super) name: String,
    pub(super) key: TopicKey,
    pub(super) link: Arc<ChannelLink>,
    pub(super) presence_key: String,
    pub(super) token: String,
    pub(super) expires_at: Option<i64>,
    pub(super) ack: bool,
    /// Cached write permissions of a private channel, per extension.
    pub(super) writable: HashMap<&'static str, bool>,
}

/// The state of one socket.
pub(crate) struct Session {
    pub(super) runtime: Arc<Runtime>,
    pub(super) vsn: Vsn,
    pub(super) apikey: String,
    pub(super) outbox: Outbox,
    pub(super) control: mpsc::Sender<Message>,
    pub(super) overflow: CancellationToken,
    /// Cancelled when the writer stopped (the client stopped reading or went away).
    writer_gone: CancellationToken,
    pub(super) channels: HashMap<String, Channel>,
    pub(super) joins: VecDeque<Instant>,
}

impl Session {
    pub(super) fn new(
        runtime: Arc<Runtime>,
        vsn: Vsn,
        apikey: String,
        queue: mpsc::Sender<Message>,
        control: mpsc::Sender<Message>,
        writer_gone: CancellationToken,
    ) -> Self {
        let overflow = CancellationToken::new();
        Self {
            runtime,
            vsn,
            apikey,
            outbox: Outbox::new(queue, overflow.clone()),
            control,
            overflow,
            writer_gone,
            channels: HashMap::new(),
            joins: VecDeque::new(),
        }
    }

    pub(super) async fn run(mut self, mut stream: SplitStream<WebSocket>) {
        let idle = Duration::from_secs(self.runtime.state.config.realtime.idle_timeout_secs.max(1));
        let mut idle_deadline = Instant::now() + idle;
        let shutdown = self.runtime.shutdown.clone();
        let overflow = self.overflow.clone();
        let writer_gone = self.writer_gone.clone();
        loop {
            let expiry = self.next_expiry();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = writer_gone.cancelled() => break,
                () = overflow.cancelled() => {
                    self.close_slow_consumer().await;
                    break;
                }
                () = tokio::time::sleep_until(idle_deadline) => break,
                () = tokio::time::sleep_until(expiry) => self.expire_tokens(),
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    idle_deadline = Instant::now() + idle;
                    let inbound = match frame {
                        Message::Text(text) => decode_text(self.vsn, text.as_str()),
                        Message::Binary(bytes) => decode_binary(&bytes),
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => continue,
                    };
                    match inbound {
                        Ok(inbound) => self.handle(inbound).await,
                        Err(error) => tracing::debug!(%error, "undecodable realtime frame ignored"),
                    }
                }
            }
        }
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for topic in topics {
            self.remove_channel(&topic);
        }
        let _ = self.control.send(Message::Close(None)).await;
    }

    async fn handle(&mut self, inbound: Inbound) {
        if inbound.topic == "phoenix" {
            if inbound.event == "heartbeat" {
                self.reply(&inbound, "ok", json!({}));
            }
            return;
        }
        match inbound.event.as_str() {
            "phx_join" => self.join(inbound).await,
            "phx_leave" if self.channels.contains_key(&inbound.topic) => {
                self.reply(&inbound, "ok", json!({}));
                self.close_channel(&inbound.topic);
            }
            "phx_leave" => {}
            "access_token" => self.refresh_token(inbound).await,
            "broadcast" => self.broadcast(inbound).await,
            "presence" => self.presence(inbound).await,
            _ => {}
        }
    }

    /// `[join_ref, ref, topic, "phx_reply", {status, response}]`.
    pub(super) fn reply(&self, to: &Inbound, status: &str, response: Value) {
        let payload = json!({ "status": status, "response": response }).to_string();
        self.outbox.push(encode(
            self.vsn,
            to.join_ref.as_deref(),
            to.reference.as_deref(),
            &to.topic,
            "phx_reply",
            &payload,
        ));
    }

    /// `[join_ref, null, topic, "system", {extension, status, message, channel}]`.
    pub(super) fn system_frame(
        &self,
        channel: &Channel,
        topic: &str,
        extension: &str,
        status: &str,
        message: &str,
    ) -> Message {
        let payload = json!({
            "extension": extension,
            "status": status,
            "message": message,
            "channel": channel.name,
        })
        .to_string();
        encode(
            self.vsn,
            Some(&channel.join_ref),
            None,
            topic,
            "system",
            &payload,
        )
    }

    fn close_frame(&self, channel: &Channel, topic: &str) -> Message {
        encode(
            self.vsn,
            Some(&channel.join_ref),
            Some(&channel.join_ref),
            topic,
            "phx_close",
            "{}",
        )
    }

    /// Unregisters a channel everywhere.
    pub(super) fn remove_channel(&mut self, topic: &str) -> Option<Channel> {
        let channel = self.channels.remove(topic)?;
        self.runtime.registry.remove_channel(channel.link.id);
        self.runtime.hub.leave(&channel.key, channel.link.id);
        Some(channel)
    }

    /// Unregisters and tells the client with `phx_close`.
    pub(super) fn close_channel(&mut self, topic: &str) {
        if let Some(channel) = self.remove_channel(topic) {
            self.outbox.push(self.close_frame(&channel, topic));
        }
    }

    /// A fatal `system` error for one channel, then `phx_close` (the client does not rejoin).
    pub(super) fn fail_channel(&mut self, topic: &str, message: &str) {
        if let Some(channel) = self.remove_channel(topic) {
            self.outbox
                .push(self.system_frame(&channel, topic, "system", "error", message));
            self.outbox.push(self.close_frame(&channel, topic));
        }
    }

    fn next_expiry(&self) -> Instant {
        let now = unix_now();
        self.channels
            .values()
            .filter_map(|channel| channel.expires_at)
            .min()
            .map(|exp| {
                let wait = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
                Instant::now() + Duration::from_secs(wait)
            })
            .unwrap_or_else(|| Instant::now() + NO_DEADLINE)
    }

    fn expire_tokens(&mut self) {
        let now = unix_now();
        let expired: Vec<(String, i64)> = self
            .channels
            .iter()
            .filter_map(|(topic, channel)| {
                channel
                    .expires_at
                    .filter(|&exp| exp <= now)
                    .map(|exp| (topic.clone(), now - exp))
            })
            .collect();
        for (topic, ago) in expired {
            self.fail_channel(&topic, &format!("Token has expired {ago} seconds ago"));
        }
    }

    /// The queue is full: every channel gets the error through the priority path, then the
    /// socket closes. Other sockets never waited for this one.
    async fn close_slow_consumer(&mut self) {
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for topic in topics {
            if let Some(channel) = self.remove_channel(&topic) {
                let frames = [
                    self.system_frame(
                        &channel,
                        &topic,
                        "system",
                        "error",
                        "Too many messages queued: the client is not reading fast enough",
                    ),
                    self.close_frame(&channel, &topic),
                ];
                for frame in frames {
                    let _ = self.control.send(frame).await;
                }
            }
        }
        tracing::info!("closed a realtime socket that could not keep up");
    }
}
