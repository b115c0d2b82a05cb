//! Topics in this process: which channels joined them (broadcast fan-out) and who is present.
//! Public and private channels of the same name are different topics, as on Supabase.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::ws::Message;
use serde_json::{Map, Value, json};

use crate::outbox::ChannelLink;
use crate::protocol::{UserBroadcast, Vsn, encode, encode_broadcast};

/// A topic with its privacy namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicKey {
    /// Full topic, `realtime:<name>`.
    pub(crate) topic: String,
    pub(crate) private: bool,
}

#[derive(Debug)]
struct Meta {
    owner: u64,
    phx_ref: String,
    payload: Map<String, Value>,
}

#[derive(Debug, Default)]
struct TopicState {
    channels: HashMap<u64, Arc<ChannelLink>>,
    /// presence key → metas (one per tracking channel).
    presence: HashMap<String, Vec<Meta>>,
}

/// Every topic of the process.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    topics: RwLock<HashMap<TopicKey, TopicState>>,
}

fn meta_json(meta: &Meta, previous: Option<&str>) -> Value {
    let mut object = meta.payload.clone();
    object.insert("phx_ref".into(), Value::String(meta.phx_ref.clone()));
    if let Some(previous) = previous {
        object.insert("phx_ref_prev".into(), Value::String(previous.to_owned()));
    }
    Value::Object(object)
}

/// Frames for each serializer, encoded once.
struct Encoded {
    v1: Option<Message>,
    v2: Option<Message>,
}

impl Encoded {
    fn of(&mut self, vsn: Vsn, make: impl Fn(Vsn) -> Option<Message>) -> Option<Message> {
        let slot = match vsn {
            Vsn::V1 => &mut self.v1,
            Vsn::V2 => &mut self.v2,
        };
        if slot.is_none() {
            *slot = make(vsn);
        }
        slot.clone()
    }
}

impl Hub {
    /// Adds a joined channel.
    pub(crate) fn join(&self, key: &TopicKey, link: Arc<ChannelLink>) {
        if let Ok(mut topics) = self.topics.write() {
            topics
                .entry(key.clone())
                .or_default()
                .channels
                .insert(link.id, link);
        }
    }

    /// Removes a channel and its presence; the others get the leave diff.
    pub(crate) fn leave(&self, key: &TopicKey, channel: u64) {
        let leaves = {
            let Ok(mut topics) = self.topics.write() else {
                return;
            };
            let Some(state) = topics.get_mut(key) else {
                return;
            };
            state.channels.remove(&channel);
            let leaves = remove_presence(state, channel);
            if state.channels.is_empty() && state.presence.is_empty() {
                topics.remove(key);
            }
            leaves
        };
        if !leaves.is_empty() {
            self.send_diff(key, Map::new(), leaves);
        }
    }

    /// Sends a user broadcast to every channel of the topic; the sender's own channel only
    /// when it asked for `self`.
    pub(crate) fn broadcast(&self, key: &TopicKey, sender: Option<u64>, message: &UserBroadcast) {
        let receivers: Vec<Arc<ChannelLink>> = match self.topics.read() {
            Ok(topics) => topics
                .get(key)
                .map(|state| state.channels.values().cloned().collect())
                .unwrap_or_default(),
            Err(_) => return,
        };
        let mut encoded = Encoded { v1: None, v2: None };
        for link in receivers {
            if Some(link.id) == sender && !link.broadcast_self {
                continue;
            }
            if let Some(frame) =
                encoded.of(link.vsn, |vsn| encode_broadcast(vsn, &key.topic, message))
            {
                link.deliver(frame);
            }
        }
    }

    /// The `presence_state` payload of a topic.
    pub(crate) fn presence_state(&self, key: &TopicKey) -> Value {
        let Ok(topics) = self.topics.read() else {
            return json!({});
        };
        let mut state = Map::new();
        if let Some(topic) = topics.get(key) {
            for (presence_key, metas) in &topic.presence {
                let metas: Vec<Value> = metas.iter().map(|meta| meta_json(meta, None)).collect();
                state.insert(presence_key.clone(), json!({ "metas": metas }));
            }
        }
        Value::Object(state)
    }

    /// Tracks (or re-tracks) a channel's presence. Identical payloads are a no-op.
    pub(crate) fn track(
        &self,
        key: &TopicKey,
        channel: u64,
        presence_key: &str,
        payload: Map<String, Value>,
    ) {
        let (joins, leaves) = {
            let Ok(mut topics) = self.topics.write() else {
                return;
            };
            let state = topics.entry(key.clone()).or_default();
            let metas = state.presence.entry(presence_key.to_owned()).or_default();
            let existing = metas.iter().position(|meta| meta.owner == channel);
            if let Some(index) = existing
                && metas.get(index).is_some_and(|meta| meta.payload == payload)
            {
                return;
            }
            let meta = Meta {
                owner: channel,
                phx_ref: uuid::Uuid::new_v4().simple().to_string(),
                payload,
            };
            let mut leaves = Map::new();
            let previous = existing.map(|index| metas.remove(index));
            if let Some(old) = &previous {
                leaves.insert(
                    presence_key.to_owned(),
                    json!({ "metas": [meta_json(old, None)] }),
                );
            }
            let mut joins = Map::new();
            joins.insert(
                presence_key.to_owned(),
                json!({ "metas": [meta_json(&meta, previous.as_ref().map(|m| m.phx_ref.as_str()))] }),
            );
            metas.push(meta);
            (joins, leaves)
        };
        self.send_diff(key, joins, leaves);
    }

    /// Removes a channel's presence.
    pub(crate) fn untrack(&self, key: &TopicKey, channel: u64) {
        let leaves = match self.topics.write() {
            Ok(mut topics) => topics
                .get_mut(key)
                .map(|state| remove_presence(state, channel))
                .unwrap_or_default(),
            Err(_) => return,
        };
        if !leaves.is_empty() {
            self.send_diff(key, Map::new(), leaves);
        }
    }

    fn send_diff(&self, key: &TopicKey, joins: Map<String, Value>, leaves: Map<String, Value>) {
        let receivers: Vec<Arc<ChannelLink>> = match self.topics.read() {
            Ok(topics) => topics
                .get(key)
                .map(|state| {
                    state
                        .channels
                        .values()
                        .filter(|link| link.presence_enabled)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => return,
        };
        let payload = json!({ "joins": joins, "leaves": leaves }).to_string();
        let mut encoded = Encoded { v1: None, v2: None };
        for link in receivers {
            if let Some(frame) = encoded.of(link.vsn, |vsn| {
                Some(encode(
                    vsn,
                    None,
                    None,
                    &key.topic,
                    "presence_diff",
                    &payload,
                ))
            }) {
                link.deliver(frame);
            }
        }
    }
}

fn remove_presence(state: &mut TopicState, channel: u64) -> Map<String, Value> {
    let mut leaves = Map::new();
    state.presence.retain(|presence_key, metas| {
        let (gone, kept): (Vec<Meta>, Vec<Meta>) =
            metas.drain(..).partition(|meta| meta.owner == channel);
        if !gone.is_empty() {
            let gone: Vec<Value> = gone.iter().map(|meta| meta_json(meta, None)).collect();
            leaves.insert(presence_key.clone(), json!({ "metas": gone }));
        }
        *metas = kept;
        !metas.is_empty()
    });
    leaves
}
