//! Write statements. The body is one `json` bind expanded with `json_populate_recordset` over the
//! table's row type, so every column is typed by the database itself.
//!
//! With `returning`, the write is a CTE (`pgrst_mutation`) and the affected rows are shaped by the
//! read renderer (select, embeds, counts). Without it the write runs bare: no RETURNING, so
//! tables with INSERT-only policies accept `return=minimal` inserts, as with PostgREST.

use manifold_sql::Statement;
use manifold_sql::cache::RelationKind;

use super::expr::push_condition;
use super::read::{BodyKind, RootSource, SelectOptions, render_select};
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
    pub count: bool,
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

/// `pgrst_payload as (…)`: the body as rows (an object becomes a one-element array); with
/// `missing=default`, each row's missing keys take the column defaults.
fn payload_cte(stmt: &mut Statement, plan: &WritePlan<'_>) {
    let Some(payload) = &plan.payload else { return };
    stmt.push_sql("pgrst_payload as (select ");
    let defaults: Vec<_> = if plan.missing_default {
        plan.columns
            .iter()
            .filter(|c| c.default_expr.is_some())
            .collect()
    } else {
        Vec::new()
    };
    if defaults.is_empty() {
        stmt.push_sql(
            "case when json_typeof(pgrst_json) = 'array' then pgrst_json else json_build_array(pgrst_json) end",
        );
    } else {
        stmt.push_sql("(select coalesce(jsonb_agg(jsonb_build_object(");
        for (index, column) in defaults.iter().enumerate() {
            if index > 0 {
                stmt.push_sql(", ");
            }
            stmt.push_bind(column.name.as_str());
            stmt.push_sql(", ");
            if let Some(expr) = &column.default_expr {
                stmt.push_expr(expr);
            }
        }
        stmt.push_sql(") || pgrst_row), '[]'::jsonb)::json from jsonb_array_elements(pgrst_json::jsonb) as pgrst_row)");
    }
    stmt.push_sql(" as pgrst_rows from (select ");
    stmt.push_bind(payload.text.as_str());
    stmt.push_sql("::json as pgrst_json) as pgrst_input)");
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
                push_column_list(stmt, plan, "");
                stmt.push_sql(") select ");
                push_column_list(stmt, plan, "pgrst_body.");
                stmt.push_sql(" from json_populate_recordset(null::");
                stmt.push_qualified(relation.schema(), relation.name());
                stmt.push_sql(", (select pgrst_rows from pgrst_payload)) as pgrst_body");
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
                    stmt.push_sql(" = pgrst_body.");
                    stmt.push_ident(&column.name);
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

fn push_column_list(stmt: &mut Statement, plan: &WritePlan<'_>, prefix: &'static str) {
    for (index, column) in plan.columns.iter().enumerate() {
        if index > 0 {
            stmt.push_sql(", ");
        }
        stmt.push_sql(prefix);
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
