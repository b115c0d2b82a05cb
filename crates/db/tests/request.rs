use std::time::Duration;

use manifold_db::{Access, Db, RequestContext, RequestInfo, create_pool};
use manifold_sql::Statement;
use manifold_testkit::TestDb;
use serde_json::json;

const USER_A: &str = "6f1c1e54-3b7e-4c2a-9a59-0d2f5c3b1a01";

fn context(role: &str, claims: serde_json::Value, access: Access) -> RequestContext {
    RequestContext::new(
        role,
        "\"public\", \"extensions\"".into(),
        RequestInfo {
            claims: claims.to_string(),
            method: if access == Access::ReadOnly {
                "GET".into()
            } else {
                "POST".into()
            },
            path: "/things".into(),
            headers: json!({"x-test": "1"}).to_string(),
            cookies: "{}".into(),
        },
        access,
    )
}

/// A database with a `notes` table, and a pool of one connection to it.
async fn notes_database() -> (TestDb, Db) {
    let db = TestDb::create().await;
    db.execute("create table public.notes (id int primary key, body text)")
        .await;
    let pool = single_connection(&db).await;
    (db, pool)
}

/// A pool of one connection, so consecutive requests share it.
async fn single_connection(db: &TestDb) -> Db {
    Db::new(create_pool(&db.api_url, 1, Duration::from_secs(5)).unwrap())
}

async fn whoami(db: &Db, ctx: &RequestContext) -> (Option<String>, String, String, String) {
    let statement = Statement::from_static(
        "select auth.uid()::text, current_user::text, \
         coalesce(current_setting('request.jwt.claims', true), ''), \
         coalesce(current_setting('request.method', true), '')",
    );
    let rows = db.run(ctx, &statement).await.unwrap();
    let row = &rows[0];
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn auth_uid_is_the_sub_claim_inside_the_request_transaction() {
    let db = TestDb::create().await;
    let pool = single_connection(&db).await;
    let claims = json!({"sub": USER_A, "role": "authenticated"});
    let (uid, user, claims_seen, method) = whoami(
        &pool,
        &context("authenticated", claims.clone(), Access::ReadOnly),
    )
    .await;
    assert_eq!(uid.as_deref(), Some(USER_A));
    assert_eq!(user, "authenticated");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&claims_seen).unwrap(),
        claims
    );
    assert_eq!(method, "GET");
}

#[tokio::test]
async fn nothing_leaks_to_the_next_request_on_the_same_connection() {
    let db = TestDb::create().await;
    let pool = single_connection(&db).await;
    let user = context(
        "authenticated",
        json!({"sub": USER_A, "role": "authenticated"}),
        Access::ReadOnly,
    );
    whoami(&pool, &user).await;

    // The next request on the same pooled connection runs as anon and sees none of it.
    let (uid, role, claims, _) = whoami(
        &pool,
        &context("anon", json!({"role": "anon"}), Access::ReadOnly),
    )
    .await;
    assert_eq!(uid, None);
    assert_eq!(role, "anon");
    assert_eq!(claims, r#"{"role":"anon"}"#);

    // And outside any request transaction the connection is plain authenticator again.
    let client = pool.pool().get().await.unwrap();
    let row = client
        .query_one(
            "select current_user::text, coalesce(current_setting('request.jwt.claims', true), ''), \
             coalesce(current_setting('request.jwt.claim.sub', true), '')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "authenticator");
    assert_eq!(row.get::<_, String>(1), "");
    assert_eq!(row.get::<_, String>(2), "");
}

#[tokio::test]
async fn read_only_requests_cannot_write() {
    let (db, pool) = notes_database().await;
    let mut insert = Statement::from_static("insert into public.notes values (1, ");
    insert.push_bind("hello");
    insert.push_sql(")");

    let error = pool
        .run(
            &context(
                "service_role",
                json!({"role": "service_role"}),
                Access::ReadOnly,
            ),
            &insert,
        )
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), Some("25006"));

    pool.run(
        &context(
            "service_role",
            json!({"role": "service_role"}),
            Access::ReadWrite,
        ),
        &insert,
    )
    .await
    .unwrap();
    let count: i64 = db
        .admin()
        .await
        .query_one("select count(*) from public.notes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_failed_statement_rolls_back_and_the_connection_stays_usable() {
    let (_db, pool) = notes_database().await;
    let ctx = context(
        "service_role",
        json!({"role": "service_role"}),
        Access::ReadWrite,
    );
    let failing = Statement::from_static(
        "with ins as (insert into public.notes values (1, 'a') returning id) \
         select (select id from ins) / 0",
    );
    let error = pool.run(&ctx, &failing).await.unwrap_err();
    assert_eq!(error.sqlstate(), Some("22012"));
    let count = Statement::from_static("select count(*)::int8 from public.notes");
    let rows = pool.run(&ctx, &count).await.unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        0,
        "the failed insert was rolled back"
    );
}

#[tokio::test]
async fn an_unknown_role_fails_the_request_before_the_statement() {
    let db = TestDb::create().await;
    let pool = single_connection(&db).await;
    let error = pool
        .run(
            &context("no_such_role", json!({}), Access::ReadOnly),
            &Statement::from_static("select 1"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), Some("22023"));
    // The connection is reusable afterwards.
    whoami(
        &pool,
        &context("anon", json!({"role": "anon"}), Access::ReadOnly),
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_request_never_returns_an_open_transaction_to_the_pool() {
    let db = TestDb::create().await;
    let pool = single_connection(&db).await;
    let ctx = context(
        "service_role",
        json!({"role": "service_role"}),
        Access::ReadWrite,
    );
    let slow = Statement::from_static("select pg_sleep(5)");
    let cancelled = tokio::time::timeout(Duration::from_millis(200), pool.run(&ctx, &slow)).await;
    assert!(cancelled.is_err(), "the request should have been cut off");
    // The next request gets a clean connection (the cut-off one was closed, not reused).
    let (_, role, _, _) = whoami(
        &pool,
        &context("anon", json!({"role": "anon"}), Access::ReadOnly),
    )
    .await;
    assert_eq!(role, "anon");
}

#[tokio::test]
async fn multi_statement_transactions_roll_back_when_dropped() {
    let (_db, pool) = notes_database().await;
    let ctx = context(
        "service_role",
        json!({"role": "service_role"}),
        Access::ReadWrite,
    );
    {
        let tx = pool.begin(&ctx).await.unwrap();
        tx.query(&Statement::from_static(
            "insert into public.notes values (7, 'x')",
        ))
        .await
        .unwrap();
        // Dropped without commit.
    }
    let tx = pool.begin(&ctx).await.unwrap();
    let rows = tx
        .query(&Statement::from_static(
            "select count(*)::int8 from public.notes",
        ))
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);
    tx.query(&Statement::from_static(
        "insert into public.notes values (8, 'y')",
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rows = pool
        .run(
            &ctx,
            &Statement::from_static("select count(*)::int8 from public.notes"),
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
}

#[tokio::test]
async fn extra_settings_and_the_pre_request_call_run_before_the_statement() {
    let db = TestDb::create().await;
    db.execute(
        "create function public.check_request() returns void language plpgsql as $$
         begin
           if current_setting('request.headers', true)::json ->> 'x-test' = 'deny' then
             raise exception 'denied by pre-request' using errcode = 'PT403';
           end if;
           perform set_config('app.seen_by_pre_request', 'yes', true);
         end $$;",
    )
    .await;
    let pool = single_connection(&db).await;
    let mut ctx = context("anon", json!({"role": "anon"}), Access::ReadOnly)
        .with_setting("statement_timeout", "1234ms");
    ctx.pre_request = Some(Statement::from_static("select public.check_request()"));
    let statement = Statement::from_static(
        "select current_setting('statement_timeout'), current_setting('app.seen_by_pre_request', true)",
    );
    let rows = pool.run(&ctx, &statement).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "1234ms");
    assert_eq!(rows[0].get::<_, Option<String>>(1).as_deref(), Some("yes"));

    let mut denied = ctx.clone();
    denied
        .settings
        .retain(|(name, _)| name != "request.headers");
    denied = denied.with_setting("request.headers", json!({"x-test": "deny"}).to_string());
    let error = pool.run(&denied, &statement).await.unwrap_err();
    assert_eq!(error.sqlstate(), Some("PT403"));
}

#[tokio::test]
async fn auth_helpers_and_request_settings_behave_as_on_supabase() {
    let db = TestDb::create().await;
    let pool = single_connection(&db).await;
    let claims = json!({"sub": USER_A, "role": "authenticated", "email": "a@example.com",
                        "app_metadata": {"tier": "gold"}});
    let statement = Statement::from_static(
        "select auth.role()::text, auth.email()::text, auth.jwt() -> 'app_metadata' ->> 'tier', \
         current_setting('request.path', true), \
         current_setting('request.headers', true)::json ->> 'x-test'",
    );
    let rows = pool
        .run(
            &context("authenticated", claims, Access::ReadOnly),
            &statement,
        )
        .await
        .unwrap();
    let row = &rows[0];
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("authenticated")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("a@example.com")
    );
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("gold"));
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("/things"));
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("1"));

    // Without a token: the role is the anon role and the other helpers answer null, never an
    // error.
    let rows = pool
        .run(&context("anon", json!({}), Access::ReadOnly), &statement)
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, Option<String>>(0).as_deref(), Some("anon"));
    assert_eq!(rows[0].get::<_, Option<String>>(1), None);
    assert_eq!(rows[0].get::<_, Option<String>>(2), None);
}
