//! `[realtime]`: websocket limits and the replication reader.

use serde::Deserialize;

/// Realtime settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Channels one socket may join (Supabase: 100).
    pub max_channels_per_socket: usize,
    /// Joins one socket may make per second (Supabase's default tenant limit: 100).
    pub max_joins_per_second: u32,
    /// Largest broadcast or presence payload accepted, in bytes (Supabase free tier: 256 KB).
    pub max_payload_bytes: usize,
    /// Messages queued for one socket before it counts as a slow consumer and is closed.
    pub socket_queue: usize,
    /// How long one frame may take to reach a client, in milliseconds. A client that stops
    /// reading (its TCP window stays full) is closed after this instead of holding its writer.
    pub send_timeout_ms: u64,
    /// Seconds a socket may stay silent (no heartbeat, no message) before it is closed.
    pub idle_timeout_secs: u64,
    /// Refuse public channels: broadcast and presence then always go through
    /// `realtime.messages` policies, as Supabase's "private only" project setting.
    pub private_only: bool,
    /// Publication streamed for postgres_changes.
    pub publication: String,
    /// Durable logical replication slot; empty means `manifold_realtime_<database>`.
    pub slot_name: String,
    /// WAL the slot may hold back before it is reported and reset, in bytes. Keep it below
    /// the cluster's `max_slot_wal_keep_size` so the reset is ours, not PostgreSQL's.
    pub max_slot_lag_bytes: u64,
    /// How often the slot's lag is checked, in milliseconds.
    pub slot_check_interval_ms: u64,
    /// After a restart, changes committed while the server was down are held this long (in
    /// milliseconds) so reconnecting clients can rejoin before they are delivered.
    pub resume_grace_ms: u64,
    /// How long a join waits for the replication stream to reach its position, in ms.
    pub join_sync_timeout_ms: u64,
    /// Database connections used to authorize changes and check private channels.
    pub authorizer_connections: usize,
    /// Changes decoded into one authorization batch at most.
    pub batch_max_changes: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_channels_per_socket: 100,
            max_joins_per_second: 100,
            max_payload_bytes: 256 * 1024,
            socket_queue: 1024,
            send_timeout_ms: 10_000,
            idle_timeout_secs: 60,
            private_only: false,
            publication: "supabase_realtime".to_owned(),
            slot_name: String::new(),
            max_slot_lag_bytes: 1024 * 1024 * 1024,
            slot_check_interval_ms: 10_000,
            resume_grace_ms: 10_000,
            join_sync_timeout_ms: 10_000,
            authorizer_connections: 4,
            batch_max_changes: 500,
        }
    }
}
