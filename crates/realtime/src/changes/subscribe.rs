//! Turning the `postgres_changes` bindings of a join into live registry entries: the table
//! must be in the publication, filter columns must exist and be readable by the subscriber's
//! role, literals are canonicalized by PostgreSQL, `select` lists are checked. Problems become
//! the `system` messages realtime-js shows (the join itself still succeeds, as Supabase does,
//! so the client does not rejoin forever).

use std::sync::Arc;

use serde_json::Value;

use super::catalog::{Catalog, Table};
use super::filter::{Condition, Operator, RawCondition, parse_filter};
use super::registry::{Entry, Events, Source};
use crate::error::StoreError;
use crate::outbox::ChannelLink;

/// One binding of a join: the client's object (echoed verbatim) and its id.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) id: u64,
    pub(crate) raw: Value,
}

/// Entries to register per table, and the error texts to report.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) entries: Vec<(u32, Entry)>,
    pub(crate) errors: Vec<String>,
}

fn text_field<'v>(raw: &'v Value, name: &str) -> Option<&'v str> {
    raw.get(name).and_then(Value::as_str)
}

fn unable(raw: &Value, detail: Option<&str>) -> String {
    let field = |name| text_field(raw, name).unwrap_or("");
    let mut message = format!(
        "Unable to subscribe to changes with given parameters. Please check Realtime is \
         enabled for the given connect parameters: [event: {}, schema: {}, table: {}, filters: [{}]]",
        field("event"),
        field("schema"),
        field("table"),
        field("filter"),
    );
    if let Some(detail) = detail {
        message.push_str(&format!(". An exception happened: {detail}"));
    }
    message
}

/// Validates and resolves every binding for `role`.
pub(crate) async fn prepare(
    catalog: &Catalog,
    publication: &str,
    bindings: &[Binding],
    link: &Arc<ChannelLink>,
    role: &str,
) -> Prepared {
    let mut prepared = Prepared::default();
    for binding in bindings {
        match prepare_one(catalog, publication, binding, link, role).await {
            Ok(entries) => prepared.entries.extend(entries),
            Err(message) => prepared.errors.push(message),
        }
    }
    prepared
}

async fn prepare_one(
    catalog: &Catalog,
    publication: &str,
    binding: &Binding,
    link: &Arc<ChannelLink>,
    role: &str,
) -> Result<Vec<(u32, Entry)>, String> {
    let raw = &binding.raw;
    let events = Events::parse(text_field(raw, "event").unwrap_or("*"))
        .ok_or_else(|| unable(raw, Some("unknown event")))?;
    let (schema, table) = match (text_field(raw, "schema"), text_field(raw, "table")) {
        (None, None) => {
            return Err(format!(
                "No subscription params provided. Please provide at least a `schema` or \
                 `table` to subscribe to: {raw}"
            ));
        }
        (Some(schema), None) => (schema, "*"),
        (None, Some(table)) => ("public", table),
        (Some(schema), Some(table)) => (schema, table),
    };
    let conditions =
        parse_filter(text_field(raw, "filter").unwrap_or("")).map_err(|error| error.to_string())?;
    let select = match raw.get("select") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or("`select` must be an array of column names")?,
        ),
        Some(_) => return Err("`select` must be an array of column names".to_owned()),
    };
    if select.is_some() && (schema == "*" || table == "*") {
        return Err("`select` cannot be used with a wildcard schema or table".to_owned());
    }
    let oids = catalog
        .published(publication, schema, table)
        .await
        .map_err(|_| unable(raw, None))?;
    if oids.is_empty() {
        return Err(unable(raw, None));
    }
    let mut entries = Vec::new();
    for oid in oids {
        let table = catalog.table(oid).await.map_err(|_| unable(raw, None))?;
        let source = Source {
            table,
            raw: raw.clone(),
            conditions: conditions.clone(),
            select: select.clone(),
        };
        let (resolved, select) = match resolve_all(catalog, &source, role, None).await {
            Ok(resolved) => resolved,
            Err(Refusal::Invalid(message)) => return Err(message),
            Err(Refusal::Store(_)) => return Err(unable(raw, None)),
        };
        entries.push((
            oid,
            Entry::new(link.clone(), binding.id, events, resolved, select, source),
        ));
    }
    Ok(entries)
}

/// Why a binding could not be resolved against a table.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The binding does not fit the table (the text is what the `system` message shows).
    Invalid(String),
    /// The database did not answer.
    Store(StoreError),
}

/// Resolves an entry again after its table changed (columns dropped, added or retyped): by
/// column name, reusing canonical literals when the column kept its type.
pub(crate) async fn rebind(
    catalog: &Catalog,
    entry: &Entry,
    table: &Arc<Table>,
) -> Result<Entry, Refusal> {
    let source = Source {
        table: table.clone(),
        ..entry.source.clone()
    };
    let role = entry.link.identity().role.clone();
    let (conditions, select) = resolve_all(catalog, &source, &role, Some(entry)).await?;
    Ok(entry.rebound(conditions, select, source))
}

/// Column indexes of the filters and the `select` list of `source` on its table. `previous`
/// is the entry being rebound: a condition whose column kept its type keeps its literals.
async fn resolve_all(
    catalog: &Catalog,
    source: &Source,
    role: &str,
    previous: Option<&Entry>,
) -> Result<(Vec<Condition>, Option<Vec<usize>>), Refusal> {
    let table = &source.table;
    let raw = &source.raw;
    let access = catalog.access(table, role).await.map_err(Refusal::Store)?;
    let readable = |index: usize| access.selectable.get(index).copied().unwrap_or(false);
    let mut resolved = Vec::new();
    for (position, condition) in source.conditions.iter().enumerate() {
        let kept = previous.and_then(|entry| {
            let before = entry.conditions.get(position)?;
            let old_type = entry.source.table.columns.get(before.column)?.type_oid;
            let index = table
                .column_index(&condition.column)
                .filter(|&index| readable(index))?;
            (table.columns.get(index)?.type_oid == old_type).then(|| Condition {
                column: index,
                ..before.clone()
            })
        });
        match kept {
            Some(condition) => resolved.push(condition),
            None => resolved.push(resolve(catalog, table, condition, &readable, raw).await?),
        }
    }
    let select = match &source.select {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .map(|name| table.column_index(name).filter(|&i| readable(i)))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| Refusal::Invalid(unable(raw, Some("invalid column in `select`"))))?,
        ),
    };
    Ok((resolved, select))
}

async fn resolve(
    catalog: &Catalog,
    table: &Table,
    condition: &RawCondition,
    readable: &impl Fn(usize) -> bool,
    raw: &Value,
) -> Result<Condition, Refusal> {
    let invalid_column =
        || Refusal::Invalid(format!("invalid column for filter {}", condition.column));
    let column = table
        .column_index(&condition.column)
        .filter(|&index| readable(index))
        .ok_or_else(invalid_column)?;
    let described = table.columns.get(column).ok_or_else(invalid_column)?;
    if !described.comparison.supports(condition.operator) {
        return Err(Refusal::Invalid(unable(
            raw,
            Some(&format!(
                "operator {:?} is not supported for type {}",
                condition.operator, described.type_name
            )),
        )));
    }
    let values = match condition.operator {
        Operator::Is => {
            let keyword = condition
                .values
                .first()
                .map(|v| v.to_ascii_lowercase())
                .unwrap_or_default();
            let boolean = described.type_oid == 16;
            let valid = match keyword.as_str() {
                "null" => true,
                "true" | "false" | "unknown" => boolean,
                _ => false,
            };
            if !valid {
                return Err(Refusal::Invalid(unable(
                    raw,
                    Some("invalid value for `is`"),
                )));
            }
            vec![keyword]
        }
        Operator::Like | Operator::Ilike => condition.values.clone(),
        _ => {
            let mut canonical = Vec::with_capacity(condition.values.len());
            for value in &condition.values {
                let text = match catalog.canonical(value, described.type_oid).await {
                    Ok(text) => text,
                    // PostgreSQL refused the literal for this type: the subscriber's mistake.
                    Err(error) if error.database_message().is_some() => {
                        return Err(Refusal::Invalid(unable(raw, error.database_message())));
                    }
                    Err(error) => return Err(Refusal::Store(error)),
                };
                canonical.push(text);
            }
            canonical
        }
    };
    Ok(Condition {
        column,
        operator: condition.operator,
        negated: condition.negated,
        comparison: described.comparison,
        values,
    })
}
