//! `[realtime]`: websocket limits and the replication reader.

use serde::Deserialize;

/// Realtime settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Channels one socket may join.
    pub max_channels_per_socket: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_channels_per_socket: 100,
        }
    }
}
