//! Column expressions and conditions. Every request value is a bind cast to the column's type
//! from the schema cache (`$3::text::integer`), as PostgREST's untyped literals are coerced.

use manifold_sql::Statement;
use manifold_sql::cache::{Column, ValueKind};

use crate::ast::{
    Arrow, IsValue, JsonKey, JsonStep, LogicOperator, Operation, Quantifier, SimpleOperator,
};
use crate::plan::{ConditionPlan, ValuePlan};

/// `tN."column"`.
pub(crate) fn push_column(stmt: &mut Statement, alias: usize, column: &Column) {
    stmt.push_alias("t", alias);
    stmt.push_sql(".");
    stmt.push_ident(&column.name);
}

/// A column with a JSON path. Non-JSON columns are read through `to_jsonb`. With `for_filter`,
/// `json` columns become `jsonb` too, so comparisons have operators to use.
pub(crate) fn push_path(
    stmt: &mut Statement,
    alias: usize,
    column: &Column,
    path: &[JsonStep],
    for_filter: bool,
) {
    if path.is_empty() {
        push_column(stmt, alias, column);
        return;
    }
    let native = match column.kind {
        ValueKind::Jsonb => true,
        ValueKind::Json => !for_filter,
        _ => false,
    };
    stmt.push_sql("(");
    if !native {
        stmt.push_sql("to_jsonb(");
    }
    push_column(stmt, alias, column);
    if !native {
        stmt.push_sql(")");
    }
    for step in path {
        stmt.push_sql(match step.arrow {
            Arrow::Json => " -> ",
            Arrow::Text => " ->> ",
        });
        match &step.key {
            JsonKey::Name(name) => stmt.push_bind(name.as_str()),
            JsonKey::Index(index) => {
                stmt.push_bind(*index);
                stmt.push_sql("::int4");
            }
        }
    }
    stmt.push_sql(")");
}

/// A selected value: path, cast, aggregate.
pub(crate) fn push_value(stmt: &mut Statement, alias: usize, value: &ValuePlan<'_>) {
    if let Some(aggregate) = value.aggregate {
        stmt.push_sql("(");
        stmt.push_sql(aggregate.sql_call());
    }
    match value.column {
        Some(column) => {
            if value.cast.is_some() {
                stmt.push_sql("(");
            }
            push_path(stmt, alias, column, &value.path, false);
            if let Some(cast) = &value.cast {
                stmt.push_sql(")::");
                stmt.push_type(cast);
            }
        }
        None => stmt.push_sql("*"),
    }
    if value.aggregate.is_some() {
        stmt.push_sql("))");
        if let Some(cast) = &value.aggregate_cast {
            stmt.push_sql("::");
            stmt.push_type(cast);
        }
    }
}

/// How the tested expression's values are typed.
enum Operand<'c> {
    /// A plain column: values are cast to its type.
    Column(&'c Column),
    /// `->>` ends in text.
    Text,
    /// `->` ends in jsonb.
    Jsonb,
}

fn operand<'c>(column: &'c Column, path: &[JsonStep]) -> Operand<'c> {
    match path.last() {
        None => Operand::Column(column),
        Some(step) if step.arrow == Arrow::Text => Operand::Text,
        Some(_) => Operand::Jsonb,
    }
}

/// `$n::text::<type>` for one value.
fn push_typed_value(stmt: &mut Statement, operand: &Operand<'_>, value: String) {
    stmt.push_bind(value);
    match operand {
        Operand::Column(column) => {
            stmt.push_sql("::");
            stmt.push_type(&column.sql_type);
        }
        Operand::Text => {}
        Operand::Jsonb => stmt.push_sql("::jsonb"),
    }
}

/// `$n::text::<type>[]` for a list literal.
fn push_typed_array(stmt: &mut Statement, operand: &Operand<'_>, literal: String) {
    push_typed_value(stmt, operand, literal);
    stmt.push_sql("[]");
}

/// Builds a PostgreSQL array literal, quoting every element: `{"a","b \"c\""}`.
pub(crate) fn array_literal(items: &[String]) -> String {
    let mut out = String::from("{");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in item.chars() {
            if matches!(ch, '"' | '\\') {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// `like`/`ilike` patterns use `*` for `%`.
fn like_pattern(op: SimpleOperator, value: &str) -> String {
    if op.is_like() {
        value.replace('*', "%")
    } else {
        value.to_owned()
    }
}

/// Renders a condition of a level whose table alias is `alias`; `embed_alias` gives the lateral
/// alias of each embed of that level.
pub(crate) fn push_condition(
    stmt: &mut Statement,
    alias: usize,
    embed_alias: &dyn Fn(usize) -> usize,
    condition: &ConditionPlan<'_>,
) {
    match condition {
        ConditionPlan::Filter {
            column,
            path,
            negated,
            operation,
        } => {
            if *negated {
                stmt.push_sql("not (");
            }
            push_filter(stmt, alias, column, path, operation);
            if *negated {
                stmt.push_sql(")");
            }
        }
        ConditionPlan::EmbedIsNull { embed, is_null } => {
            stmt.push_alias("e", embed_alias(*embed));
            stmt.push_sql(if *is_null {
                ".x is null"
            } else {
                ".x is not null"
            });
        }
        ConditionPlan::Tree {
            operator,
            negated,
            children,
        } => {
            if *negated {
                stmt.push_sql("not ");
            }
            stmt.push_sql("(");
            for (index, child) in children.iter().enumerate() {
                if index > 0 {
                    stmt.push_sql(match operator {
                        LogicOperator::And => " and ",
                        LogicOperator::Or => " or ",
                    });
                }
                push_condition(stmt, alias, embed_alias, child);
            }
            stmt.push_sql(")");
        }
    }
}

fn push_filter(
    stmt: &mut Statement,
    alias: usize,
    column: &Column,
    path: &[JsonStep],
    operation: &Operation,
) {
    let operand = operand(column, path);
    match operation {
        Operation::Simple(op, value) => {
            push_path(stmt, alias, column, path, true);
            stmt.push_sql(op.sql());
            push_typed_value(stmt, &operand, like_pattern(*op, value));
        }
        Operation::Quantified(op, quantifier, value) => {
            push_path(stmt, alias, column, path, true);
            stmt.push_sql(op.sql());
            stmt.push_sql(match quantifier {
                Quantifier::Any => "any(",
                Quantifier::All => "all(",
            });
            push_typed_array(stmt, &operand, like_pattern(*op, value));
            stmt.push_sql(")");
        }
        Operation::In(items) => {
            push_path(stmt, alias, column, path, true);
            stmt.push_sql(" = any(");
            push_typed_array(stmt, &operand, array_literal(items));
            stmt.push_sql(")");
        }
        Operation::Is(value) => {
            push_path(stmt, alias, column, path, true);
            stmt.push_sql(match value {
                IsValue::Null => " is null",
                IsValue::NotNull => " is not null",
                IsValue::True => " is true",
                IsValue::False => " is false",
                IsValue::Unknown => " is unknown",
            });
        }
        Operation::Fts(op, config, query) => {
            let native = column.kind == ValueKind::TsVector && path.is_empty();
            if !native {
                stmt.push_sql("to_tsvector(");
                if let Some(config) = config {
                    stmt.push_bind(config.as_str());
                    stmt.push_sql("::regconfig, ");
                }
            }
            push_path(stmt, alias, column, path, true);
            if !native {
                stmt.push_sql(")");
            }
            stmt.push_sql(" @@ ");
            stmt.push_sql(op.sql_call());
            if let Some(config) = config {
                stmt.push_bind(config.as_str());
                stmt.push_sql("::regconfig, ");
            }
            stmt.push_bind(query.as_str());
            stmt.push_sql(")");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(
            array_literal(&["a,b".into(), "c\"d".into(), "e\\f".into()]),
            r#"{"a,b","c\"d","e\\f"}"#
        );
        assert_eq!(array_literal(&[]), "{}");
    }
}
