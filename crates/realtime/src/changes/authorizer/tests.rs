//! The differential test: the compiled authorizer (and its per-identity fallback) against real
//! RLS, on random rows and random users.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use manifold_db::{Access, Db, RequestContext, RequestInfo, create_pool};
use manifold_sql::Statement;
use manifold_testkit::TestDb;
use serde_json::{Value, json};

use super::{Authorizer, Identity, Plan, SEARCH_PATH};
use crate::changes::catalog::Catalog;

const FIXTURE: &str = r#"
create schema rt_diff;
grant usage on schema rt_diff to anon, authenticated;
create function rt_diff.org_id() returns uuid language sql stable
  as $$ select nullif(auth.jwt() ->> 'organization_id', '')::uuid $$;
create function rt_diff.is_admin() returns boolean language sql stable
  as $$ select coalesce((auth.jwt() ->> 'org_role') = 'admin', false) $$;
create function rt_diff.level_of(claims jsonb) returns int language sql immutable
  as $$ select coalesce((claims ->> 'level')::int, 0) $$;
create function rt_diff.lookup(uuid) returns boolean language plpgsql volatile
  as $$ begin return $1 is not null and current_setting('request.jwt.claim.sub', true) <> ''; end $$;
grant execute on all functions in schema rt_diff to anon, authenticated;
create table rt_diff.shares (item int8, grantee uuid);
grant select on rt_diff.shares to anon, authenticated;

create table public.diff_items (
  id int8 primary key, org uuid, owner uuid, open boolean, archived boolean, level int, n text
);
alter table public.diff_items enable row level security;
create policy by_org on public.diff_items for select to authenticated
  using (org = rt_diff.org_id());
create policy by_owner on public.diff_items for select to authenticated
  using (owner = (select auth.uid()));
create policy shared on public.diff_items for select to authenticated
  using (exists (select 1 from rt_diff.shares s where s.item = diff_items.id and s.grantee = auth.uid()));
create policy open_rows on public.diff_items for select to anon, authenticated
  using (open and level <= rt_diff.level_of(current_setting('request.jwt.claims', true)::jsonb));
create policy not_archived on public.diff_items as restrictive for select to authenticated
  using (not archived or rt_diff.is_admin());

-- Columns named like the helper columns of the checks (`c`, `s`, `i`, `doc`, `__rt_row`,
-- `__rt_settings`), referenced unqualified by the policies.
create table public.diff_names (
  id int8 primary key, c uuid, s int, i int, doc text, "__rt_row" int, "__rt_settings" text
);
alter table public.diff_names enable row level security;
create policy names_org on public.diff_names for select to authenticated
  using (c = rt_diff.org_id() and s <= rt_diff.level_of(current_setting('request.jwt.claims', true)::jsonb) + 1);
create policy names_open on public.diff_names for select to anon, authenticated
  using (i = 1 and doc is not null and "__rt_row" >= 0 and "__rt_settings" is distinct from 'x');

create table public.diff_fallback (id int8 primary key, owner uuid);
alter table public.diff_fallback enable row level security;
create policy volatile_check on public.diff_fallback for select to authenticated
  using (rt_diff.lookup(owner) and owner = auth.uid());

create table public.diff_errors (id int8 primary key, threshold int);
alter table public.diff_errors enable row level security;
create policy cast_claim on public.diff_errors for select to authenticated
  using (threshold < (auth.jwt() ->> 'n')::int);
"#;

/// A small deterministic generator (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const ORGS: &[&str] = &[
    "00000000-0000-0000-0000-0000000000a1",
    "00000000-0000-0000-0000-0000000000a2",
    "00000000-0000-0000-0000-0000000000a3",
];
const USERS: &[&str] = &[
    "00000000-0000-0000-0000-0000000000b1",
    "00000000-0000-0000-0000-0000000000b2",
    "00000000-0000-0000-0000-0000000000b3",
    "00000000-0000-0000-0000-0000000000b4",
];

fn random_claims(random: &mut Random) -> (String, Value) {
    let role = if random.below(5) == 0 {
        "anon"
    } else {
        "authenticated"
    };
    let mut claims = json!({ "role": role });
    if random.below(6) != 0 {
        claims["sub"] = json!(random.pick(USERS));
    }
    match random.below(5) {
        0 => {}
        1 => claims["organization_id"] = json!(""),
        _ => claims["organization_id"] = json!(random.pick(ORGS)),
    }
    if random.below(3) == 0 {
        claims["org_role"] = json!(random.pick(&["admin", "member"]));
    }
    if random.below(2) == 0 {
        claims["level"] = json!(random.below(4));
    }
    claims["n"] = json!(random.pick(&["1", "5", "9", "abc"]));
    // A claim no policy reads: identities differ while their classes (the values the compiled
    // policies read) are often equal, so one identity answers for others.
    claims["session_id"] = json!(random.below(1_000_000));
    (role.to_owned(), claims)
}

/// What real RLS shows `claims` of table `table` (an error shows nothing).
async fn visible(db: &Db, role: &str, claims: &Value, sql: &'static str) -> BTreeSet<i64> {
    let info = RequestInfo {
        claims: claims.to_string(),
        method: "GET".into(),
        path: "/realtime/v1".into(),
        headers: "{}".into(),
        cookies: "{}".into(),
    };
    let ctx = RequestContext::new(role, SEARCH_PATH.to_owned(), info, Access::ReadOnly);
    match db.run(&ctx, &Statement::from_static(sql)).await {
        Ok(rows) => rows.iter().map(|row| row.get(0)).collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[allow(clippy::too_many_arguments, reason = "one comparison case spelled out")]
async fn compare(
    authorizer: &Authorizer,
    catalog: &Catalog,
    api: &Db,
    admin: &tokio_postgres::Client,
    table: &str,
    list_sql: &'static str,
    docs_sql: &'static str,
    users: &[(String, Value)],
) -> usize {
    let oid: i64 = admin
        .query_one("select $1::text::regclass::oid::int8", &[&table])
        .await
        .unwrap()
        .get(0);
    let table = catalog.table(u32::try_from(oid).unwrap()).await.unwrap();
    let rows = admin.query(docs_sql, &[]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    let docs: Vec<String> = rows.iter().map(|row| row.get(1)).collect();
    let mut compared = 0;
    for role in ["anon", "authenticated"] {
        let members: Vec<&(String, Value)> = users.iter().filter(|(r, _)| r == role).collect();
        let identities: Vec<Arc<Identity>> = members
            .iter()
            .map(|(role, claims)| Arc::new(Identity::new(role, claims.to_string(), &[])))
            .collect();
        let pairs: Vec<(usize, usize)> = (0..docs.len())
            .flat_map(|row| (0..identities.len()).map(move |sub| (row, sub)))
            .collect();
        let verdicts = authorizer
            .authorize(&table, role, &docs, &identities, &pairs)
            .await
            .unwrap();
        for (sub, (role, claims)) in members.iter().enumerate() {
            let compiled: BTreeSet<i64> = pairs
                .iter()
                .zip(&verdicts)
                .filter(|((_, s), allowed)| *s == sub && **allowed)
                .map(|((row, _), _)| ids[*row])
                .collect();
            let real = visible(api, role, claims, list_sql).await;
            assert_eq!(compiled, real, "{} for {claims}", table.name);
            compared += 1;
        }
    }
    compared
}

/// The compiled plan of `table` answers every role's batch itself (no fallback per identity),
/// with the parts that depend on the subscriber alone computed once per subscriber.
async fn compiled_runs(
    authorizer: &Authorizer,
    catalog: &Catalog,
    admin: &tokio_postgres::Client,
    users: &[(String, Value)],
    name: &str,
) {
    let oid: i64 = admin
        .query_one(&format!("select '{name}'::regclass::oid::int8"), &[])
        .await
        .unwrap()
        .get(0);
    let table = catalog.table(u32::try_from(oid).unwrap()).await.unwrap();
    let docs: Vec<String> = admin
        .query(
            &format!("select to_jsonb(t)::text from {name} t order by id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    for role in ["anon", "authenticated"] {
        let plan = authorizer.plan(&table, role).await.unwrap();
        let Plan::Compiled {
            predicate,
            hoisted,
            classes,
            ..
        } = plan.as_ref()
        else {
            panic!("{role}: {plan:?}");
        };
        // Every authenticated policy of these tables reads the claims.
        assert!(
            role == "anon" || (!hoisted.is_empty() && predicate.contains("__rt_s.__rt_h0")),
            "{role}: the claims parts are computed once per subscriber: {predicate}"
        );
        let identities: Vec<Arc<Identity>> = users
            .iter()
            .filter(|(r, _)| r == role)
            .map(|(role, claims)| Arc::new(Identity::new(role, claims.to_string(), &[])))
            .collect();
        let pairs: Vec<(usize, usize)> = (0..docs.len())
            .flat_map(|row| (0..identities.len()).map(move |sub| (row, sub)))
            .collect();
        let verdicts = authorizer
            .by_class(
                &table,
                role,
                predicate,
                hoisted,
                classes.as_deref(),
                &docs,
                &identities,
                &pairs,
            )
            .await
            .unwrap();
        assert!(verdicts.iter().any(|v| *v), "{role}: some rows are visible");
    }
}

#[tokio::test]
async fn compiled_authorizer_equals_real_rls_on_random_rows_and_users() {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let admin = db.admin().await;
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    for id in 0..160_i64 {
        let org = (random.below(4) != 0).then(|| random.pick(ORGS).to_owned());
        let owner = (random.below(3) != 0).then(|| random.pick(USERS).to_owned());
        admin
            .execute(
                "insert into diff_items values ($1, $2::text::uuid, $3::text::uuid, $4, $5, $6, null)",
                &[&id, &org, &owner, &(random.below(3) == 0), &(random.below(4) == 0), &(random.below(4) as i32)],
            )
            .await
            .unwrap();
        admin
            .execute(
                "insert into diff_names values ($1, $2::text::uuid, $3, $4, $5, $6, $7)",
                &[
                    &id,
                    &org,
                    &(random.below(5) as i32),
                    &(random.below(2) as i32),
                    &(random.below(3) != 0).then_some("d"),
                    &(random.below(3) as i32 - 1),
                    &random.pick(&["x", "y"]),
                ],
            )
            .await
            .unwrap();
        admin
            .execute(
                "insert into diff_fallback values ($1, $2::text::uuid)",
                &[&id, &owner],
            )
            .await
            .unwrap();
        admin
            .execute(
                "insert into diff_errors values ($1, $2)",
                &[&id, &(random.below(10) as i32)],
            )
            .await
            .unwrap();
        if random.below(8) == 0 {
            admin
                .execute(
                    "insert into rt_diff.shares values ($1, $2::text::uuid)",
                    &[&id, &random.pick(USERS)],
                )
                .await
                .unwrap();
        }
    }
    let users: Vec<(String, Value)> = (0..40).map(|_| random_claims(&mut random)).collect();

    let pool = create_pool(&db.admin_url, 4, Duration::from_secs(10)).unwrap();
    let catalog = Arc::new(Catalog::new(pool));
    let authorizer = Authorizer::new(catalog.clone());
    let api = Db::new(create_pool(&db.api_url, 4, Duration::from_secs(10)).unwrap());

    let items = catalog
        .table(
            u32::try_from(
                admin
                    .query_one("select 'public.diff_items'::regclass::oid::int8", &[])
                    .await
                    .unwrap()
                    .get::<_, i64>(0),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    for role in ["anon", "authenticated"] {
        let plan = authorizer.plan(&items, role).await.unwrap();
        assert!(
            matches!(plan.as_ref(), Plan::Compiled { .. }),
            "{role}: {plan:?}"
        );
    }

    let compared = compare(
        &authorizer,
        &catalog,
        &api,
        &admin,
        "public.diff_items",
        "select id from public.diff_items",
        "select id, to_jsonb(t)::text from public.diff_items t order by id",
        &users,
    )
    .await;
    assert_eq!(compared, users.len());
    compiled_runs(&authorizer, &catalog, &admin, &users, "public.diff_items").await;

    compare(
        &authorizer,
        &catalog,
        &api,
        &admin,
        "public.diff_names",
        "select id from public.diff_names",
        "select id, to_jsonb(t)::text from public.diff_names t order by id",
        &users,
    )
    .await;
    // Those names never make the batch query fail (which would fall back per identity).
    compiled_runs(&authorizer, &catalog, &admin, &users, "public.diff_names").await;

    compare(
        &authorizer,
        &catalog,
        &api,
        &admin,
        "public.diff_fallback",
        "select id from public.diff_fallback",
        "select id, to_jsonb(t)::text from public.diff_fallback t order by id",
        &users,
    )
    .await;
    // A policy that raises for some claims ("abc"::int) denies those identities only.
    compare(
        &authorizer,
        &catalog,
        &api,
        &admin,
        "public.diff_errors",
        "select id from public.diff_errors",
        "select id, to_jsonb(t)::text from public.diff_errors t order by id",
        &users,
    )
    .await;
}

/// Classes of subscribers are remembered across batches only when the parts they are made of
/// read nothing but the settings: a policy comparing a claim with the clock is answered afresh
/// each time, so a token's `exp` checked by a policy takes effect as time passes.
#[tokio::test]
async fn classes_that_read_the_clock_are_not_remembered() {
    let db = TestDb::create().await;
    db.execute(
        "create table public.diff_fresh (id int8 primary key, org text);
         alter table public.diff_fresh enable row level security;
         create policy fresh on public.diff_fresh for select to authenticated
           using (org = auth.jwt() ->> 'org'
                  and (auth.jwt() ->> 'until')::float8 > extract(epoch from now()));
         create table public.diff_stable (id int8 primary key, org text);
         alter table public.diff_stable enable row level security;
         create policy by_org on public.diff_stable for select to authenticated
           using (org = auth.jwt() ->> 'org');",
    )
    .await;
    let admin = db.admin().await;
    let pool = create_pool(&db.admin_url, 4, Duration::from_secs(10)).unwrap();
    let catalog = Arc::new(Catalog::new(pool));
    let authorizer = Authorizer::new(catalog.clone());
    let table = |name: &'static str| {
        let admin = &admin;
        let catalog = catalog.clone();
        async move {
            let oid: i64 = admin
                .query_one(&format!("select '{name}'::regclass::oid::int8"), &[])
                .await
                .unwrap()
                .get(0);
            catalog.table(u32::try_from(oid).unwrap()).await.unwrap()
        }
    };
    let fresh = table("public.diff_fresh").await;
    let stable = table("public.diff_stable").await;
    for (table, remembered) in [(&fresh, false), (&stable, true)] {
        let plan = authorizer.plan(table, "authenticated").await.unwrap();
        let Plan::Compiled { classes, .. } = plan.as_ref() else {
            panic!("{plan:?}");
        };
        assert_eq!(classes.is_some(), remembered, "{}", table.name);
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let identity = Arc::new(Identity::new(
        "authenticated",
        json!({"role": "authenticated", "org": "a", "until": now + 1.5}).to_string(),
        &[],
    ));
    let rows = vec![json!({"id": 1, "org": "a"}).to_string()];
    let ask = || {
        authorizer.authorize(
            &fresh,
            "authenticated",
            &rows,
            std::slice::from_ref(&identity),
            &[(0, 0)],
        )
    };
    assert_eq!(ask().await.unwrap(), vec![true], "before `until`");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(ask().await.unwrap(), vec![false], "after `until`");
}
