//! Where WAL comes from, behind a small trait: payloads in, acknowledgements out. The real
//! source is `pg_walstream`'s replication connection (upstream tokio-postgres cannot stream
//! replication); decoding is ours (`pgoutput`), so the crate only moves bytes and feedback.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pg_walstream::{
    CancellationToken, LogicalReplicationStream, ReplicationError, ReplicationSlotOptions,
    ReplicationStreamConfig, RetryConfig, SharedLsnFeedback, StreamingMode,
};

/// Publication of `realtime.messages` inserts (database-originated broadcasts).
pub(crate) const MESSAGES_PUBLICATION: &str = "manifold_realtime_messages";

/// How often progress is reported to the server while data flows.
const FEEDBACK_INTERVAL: Duration = Duration::from_secs(1);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A stream of pgoutput payloads with acknowledgement.
pub(crate) trait WalSource: Send {
    /// The next payload; `Ok(None)` once stopped.
    fn next(&mut self) -> impl Future<Output = Result<Option<Bytes>, ReplicationError>> + Send;
    /// A handle the pipeline uses to confirm positions (delivery queued up to `lsn`).
    fn acknowledger(&self) -> Acknowledger;
    /// Sends the confirmed position now (shutdown).
    fn flush(&mut self) -> impl Future<Output = ()> + Send;
}

/// Confirms WAL positions to the source; shared with the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Acknowledger(Arc<SharedLsnFeedback>);

impl Acknowledger {
    /// Everything up to `lsn` has been handed to the sockets' queues.
    pub(crate) fn confirm(&self, lsn: u64) {
        self.0.update_applied_lsn(lsn);
    }
}

/// The replication connection of `pg_walstream`.
pub(crate) struct PgWalSource {
    stream: LogicalReplicationStream,
    cancel: CancellationToken,
}

impl std::fmt::Debug for PgWalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWalSource").finish_non_exhaustive()
    }
}

impl PgWalSource {
    /// Connects in replication mode, creates the durable slot if missing and starts streaming
    /// from its confirmed position (protocol 1: whole transactions, after commit).
    pub(crate) async fn start(
        admin_url: &str,
        slot: &str,
        publication: &str,
        cancel: CancellationToken,
    ) -> Result<Self, ReplicationError> {
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}replication=database");
        // pg_walstream quotes the whole value once; the inner quotes make it a list.
        let publications = format!("{publication}\",\"{MESSAGES_PUBLICATION}");
        let options = ReplicationSlotOptions {
            snapshot: Some("nothing".to_owned()),
            ..ReplicationSlotOptions::default()
        };
        let config = ReplicationStreamConfig::builder(slot, publications)
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_feedback_interval(FEEDBACK_INTERVAL)
            .with_connection_timeout(CONNECT_TIMEOUT)
            .with_health_check_interval(Duration::from_secs(30))
            .with_retry_config(RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            })
            .with_slot_options(options)
            .with_messages(true);
        let mut stream = LogicalReplicationStream::new(&url, config).await?;
        stream.start(None).await?;
        Ok(Self { stream, cancel })
    }
}

impl WalSource for PgWalSource {
    async fn next(&mut self) -> Result<Option<Bytes>, ReplicationError> {
        match self.stream.next_raw_event(&self.cancel).await {
            Ok(raw) => Ok(Some(raw.data)),
            Err(ReplicationError::Cancelled(_) | ReplicationError::StreamStopped(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn acknowledger(&self) -> Acknowledger {
        Acknowledger(self.stream.shared_lsn_feedback.clone())
    }

    async fn flush(&mut self) {
        if let Err(error) = self.stream.send_feedback().await {
            tracing::warn!(%error, "final replication feedback failed");
        }
    }
}
