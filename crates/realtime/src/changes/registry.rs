//! postgres_changes subscriptions in memory, indexed by table and, for the common
//! `column=eq.value` / `in` filters, by (column, canonical value), so a change only meets the
//! subscriptions that can match it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::catalog::Table;
use super::filter::{Comparison, Condition, Operator, RawCondition};
use crate::outbox::ChannelLink;

static NEXT_ENTRY: AtomicU64 = AtomicU64::new(1);

/// Which change types a binding wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events {
    pub(crate) insert: bool,
    pub(crate) update: bool,
    pub(crate) delete: bool,
}

impl Events {
    /// `INSERT`, `UPDATE`, `DELETE` or `*` (case-insensitive); anything else is refused.
    pub(crate) fn parse(event: &str) -> Option<Self> {
        let (insert, update, delete) = match event.to_ascii_uppercase().as_str() {
            "*" => (true, true, true),
            "INSERT" => (true, false, false),
            "UPDATE" => (false, true, false),
            "DELETE" => (false, false, true),
            _ => return None,
        };
        Some(Self {
            insert,
            update,
            delete,
        })
    }
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Insert,
    Update,
    Delete,
}

impl Kind {
    /// `INSERT` / `UPDATE` / `DELETE`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// What an entry was resolved from, so it can be resolved again when its table changes.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The table version the column indexes refer to.
    pub(crate) table: Arc<Table>,
    /// The client's binding object.
    pub(crate) raw: Value,
    pub(crate) conditions: Vec<RawCondition>,
    /// Column names of `select`.
    pub(crate) select: Option<Vec<String>>,
}

/// One binding of one channel on one table.
#[derive(Debug)]
pub(crate) struct Entry {
    key: u64,
    pub(crate) link: Arc<ChannelLink>,
    /// The id echoed in the join reply and carried in `ids`.
    pub(crate) binding_id: u64,
    pub(crate) events: Events,
    pub(crate) conditions: Vec<Condition>,
    /// Column indexes to deliver (select list plus key), or all.
    pub(crate) select: Option<Vec<usize>>,
    pub(crate) source: Source,
}

impl Entry {
    pub(crate) fn new(
        link: Arc<ChannelLink>,
        binding_id: u64,
        events: Events,
        conditions: Vec<Condition>,
        select: Option<Vec<usize>>,
        source: Source,
    ) -> Self {
        Self {
            key: NEXT_ENTRY.fetch_add(1, Ordering::Relaxed),
            link,
            binding_id,
            events,
            conditions,
            select,
            source,
        }
    }

    /// The same subscription resolved against another version of its table.
    pub(crate) fn rebound(
        &self,
        conditions: Vec<Condition>,
        select: Option<Vec<usize>>,
        source: Source,
    ) -> Self {
        Self {
            key: self.key,
            link: self.link.clone(),
            binding_id: self.binding_id,
            events: self.events,
            conditions,
            select,
            source,
        }
    }

    fn wants(&self, kind: Kind) -> bool {
        match kind {
            Kind::Insert => self.events.insert,
            Kind::Update => self.events.update,
            Kind::Delete => self.events.delete,
        }
    }

    /// The condition the entry is indexed under: its first plain eq/in on a type whose
    /// canonical text is unique per value (not numeric, float or timestamptz, where `1.0` and
    /// `1.00`, or two offsets, name the same value).
    fn index_condition(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| {
            !c.negated
                && matches!(c.operator, Operator::Eq | Operator::In)
                && !matches!(
                    c.comparison,
                    Comparison::Numeric | Comparison::Float | Comparison::Instant
                )
        })
    }
}

#[derive(Debug, Default)]
struct TableIndex {
    entries: HashMap<u64, Arc<Entry>>,
    unindexed: HashSet<u64>,
    by_value: HashMap<usize, HashMap<String, HashSet<u64>>>,
    /// The table version every entry's column indexes fit (`None`: they do not all fit one).
    current: Option<Arc<Table>>,
}

impl TableIndex {
    fn insert(&mut self, entry: Arc<Entry>) {
        let key = entry.key;
        match entry.index_condition() {
            Some(condition) => {
                let column = self.by_value.entry(condition.column).or_default();
                for value in &condition.values {
                    column.entry(value.clone()).or_default().insert(key);
                }
            }
            None => {
                self.unindexed.insert(key);
            }
        }
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: u64) -> Option<Arc<Entry>> {
        let entry = self.entries.remove(&key)?;
        self.unindexed.remove(&key);
        if let Some(condition) = entry.index_condition()
            && let Some(column) = self.by_value.get_mut(&condition.column)
        {
            for value in &condition.values {
                if let Some(keys) = column.get_mut(value) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        column.remove(value);
                    }
                }
            }
        }
        Some(entry)
    }

    /// Whether every entry was resolved against a table shaped like `table`.
    fn fits(&self, table: &Table) -> bool {
        self.entries
            .values()
            .all(|entry| same_columns(&entry.source.table, table))
    }
}

/// Same column names and types in the same order: column indexes mean the same.
fn same_columns(a: &Table, b: &Table) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns
            .iter()
            .zip(&b.columns)
            .all(|(x, y)| x.name == y.name && x.type_oid == y.type_oid)
}

/// All subscriptions of the process.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    tables: RwLock<HashMap<u32, TableIndex>>,
    by_channel: RwLock<HashMap<u64, Vec<(u32, u64)>>>,
}

impl Registry {
    /// Makes the entries live: every change decoded from now on meets them.
    pub(crate) fn add(&self, table: u32, entries: Vec<Entry>) {
        let Ok(mut tables) = self.tables.write() else {
            return;
        };
        let Ok(mut by_channel) = self.by_channel.write() else {
            return;
        };
        let index = tables.entry(table).or_default();
        for entry in entries {
            by_channel
                .entry(entry.link.id)
                .or_default()
                .push((table, entry.key));
            let fits = match &index.current {
                Some(current) => same_columns(current, &entry.source.table),
                None => index.entries.is_empty(),
            };
            index.current = fits.then(|| entry.source.table.clone());
            index.insert(Arc::new(entry));
        }
    }

    /// Removes every entry of a channel (leave, close, rejoin).
    pub(crate) fn remove_channel(&self, channel: u64) {
        let Some(keys) = self
            .by_channel
            .write()
            .ok()
            .and_then(|mut by_channel| by_channel.remove(&channel))
        else {
            return;
        };
        let Ok(mut tables) = self.tables.write() else {
            return;
        };
        for (table, key) in keys {
            let Some(index) = tables.get_mut(&table) else {
                continue;
            };
            index.remove(key);
            if index.entries.is_empty() {
                tables.remove(&table);
            }
        }
    }

    /// The entries of `table` that must be resolved again because the table changed since
    /// they were (empty when every entry fits the current version).
    pub(crate) fn stale_entries(&self, table: &Arc<Table>) -> Vec<Arc<Entry>> {
        {
            let Ok(tables) = self.tables.read() else {
                return Vec::new();
            };
            match tables.get(&table.oid) {
                None => return Vec::new(),
                Some(index) => {
                    if index
                        .current
                        .as_ref()
                        .is_some_and(|current| Arc::ptr_eq(current, table))
                    {
                        return Vec::new();
                    }
                }
            }
        }
        let Ok(mut tables) = self.tables.write() else {
            return Vec::new();
        };
        let Some(index) = tables.get_mut(&table.oid) else {
            return Vec::new();
        };
        if index.fits(table) {
            index.current = Some(table.clone());
            return Vec::new();
        }
        index
            .entries
            .values()
            .filter(|entry| !same_columns(&entry.source.table, table))
            .cloned()
            .collect()
    }

    /// Swaps entries resolved again against `table` in (`None`: the entry no longer fits the
    /// table and is dropped). Entries removed meanwhile stay removed.
    pub(crate) fn replace(&self, table: &Arc<Table>, rebound: Vec<(Arc<Entry>, Option<Entry>)>) {
        let Ok(mut tables) = self.tables.write() else {
            return;
        };
        let Ok(mut by_channel) = self.by_channel.write() else {
            return;
        };
        let Some(index) = tables.get_mut(&table.oid) else {
            return;
        };
        for (old, new) in rebound {
            let Some(current) = index.entries.get(&old.key) else {
                continue;
            };
            // Replaced by another refresh meanwhile: keep that one.
            if !Arc::ptr_eq(current, &old) {
                continue;
            }
            index.remove(old.key);
            match new {
                Some(entry) => index.insert(Arc::new(entry)),
                None => {
                    if let Some(keys) = by_channel.get_mut(&old.link.id) {
                        keys.retain(|&(_, key)| key != old.key);
                    }
                }
            }
        }
        index.current = index.fits(table).then(|| table.clone());
        if index.entries.is_empty() {
            tables.remove(&table.oid);
        }
    }

    /// Every channel with a subscription on `table`.
    pub(crate) fn channels_of(&self, table: u32) -> Vec<Arc<ChannelLink>> {
        let Ok(tables) = self.tables.read() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        tables
            .get(&table)
            .map(|index| {
                index
                    .entries
                    .values()
                    .filter(|entry| seen.insert(entry.link.id))
                    .map(|entry| entry.link.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether any subscription exists for a table (cheap pre-check before decoding values).
    pub(crate) fn has_table(&self, table: u32) -> bool {
        self.tables
            .read()
            .map(|tables| tables.contains_key(&table))
            .unwrap_or(false)
    }

    /// The entries whose event and filters match a row image (`value(column)` gives the
    /// image's text, `None` for NULL or absent).
    pub(crate) fn matching<'v>(
        &self,
        table: u32,
        kind: Kind,
        value: impl Fn(usize) -> Option<&'v str>,
    ) -> Vec<Arc<Entry>> {
        let Ok(tables) = self.tables.read() else {
            return Vec::new();
        };
        let Some(index) = tables.get(&table) else {
            return Vec::new();
        };
        let mut candidates: Vec<&u64> = index.unindexed.iter().collect();
        for (column, values) in &index.by_value {
            if let Some(text) = value(*column)
                && let Some(keys) = values.get(text)
            {
                candidates.extend(keys.iter());
            }
        }
        candidates
            .into_iter()
            .filter_map(|key| index.entries.get(key))
            .filter(|entry| entry.wants(kind) && !entry.link.outbox.is_gone())
            .filter(|entry| {
                entry
                    .conditions
                    .iter()
                    .all(|condition| condition.matches(value(condition.column)))
            })
            .cloned()
            .collect()
    }

    /// Every channel with at least one subscription (slot reports).
    pub(crate) fn channels(&self) -> Vec<Arc<ChannelLink>> {
        let Ok(tables) = self.tables.read() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        tables
            .values()
            .flat_map(|index| index.entries.values())
            .filter(|entry| seen.insert(entry.link.id))
            .map(|entry| entry.link.clone())
            .collect()
    }
}
