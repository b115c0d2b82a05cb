//! Channel events: `phx_join` (config, token, limits, private-channel read check,
//! postgres_changes registration, reply, presence state), `access_token`, `broadcast` and
//! `presence`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::session::{Channel, Session};
use super::token::{Verified, verify};
use crate::changes::authorizer::Identity;
use crate::changes::replication::ReaderState;
use crate::changes::subscribe::{Binding, prepare};
use crate::hub::TopicKey;
use crate::outbox::ChannelLink;
use crate::private::{readable, topic_identity, writable};
use crate::protocol::{BroadcastBody, Inbound, encode};

/// The window of the joins-per-second limit.
const JOIN_WINDOW: Duration = Duration::from_secs(1);

/// A boolean that may arrive as a string.
fn flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => match text.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A stable id for a binding, like Supabase's hash of the binding map (below 2^31).
fn binding_id(raw: &Value) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in raw.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash & 0x7fff_ffff
}

impl Session {
    fn error_reply(&self, inbound: &Inbound, reason: &str) {
        self.reply(inbound, "error", json!({ "reason": reason }));
    }

    fn channel_identity(&self, verified: &Verified, private: Option<&str>) -> Arc<Identity> {
        let caller = &verified.caller;
        Arc::new(match private {
            Some(name) => topic_identity(caller.role(), caller.claims_json(), name),
            None => Identity::new(caller.role(), caller.claims_json(), &[]),
        })
    }

    pub(super) async fn join(&mut self, inbound: Inbound) {
        let config = inbound
            .payload
            .get("config")
            .cloned()
            .unwrap_or(Value::Null);
        let Some(name) = inbound.topic.strip_prefix("realtime:").map(str::to_owned) else {
            return self.error_reply(&inbound, "unmatched topic");
        };
        if name.is_empty() {
            return self.error_reply(&inbound, "TopicNameRequired: You must provide a topic name");
        }
        let limits = self.runtime.state.config.realtime.clone();
        let now = Instant::now();
        while self
            .joins
            .front()
            .is_some_and(|at| now.duration_since(*at) >= JOIN_WINDOW)
        {
            self.joins.pop_front();
        }
        if self.joins.len() >= limits.max_joins_per_second as usize {
            return self.error_reply(
                &inbound,
                "ClientJoinRateLimitReached: Too many joins per second",
            );
        }
        self.joins.push_back(now);
        // A second join of the same topic replaces the first (Phoenix semantics).
        self.remove_channel(&inbound.topic);
        if self.channels.len() >= limits.max_channels_per_socket {
            return self.error_reply(&inbound, "ChannelRateLimitReached: Too many channels");
        }
        let private = flag(config.get("private")).unwrap_or(false);
        if !private && limits.private_only {
            return self.error_reply(
                &inbound,
                "PrivateOnly: This project only allows private channels",
            );
        }
        let token = inbound
            .payload
            .get("access_token")
            .or_else(|| inbound.payload.get("user_token"))
            .and_then(Value::as_str)
            .filter(|token| !token.starts_with("sb_"))
            .unwrap_or(&self.apikey)
            .to_owned();
        let verified = match verify(&self.runtime.state.gatekeeper, &token) {
            Ok(verified) => verified,
            Err(error) => return self.error_reply(&inbound, &format!("InvalidJWTToken: {error}")),
        };
        let broadcast = config.get("broadcast");
        let presence = config.get("presence");
        let mut presence_enabled = flag(presence.and_then(|p| p.get("enabled"))).unwrap_or(true);
        let identity = self.channel_identity(&verified, private.then_some(name.as_str()));
        if private {
            let mut wanted = vec!["broadcast"];
            if presence_enabled {
                wanted.push("presence");
            }
            let pool = self.runtime.catalog.pool();
            let allowed = match readable(pool, &name, &identity, &wanted).await {
                Ok(allowed) => allowed,
                Err(error) => {
                    // Refused like a denial, but a failed check is not a policy decision: log it.
                    tracing::warn!(%error, topic = %name, "private channel check failed");
                    Vec::new()
                }
            };
            if allowed.is_empty() {
                return self.error_reply(
                    &inbound,
                    &format!(
                        "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
                    ),
                );
            }
            presence_enabled &= allowed.iter().any(|e| e == "presence");
        }
        let key = TopicKey {
            topic: inbound.topic.clone(),
            private,
        };
        let link = Arc::new(ChannelLink::new(
            self.outbox.clone(),
            inbound.topic.clone(),
            self.vsn,
            flag(broadcast.and_then(|b| b.get("self"))).unwrap_or(false),
            presence_enabled,
            identity,
        ));
        let raw_bindings: Vec<Value> = config
            .get("postgres_changes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let bindings: Vec<Binding> = raw_bindings
            .iter()
            .map(|raw| Binding {
                id: binding_id(raw),
                raw: raw.clone(),
            })
            .collect();
        let mut changes_errors = Vec::new();
        if bindings.is_empty() {
            // Broadcast and presence never wait for replication, which may be down; the reader
            // is only started (in the background) so `realtime.send` broadcasts reach the channel.
            self.runtime.replication.start();
        } else {
            // The reader must stream before the reply, so "SUBSCRIBED" covers every later commit.
            let reader = self.runtime.replication.ensure_running().await;
            if let ReaderState::Failed(reason) = &reader {
                changes_errors.push(reason.clone());
            } else {
                let prepared = prepare(
                    &self.runtime.catalog,
                    &limits.publication,
                    &bindings,
                    &link,
                    verified.caller.role(),
                )
                .await;
                let mut by_table: HashMap<u32, Vec<_>> = HashMap::new();
                for (table, entry) in prepared.entries {
                    by_table.entry(table).or_default().push(entry);
                }
                for (table, entries) in by_table {
                    self.runtime.registry.add(table, entries);
                }
                changes_errors = prepared.errors;
            }
        }
        self.runtime.hub.join(&key, link.clone());
        let echoed: Vec<Value> = bindings
            .iter()
            .map(|binding| {
                let mut object = binding.raw.as_object().cloned().unwrap_or_default();
                object.insert("id".into(), Value::from(binding.id));
                Value::Object(object)
            })
            .collect();
        self.reply(&inbound, "ok", json!({ "postgres_changes": echoed }));
        let join_ref = inbound.join_ref.clone().or(inbound.reference.clone());
        let channel = Channel {
            join_ref: join_ref.unwrap_or_default(),
            name: name.clone(),
            key: key.clone(),
            link: link.clone(),
            presence_key: presence
                .and_then(|p| p.get("key"))
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            token,
            expires_at: verified.expires_at,
            ack: flag(broadcast.and_then(|b| b.get("ack"))).unwrap_or(false),
            writable: HashMap::new(),
        };
        if presence_enabled {
            let state = self.runtime.hub.presence_state(&key).to_string();
            self.outbox.push(encode(
                self.vsn,
                Some(&channel.join_ref),
                None,
                &inbound.topic,
                "presence_state",
                &state,
            ));
        }
        if !bindings.is_empty() {
            if changes_errors.is_empty() {
                let frame = self.system_frame(
                    &channel,
                    &inbound.topic,
                    "postgres_changes",
                    "ok",
                    "Subscribed to PostgreSQL",
                );
                self.outbox.push(frame);
            }
            for error in &changes_errors {
                let frame =
                    self.system_frame(&channel, &inbound.topic, "postgres_changes", "error", error);
                self.outbox.push(frame);
            }
        }
        link.open();
        self.channels.insert(inbound.topic.clone(), channel);
    }

    pub(super) async fn refresh_token(&mut self, inbound: Inbound) {
        let Some(token) = inbound
            .payload
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let Some(channel) = self.channels.get(&inbound.topic) else {
            return;
        };
        if token.starts_with("sb_") || token == channel.token {
            return;
        }
        let verified = match verify(&self.runtime.state.gatekeeper, &token) {
            Ok(verified) => verified,
            Err(error) => return self.fail_channel(&inbound.topic, &error.to_string()),
        };
        let private = channel.key.private.then(|| channel.name.clone());
        let identity = self.channel_identity(&verified, private.as_deref());
        if let Some(name) = &private {
            let pool = self.runtime.catalog.pool();
            let allowed = readable(pool, name, &identity, &["broadcast", "presence"])
                .await
                .unwrap_or_default();
            if allowed.is_empty() {
                let message = format!(
                    "You no longer have permission to read from this Channel topic: {name}"
                );
                return self.fail_channel(&inbound.topic, &message);
            }
        }
        if let Some(channel) = self.channels.get_mut(&inbound.topic) {
            channel.link.set_identity(identity);
            channel.token = token;
            channel.expires_at = verified.expires_at;
            channel.writable.clear();
        }
    }

    /// Whether a private channel may write `extension` (checked once per join and token).
    async fn may_write(&mut self, topic: &str, extension: &'static str) -> bool {
        let Some(channel) = self.channels.get(topic) else {
            return false;
        };
        if !channel.key.private {
            return true;
        }
        if let Some(known) = channel.writable.get(extension) {
            return *known;
        }
        let identity = channel.link.identity();
        let name = channel.name.clone();
        let allowed = writable(self.runtime.catalog.pool(), &name, &identity, extension)
            .await
            .unwrap_or(false);
        if let Some(channel) = self.channels.get_mut(topic) {
            channel.writable.insert(extension, allowed);
        }
        allowed
    }

    pub(super) async fn broadcast(&mut self, inbound: Inbound) {
        let Some(message) = inbound.broadcast.clone() else {
            return;
        };
        let Some(channel) = self.channels.get(&inbound.topic) else {
            return;
        };
        let ack = channel.ack;
        let size = match &message.body {
            BroadcastBody::Json(value) => value.to_string().len(),
            BroadcastBody::Binary(bytes) => bytes.len(),
        };
        if size > self.runtime.state.config.realtime.max_payload_bytes {
            if ack {
                self.reply(
                    &inbound,
                    "error",
                    json!({ "error": "payload_size_exceeded" }),
                );
            }
            return;
        }
        // A private channel without write permission is dropped silently, as on Supabase.
        if self.may_write(&inbound.topic, "broadcast").await
            && let Some(channel) = self.channels.get(&inbound.topic)
        {
            self.runtime
                .hub
                .broadcast(&channel.key, Some(channel.link.id), &message);
        }
        if ack {
            self.reply(&inbound, "ok", json!({}));
        }
    }

    pub(super) async fn presence(&mut self, inbound: Inbound) {
        let Some(channel) = self.channels.get(&inbound.topic) else {
            return;
        };
        let (key, id, presence_key) = (
            channel.key.clone(),
            channel.link.id,
            channel.presence_key.clone(),
        );
        match inbound.payload.get("event").and_then(Value::as_str) {
            Some("track") => {
                let Some(payload) = inbound.payload.get("payload").and_then(Value::as_object)
                else {
                    return self.error_reply(&inbound, "Presence track payload must be a map");
                };
                let payload: Map<String, Value> = payload.clone();
                let limit = self.runtime.state.config.realtime.max_payload_bytes;
                if Value::Object(payload.clone()).to_string().len() > limit {
                    return self.error_reply(&inbound, "Track message size exceeded");
                }
                if !self.may_write(&inbound.topic, "presence").await {
                    return self.reply(&inbound, "error", json!({}));
                }
                self.runtime.hub.track(&key, id, &presence_key, payload);
                self.reply(&inbound, "ok", json!({}));
            }
            Some("untrack") => {
                self.runtime.hub.untrack(&key, id);
                self.reply(&inbound, "ok", json!({}));
            }
            _ => self.reply(&inbound, "error", json!({})),
        }
    }
}
