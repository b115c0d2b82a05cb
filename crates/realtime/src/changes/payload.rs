//! Row images mapped onto a table's columns, and the `data` object of a postgres_changes
//! message (compat §2.8).

use serde_json::{Map, Value};

use super::assemble::RelationShape;
use super::catalog::Table;
use super::pgoutput::Cell;
use super::registry::Kind;
use super::value::{commit_timestamp, write_json, write_string};

/// A column of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Not in the WAL tuple (not part of the old key, unchanged TOAST, not published).
    Absent,
    Null,
    Text(String),
}

/// A row image indexed by the table's column positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image(pub(crate) Vec<Slot>);

impl Image {
    /// Maps a WAL tuple onto `table`'s columns; unchanged TOAST values come from `fallback`.
    pub(crate) fn map(
        table: &Table,
        shape: &RelationShape,
        cells: &[Cell],
        fallback: Option<&Image>,
    ) -> Self {
        let mut slots = vec![Slot::Absent; table.columns.len()];
        for (column, cell) in shape.columns.iter().zip(cells) {
            let Some(index) = table.column_index(&column.name) else {
                continue;
            };
            let slot = match cell {
                Cell::Null => Slot::Null,
                Cell::Text(bytes) => Slot::Text(String::from_utf8_lossy(bytes).into_owned()),
                Cell::Unchanged => fallback
                    .and_then(|image| image.0.get(index).cloned())
                    .unwrap_or(Slot::Absent),
            };
            if let Some(target) = slots.get_mut(index) {
                *target = slot;
            }
        }
        Self(slots)
    }

    /// The text of a column (`None` when NULL or absent).
    pub(crate) fn text(&self, index: usize) -> Option<&str> {
        match self.0.get(index) {
            Some(Slot::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The image as JSON object text of the given columns (absent ones left out), values
    /// written as `to_jsonb` writes them.
    pub(crate) fn json(&self, table: &Table, columns: impl Iterator<Item = usize>) -> String {
        let mut out = String::from("{");
        let mut first = true;
        for index in columns {
            let (Some(column), Some(slot)) = (table.columns.get(index), self.0.get(index)) else {
                continue;
            };
            if matches!(slot, Slot::Absent) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            write_string(&mut out, &column.name);
            out.push(':');
            match slot {
                Slot::Text(text) => write_json(&mut out, column.json, text),
                Slot::Null | Slot::Absent => out.push_str("null"),
            }
        }
        out.push('}');
        out
    }

    /// The image restricted to the key columns (what `old_record` holds without FULL identity).
    pub(crate) fn key_only(&self, table: &Table) -> Self {
        Self(
            self.0
                .iter()
                .enumerate()
                .map(|(index, slot)| {
                    if table.key.contains(&index) {
                        slot.clone()
                    } else {
                        Slot::Absent
                    }
                })
                .collect(),
        )
    }
}

/// A decoded change ready for matching and delivery.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) kind: Kind,
    pub(crate) new: Option<Image>,
    pub(crate) old: Option<Image>,
    pub(crate) commit_time: i64,
}

impl Change {
    /// The image filters and policies judge: the new row, or the old one for DELETE.
    pub(crate) fn judged(&self) -> Option<&Image> {
        match self.kind {
            Kind::Delete => self.old.as_ref(),
            _ => self.new.as_ref(),
        }
    }

    /// `old_record` for UPDATE/DELETE: the WAL's old tuple, or for an UPDATE without one the
    /// primary key taken from the new row.
    fn old_record(&self, table: &Table) -> Option<Image> {
        match self.kind {
            Kind::Insert => None,
            Kind::Update => self
                .old
                .clone()
                .or_else(|| self.new.as_ref().map(|new| new.key_only(table))),
            Kind::Delete => self.old.clone(),
        }
    }

    /// The `data` object for a subscriber who sees `columns` (indexes, attnum order), as
    /// JSON text.
    pub(crate) fn data(&self, table: &Table, columns: &[usize]) -> String {
        let described: Vec<Value> = columns
            .iter()
            .filter_map(|&index| table.columns.get(index))
            .map(|column| {
                let mut object = Map::new();
                object.insert("name".into(), Value::String(column.name.clone()));
                object.insert("type".into(), Value::String(column.type_name.clone()));
                Value::Object(object)
            })
            .collect();
        let mut out = String::from("{\"schema\":");
        write_string(&mut out, &table.schema);
        out.push_str(",\"table\":");
        write_string(&mut out, &table.name);
        out.push_str(",\"commit_timestamp\":");
        write_string(&mut out, &commit_timestamp(self.commit_time));
        out.push_str(",\"type\":");
        write_string(&mut out, self.kind.name());
        out.push_str(",\"columns\":");
        out.push_str(&Value::Array(described).to_string());
        if self.kind != Kind::Delete
            && let Some(new) = &self.new
        {
            out.push_str(",\"record\":");
            out.push_str(&new.json(table, columns.iter().copied()));
        }
        if let Some(old) = self.old_record(table) {
            out.push_str(",\"old_record\":");
            out.push_str(&old.json(table, columns.iter().copied()));
        }
        out.push_str(",\"errors\":null}");
        out
    }
}
