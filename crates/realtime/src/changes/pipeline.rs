//! From committed transactions to socket queues: match each change against the subscriptions,
//! authorize the whole batch per (table, role) in one go, then deliver in commit order — one
//! frame per channel and change with all of the channel's matching binding ids — and only then
//! confirm the batch's WAL position.
//!
//! A batch is delivered only once every verdict in it is reached. When the database cannot
//! answer (no connection, a broken one, a serialization failure), nothing of the batch is sent
//! or confirmed: it is decided again with backoff, as Supabase's poller retries instead of
//! advancing, and after a few failed attempts the affected channels get a `postgres_changes`
//! `system` error saying their changes are held. A policy that raises for one identity's claims
//! is a verdict (that identity is denied), not an outage.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::assemble::{MAX_CHANGES_PER_TRANSACTION, RelationShape, Transaction};
use super::authorizer::{Authorizer, Identity};
use super::catalog::{Catalog, RoleAccess, Table};
use super::payload::{Change, Image};
use super::registry::{Entry, Kind, Registry};
use super::source::Acknowledger;
use super::subscribe::{Refusal, rebind};
use crate::error::StoreError;
use crate::hub::{Hub, TopicKey};
use crate::outbox::ChannelLink;
use crate::protocol::{BroadcastBody, UserBroadcast, encode};

/// First wait before deciding a batch again after the database did not answer.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Failed attempts after which the affected channels are told their changes are held.
const REPORT_AFTER_ATTEMPTS: u32 = 3;
/// What those channels are told (Supabase reports "Too many database timeouts" the same way).
const HELD_MESSAGE: &str = "Too many database timeouts: changes are held and delivered once \
                            the database answers again";

/// A change that met at least one subscription.
struct Pending {
    table: Arc<Table>,
    change: Change,
    entries: Vec<Arc<Entry>>,
}

/// What a batch sends, in commit order.
enum Output {
    /// `pending[index]`.
    Change(usize),
    /// A row of `realtime.messages` (`realtime.send`).
    Broadcast(TopicKey, UserBroadcast),
}

/// A batch with every verdict reached.
struct Decided {
    outputs: Vec<Output>,
    pending: Vec<Pending>,
    allowed: HashMap<usize, Vec<Arc<Entry>>>,
    access: HashMap<(u32, String), Arc<RoleAccess>>,
    /// Channels whose subscriptions no longer fit their table, with the reason.
    refused: Vec<(Arc<ChannelLink>, String)>,
}

/// The database did not answer; `channels` were waiting for the batch.
struct Undecided {
    error: StoreError,
    channels: Vec<Arc<ChannelLink>>,
}

/// The rows and identities of one (table, role) that need a verdict in a batch.
struct Group {
    role: String,
    changes: Vec<usize>,
    identities: Vec<Arc<Identity>>,
    /// Identity (by address: `identities` holds it, so the address stays its own) → index.
    sub_of: HashMap<usize, usize>,
    asks: Vec<(usize, usize, Arc<Entry>)>,
}

/// Shared parts the pipeline works with.
#[derive(Debug, Clone)]
pub(crate) struct PipelineParts {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) authorizer: Arc<Authorizer>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) hub: Arc<Hub>,
}

/// The pipeline's state: relation shapes seen in the stream.
#[derive(Debug)]
pub(crate) struct Pipeline {
    parts: PipelineParts,
    relations: HashMap<u32, RelationShape>,
    acknowledger: Acknowledger,
}

impl Pipeline {
    pub(crate) fn new(parts: PipelineParts, acknowledger: Acknowledger) -> Self {
        Self {
            parts,
            relations: HashMap::new(),
            acknowledger,
        }
    }

    /// Records a relation description from the stream. PostgreSQL sends one before the first
    /// change of a table in a session and again after its columns changed, so what is known
    /// about the table is read again (subscriptions are then resolved against the new columns).
    pub(crate) fn relation(&mut self, shape: RelationShape) {
        self.parts.catalog.forget(shape.id);
        self.parts.authorizer.forget(shape.id);
        self.relations.insert(shape.id, shape);
    }

    /// Confirms a position mark: everything before it was delivered.
    pub(crate) fn confirm(&self, lsn: u64) {
        self.acknowledger.confirm(lsn);
    }

    /// Delivers a batch of transactions and confirms its end position. While the database
    /// cannot answer, the batch is decided again with backoff; `false` when shutdown came
    /// first (nothing was sent or confirmed: the slot replays the batch on the next start).
    pub(crate) async fn deliver(
        &mut self,
        batch: Vec<Transaction>,
        shutdown: &CancellationToken,
    ) -> bool {
        let Some(end_lsn) = batch.iter().map(|t| t.end_lsn).max() else {
            return true;
        };
        let mut attempt = 0;
        let mut backoff = RETRY_BACKOFF;
        let mut told = HashSet::new();
        loop {
            match self.decide(&batch).await {
                Ok(decided) => {
                    self.send_all(decided);
                    self.report_dropped(&batch);
                    self.acknowledger.confirm(end_lsn);
                    return true;
                }
                Err(undecided) => {
                    attempt += 1;
                    tracing::warn!(error = %undecided.error, attempt, "changes could not be authorized; retrying");
                    if attempt >= REPORT_AFTER_ATTEMPTS {
                        for link in undecided.channels {
                            if told.insert(link.id) {
                                link.system("postgres_changes", "error", HELD_MESSAGE);
                            }
                        }
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    }

    /// Matches and authorizes a batch without sending anything.
    async fn decide(&self, batch: &[Transaction]) -> Result<Decided, Undecided> {
        let mut outputs = Vec::new();
        let mut pending = Vec::new();
        let mut refused = Vec::new();
        for transaction in batch {
            for raw in &transaction.changes {
                let Some(shape) = self.relations.get(&raw.relation) else {
                    continue;
                };
                if shape.schema == "realtime" && shape.name == "messages" {
                    if raw.kind == Kind::Insert
                        && let Some((key, message)) =
                            database_broadcast(shape, raw.new.as_deref().unwrap_or_default())
                    {
                        outputs.push(Output::Broadcast(key, message));
                    }
                    continue;
                }
                if !self.parts.registry.has_table(raw.relation) {
                    continue;
                }
                let table = match self.parts.catalog.table(raw.relation).await {
                    Ok(table) => table,
                    Err(StoreError::UnknownRelation(_)) => continue,
                    Err(error) => {
                        let channels = self.parts.registry.channels_of(raw.relation);
                        return Err(Undecided { error, channels });
                    }
                };
                match self.refresh(&table).await {
                    Ok(mut dropped) => refused.append(&mut dropped),
                    Err(error) => {
                        let channels = self.parts.registry.channels_of(raw.relation);
                        return Err(Undecided { error, channels });
                    }
                }
                let old = raw.old.as_deref().map(|cells| {
                    let image = Image::map(&table, shape, cells, None);
                    if shape.full_identity {
                        image
                    } else {
                        image.key_only(&table)
                    }
                });
                let new = raw
                    .new
                    .as_deref()
                    .map(|cells| Image::map(&table, shape, cells, old.as_ref()));
                let change = Change {
                    kind: raw.kind,
                    new,
                    old,
                    commit_time: transaction.commit_time,
                };
                let Some(judged) = change.judged() else {
                    continue;
                };
                let entries = self
                    .parts
                    .registry
                    .matching(table.oid, change.kind, |index| judged.text(index));
                if !entries.is_empty() {
                    outputs.push(Output::Change(pending.len()));
                    pending.push(Pending {
                        table,
                        change,
                        entries,
                    });
                }
            }
        }
        let allowed = self.authorize(&pending).await?;
        let access = self.access(&pending, &allowed).await?;
        Ok(Decided {
            outputs,
            pending,
            allowed,
            access,
            refused,
        })
    }

    /// Resolves the subscriptions of `table` again when the table changed since they were;
    /// returns the channels whose subscriptions no longer fit it (removed), with the reason.
    async fn refresh(
        &self,
        table: &Arc<Table>,
    ) -> Result<Vec<(Arc<ChannelLink>, String)>, StoreError> {
        let stale = self.parts.registry.stale_entries(table);
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        let mut rebound = Vec::with_capacity(stale.len());
        let mut refused = Vec::new();
        for entry in stale {
            match rebind(&self.parts.catalog, &entry, table).await {
                Ok(fresh) => rebound.push((entry, Some(fresh))),
                Err(Refusal::Invalid(message)) => {
                    refused.push((entry.link.clone(), message));
                    rebound.push((entry, None));
                }
                Err(Refusal::Store(error)) => return Err(error),
            }
        }
        tracing::info!(table = %table.name, subscriptions = rebound.len(), "subscriptions resolved again after the table changed");
        self.parts.registry.replace(table, rebound);
        Ok(refused)
    }

    /// Per pending change, the entries allowed to see it.
    async fn authorize(
        &self,
        pending: &[Pending],
    ) -> Result<HashMap<usize, Vec<Arc<Entry>>>, Undecided> {
        // Up to a million asks per batch (1,000 subscribers meeting every change): the loop
        // allocates nothing per ask and hashes only integers.
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: HashMap<u32, HashMap<String, usize>> = HashMap::new();
        for (change_index, item) in pending.iter().enumerate() {
            for entry in &item.entries {
                let identity = entry.link.identity();
                let by_role = group_of.entry(item.table.oid).or_default();
                let index = match by_role.get(identity.role.as_str()) {
                    Some(&index) => index,
                    None => {
                        groups.push(Group {
                            role: identity.role.clone(),
                            changes: Vec::new(),
                            identities: Vec::new(),
                            sub_of: HashMap::new(),
                            asks: Vec::new(),
                        });
                        by_role.insert(identity.role.clone(), groups.len() - 1);
                        groups.len() - 1
                    }
                };
                let Some(group) = groups.get_mut(index) else {
                    continue;
                };
                // Changes come in order, so a change seen before in this group is its last row.
                if group.changes.last() != Some(&change_index) {
                    group.changes.push(change_index);
                }
                let row = group.changes.len() - 1;
                let next_sub = group.identities.len();
                let sub = *group
                    .sub_of
                    .entry(Arc::as_ptr(&identity) as usize)
                    .or_insert(next_sub);
                if sub == next_sub {
                    group.identities.push(identity);
                }
                group.asks.push((row, sub, entry.clone()));
            }
        }
        let mut allowed: HashMap<usize, Vec<Arc<Entry>>> = HashMap::new();
        for group in groups {
            let Group {
                role,
                changes,
                identities,
                asks,
                ..
            } = group;
            let Some(first) = changes.first().and_then(|&c| pending.get(c)) else {
                continue;
            };
            let table = &first.table;
            let rows: Vec<String> = changes
                .iter()
                .filter_map(|&c| pending.get(c))
                .map(|item| {
                    item.change
                        .judged()
                        .map(|image| image.json(table, 0..table.columns.len()))
                        .unwrap_or_else(|| "{}".to_owned())
                })
                .collect();
            let pairs: Vec<(usize, usize)> = asks.iter().map(|(r, s, _)| (*r, *s)).collect();
            let verdicts = self
                .parts
                .authorizer
                .authorize(table, &role, &rows, &identities, &pairs)
                .await
                .map_err(|unavailable| Undecided {
                    error: unavailable.0,
                    channels: links_of(asks.iter().map(|(_, _, entry)| entry)),
                })?;
            for ((row, _, entry), verdict) in asks.into_iter().zip(verdicts) {
                if verdict && let Some(&change_index) = changes.get(row) {
                    allowed.entry(change_index).or_default().push(entry);
                }
            }
        }
        Ok(allowed)
    }

    /// What each (table, role) that receives something may see of the columns.
    async fn access(
        &self,
        pending: &[Pending],
        allowed: &HashMap<usize, Vec<Arc<Entry>>>,
    ) -> Result<HashMap<(u32, String), Arc<RoleAccess>>, Undecided> {
        let mut access = HashMap::new();
        for (index, entries) in allowed {
            let Some(item) = pending.get(*index) else {
                continue;
            };
            for entry in entries {
                let key = (item.table.oid, entry.link.identity().role.clone());
                if access.contains_key(&key) {
                    continue;
                }
                match self.parts.catalog.access(&item.table, &key.1).await {
                    Ok(found) => {
                        access.insert(key, found);
                    }
                    Err(error) if error.is_transient() => {
                        return Err(Undecided {
                            error,
                            channels: links_of(entries.iter()),
                        });
                    }
                    // Not knowing which columns the role may read, nothing is shown to it.
                    Err(error) => {
                        tracing::warn!(%error, table = %item.table.name, "column access unknown; not delivered");
                    }
                }
            }
        }
        Ok(access)
    }

    fn send_all(&self, decided: Decided) {
        for (link, message) in &decided.refused {
            link.system("postgres_changes", "error", message);
        }
        for output in &decided.outputs {
            match output {
                Output::Change(index) => {
                    if let Some(item) = decided.pending.get(*index) {
                        self.send(item, decided.allowed.get(index), &decided.access);
                    }
                }
                Output::Broadcast(key, message) => self.parts.hub.broadcast(key, None, message),
            }
        }
    }

    fn send(
        &self,
        item: &Pending,
        entries: Option<&Vec<Arc<Entry>>>,
        access: &HashMap<(u32, String), Arc<RoleAccess>>,
    ) {
        let Some(entries) = entries else {
            return;
        };
        // channel → its entries, in registration order of the channel.
        let mut channels: BTreeMap<u64, Vec<&Arc<Entry>>> = BTreeMap::new();
        for entry in entries {
            channels.entry(entry.link.id).or_default().push(entry);
        }
        let mut data_cache: HashMap<Vec<usize>, String> = HashMap::new();
        for group in channels.values() {
            let Some(first) = group.first() else { continue };
            let link = &first.link;
            let role = link.identity().role.clone();
            let Some(access) = access.get(&(item.table.oid, role)) else {
                continue;
            };
            // Bindings with different select lists get separate messages.
            let mut by_columns: BTreeMap<Vec<usize>, Vec<u64>> = BTreeMap::new();
            for entry in group {
                let columns: Vec<usize> = (0..item.table.columns.len())
                    .filter(|&i| access.selectable.get(i).copied().unwrap_or(false))
                    .filter(|i| match &entry.select {
                        Some(select) => select.contains(i) || item.table.key.contains(i),
                        None => true,
                    })
                    .collect();
                let ids = by_columns.entry(columns).or_default();
                if !ids.contains(&entry.binding_id) {
                    ids.push(entry.binding_id);
                }
            }
            for (columns, ids) in by_columns {
                let data = data_cache
                    .entry(columns.clone())
                    .or_insert_with(|| item.change.data(&item.table, &columns));
                let ids = Value::from(ids).to_string();
                let mut payload = String::with_capacity(data.len() + ids.len() + 20);
                payload.push_str("{\"ids\":");
                payload.push_str(&ids);
                payload.push_str(",\"data\":");
                payload.push_str(data);
                payload.push('}');
                link.deliver(encode(
                    link.vsn,
                    None,
                    None,
                    &link.topic,
                    "postgres_changes",
                    &payload,
                ));
            }
        }
    }

    /// Tells the subscribers of each table with changes past the per-transaction limit how
    /// many they did not get.
    fn report_dropped(&self, batch: &[Transaction]) {
        for transaction in batch {
            for (relation, count) in &transaction.dropped {
                let name = self
                    .relations
                    .get(relation)
                    .map(|shape| format!("{}.{}", shape.schema, shape.name))
                    .unwrap_or_else(|| relation.to_string());
                let message = format!(
                    "Transaction too large: {count} changes to {name} past the first \
                     {MAX_CHANGES_PER_TRANSACTION} of one transaction were not delivered"
                );
                for link in self.parts.registry.channels_of(*relation) {
                    link.system("postgres_changes", "error", &message);
                }
            }
        }
    }
}

/// The distinct channels of some entries.
fn links_of<'a>(entries: impl Iterator<Item = &'a Arc<Entry>>) -> Vec<Arc<ChannelLink>> {
    let mut seen = HashSet::new();
    entries
        .filter(|entry| seen.insert(entry.link.id))
        .map(|entry| entry.link.clone())
        .collect()
}

/// A row inserted into `realtime.messages` (by `realtime.send`) goes out as a broadcast with
/// `meta.id`.
fn database_broadcast(
    shape: &RelationShape,
    cells: &[super::pgoutput::Cell],
) -> Option<(TopicKey, UserBroadcast)> {
    let text = |name: &str| -> Option<String> {
        let index = shape.columns.iter().position(|c| c.name == name)?;
        match cells.get(index)? {
            super::pgoutput::Cell::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    };
    let (topic, event) = (text("topic")?, text("event")?);
    if text("extension")
        .as_deref()
        .is_some_and(|e| e != "broadcast")
    {
        return None;
    }
    let payload = text("payload")
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or(Value::Null);
    let meta = text("id").map(|id| serde_json::json!({ "id": id }));
    let key = TopicKey {
        topic: format!("realtime:{topic}"),
        private: text("private").as_deref() == Some("t"),
    };
    let message = UserBroadcast {
        event,
        body: BroadcastBody::Json(payload),
        meta,
    };
    Some((key, message))
}
