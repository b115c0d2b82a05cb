//! The one replication reader of the process: started on the first join (or at boot when the
//! durable slot already exists, so changes committed while the server was down are delivered
//! to the clients that rejoin), restarted after errors, and reset — reported, never silently —
//! when the slot falls further behind than `max_slot_lag_bytes`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use manifold_config::RealtimeConfig;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::assemble::{Assembler, POSITION_PREFIX, WalEvent};
use super::pgoutput::decode;
use super::pipeline::{Pipeline, PipelineParts};
use super::source::{PgWalSource, WalSource};
use crate::error::StoreError;

/// Events buffered between the reader and the pipeline (back-pressure beyond that).
const EVENT_QUEUE: usize = 256;
/// First wait before reconnecting after a replication error; doubled per failed start.
const RESTART_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5);

const SLOT_SQL: &str = "select wal_status, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 \
     from pg_replication_slots where slot_name = $1::text";
const DROP_SLOT_SQL: &str = "select pg_drop_replication_slot(slot_name) \
     from pg_replication_slots where slot_name = $1::text and not active";
const POSITION_SQL: &str = "select pg_logical_emit_message(false, $1::text, ''::text)";
const CURRENT_LSN_SQL: &str = "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8";

/// The reader's state as joins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReaderState {
    Idle,
    Streaming,
    Failed(String),
}

/// A slot reset, kept for the status endpoint.
#[derive(Debug, Clone)]
struct Reset {
    at_unix_ms: u128,
    lag_bytes: i64,
    reason: String,
}

/// Handle of the reader.
#[derive(Debug)]
pub(crate) struct Replication {
    parts: PipelineParts,
    config: RealtimeConfig,
    admin_url: String,
    slot: String,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    spawned: AtomicBool,
    state: watch::Sender<ReaderState>,
    resets: Mutex<Vec<Reset>>,
    pending_reset: Mutex<Option<i64>>,
    run_token: Mutex<CancellationToken>,
}

impl Replication {
    pub(crate) fn new(
        parts: PipelineParts,
        config: RealtimeConfig,
        admin_url: String,
        slot: String,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            parts,
            config,
            admin_url,
            slot,
            run_token: Mutex::new(shutdown.child_token()),
            shutdown,
            tracker,
            spawned: AtomicBool::new(false),
            state: watch::channel(ReaderState::Idle).0,
            resets: Mutex::default(),
            pending_reset: Mutex::new(None),
        })
    }

    /// Boot: when the durable slot exists, resume it now (its backlog is held for the grace
    /// period, see [`Replication::initial_hold`]); a slot already too far behind is reset and
    /// reported instead.
    pub(crate) async fn resume_existing(self: &Arc<Self>) -> Result<(), StoreError> {
        let Some((_, lag)) = self.slot_lag().await? else {
            return Ok(());
        };
        if lag > i64::try_from(self.config.max_slot_lag_bytes).unwrap_or(i64::MAX) {
            self.drop_slot().await?;
            self.record_reset(lag, "the slot was too far behind at startup");
            return Ok(());
        }
        self.spawn();
        Ok(())
    }

    /// Taken before the first stream of the process starts: changes committed before now
    /// (the backlog of a resumed slot: what was committed while the server was down) wait for
    /// the grace period, so clients reconnecting after a restart rejoin before they are
    /// delivered. A slot created now starts after this position, so nothing is held then.
    /// The insert position, not the write position: with asynchronous commit a commit may not
    /// have been written out yet.
    async fn initial_hold(&self) -> Option<Hold> {
        let client = self.parts.catalog.pool().get().await.ok()?;
        let current: i64 = client.query_one(CURRENT_LSN_SQL, &[]).await.ok()?.get(0);
        Some(Hold {
            until_lsn: u64::try_from(current).unwrap_or(0),
            deadline: Instant::now() + Duration::from_millis(self.config.resume_grace_ms),
        })
    }

    /// Starts the reader if needed and waits until it streams. A failed start is retried by
    /// the supervisor (e.g. right after a restart, while PostgreSQL still holds the slot for
    /// the previous process), so a join waits through it and only reports a failure when the
    /// stream is not up within `join_sync_timeout_ms`.
    pub(crate) async fn ensure_running(self: &Arc<Self>) -> ReaderState {
        self.spawn();
        let mut state = self.state.subscribe();
        let wait = state.wait_for(|state| *state == ReaderState::Streaming);
        let timeout = Duration::from_millis(self.config.join_sync_timeout_ms);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => ReaderState::Streaming,
            _ => ReaderState::Failed("Replication connection was not established in time".into()),
        }
    }

    /// Starts the reader in the background if needed, without waiting for it.
    pub(crate) fn start(self: &Arc<Self>) {
        self.spawn();
    }

    fn spawn(self: &Arc<Self>) {
        if self.spawned.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        self.tracker.spawn(async move { this.supervise().await });
        let this = self.clone();
        self.tracker.spawn(async move { this.watch_slot().await });
    }

    async fn supervise(self: Arc<Self>) {
        let publication = self.config.publication.clone();
        let mut hold = self.initial_hold().await;
        let mut backoff = RESTART_BACKOFF;
        while !self.shutdown.is_cancelled() {
            let run = self.shutdown.child_token();
            if let Ok(mut current) = self.run_token.lock() {
                *current = run.clone();
            }
            match PgWalSource::start(&self.admin_url, &self.slot, &publication, run.clone()).await {
                Ok(source) => {
                    backoff = RESTART_BACKOFF;
                    self.state.send_replace(ReaderState::Streaming);
                    if let Err(error) = self.run(source, hold.take()).await {
                        tracing::warn!(%error, "replication stream ended; reconnecting");
                    }
                }
                Err(error) => {
                    // Right after a restart PostgreSQL may still hold the slot for the old
                    // process for a moment: retry soon, then less often.
                    tracing::warn!(%error, "replication could not start");
                    self.state.send_replace(ReaderState::Failed(
                        "Unable to connect to the replication stream".into(),
                    ));
                }
            }
            self.state.send_replace(ReaderState::Idle);
            let reset = self.pending_reset.lock().ok().and_then(|mut r| r.take());
            if let Some(lag) = reset {
                // The stream has stopped, so the slot is inactive and can be dropped; the
                // next start creates a fresh one at the current position.
                if let Err(error) = self.drop_slot().await {
                    tracing::warn!(%error, "dropping the lagging slot failed");
                }
                self.record_reset(lag, "the slot fell too far behind");
                continue;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
        }
        self.state.send_replace(ReaderState::Idle);
    }

    async fn run(
        &self,
        mut source: PgWalSource,
        hold: Option<Hold>,
    ) -> Result<(), pg_walstream::ReplicationError> {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let pipeline = Pipeline::new(self.parts.clone(), source.acknowledger());
        let deliver = tokio::spawn(run_pipeline(
            pipeline,
            receiver,
            hold,
            self.config.batch_max_changes,
            self.shutdown.clone(),
        ));
        let mut assembler = Assembler::default();
        let result = loop {
            match source.next().await {
                Ok(Some(bytes)) => match decode(bytes) {
                    Ok(message) => {
                        if let Some(event) = assembler.push(message)
                            && events.send(event).await.is_err()
                        {
                            break Ok(());
                        }
                    }
                    Err(error) => tracing::warn!(%error, "undecodable pgoutput message skipped"),
                },
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        drop(events);
        // Whatever was handed over is delivered and confirmed before the last feedback.
        let _ = deliver.await;
        source.flush().await;
        result
    }

    /// Checks the slot's lag periodically; past the limit the slot is reset and reported.
    async fn watch_slot(self: Arc<Self>) {
        let interval = Duration::from_millis(self.config.slot_check_interval_ms.max(100));
        let limit = i64::try_from(self.config.max_slot_lag_bytes).unwrap_or(i64::MAX);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if *self.state.borrow() == ReaderState::Streaming
                && let Err(error) = self.emit_position().await
            {
                tracing::debug!(%error, "position mark failed");
            }
            let (status, lag) = match self.slot_lag().await {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(error) => {
                    tracing::debug!(%error, "slot check failed");
                    continue;
                }
            };
            if lag > limit || status.as_deref() == Some("lost") {
                tracing::error!(slot = %self.slot, lag, "replication slot too far behind; resetting it");
                if let Ok(mut pending) = self.pending_reset.lock() {
                    *pending = Some(lag);
                }
                if let Ok(token) = self.run_token.lock() {
                    token.cancel();
                }
            }
        }
    }

    /// A non-transactional logical message: when the reader sees it, everything before it
    /// has been delivered, so the slot may advance even if no published table changed.
    async fn emit_position(&self) -> Result<(), StoreError> {
        let client = self.parts.catalog.pool().get().await?;
        client.query(POSITION_SQL, &[&POSITION_PREFIX]).await?;
        Ok(())
    }

    async fn slot_lag(&self) -> Result<Option<(Option<String>, i64)>, StoreError> {
        let client = self.parts.catalog.pool().get().await?;
        let row = client.query_opt(SLOT_SQL, &[&self.slot]).await?;
        Ok(row.map(|row| (row.get(0), row.get::<_, Option<i64>>(1).unwrap_or(0))))
    }

    async fn drop_slot(&self) -> Result<(), StoreError> {
        let client = self.parts.catalog.pool().get().await?;
        client.query(DROP_SLOT_SQL, &[&self.slot]).await?;
        Ok(())
    }

    fn record_reset(&self, lag_bytes: i64, reason: &str) {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        if let Ok(mut resets) = self.resets.lock() {
            resets.push(Reset {
                at_unix_ms,
                lag_bytes,
                reason: reason.to_owned(),
            });
        }
        let message = "Replication slot was reset because it fell too far behind: \
                       changes may have been missed";
        for link in self.parts.registry.channels() {
            link.system("postgres_changes", "error", message);
        }
    }

    /// The reader's state for the status endpoint.
    pub(crate) async fn status(&self) -> Value {
        let slot = self.slot_lag().await.ok().flatten();
        let resets: Vec<Value> = self
            .resets
            .lock()
            .map(|resets| {
                resets
                    .iter()
                    .map(|r| json!({"at": r.at_unix_ms as u64, "lag_bytes": r.lag_bytes, "reason": r.reason}))
                    .collect()
            })
            .unwrap_or_default();
        let state = match &*self.state.borrow() {
            ReaderState::Idle => "idle".to_owned(),
            ReaderState::Streaming => "streaming".to_owned(),
            ReaderState::Failed(reason) => format!("failed: {reason}"),
        };
        json!({
            "slot": self.slot,
            "state": state,
            "slot_exists": slot.is_some(),
            "wal_status": slot.as_ref().and_then(|(status, _)| status.clone()),
            "lag_bytes": slot.as_ref().map(|(_, lag)| *lag),
            "max_lag_bytes": self.config.max_slot_lag_bytes,
            "resets": resets,
        })
    }
}

/// Changes committed before `until_lsn` wait until `deadline` (the restart grace).
#[derive(Debug, Clone, Copy)]
struct Hold {
    until_lsn: u64,
    deadline: Instant,
}

async fn run_pipeline(
    mut pipeline: Pipeline,
    mut receiver: mpsc::Receiver<WalEvent>,
    mut hold: Option<Hold>,
    batch_max: usize,
    shutdown: CancellationToken,
) {
    let mut next = receiver.recv().await;
    while let Some(event) = next.take() {
        let mut batch = match event {
            WalEvent::Relation(shape) => {
                pipeline.relation(shape);
                next = receiver.recv().await;
                continue;
            }
            WalEvent::Transaction(transaction) => vec![transaction],
            WalEvent::Position(lsn) => {
                pipeline.confirm(lsn);
                next = receiver.recv().await;
                continue;
            }
        };
        let mut changes = batch.iter().map(|t| t.changes.len()).sum::<usize>();
        // Take whatever else is already waiting, up to the batch size, so the authorizer
        // answers many changes per query under load and one at a time when idle.
        while changes < batch_max {
            match receiver.try_recv() {
                Ok(WalEvent::Transaction(transaction)) => {
                    changes += transaction.changes.len();
                    batch.push(transaction);
                }
                Ok(relation) => {
                    next = Some(relation);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(current) = hold {
            let backlog = batch.iter().any(|t| t.end_lsn <= current.until_lsn);
            if backlog && Instant::now() < current.deadline {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(current.deadline) => {}
                }
            }
            if !backlog {
                hold = None;
            }
        }
        if !pipeline.deliver(batch, &shutdown).await {
            // Shutdown while the database could not answer: nothing of the batch was confirmed,
            // so the slot hands it over again on the next start.
            return;
        }
        if next.is_none() {
            next = receiver.recv().await;
        }
    }
}
