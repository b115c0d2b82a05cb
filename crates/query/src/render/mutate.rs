//! Write statements. The body is one `json` bind expanded with `json_populate_record` over the
//! table's row type, one array element at a time, so every column is typed by the database itself.
//!
//! With `returning`, the write is a CTE (`pgrst_mutation`) and the affected rows are shaped by the
//! read renderer (select, embeds, counts). Without it the write runs bare: no RETURNING, so
//! tables with INSERT-only policies accept `return=minimal` inserts, as with PostgREST.

use manifold_sql::Statement;
use manifold_sql::cache::{Column, RelationKind};

use super::expr::push_condition;
use super::read::{BodyKind, Count, RootSource, SelectOptions, render_select};
use crate::plan::{WriteKind, WritePlan};
use crate::syntax::headers::Resolution;

/// How much of the result a write statement must produce.
#[derive(Debug, Clone, Copy)]
pub struct WriteOutput {
    /// Return the affected rows (representation, counts, singular checks, Location).
    pub returning: bool,
    /// The body to build when returning.
    pub body: BodyKind,
    /// Count affected rows into `total`.
    pub count: Count,
    /// Report how many rows were inserted (upsert statuses).
    pub inserted: bool,
    /// Report the primary key of the first row (Location).
    pub location: bool,
}

/// Renders a planned write.
pub fn render_write(plan: &WritePlan<'_>, output: WriteOutput) -> Statement {
    let mut stmt = Statement::new();
    let has_payload = plan.payload.is_some();
    if has_payload || output.returning {
        stmt.push_sql("with ");
    }
    if has_payload {
        payload_cte(&mut stmt, plan);
        stmt.push_sql(if output.returning { ", " } else { " " });
    }
    if !output.returning {
        mutation(&mut stmt, plan, output);
        return stmt;
    }
    stmt.push_sql("pgrst_mutation as (");
    mutation(&mut stmt, plan, output);
    stmt.push_sql("), ");
    let relation = plan.relation;
    let extra = move |stmt: &mut Statement| {
        if output.inserted && tracks_inserts(relation.kind) {
            stmt.push_sql(
                ", (select count(*) from pgrst_mutation where pgrst_inserted)::int8 as inserted",
            );
        } else {
            stmt.push_sql(", null::int8 as inserted");
        }
        if output.location && !relation.primary_key.is_empty() {
            stmt.push_sql(", (select json_build_array(");
            for (index, name) in relation.primary_key.iter().enumerate() {
                if index > 0 {
                    stmt.push_sql(", ");
                }
                if let Some(column) = relation.column(name) {
                    stmt.push_sql("pgrst_mutation.");
                    stmt.push_ident(&column.name);
                    stmt.push_sql("::text");
                }
            }
            stmt.push_sql(")::text from pgrst_mutation limit 1) as location");
        } else {
            stmt.push_sql(", null::text as location");
        }
    };
    render_select(
        &mut stmt,
        &plan.read,
        &SelectOptions {
            body: output.body,
            count: output.count,
            source: RootSource::Cte("pgrst_mutation"),
            extra: &extra,
        },
    );
    stmt
}

fn tracks_inserts(kind: RelationKind) -> bool {
    matches!(kind, RelationKind::Table | RelationKind::PartitionedTable)
}

/// `pgrst_payload as (…)`: the body as rows (an object becomes a one-element array).
fn payload_cte(stmt: &mut Statement, plan: &WritePlan<'_>) {
    let Some(payload) = &plan.payload else { return };
    stmt.push_sql(
        "pgrst_payload as (select case when json_typeof(pgrst_json) = 'array' then pgrst_json \
         else json_build_array(pgrst_json) end as pgrst_rows from (select ",
    );
    stmt.push_bind(payload.text.as_str());
    stmt.push_sql("::json as pgrst_json) as pgrst_input)");
}

/// The value written to `column`: the body's (`pgrst_body`), or with `missing=default` the
/// column default when the row (`row`, its JSON) lacks the key. The default sits in a CASE
/// branch, so it is evaluated only for rows that need it and sequences do not advance for rows
/// that bring their own value.
fn push_written_value(
    stmt: &mut Statement,
    plan: &WritePlan<'_>,
    column: &Column,
    row: &'static str,
) {
    let relation = plan.relation;
    let default = plan.missing_default && (column.default_expr.is_some() || column.generated);
    if !default {
        stmt.push_sql("pgrst_body.");
        stmt.push_ident(&column.name);
        return;
    }
    stmt.push_sql("case when ");
    stmt.push_sql(row);
    stmt.push_sql(" -> ");
    stmt.push_bind(column.name.as_str());
    stmt.push_sql(" is null then (");
    match &column.default_expr {
        Some(expr) => stmt.push_expr(expr),
        // An identity column has no default expression; its sequence gives the next value.
        None => {
            stmt.push_sql("nextval(pg_get_serial_sequence(format('%I.%I', ");
            stmt.push_bind(relation.schema().as_str());
            stmt.push_sql(", ");
            stmt.push_bind(relation.name().as_str());
            stmt.push_sql("), ");
            stmt.push_bind(column.name.as_str());
            stmt.push_sql("))");
        }
    }
    stmt.push_sql(")::");
    stmt.push_type(&column.sql_type);
    stmt.push_sql(" else pgrst_body.");
    stmt.push_ident(&column.name);
    stmt.push_sql(" end");
}

fn mutation(stmt: &mut Statement, plan: &WritePlan<'_>, output: WriteOutput) {
    let relation = plan.relation;
    match &plan.kind {
        WriteKind::Insert { conflict } => {
            stmt.push_sql("insert into ");
            stmt.push_qualified(relation.schema(), relation.name());
            stmt.push_sql(" as pgrst_target");
            if plan.columns.is_empty() {
                // `{}`: one row of defaults (an empty array inserts nothing).
                let rows = plan.payload.as_ref().map_or(0, |p| p.rows);
                if rows == 0 {
                    stmt.push_sql(" select * from ");
                    stmt.push_qualified(relation.schema(), relation.name());
                    stmt.push_sql(" where false");
                } else {
                    stmt.push_sql(" default values");
                }
            } else {
                stmt.push_sql(" (");
                push_column_list(stmt, plan);
                stmt.push_sql(") select ");
                for (index, column) in plan.columns.iter().enumerate() {
                    if index > 0 {
                        stmt.push_sql(", ");
                    }
                    push_written_value(stmt, plan, column, "pgrst_elem.value");
                }
                if plan.missing_default {
                    // One row per array element, in order; the raw element tells a missing key
                    // from an explicit null.
                    stmt.push_sql(
                        " from json_array_elements((select pgrst_rows from pgrst_payload)) \
                         with ordinality as pgrst_elem, lateral json_populate_record(null::",
                    );
                    stmt.push_qualified(relation.schema(), relation.name());
                    stmt.push_sql(
                        ", pgrst_elem.value) as pgrst_body order by pgrst_elem.ordinality",
                    );
                } else {
                    stmt.push_sql(" from json_populate_recordset(null::");
                    stmt.push_qualified(relation.schema(), relation.name());
                    stmt.push_sql(", (select pgrst_rows from pgrst_payload)) as pgrst_body");
                }
            }
            if let Some((target, resolution)) = conflict {
                stmt.push_sql(" on conflict (");
                for (index, column) in target.iter().enumerate() {
                    if index > 0 {
                        stmt.push_sql(", ");
                    }
                    stmt.push_ident(&column.name);
                }
                stmt.push_sql(")");
                match resolution {
                    Resolution::IgnoreDuplicates => stmt.push_sql(" do nothing"),
                    Resolution::MergeDuplicates if plan.columns.is_empty() => {
                        stmt.push_sql(" do nothing")
                    }
                    Resolution::MergeDuplicates => {
                        stmt.push_sql(" do update set ");
                        for (index, column) in plan.columns.iter().enumerate() {
                            if index > 0 {
                                stmt.push_sql(", ");
                            }
                            stmt.push_ident(&column.name);
                            stmt.push_sql(" = excluded.");
                            stmt.push_ident(&column.name);
                        }
                    }
                }
            }
            if output.returning {
                stmt.push_sql(" returning pgrst_target.*");
                if output.inserted && tracks_inserts(relation.kind) {
                    stmt.push_sql(", (pgrst_target.xmax = 0) as pgrst_inserted");
                }
            }
        }
        WriteKind::Update => {
            stmt.push_sql("update ");
            stmt.push_qualified(relation.schema(), relation.name());
            stmt.push_sql(" as t0 set ");
            if plan.columns.is_empty() {
                // `{}` updates nothing: keep the rows as they are but touch none.
                let first = relation.columns.first();
                if let Some(column) = first {
                    stmt.push_ident(&column.name);
                    stmt.push_sql(" = t0.");
                    stmt.push_ident(&column.name);
                }
            } else {
                for (index, column) in plan.columns.iter().enumerate() {
                    if index > 0 {
                        stmt.push_sql(", ");
                    }
                    stmt.push_ident(&column.name);
                    stmt.push_sql(" = ");
                    push_written_value(
                        stmt,
                        plan,
                        column,
                        "(select pgrst_rows -> 0 from pgrst_payload)",
                    );
                }
                stmt.push_sql(" from (select * from json_populate_record(null::");
                stmt.push_qualified(relation.schema(), relation.name());
                stmt.push_sql(", (select pgrst_rows -> 0 from pgrst_payload))) as pgrst_body");
            }
            push_where(stmt, plan, plan.columns.is_empty());
            if output.returning {
                stmt.push_sql(" returning t0.*");
            }
        }
        WriteKind::Delete => {
            stmt.push_sql("delete from ");
            stmt.push_qualified(relation.schema(), relation.name());
            stmt.push_sql(" as t0");
            push_where(stmt, plan, false);
            if output.returning {
                stmt.push_sql(" returning t0.*");
            }
        }
    }
}

fn push_column_list(stmt: &mut Statement, plan: &WritePlan<'_>) {
    for (index, column) in plan.columns.iter().enumerate() {
        if index > 0 {
            stmt.push_sql(", ");
        }
        stmt.push_ident(&column.name);
    }
}

fn push_where(stmt: &mut Statement, plan: &WritePlan<'_>, nothing: bool) {
    let mut first = true;
    if nothing {
        stmt.push_sql(" where false");
        first = false;
    }
    for condition in &plan.conditions {
        stmt.push_sql(if first { " where " } else { " and " });
        first = false;
        push_condition(stmt, 0, &|_| 0, condition);
    }
}
