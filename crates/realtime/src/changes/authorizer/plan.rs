//! Building a table's authorization plan for one role: read its SELECT policies (deparsed with
//! an empty `search_path`, so every name is qualified), combine them as PostgreSQL does
//! (permissive OR, restrictive AND), and compile them when every part can be proven safe.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Object;
use sqlparser::ast::Expr;

use super::compile::{
    Compiler, FunctionDef, FunctionDefs, Hoister, NotCompilable, body_expression, called_functions,
    parse_expr, relations, settings_only,
};
use crate::changes::catalog::{RoleAccess, Table};
use crate::error::StoreError;

const DEPARSE_PATH_SQL: &str = "select set_config('search_path', '', true)";

const POLICIES_SQL: &str = "select p.polpermissive, pg_get_expr(p.polqual, p.polrelid) \
     from pg_policy p where p.polrelid = $1::int8::oid and p.polcmd in ('r', '*') \
     and p.polqual is not null \
     and ('{0}'::oid[] && p.polroles or exists (select 1 from unnest(p.polroles) as r(oid) \
     where r.oid <> 0 and pg_has_role($2::text, r.oid, 'MEMBER'))) \
     order by p.polname";

const FUNCTIONS_SQL: &str = "select n.nspname = 'pg_catalog', p.provolatile = 'i', \
     (l.lanname = 'sql' and not p.prosecdef and p.proconfig is null and p.provolatile <> 'v' \
      and not p.proretset and p.prokind = 'f' and (p.pronargs = 0 or not p.proisstrict)), \
     case when l.lanname = 'sql' then coalesce(pg_get_function_sqlbody(p.oid), p.prosrc) end, \
     format_type(p.prorettype, null), \
     array(select format_type(t, null) from unnest(p.proargtypes::oid[]) as a(t)), \
     coalesce(p.proargnames, '{}'::text[]) \
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
     join pg_language l on l.oid = p.prolang \
     where p.proname = $2::text and n.nspname = case when $1::text = '' then 'pg_catalog' \
     else $1::text end";

const RELATION_SQL: &str = "select c.relkind in ('r', 'p', 'm', 'f') and (not c.relrowsecurity \
     or exists (select 1 from pg_roles r where r.rolname = $2::text and (r.rolbypassrls or \
     r.rolsuper)) or (pg_has_role($2::text, c.relowner, 'USAGE') and not c.relforcerowsecurity)) \
     from pg_class c where c.oid = to_regclass($1::text)";

/// How changes of a table are authorized for one role.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// No row security applies (RLS off, or the role bypasses it).
    AllowAll,
    /// Row security applies and no permissive policy exists, or the key is not readable.
    DenyAll,
    /// One query for all subscribers of the role; `hoisted` are the parts of `predicate` that
    /// depend on the subscriber alone, computed once per subscriber (`__rt_s.__rt_h<n>`);
    /// `original` is kept for the fallback.
    Compiled {
        predicate: String,
        hoisted: Vec<String>,
        original: String,
        /// Settings JSON of each identity seen → its class: the values of the hoisted parts.
        /// Identities of one class get the same verdict, so a batch asks once per class.
        /// `None` when a hoisted part reads more than the settings (the clock): classes are
        /// then computed for each batch.
        classes: Option<Arc<Mutex<HashMap<String, String>>>>,
    },
    /// Evaluated per identity with the role and its settings applied.
    PerIdentity { original: String },
}

/// Reads and compiles the plan of `table` for `role`. `settings` are the setting names each
/// identity carries.
pub(crate) async fn build(
    client: &mut Object,
    table: &Table,
    role: &str,
    access: &RoleAccess,
    settings: &HashSet<String>,
) -> Result<Plan, StoreError> {
    if !access.sees_key {
        return Ok(Plan::DenyAll);
    }
    if !table.rls_enabled || access.bypasses_rls {
        return Ok(Plan::AllowAll);
    }
    let transaction = client.transaction().await?;
    transaction.query(DEPARSE_PATH_SQL, &[]).await?;
    let oid = i64::from(table.oid);
    let rows = transaction.query(POLICIES_SQL, &[&oid, &role]).await?;
    let mut permissive = Vec::new();
    let mut restrictive = Vec::new();
    for row in &rows {
        let text: String = row.get(1);
        if row.get::<_, bool>(0) {
            permissive.push(text);
        } else {
            restrictive.push(text);
        }
    }
    if permissive.is_empty() {
        transaction.commit().await?;
        return Ok(Plan::DenyAll);
    }
    let original = join_predicate(&permissive, &restrictive);
    let compiled = compile_all(&transaction, role, &permissive, &restrictive, settings).await?;
    transaction.commit().await?;
    Ok(match compiled {
        Ok((predicate, hoisted, cacheable)) => Plan::Compiled {
            predicate,
            hoisted,
            original,
            classes: cacheable.then(Arc::default),
        },
        Err(reason) => {
            tracing::info!(table = %table.name, role, %reason, "policies evaluated per identity");
            Plan::PerIdentity { original }
        }
    })
}

async fn compile_all(
    transaction: &deadpool_postgres::Transaction<'_>,
    role: &str,
    permissive: &[String],
    restrictive: &[String],
    settings: &HashSet<String>,
) -> Result<Result<(String, Vec<String>, bool), NotCompilable>, StoreError> {
    let mut exprs = Vec::new();
    for text in permissive.iter().chain(restrictive) {
        match parse_expr(text) {
            Ok(expr) => exprs.push(expr),
            Err(reason) => return Ok(Err(reason)),
        }
    }
    let functions = match fetch_functions(transaction, &exprs).await? {
        Ok(functions) => functions,
        Err(reason) => return Ok(Err(reason)),
    };
    let compiler = Compiler {
        functions: &functions,
        settings,
    };
    let mut compiled = Vec::new();
    for expr in &exprs {
        match compiler.compile(expr) {
            Ok(expr) => compiled.push(expr),
            Err(reason) => return Ok(Err(reason)),
        }
    }
    for expr in &compiled {
        for relation in relations(expr) {
            let row = transaction
                .query_opt(RELATION_SQL, &[&relation, &role])
                .await?;
            if row.is_none_or(|row| row.get::<_, Option<bool>>(0) != Some(true)) {
                return Ok(Err(NotCompilable(format!(
                    "reads {relation}, which row security guards"
                ))));
            }
        }
    }
    let mut hoister = Hoister {
        hoisted: Vec::new(),
    };
    let texts: Vec<String> = compiled
        .into_iter()
        .map(|expr| hoister.hoist(expr).to_string())
        .collect();
    let (any, all) = texts.split_at(permissive.len());
    let predicate = join_predicate(any, all);
    let cacheable = hoister
        .hoisted
        .iter()
        .all(|part| settings_only(part, &functions));
    Ok(Ok((predicate, hoister.hoisted, cacheable)))
}

/// `((p1) OR (p2)) AND (r1) AND (r2)`: how PostgreSQL combines permissive and restrictive
/// policies. The parts are catalog expressions (`pg_get_expr`) or their compiled form.
fn join_predicate(permissive: &[String], restrictive: &[String]) -> String {
    let mut out = String::from("((");
    for (index, text) in permissive.iter().enumerate() {
        if index > 0 {
            out.push_str(") OR (");
        }
        out.push_str(text);
    }
    out.push_str("))");
    for text in restrictive {
        out.push_str(" AND (");
        out.push_str(text);
        out.push(')');
    }
    out
}

/// Fetches every function the expressions call, then those their inlinable bodies call.
async fn fetch_functions(
    transaction: &deadpool_postgres::Transaction<'_>,
    exprs: &[Expr],
) -> Result<Result<FunctionDefs, NotCompilable>, StoreError> {
    let mut defs: FunctionDefs = HashMap::new();
    let mut pending: Vec<(String, String)> = exprs.iter().flat_map(called_functions).collect();
    let mut fetched = 0usize;
    while let Some(key) = pending.pop() {
        if defs.contains_key(&key) {
            continue;
        }
        fetched += 1;
        if fetched > 64 {
            return Ok(Err(NotCompilable("too many helper functions".into())));
        }
        let rows = transaction.query(FUNCTIONS_SQL, &[&key.0, &key.1]).await?;
        let overloads: Vec<FunctionDef> = rows
            .iter()
            .map(|row| FunctionDef {
                builtin: row.get(0),
                immutable: row.get(1),
                inlinable: row.get(2),
                body: row.get(3),
                return_type: row.get(4),
                arg_types: row.get(5),
                arg_names: row.get(6),
            })
            .collect();
        for def in &overloads {
            if def.inlinable
                && let Some(body) = &def.body
                && let Ok(expr) = body_expression(body)
            {
                pending.extend(called_functions(&expr));
            }
        }
        defs.insert(key, overloads);
    }
    Ok(Ok(defs))
}
