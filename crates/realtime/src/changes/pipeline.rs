//! From committed transactions to socket queues: match each change against the subscriptions,
//! authorize the whole batch per (table, role) in one go, then deliver in commit order — one
//! frame per channel and change with all of the channel's matching binding ids — and only then
//! confirm the batch's WAL position.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::assemble::{RelationShape, Transaction};
use super::authorizer::{Authorizer, Identity};
use super::catalog::{Catalog, Table};
use super::payload::{Change, Image};
use super::registry::{Entry, Kind, Registry};
use super::source::Acknowledger;
use crate::hub::{Hub, TopicKey};
use crate::protocol::{BroadcastBody, UserBroadcast, encode};

/// A change that met at least one subscription.
struct Pending {
    table: Arc<Table>,
    change: Change,
    entries: Vec<Arc<Entry>>,
}

/// The rows and identities of one (table, role) that need a verdict in a batch.
#[derive(Default)]
struct Group {
    changes: Vec<usize>,
    row_of: HashMap<usize, usize>,
    identities: Vec<Arc<Identity>>,
    sub_of: HashMap<String, usize>,
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

    /// Records a relation description from the stream.
    pub(crate) fn relation(&mut self, shape: RelationShape) {
        self.relations.insert(shape.id, shape);
    }

    /// Confirms a position mark: everything before it was delivered.
    pub(crate) fn confirm(&self, lsn: u64) {
        self.acknowledger.confirm(lsn);
    }

    /// Delivers a batch of transactions and confirms its end position.
    pub(crate) async fn deliver(&mut self, batch: Vec<Transaction>) {
        let Some(end_lsn) = batch.iter().map(|t| t.end_lsn).max() else {
            return;
        };
        let mut pending = Vec::new();
        for transaction in batch {
            for raw in transaction.changes {
                let Some(shape) = self.relations.get(&raw.relation) else {
                    continue;
                };
                if shape.schema == "realtime" && shape.name == "messages" {
                    if raw.kind == Kind::Insert {
                        self.database_broadcast(shape, raw.new.as_deref().unwrap_or_default());
                    }
                    continue;
                }
                if !self.parts.registry.has_table(raw.relation) {
                    continue;
                }
                let table = match self.parts.catalog.table(raw.relation).await {
                    Ok(table) => table,
                    Err(error) => {
                        tracing::warn!(%error, relation = raw.relation, "table lookup failed");
                        continue;
                    }
                };
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
                    pending.push(Pending {
                        table,
                        change,
                        entries,
                    });
                }
            }
        }
        let allowed = self.authorize(&pending).await;
        for (index, item) in pending.iter().enumerate() {
            self.send(item, allowed.get(&index)).await;
        }
        self.acknowledger.confirm(end_lsn);
    }

    /// Per pending change, the entries allowed to see it.
    async fn authorize(&self, pending: &[Pending]) -> HashMap<usize, Vec<Arc<Entry>>> {
        let mut groups: BTreeMap<(u32, String), Group> = BTreeMap::new();
        for (change_index, item) in pending.iter().enumerate() {
            for entry in &item.entries {
                let identity = entry.link.identity();
                let group = groups
                    .entry((item.table.oid, identity.role.clone()))
                    .or_default();
                let next_row = group.changes.len();
                let row = *group.row_of.entry(change_index).or_insert(next_row);
                if row == next_row {
                    group.changes.push(change_index);
                }
                let next_sub = group.identities.len();
                let sub = *group
                    .sub_of
                    .entry(identity.settings_json().to_owned())
                    .or_insert(next_sub);
                if sub == next_sub {
                    group.identities.push(identity);
                }
                group.asks.push((row, sub, entry.clone()));
            }
        }
        let mut allowed: HashMap<usize, Vec<Arc<Entry>>> = HashMap::new();
        for ((_, role), group) in groups {
            let Group {
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
                        .map(|image| image.json(table, 0..table.columns.len()).to_string())
                        .unwrap_or_else(|| "{}".to_owned())
                })
                .collect();
            let pairs: Vec<(usize, usize)> = asks.iter().map(|(r, s, _)| (*r, *s)).collect();
            let verdicts = match self
                .parts
                .authorizer
                .authorize(table, &role, &rows, &identities, &pairs)
                .await
            {
                Ok(verdicts) => verdicts,
                Err(error) => {
                    // Nothing is delivered that was not authorized.
                    tracing::warn!(%error, table = %table.name, "authorization failed");
                    vec![false; pairs.len()]
                }
            };
            for ((row, _, entry), verdict) in asks.into_iter().zip(verdicts) {
                if verdict && let Some(&change_index) = changes.get(row) {
                    allowed.entry(change_index).or_default().push(entry);
                }
            }
        }
        allowed
    }

    async fn send(&self, item: &Pending, entries: Option<&Vec<Arc<Entry>>>) {
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
            let Ok(access) = self.parts.catalog.access(&item.table, &role).await else {
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

    /// A row inserted into `realtime.messages` (by `realtime.send`) goes out as a broadcast
    /// with `meta.id`.
    fn database_broadcast(&self, shape: &RelationShape, cells: &[super::pgoutput::Cell]) {
        let text = |name: &str| -> Option<String> {
            let index = shape.columns.iter().position(|c| c.name == name)?;
            match cells.get(index)? {
                super::pgoutput::Cell::Text(bytes) => {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => None,
            }
        };
        let (Some(topic), Some(event)) = (text("topic"), text("event")) else {
            return;
        };
        if text("extension")
            .as_deref()
            .is_some_and(|e| e != "broadcast")
        {
            return;
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
        self.parts.hub.broadcast(&key, None, &message);
    }
}
