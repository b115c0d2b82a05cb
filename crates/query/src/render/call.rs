//! RPC statements: `pgrst_args` (the arguments, typed by the function's parameters), then
//! `pgrst_call` (materialized, so the function runs once even when results are also counted),
//! then the body.

use manifold_sql::Statement;

use super::expr::array_literal;
use super::read::{BodyKind, Count, RootSource, SelectOptions, null_extras, render_select};
use crate::plan::{CallArgs, CallPlan, CallResult};

/// Renders a planned call. `body` shapes row results; `count` counts them.
pub fn render_call(plan: &CallPlan<'_>, body: BodyKind, count: Count) -> Statement {
    let mut stmt = Statement::from_static("with pgrst_args as (");
    args(&mut stmt, plan);
    stmt.push_sql("), pgrst_call as materialized (select ");
    match &plan.result {
        CallResult::Rows { .. } => {
            stmt.push_sql("pgrst_fn.* from pgrst_args, lateral ");
            call(&mut stmt, plan);
            stmt.push_sql(" as pgrst_fn");
        }
        CallResult::Scalar { set: true } => {
            stmt.push_sql("pgrst_fn as pgrst_scalar from pgrst_args, lateral ");
            call(&mut stmt, plan);
            stmt.push_sql(" as pgrst_fn");
        }
        CallResult::Scalar { set: false } | CallResult::Void => {
            call(&mut stmt, plan);
            stmt.push_sql(" as pgrst_scalar from pgrst_args");
        }
    }
    stmt.push_sql("), ");
    match &plan.result {
        CallResult::Rows { plan: read, .. } => {
            render_select(
                &mut stmt,
                read,
                &SelectOptions {
                    body,
                    count,
                    source: RootSource::Cte("pgrst_call"),
                    extra: &null_extras,
                },
            );
        }
        CallResult::Scalar { set } => {
            stmt.push_sql("pgrst_source as (select * from pgrst_call) select ");
            stmt.push_sql(if count == Count::None {
                "null::int8"
            } else {
                "count(*)::int8"
            });
            stmt.push_sql(" as total, count(*)::int8 as page, ");
            match body {
                BodyKind::None => stmt.push_sql("null::text"),
                _ if *set => stmt.push_sql("coalesce(json_agg(pgrst_scalar), '[]'::json)::text"),
                _ => stmt.push_sql("coalesce((json_agg(pgrst_scalar) -> 0)::text, 'null')"),
            }
            push_tail(&mut stmt);
        }
        CallResult::Void => {
            stmt.push_sql("pgrst_source as (select * from pgrst_call) select null::int8 as total, count(*)::int8 as page, null::text as body");
            push_tail(&mut stmt);
        }
    }
    stmt
}

fn push_tail(stmt: &mut Statement) {
    stmt.push_sql(
        ", nullif(current_setting('response.headers', true), '') as response_headers, \
         nullif(current_setting('response.status', true), '') as response_status",
    );
    null_extras(stmt);
    stmt.push_sql(" from pgrst_source");
}

/// The arguments as one row whose columns are named after the parameters.
fn args(stmt: &mut Statement, plan: &CallPlan<'_>) {
    let params = &plan.function.params;
    match &plan.args {
        CallArgs::None => stmt.push_sql("select"),
        CallArgs::Single(text) => {
            stmt.push_sql("select ");
            stmt.push_bind(text.as_str());
            stmt.push_sql("::");
            if let Some(param) = params.first() {
                stmt.push_type(&param.sql_type);
            }
            stmt.push_sql(" as pgrst_body");
        }
        CallArgs::Json {
            text,
            params: given,
        } => {
            stmt.push_sql("select * from json_to_record(");
            stmt.push_bind(text.as_str());
            stmt.push_sql("::json) as pgrst_input(");
            for (position, index) in given.iter().enumerate() {
                let param = &params[*index];
                if position > 0 {
                    stmt.push_sql(", ");
                }
                if let Some(ident) = &param.ident {
                    stmt.push_ident(ident);
                }
                stmt.push_sql(" ");
                stmt.push_type(&param.sql_type);
            }
            stmt.push_sql(")");
        }
        CallArgs::Text(values) => {
            stmt.push_sql("select ");
            for (position, (index, texts)) in values.iter().enumerate() {
                let param = &params[*index];
                if position > 0 {
                    stmt.push_sql(", ");
                }
                // A variadic parameter repeated in the query string (`?v=1&v=2`) collects into
                // an array; given once as an array literal (`?v={1,2}`, what supabase-js sends
                // for an array with `get: true`), it is that array.
                let value = match texts.as_slice() {
                    [one] if param.variadic && one.starts_with('{') && one.ends_with('}') => {
                        one.clone()
                    }
                    _ if param.variadic => array_literal(texts),
                    _ => texts.first().cloned().unwrap_or_default(),
                };
                stmt.push_bind(value);
                stmt.push_sql("::");
                stmt.push_type(&param.sql_type);
                stmt.push_sql(" as ");
                if let Some(ident) = &param.ident {
                    stmt.push_ident(ident);
                }
            }
        }
    }
}

/// `"schema"."fn"("a" => pgrst_args."a", …)`.
fn call(stmt: &mut Statement, plan: &CallPlan<'_>) {
    let function = plan.function;
    stmt.push_qualified(&function.qualified.schema, &function.qualified.name);
    stmt.push_sql("(");
    let given: Vec<usize> = match &plan.args {
        CallArgs::None => Vec::new(),
        CallArgs::Single(_) => {
            stmt.push_sql("pgrst_args.pgrst_body)");
            return;
        }
        CallArgs::Json { params, .. } => params.clone(),
        CallArgs::Text(values) => values.iter().map(|(index, _)| *index).collect(),
    };
    for (position, index) in given.iter().enumerate() {
        let param = &function.params[*index];
        if position > 0 {
            stmt.push_sql(", ");
        }
        if param.variadic {
            stmt.push_sql("variadic ");
        }
        if let Some(ident) = &param.ident {
            stmt.push_ident(ident);
            stmt.push_sql(" => pgrst_args.");
            stmt.push_ident(ident);
        }
    }
    stmt.push_sql(")");
}
