//! Turns decoded pgoutput messages into relation descriptions and whole committed
//! transactions, which is what the pipeline works on.

use std::collections::BTreeMap;

use super::pgoutput::{Cell, PgOutput, RelationColumn};
use super::registry::Kind;

/// Changes kept per transaction; the rest of a huge transaction is not held in memory: it is
/// counted per table, and the subscribers of those tables are told what they missed.
pub(crate) const MAX_CHANGES_PER_TRANSACTION: usize = 100_000;

/// A relation as the WAL describes it (columns in pgoutput order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelationShape {
    pub(crate) id: u32,
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `REPLICA IDENTITY FULL`: old tuples carry every column.
    pub(crate) full_identity: bool,
    pub(crate) columns: Vec<RelationColumn>,
}

/// One row change as decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawChange {
    pub(crate) relation: u32,
    pub(crate) kind: Kind,
    pub(crate) new: Option<Vec<Cell>>,
    pub(crate) old: Option<Vec<Cell>>,
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Transaction {
    /// Microseconds since 2000-01-01 UTC.
    pub(crate) commit_time: i64,
    /// Position after the commit: what is confirmed once it is delivered.
    pub(crate) end_lsn: u64,
    pub(crate) changes: Vec<RawChange>,
    /// Changes past [`MAX_CHANGES_PER_TRANSACTION`], per relation: not delivered, reported.
    pub(crate) dropped: BTreeMap<u32, usize>,
}

/// What the pipeline receives, in WAL order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalEvent {
    Relation(RelationShape),
    Transaction(Transaction),
    /// A position mark of ours (non-transactional message): everything before it was seen.
    Position(u64),
}

/// Prefix of the logical messages the reader emits to move its confirmed position forward
/// while no published table changes.
pub(crate) const POSITION_PREFIX: &str = "manifold_realtime_position";

/// Collects the changes between Begin and Commit.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    current: Option<Transaction>,
}

impl Assembler {
    /// Feeds one message; returns an event when one is complete.
    pub(crate) fn push(&mut self, message: PgOutput) -> Option<WalEvent> {
        match message {
            PgOutput::Begin { commit_time, .. } => {
                self.current = Some(Transaction {
                    commit_time,
                    ..Transaction::default()
                });
                None
            }
            PgOutput::Commit {
                end_lsn,
                commit_time,
                ..
            } => {
                let mut transaction = self.current.take().unwrap_or_default();
                transaction.end_lsn = end_lsn;
                transaction.commit_time = commit_time;
                let dropped: usize = transaction.dropped.values().sum();
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "transaction too large: its last changes are reported, not delivered"
                    );
                }
                Some(WalEvent::Transaction(transaction))
            }
            PgOutput::Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            } => Some(WalEvent::Relation(RelationShape {
                id,
                schema,
                name,
                full_identity: replica_identity == b'f',
                columns,
            })),
            PgOutput::Insert { relation, new } => {
                self.add(relation, Kind::Insert, Some(new), None);
                None
            }
            PgOutput::Update { relation, old, new } => {
                self.add(relation, Kind::Update, Some(new), old);
                None
            }
            PgOutput::Delete { relation, old } => {
                self.add(relation, Kind::Delete, None, Some(old));
                None
            }
            PgOutput::Message {
                transactional: false,
                lsn,
                prefix,
                ..
            } if prefix == POSITION_PREFIX => Some(WalEvent::Position(lsn)),
            PgOutput::Truncate { .. } | PgOutput::Message { .. } | PgOutput::Ignored => None,
        }
    }

    fn add(&mut self, relation: u32, kind: Kind, new: Option<Vec<Cell>>, old: Option<Vec<Cell>>) {
        let Some(transaction) = self.current.as_mut() else {
            return;
        };
        if transaction.changes.len() >= MAX_CHANGES_PER_TRANSACTION {
            *transaction.dropped.entry(relation).or_default() += 1;
            return;
        }
        transaction.changes.push(RawChange {
            relation,
            kind,
            new,
            old,
        });
    }
}
