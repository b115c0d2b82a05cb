//! Turning the `postgres_changes` bindings of a join into live registry entries: the table
//! must be in the publication, filter columns must exist and be readable by the subscriber's
//! role, literals are canonicalized by PostgreSQL, `select` lists are checked. Problems become
//! the `system` messages realtime-js shows (the join itself still succeeds, as Supabase does,
//! so the client does not rejoin forever).

use std::sync::Arc;

use serde_json::Value;

use super::catalog::{Catalog, Table};
use super::filter::{Condition, Operator, RawCondition, parse_filter};
use super::registry::{Entry, Events};
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
        let access = catalog
            .access(&table, role)
            .await
            .map_err(|_| unable(raw, None))?;
        let readable = |index: usize| access.selectable.get(index).copied().unwrap_or(false);
        let mut resolved = Vec::new();
        for condition in &conditions {
            resolved.push(resolve(catalog, &table, condition, &readable, raw).await?);
        }
        let select = match &select {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| table.column_index(name).filter(|&i| readable(i)))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| unable(raw, Some("invalid column in `select`")))?,
            ),
        };
        entries.push((
            oid,
            Entry::new(link.clone(), binding.id, events, resolved, select),
        ));
    }
    Ok(entries)
}

async fn resolve(
    catalog: &Catalog,
    table: &Table,
    condition: &RawCondition,
    readable: &impl Fn(usize) -> bool,
    raw: &Value,
) -> Result<Condition, String> {
    let column = table
        .column_index(&condition.column)
        .filter(|&index| readable(index))
        .ok_or_else(|| format!("invalid column for filter {}", condition.column))?;
    let described = table
        .columns
        .get(column)
        .ok_or_else(|| format!("invalid column for filter {}", condition.column))?;
    if !described.comparison.supports(condition.operator) {
        return Err(unable(
            raw,
            Some(&format!(
                "operator {:?} is not supported for type {}",
                condition.operator, described.type_name
            )),
        ));
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
                return Err(unable(raw, Some("invalid value for `is`")));
            }
            vec![keyword]
        }
        Operator::Like | Operator::Ilike => condition.values.clone(),
        _ => {
            let mut canonical = Vec::with_capacity(condition.values.len());
            for value in &condition.values {
                let text = catalog
                    .canonical(value, described.type_oid)
                    .await
                    .map_err(|error| unable(raw, error.database_message()))?;
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
