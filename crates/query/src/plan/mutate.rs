//! Planning writes: POST (insert, upsert), PATCH, PUT and DELETE.

use manifold_sql::cache::{Column, Relation};

use super::{ConditionPlan, Planner, ReadPlan};
use crate::ast::{Operation, SimpleOperator};
use crate::error::{ErrorKind, QueryError};
use crate::input::Method;
use crate::payload::{Payload, inspect};
use crate::request::ApiRequest;
use crate::syntax::headers::{Missing, Resolution};

/// What the write does.
#[derive(Debug, Clone)]
pub enum WriteKind<'c> {
    /// `INSERT`, with `ON CONFLICT` when an upsert resolution applies.
    Insert {
        /// Conflict target and resolution, for upserts.
        conflict: Option<(Vec<&'c Column>, Resolution)>,
    },
    /// `UPDATE … WHERE …`.
    Update,
    /// `DELETE … WHERE …`.
    Delete,
}

/// A planned write.
#[derive(Debug, Clone)]
pub struct WritePlan<'c> {
    /// The table or view written.
    pub relation: &'c Relation,
    /// What to do.
    pub kind: WriteKind<'c>,
    /// Columns written, in payload order.
    pub columns: Vec<&'c Column>,
    /// The body.
    pub payload: Option<Payload>,
    /// Missing keys take column defaults (`Prefer: missing=default` with `columns=`).
    pub missing_default: bool,
    /// Which rows an update or delete touches.
    pub conditions: Vec<ConditionPlan<'c>>,
    /// How to show the affected rows (`select=` with embeds), without its own conditions.
    pub read: ReadPlan<'c>,
    /// PUT: the statement is a single-row upsert on the primary key.
    pub put: bool,
}

impl<'c> Planner<'c> {
    /// Plans a POST, PATCH, PUT or DELETE on `relation`.
    pub(crate) fn write(
        &self,
        relation: &'c Relation,
        request: &ApiRequest<'_>,
    ) -> Result<WritePlan<'c>, QueryError> {
        let params = &request.params;
        let mut read = self.read(relation, params.select.as_deref(), params)?;
        let conditions = std::mem::take(&mut read.conditions);
        if conditions
            .iter()
            .any(|c| matches!(c, ConditionPlan::EmbedIsNull { .. }))
        {
            return Err(QueryError::not_implemented(
                "Filters on embedded resources cannot select the rows of a write.",
            ));
        }
        // PostgREST 13 has no limited updates or deletes; paging applies to reads only.
        read.order.clear();
        read.limit = None;
        read.offset = None;

        let method = request.method;
        let payload = match method {
            Method::Post | Method::Patch | Method::Put => {
                check_content_type(request.content_type)?;
                Some(inspect(request.body, params.columns.as_deref())?)
            }
            _ => None,
        };
        let columns = match &payload {
            Some(payload) => written_columns(relation, &payload.keys)?,
            None => Vec::new(),
        };
        let kind = match method {
            Method::Post => {
                let conflict = match request.prefer.resolution {
                    Some(resolution) => conflict_target(relation, params.on_conflict.as_deref())?
                        .map(|target| (target, resolution)),
                    None => None,
                };
                WriteKind::Insert { conflict }
            }
            Method::Put => {
                check_put(relation, &conditions, request, payload.as_ref())?;
                let target = conflict_target(relation, None)?.unwrap_or_default();
                WriteKind::Insert {
                    conflict: Some((target, Resolution::MergeDuplicates)),
                }
            }
            Method::Patch => {
                if payload.as_ref().is_some_and(|p| p.is_array) {
                    return Err(QueryError::new(400, "PGRST102", "Empty or invalid json"));
                }
                WriteKind::Update
            }
            _ => WriteKind::Delete,
        };
        // Only `columns=` can name a key a row lacks: without it every row has the same keys
        // (arrays) or writes only its own keys (an object).
        let missing_default = request.prefer.missing == Some(Missing::Default)
            && payload.is_some()
            && params.columns.is_some();
        Ok(WritePlan {
            relation,
            kind,
            columns,
            payload,
            missing_default,
            conditions,
            read,
            put: method == Method::Put,
        })
    }
}

fn check_content_type(content_type: Option<&str>) -> Result<(), QueryError> {
    let essence = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if essence.is_empty() || essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(QueryError::new(
        400,
        "PGRST102",
        format!("Content-Type not acceptable: {essence}"),
    )
    .kind(ErrorKind::BadRequest))
}

/// The payload's keys as columns; an unknown key is PGRST204 (the alphabetically first one).
fn written_columns<'c>(
    relation: &'c Relation,
    keys: &[String],
) -> Result<Vec<&'c Column>, QueryError> {
    let mut unknown: Vec<&String> = keys
        .iter()
        .filter(|key| relation.column(key).is_none())
        .collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        return Err(QueryError::new(
            400,
            "PGRST204",
            format!(
                "Could not find the '{key}' column of '{}' in the schema cache",
                relation.name()
            ),
        )
        .kind(ErrorKind::UnknownName));
    }
    Ok(keys.iter().filter_map(|key| relation.column(key)).collect())
}

/// `on_conflict=` columns, else the primary key; `None` when neither exists (a plain insert).
fn conflict_target<'c>(
    relation: &'c Relation,
    on_conflict: Option<&[String]>,
) -> Result<Option<Vec<&'c Column>>, QueryError> {
    let names: Vec<String> = match on_conflict {
        Some(names) => names.to_vec(),
        None if relation.primary_key.is_empty() => return Ok(None),
        None => relation.primary_key.clone(),
    };
    names
        .iter()
        .map(|name| {
            relation
                .column(name)
                .ok_or_else(|| super::unknown_column(relation, name))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// PUT replaces exactly one row named by its whole primary key.
fn check_put(
    relation: &Relation,
    conditions: &[ConditionPlan<'_>],
    request: &ApiRequest<'_>,
    payload: Option<&Payload>,
) -> Result<(), QueryError> {
    if !request.params.limits.is_empty() || !request.params.offsets.is_empty() {
        return Err(QueryError::new(
            400,
            "PGRST114",
            "limit/offset querystring parameters are not allowed for PUT",
        ));
    }
    let pk = &relation.primary_key;
    let mut filtered: Vec<(&str, &str)> = Vec::new();
    for condition in conditions {
        match condition {
            ConditionPlan::Filter {
                column,
                path,
                negated: false,
                operation: Operation::Simple(SimpleOperator::Eq, value),
            } if path.is_empty() => filtered.push((column.name.as_str(), value.as_str())),
            _ => filtered.clear(),
        }
    }
    let mut names: Vec<&str> = filtered.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = pk.iter().map(String::as_str).collect();
    expected.sort_unstable();
    if pk.is_empty() || names != expected || filtered.len() != conditions.len() {
        return Err(QueryError::new(
            405,
            "PGRST105",
            "Filters must include all and only primary key columns with 'eq' operators",
        ));
    }
    let object = payload.and_then(|p| p.object.as_ref()).ok_or_else(|| {
        QueryError::new(400, "PGRST102", "Empty or invalid json").kind(ErrorKind::BadRequest)
    })?;
    let matches = filtered
        .iter()
        .all(|(name, value)| match object.get(*name) {
            Some(serde_json::Value::String(text)) => text == value,
            Some(other) => *value == other.to_string().as_str(),
            None => false,
        });
    if !matches {
        return Err(QueryError::new(
            400,
            "PGRST115",
            "Payload values do not match URL in primary key column(s)",
        ));
    }
    Ok(())
}
