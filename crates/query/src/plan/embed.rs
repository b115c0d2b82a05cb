//! Choosing the relationship an embed means, with PostgREST's rules and its PGRST200/PGRST201
//! errors.

use manifold_sql::SchemaCache;
use manifold_sql::cache::{Cardinality, Relation, Relationship};
use serde_json::{Value, json};

use crate::ast::EmbedSelect;
use crate::error::{ErrorKind, QueryError};
use crate::fuzzy::{LOOSE, best_match};

/// The one relationship `embed` denotes from `parent`.
pub(crate) fn resolve<'c>(
    cache: &'c SchemaCache,
    parent: &Relation,
    embed: &EmbedSelect,
) -> Result<&'c Relationship, QueryError> {
    let all = cache.relationships_from(&parent.qualified);
    let candidates: Vec<&Relationship> = all
        .iter()
        .filter(|relationship| matches(parent, embed, relationship))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found(cache, parent, embed, all)),
        many => Err(ambiguous(parent, embed, many)),
    }
}

fn matches(parent: &Relation, embed: &EmbedSelect, relationship: &Relationship) -> bool {
    let target = embed.target.as_str();
    let target_name = relationship.target.name.as_str();
    let single = |pick: fn(&(manifold_sql::Ident, manifold_sql::Ident)) -> &str| {
        relationship.junction.is_none()
            && relationship.columns.len() == 1
            && pick(&relationship.columns[0]) == target
    };
    match &embed.hint {
        None => {
            if target_name == target {
                // On a self-relationship the table's own name means its children; the parent is
                // reached through the foreign-key column's name.
                return !(relationship.is_self() && relationship.forward);
            }
            // Tables (not views) may also be embedded by constraint or foreign-key column name.
            !parent.kind.is_view()
                && relationship.junction.is_none()
                && (relationship.constraint == target
                    || (relationship.forward && single(|pair| pair.0.as_str())))
        }
        Some(hint) => {
            // On a self-relationship a hint always means the children (one-to-many).
            target_name == target
                && !(relationship.is_self() && relationship.forward)
                && (relationship.constraint == *hint
                    || relationship
                        .junction
                        .as_ref()
                        .is_some_and(|j| j.relation.name.as_str() == hint)
                    || (relationship.junction.is_none()
                        && relationship.columns.len() == 1
                        && (relationship.columns[0].0.as_str() == hint
                            || relationship.columns[0].1.as_str() == hint)))
        }
    }
}

fn not_found(
    cache: &SchemaCache,
    parent: &Relation,
    embed: &EmbedSelect,
    all: &[Relationship],
) -> QueryError {
    let parent_name = parent.name().as_str();
    let child = embed.target.as_str();
    let schema = parent.schema().as_str();
    let using = embed
        .hint
        .as_ref()
        .map(|hint| format!(" using the hint '{hint}'"))
        .unwrap_or_default();
    let hint = if all.is_empty() {
        let names: Vec<&str> = cache
            .relations_in(schema)
            .filter(|relation| !cache.relationships_from(&relation.qualified).is_empty())
            .map(|relation| relation.name().as_str())
            .collect();
        best_match(parent_name, names, LOOSE)
            .filter(|(_, score)| *score < 1.0)
            .map(|(name, _)| format!("Perhaps you meant '{name}' instead of '{parent_name}'."))
    } else {
        let names: Vec<&str> = all.iter().map(|r| r.target.name.as_str()).collect();
        best_match(child, names, LOOSE)
            .filter(|(_, score)| *score < 1.0)
            .map(|(name, _)| format!("Perhaps you meant '{name}' instead of '{child}'."))
    };
    QueryError::new(
        400,
        "PGRST200",
        format!(
            "Could not find a relationship between '{parent_name}' and '{child}' in the schema cache"
        ),
    )
    .with_details(format!(
        "Searched for a foreign key relationship between '{parent_name}' and '{child}'{using} in the schema '{schema}', but no matches were found."
    ))
    .with_hint(hint.map_or(Value::Null, Value::String))
    .kind(ErrorKind::UnknownName)
}

fn ambiguous(parent: &Relation, embed: &EmbedSelect, candidates: &[&Relationship]) -> QueryError {
    let parent_name = parent.name().as_str();
    let child = embed.target.as_str();
    let details: Vec<Value> = candidates
        .iter()
        .map(|relationship| {
            json!({
                "cardinality": relationship.cardinality.label(),
                "embedding": format!("{parent_name} with {}", relationship.target.name),
                "relationship": describe(relationship),
            })
        })
        .collect();
    let options: Vec<String> = candidates
        .iter()
        .map(|relationship| format!("'{}!{}'", relationship.target.name, relationship.constraint))
        .collect();
    QueryError::new(
        300,
        "PGRST201",
        format!(
            "Could not embed because more than one relationship was found for '{parent_name}' and '{child}'"
        ),
    )
    .with_details(Value::Array(details))
    .with_hint(format!(
        "Try changing '{child}' to one of the following: {}. Find the desired relationship in the 'details' key.",
        options.join(", ")
    ))
}

/// PostgREST's description of a relationship in PGRST201 details.
fn describe(relationship: &Relationship) -> String {
    let names = |columns: &mut dyn Iterator<Item = &manifold_sql::Ident>| {
        columns.map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    };
    match (&relationship.junction, relationship.cardinality) {
        (Some(junction), Cardinality::ManyToMany) => format!(
            "{} using {}({}) and {}({})",
            junction.relation.name,
            junction.source_constraint,
            names(&mut junction.source_columns.iter().map(|pair| &pair.0)),
            junction.target_constraint,
            names(&mut junction.target_columns.iter().map(|pair| &pair.0)),
        ),
        _ => format!(
            "{} using {}({}) and {}({})",
            relationship.constraint,
            relationship.source.name,
            names(&mut relationship.columns.iter().map(|pair| &pair.0)),
            relationship.target.name,
            names(&mut relationship.columns.iter().map(|pair| &pair.1)),
        ),
    }
}
