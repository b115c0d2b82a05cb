//! Phoenix frames as realtime-js speaks them: serializer 1.0.0 (JSON objects), 2.0.0 (JSON
//! arrays `[join_ref, ref, topic, event, payload]`), the binary "user broadcast push" (kind 3)
//! clients send and the "user broadcast" (kind 4) we send. Decoding never panics.

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use serde_json::Value;

/// Binary kind of a client broadcast push (realtime-js `userBroadcastPush`).
const KIND_USER_BROADCAST_PUSH: u8 = 3;
/// Binary kind of a server broadcast realtime-js decodes (`userBroadcast`).
const KIND_USER_BROADCAST: u8 = 4;
/// Header bytes of a kind 3 frame: kind and six length/encoding bytes.
const PUSH_HEADER: usize = 7;

/// Serializer chosen by the `vsn` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Vsn {
    /// `1.0.0`: every frame a JSON object.
    V1,
    /// `2.0.0`: JSON arrays plus binary broadcast frames.
    V2,
}

impl Vsn {
    /// Phoenix falls back to 1.0.0 when `vsn` is absent; unknown values are refused.
    pub(crate) fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("1.0.0") => Some(Self::V1),
            Some("2.0.0") => Some(Self::V2),
            Some(_) => None,
        }
    }
}

/// The body of a user broadcast: JSON text or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BroadcastBody {
    /// JSON (the common case).
    Json(Value),
    /// An ArrayBuffer sent by the client; only vsn 2.0.0 sockets can receive it.
    Binary(Bytes),
}

/// A user broadcast as it travels between channels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserBroadcast {
    /// The user's event name.
    pub(crate) event: String,
    /// The payload.
    pub(crate) body: BroadcastBody,
    /// `meta` (`{id}` for database messages), if any.
    pub(crate) meta: Option<Value>,
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inbound {
    pub(crate) join_ref: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) topic: String,
    pub(crate) event: String,
    /// The JSON payload; for a binary broadcast push, `{}` and `broadcast` holds the data.
    pub(crate) payload: Value,
    /// Set for binary kind 3 pushes and for JSON `broadcast` events with a `type:"broadcast"`.
    pub(crate) broadcast: Option<UserBroadcast>,
}

/// Why a client frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Not JSON, or not the shape of the serializer.
    #[error("malformed frame")]
    Malformed,
    /// A binary kind we do not accept.
    #[error("unsupported binary frame kind {0}")]
    BinaryKind(u8),
    /// A length field points past the end of the frame.
    #[error("truncated binary frame")]
    Truncated,
}

/// Decodes a text frame with the socket's serializer.
pub(crate) fn decode_text(vsn: Vsn, text: &str) -> Result<Inbound, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::Malformed)?;
    let (join_ref, reference, topic, event, payload) = match (vsn, value) {
        (Vsn::V2, Value::Array(mut items)) if items.len() >= 5 => {
            let payload = items.swap_remove(4);
            let event = items.swap_remove(3);
            let topic = items.swap_remove(2);
            let reference = items.swap_remove(1);
            let join_ref = items.swap_remove(0);
            (join_ref, reference, topic, event, payload)
        }
        (Vsn::V1, Value::Object(mut map)) => (
            map.remove("join_ref").unwrap_or(Value::Null),
            map.remove("ref").unwrap_or(Value::Null),
            map.remove("topic").unwrap_or(Value::Null),
            map.remove("event").unwrap_or(Value::Null),
            map.remove("payload").unwrap_or(Value::Null),
        ),
        _ => return Err(FrameError::Malformed),
    };
    let (Value::String(topic), Value::String(event)) = (topic, event) else {
        return Err(FrameError::Malformed);
    };
    let broadcast = (event == "broadcast")
        .then(|| json_broadcast(&payload))
        .flatten();
    Ok(Inbound {
        join_ref: ref_text(join_ref),
        reference: ref_text(reference),
        topic,
        event,
        payload,
        broadcast,
    })
}

/// `{type:"broadcast", event, payload}` from a JSON push.
fn json_broadcast(payload: &Value) -> Option<UserBroadcast> {
    let event = payload.get("event")?.as_str()?.to_owned();
    Some(UserBroadcast {
        event,
        body: BroadcastBody::Json(payload.get("payload").cloned().unwrap_or(Value::Null)),
        meta: None,
    })
}

/// Phoenix refs are strings, but numbers are accepted too.
fn ref_text(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Decodes a binary frame: only kind 3 (user broadcast push) is valid from a client.
pub(crate) fn decode_binary(frame: &[u8]) -> Result<Inbound, FrameError> {
    let kind = *frame.first().ok_or(FrameError::Truncated)?;
    if kind != KIND_USER_BROADCAST_PUSH {
        return Err(FrameError::BinaryKind(kind));
    }
    let header = frame.get(1..PUSH_HEADER).ok_or(FrameError::Truncated)?;
    let lengths: Vec<usize> = header.iter().take(5).map(|&b| usize::from(b)).collect();
    let encoding = header.get(5).copied().ok_or(FrameError::Truncated)?;
    let mut offset = PUSH_HEADER;
    let mut fields = Vec::with_capacity(5);
    for length in lengths {
        let end = offset.checked_add(length).ok_or(FrameError::Truncated)?;
        let bytes = frame.get(offset..end).ok_or(FrameError::Truncated)?;
        fields.push(std::str::from_utf8(bytes).map_err(|_| FrameError::Malformed)?);
        offset = end;
    }
    let rest = frame.get(offset..).ok_or(FrameError::Truncated)?;
    let [join_ref, reference, topic, event, metadata] = fields[..] else {
        return Err(FrameError::Truncated);
    };
    let body = if encoding == 1 {
        BroadcastBody::Json(serde_json::from_slice(rest).map_err(|_| FrameError::Malformed)?)
    } else {
        BroadcastBody::Binary(Bytes::copy_from_slice(rest))
    };
    let meta = if metadata.is_empty() {
        None
    } else {
        Some(serde_json::from_str(metadata).map_err(|_| FrameError::Malformed)?)
    };
    let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    Ok(Inbound {
        join_ref: non_empty(join_ref),
        reference: non_empty(reference),
        topic: topic.to_owned(),
        event: "broadcast".to_owned(),
        payload: Value::Object(Default::default()),
        broadcast: Some(UserBroadcast {
            event: event.to_owned(),
            body,
            meta,
        }),
    })
}

/// Encodes one server frame whose payload is already JSON text. Fan-out encodes once per
/// serializer and shares the bytes between sockets.
pub(crate) fn encode(
    vsn: Vsn,
    join_ref: Option<&str>,
    reference: Option<&str>,
    topic: &str,
    event: &str,
    payload_json: &str,
) -> Message {
    let text_ref = |value: Option<&str>| match value {
        Some(text) => Value::String(text.to_owned()).to_string(),
        None => "null".to_owned(),
    };
    let topic = Value::String(topic.to_owned()).to_string();
    let event = Value::String(event.to_owned()).to_string();
    let mut out = String::with_capacity(payload_json.len() + topic.len() + event.len() + 64);
    match vsn {
        Vsn::V2 => {
            out.push('[');
            out.push_str(&text_ref(join_ref));
            out.push(',');
            out.push_str(&text_ref(reference));
            out.push(',');
            out.push_str(&topic);
            out.push(',');
            out.push_str(&event);
            out.push(',');
            out.push_str(payload_json);
            out.push(']');
        }
        Vsn::V1 => {
            out.push_str("{\"topic\":");
            out.push_str(&topic);
            out.push_str(",\"event\":");
            out.push_str(&event);
            out.push_str(",\"payload\":");
            out.push_str(payload_json);
            out.push_str(",\"ref\":");
            out.push_str(&text_ref(reference));
            out.push_str(",\"join_ref\":");
            out.push_str(&text_ref(join_ref));
            out.push('}');
        }
    }
    Message::Text(Utf8Bytes::from(out))
}

/// Encodes a user broadcast for one serializer: kind 4 for binary bodies on 2.0.0, JSON text
/// otherwise (`None` when a v1 socket cannot receive a binary body, as Supabase drops it).
pub(crate) fn encode_broadcast(vsn: Vsn, topic: &str, message: &UserBroadcast) -> Option<Message> {
    match (&message.body, vsn) {
        (BroadcastBody::Binary(bytes), Vsn::V2) => {
            let meta = message
                .meta
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default();
            let (Ok(topic_len), Ok(event_len), Ok(meta_len)) = (
                u8::try_from(topic.len()),
                u8::try_from(message.event.len()),
                u8::try_from(meta.len()),
            ) else {
                return None;
            };
            let mut out = Vec::with_capacity(5 + topic.len() + message.event.len() + bytes.len());
            out.extend_from_slice(&[KIND_USER_BROADCAST, topic_len, event_len, meta_len, 0]);
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(message.event.as_bytes());
            out.extend_from_slice(meta.as_bytes());
            out.extend_from_slice(bytes);
            Some(Message::Binary(Bytes::from(out)))
        }
        (BroadcastBody::Binary(_), Vsn::V1) => None,
        (BroadcastBody::Json(payload), _) => {
            let mut body = serde_json::Map::new();
            body.insert("type".into(), Value::String("broadcast".into()));
            body.insert("event".into(), Value::String(message.event.clone()));
            body.insert("payload".into(), payload.clone());
            if let Some(meta) = &message.meta {
                body.insert("meta".into(), meta.clone());
            }
            let json = Value::Object(body).to_string();
            Some(encode(vsn, None, None, topic, "broadcast", &json))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_arrays_and_v1_objects_decode() {
        let frame = decode_text(
            Vsn::V2,
            r#"["6","7","realtime:room1","phx_join",{"config":{}}]"#,
        )
        .unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("6"));
        assert_eq!(frame.reference.as_deref(), Some("7"));
        assert_eq!(frame.topic, "realtime:room1");
        assert_eq!(frame.event, "phx_join");
        let frame = decode_text(
            Vsn::V1,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3"}"#,
        )
        .unwrap();
        assert_eq!(frame.join_ref, None);
        assert_eq!(frame.reference.as_deref(), Some("3"));
        assert_eq!(
            decode_text(Vsn::V2, r#"{"topic":"x"}"#),
            Err(FrameError::Malformed)
        );
        assert_eq!(decode_text(Vsn::V2, "[1,2]"), Err(FrameError::Malformed));
    }

    #[test]
    fn kind3_push_decodes_as_captured_from_realtime_js() {
        let mut frame = vec![3, 1, 1, 14, 4, 0, 1];
        frame.extend_from_slice(b"67realtime:room1ping");
        frame.extend_from_slice("{\"a\":\"é\"}".as_bytes());
        let inbound = decode_binary(&frame).unwrap();
        assert_eq!(inbound.topic, "realtime:room1");
        assert_eq!(inbound.join_ref.as_deref(), Some("6"));
        assert_eq!(inbound.reference.as_deref(), Some("7"));
        let broadcast = inbound.broadcast.unwrap();
        assert_eq!(broadcast.event, "ping");
        assert_eq!(
            broadcast.body,
            BroadcastBody::Json(serde_json::json!({"a": "é"}))
        );
    }

    #[test]
    fn hostile_binary_frames_are_errors_not_panics() {
        assert_eq!(decode_binary(&[]), Err(FrameError::Truncated));
        assert_eq!(decode_binary(&[0, 1, 2]), Err(FrameError::BinaryKind(0)));
        assert_eq!(decode_binary(&[3, 9, 9]), Err(FrameError::Truncated));
        assert_eq!(
            decode_binary(&[3, 255, 255, 255, 255, 255, 0, 1]),
            Err(FrameError::Truncated)
        );
        for length in 0..40 {
            let bytes: Vec<u8> = (0..length).map(|i| (i * 37 % 251) as u8).collect();
            let _ = decode_binary(&bytes);
        }
    }

    #[test]
    fn encodings_match_the_wire() {
        let Message::Text(text) = encode(Vsn::V2, None, Some("3"), "phoenix", "phx_reply", "{}")
        else {
            panic!("text")
        };
        assert_eq!(text.as_str(), r#"[null,"3","phoenix","phx_reply",{}]"#);
        let Message::Text(text) = encode(Vsn::V1, Some("1"), None, "realtime:a", "system", "{}")
        else {
            panic!("text")
        };
        assert_eq!(
            text.as_str(),
            r#"{"topic":"realtime:a","event":"system","payload":{},"ref":null,"join_ref":"1"}"#
        );
        let message = UserBroadcast {
            event: "e".into(),
            body: BroadcastBody::Binary(Bytes::from_static(&[1, 2])),
            meta: None,
        };
        let Some(Message::Binary(bytes)) = encode_broadcast(Vsn::V2, "realtime:a", &message) else {
            panic!("binary")
        };
        assert_eq!(&bytes[..], b"\x04\x0a\x01\x00\x00realtime:ae\x01\x02");
        assert!(encode_broadcast(Vsn::V1, "realtime:a", &message).is_none());
    }
}
