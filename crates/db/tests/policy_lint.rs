//! The policy lint: tenant-safety rules checked over the catalog of a fully migrated database.
//!
//! - every table in the exposed schema has RLS enabled and forced and at least one policy;
//! - every foreign key between tenant tables includes `organization_id` on both sides;
//! - every view is `security_invoker`;
//! - every SECURITY DEFINER function sets `search_path` and is not executable by anon;
//! - no policy calls a row-independent helper (`auth.uid()`, `app.current_org_id()`,
//!   `app.has_role('owner')`, …) outside a `(select …)` wrapper, which would run it once per row
//!   instead of once per statement.
//!
//! The second test plants one violation of each rule and checks the lint names every one, so the
//! lint itself cannot silently stop working.

use std::ops::ControlFlow;

use manifold_testkit::TestDb;
use sqlparser::ast::{Expr, FunctionArguments, Query, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The schema the REST API exposes.
const EXPOSED: &str = "public";

async fn lint(client: &tokio_postgres::Client) -> Vec<String> {
    let mut problems = Vec::new();

    for row in client
        .query(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    (select count(*) from pg_policy p where p.polrelid = c.oid)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = $1 and c.relkind in ('r', 'p')
             order by 1",
            &[&EXPOSED],
        )
        .await
        .unwrap()
    {
        let (table, enabled, forced, policies): (String, bool, bool, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if !enabled {
            problems.push(format!("table {table}: row level security is not enabled"));
        }
        if !forced {
            problems.push(format!("table {table}: row level security is not forced"));
        }
        if policies == 0 {
            problems.push(format!("table {table}: has no policy"));
        }
    }

    // Tenant tables carry organization_id; organizations is the root.
    for row in client
        .query(
            "select con.conname, src.relname, dst.relname,
                    array(select a.attname::text from unnest(con.conkey) with ordinality k(n, i)
                          join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.i),
                    array(select a.attname::text from unnest(con.confkey) with ordinality k(n, i)
                          join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.i)
             from pg_constraint con
             join pg_class src on src.oid = con.conrelid
             join pg_namespace sn on sn.oid = src.relnamespace
             join pg_class dst on dst.oid = con.confrelid
             join pg_namespace dn on dn.oid = dst.relnamespace
             where con.contype = 'f' and sn.nspname = $1 and dn.nspname = $1
               and exists (select 1 from pg_attribute a where a.attrelid = src.oid
                           and a.attname = 'organization_id' and not a.attisdropped)
               and (dst.relname = 'organizations' or exists (
                    select 1 from pg_attribute a where a.attrelid = dst.oid
                    and a.attname = 'organization_id' and not a.attisdropped))
             order by 2, 1",
            &[&EXPOSED],
        )
        .await
        .unwrap()
    {
        let (name, from, to, columns, referenced): (String, String, String, Vec<String>, Vec<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let paired = columns
            .iter()
            .zip(&referenced)
            .any(|(column, target)| {
                column == "organization_id"
                    && (target == "organization_id" || (to == "organizations" && target == "id"))
            });
        if !paired {
            problems.push(format!(
                "foreign key {name} ({from} -> {to}): ({}) -> ({}) does not include organization_id",
                columns.join(", "),
                referenced.join(", ")
            ));
        }
    }

    for row in client
        .query(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = $1 and c.relkind = 'v'
               and not coalesce(c.reloptions @> array['security_invoker=true']
                                or c.reloptions @> array['security_invoker=on'], false)
             order by 1",
            &[&EXPOSED],
        )
        .await
        .unwrap()
    {
        let view: String = row.get(0);
        problems.push(format!("view {view}: is not security_invoker"));
    }

    for row in client
        .query(
            "select p.oid::regprocedure::text,
                    exists (select 1 from unnest(coalesce(p.proconfig, '{}')) s where s like 'search_path=%'),
                    has_function_privilege('anon', p.oid, 'execute')
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where p.prosecdef and n.nspname not in ('pg_catalog', 'information_schema')
               and n.nspname not like 'pg_toast%'
             order by 1",
            &[],
        )
        .await
        .unwrap()
    {
        let (function, sets_path, anon_runs): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if !sets_path {
            problems.push(format!("function {function}: SECURITY DEFINER without search_path"));
        }
        if anon_runs {
            problems.push(format!("function {function}: SECURITY DEFINER and executable by anon"));
        }
    }

    for row in client
        .query(
            "select schemaname || '.' || tablename, policyname, qual, with_check from pg_policies order by 1, 2",
            &[],
        )
        .await
        .unwrap()
    {
        let (table, policy): (String, String) = (row.get(0), row.get(1));
        for expression in [row.get::<_, Option<String>>(2), row.get(3)].into_iter().flatten() {
            match per_row_helper_calls(&expression) {
                Ok(calls) => problems.extend(calls.into_iter().map(|call| {
                    format!("policy {policy:?} on {table}: {call}() runs per row; wrap it as (select {call}(…))")
                })),
                Err(error) => problems.push(format!(
                    "policy {policy:?} on {table}: cannot parse {expression:?}: {error}"
                )),
            }
        }
    }
    problems
}

/// Schema-qualified function calls whose arguments mention no column, made outside any subquery.
/// Such a call has the same value for every row, so it belongs in an InitPlan.
fn per_row_helper_calls(expression: &str) -> Result<Vec<String>, String> {
    // Postgres deparses variadic calls as `f(VARIADIC ARRAY[…])`, which is not for the parser.
    let sql = format!("select 1 where {}", expression.replace("VARIADIC ", ""));
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, &sql).map_err(|e| e.to_string())?;

    struct Finder {
        depth: usize,
        found: Vec<String>,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(function) = expr {
                let name = function.name.to_string();
                if self.depth == 1 && name.contains('.') && !mentions_a_column(&function.args) {
                    self.found.push(name);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        depth: 0,
        found: Vec::new(),
    };
    let _ = statements.visit(&mut finder);
    Ok(finder.found)
}

fn mentions_a_column(args: &FunctionArguments) -> bool {
    struct Columns(bool);
    impl Visitor for Columns {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut columns = Columns(false);
    let _ = args.visit(&mut columns);
    columns.0
}

#[tokio::test]
async fn the_migrated_schema_passes_the_policy_lint() {
    let db = TestDb::create().await;
    let client = db.admin().await;
    let problems = lint(&client).await;
    assert!(problems.is_empty(), "policy lint:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn the_policy_lint_names_each_kind_of_violation() {
    let db = TestDb::create().await;
    let client = db.admin().await;
    db.execute(
            "create table public.lint_open (id int);
             create table public.lint_unforced (id int);
             alter table public.lint_unforced enable row level security;
             create table public.lint_child (
               id uuid primary key, organization_id uuid not null, customer_id uuid,
               foreign key (customer_id) references public.customers (id));
             alter table public.lint_child enable row level security;
             alter table public.lint_child force row level security;
             create policy lint_per_row on public.lint_child for select to authenticated
               using (organization_id = app.current_org_id() and (select auth.uid()) is not null);
             create policy lint_wrapped on public.lint_child for update to authenticated
               using (organization_id = (select app.current_org_id())
                      and (select app.has_role('owner', 'admin')));
             create view public.lint_view as select 1 as one;
             create function public.lint_definer() returns int language sql security definer as 'select 1';",
        )
        .await;
    let problems = lint(&client).await;
    let expected = [
        "table lint_open: row level security is not enabled",
        "table lint_open: row level security is not forced",
        "table lint_open: has no policy",
        "table lint_unforced: row level security is not forced",
        "table lint_unforced: has no policy",
        "foreign key lint_child_customer_id_fkey (lint_child -> customers): (customer_id) -> (id) does not include organization_id",
        "view lint_view: is not security_invoker",
        "function lint_definer(): SECURITY DEFINER without search_path",
        "function lint_definer(): SECURITY DEFINER and executable by anon",
        "policy \"lint_per_row\" on public.lint_child: app.current_org_id() runs per row; wrap it as (select app.current_org_id(…))",
    ];
    for problem in expected {
        assert!(
            problems.iter().any(|p| p == problem),
            "missing {problem:?} in:\n{}",
            problems.join("\n")
        );
    }
    assert_eq!(problems.len(), expected.len(), "{}", problems.join("\n"));
}
