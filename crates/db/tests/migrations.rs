use manifold_db::migrate::{EMBEDDED, MigrateError, Migration, migrate};
use manifold_testkit::{TestDb, cluster};

/// An empty database (not from the template), so every migration runs.
async fn empty_database() -> tokio_postgres::Client {
    let cluster = cluster().await;
    let name = format!("empty_{}", uuid::Uuid::new_v4().simple());
    let admin = manifold_db::connect(&cluster.admin_url("postgres"))
        .await
        .unwrap();
    admin
        .execute(&format!("create database {name}"), &[])
        .await
        .unwrap();
    manifold_db::connect(&cluster.admin_url(&name))
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_then_are_idempotent() {
    let mut client = empty_database().await;
    let first = migrate(&mut client, EMBEDDED).await.unwrap();
    assert_eq!(first.applied.len(), EMBEDDED.len());
    assert_eq!(first.unchanged, 0);
    assert_eq!(first.applied[0], "schema/0001_roles.sql");

    let second = migrate(&mut client, EMBEDDED).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.unchanged, EMBEDDED.len());

    let recorded: i64 = client
        .query_one("select count(*) from manifold.migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded as usize, EMBEDDED.len());
}

#[tokio::test]
async fn folders_apply_in_order_schema_policies_storage_realtime() {
    let order = ["schema", "policies", "storage", "realtime"];
    let positions: Vec<usize> = EMBEDDED
        .iter()
        .map(|m| order.iter().position(|folder| *folder == m.folder).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] <= pair[1]),
        "{positions:?}"
    );
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_and_named() {
    let mut client = empty_database().await;
    migrate(&mut client, EMBEDDED).await.unwrap();

    let mut edited: Vec<Migration> = EMBEDDED.to_vec();
    let target = edited
        .iter_mut()
        .find(|m| m.name == "0004_auth_helpers.sql")
        .unwrap();
    target.sql = String::leak(format!("{}\n-- a sneaky edit\n", target.sql));
    let mut extra = edited.clone();
    extra.push(Migration {
        folder: "realtime",
        name: "9999_new.sql",
        sql: "create table t_new (id int);",
    });

    let error = migrate(&mut client, &extra).await.unwrap_err();
    assert!(
        matches!(&error, MigrateError::Edited { path, .. } if path == "schema/0004_auth_helpers.sql")
    );
    assert!(
        error.to_string().contains("schema/0004_auth_helpers.sql"),
        "{error}"
    );
    // The check runs before anything new is applied.
    let new_table = client
        .query_opt("select 1 from pg_class where relname = 't_new'", &[])
        .await
        .unwrap();
    assert!(new_table.is_none());
}

#[tokio::test]
async fn a_failing_migration_names_the_file_and_keeps_nothing() {
    let mut client = empty_database().await;
    let broken = [
        Migration {
            folder: "schema",
            name: "0001_ok.sql",
            sql: "create table t_ok (id int);",
        },
        Migration {
            folder: "schema",
            name: "0002_broken.sql",
            sql: "create table t_half (id int); select * from no_such_table;",
        },
    ];
    let error = migrate(&mut client, &broken).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("schema/0002_broken.sql"), "{text}");
    assert!(text.contains("no_such_table"), "{text}");
    let half = client
        .query_opt("select 1 from pg_class where relname = 't_half'", &[])
        .await;
    assert!(
        half.unwrap().is_none(),
        "the failed file left a table behind"
    );
    let ok = client
        .query_opt("select 1 from pg_class where relname = 't_ok'", &[])
        .await;
    assert!(ok.unwrap().is_some());
}

#[tokio::test]
async fn bootstrap_mirrors_the_supabase_image() {
    let db = TestDb::create().await;
    let client = db.admin().await;
    let roles: Vec<(String, bool, bool, bool)> = client
        .query(
            "select rolname, rolcanlogin, rolbypassrls, rolinherit from pg_roles \
             where rolname in ('anon','authenticated','service_role','authenticator') order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        roles,
        [
            ("anon".into(), false, false, false),
            ("authenticated".into(), false, false, false),
            ("authenticator".into(), true, false, false),
            ("service_role".into(), false, true, false),
        ]
    );
    for role in ["anon", "authenticated", "service_role"] {
        let member: bool = client
            .query_one(
                "select pg_has_role('authenticator', $1, 'member')",
                &[&role],
            )
            .await
            .unwrap()
            .get(0);
        assert!(member, "authenticator must be able to switch to {role}");
    }
    let publication: i64 = client
        .query_one(
            "select count(*) from pg_publication where pubname = 'supabase_realtime'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(publication, 1);
    let extensions: Vec<String> = client
        .query(
            "select e.extname from pg_extension e join pg_namespace n on n.oid = e.extnamespace \
             where n.nspname = 'extensions' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        extensions,
        ["btree_gist", "citext", "pg_trgm", "pgcrypto", "uuid-ossp"]
    );
    // New tables in public are granted to the API roles, as on Supabase.
    client
        .execute("create table public.granted (id int)", &[])
        .await
        .unwrap();
    let can_select: bool = client
        .query_one(
            "select has_table_privilege('anon', 'public.granted', 'select')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can_select);
    // Functions and sequences too, and the extensions are reachable unqualified, because
    // `extensions` is on the database's search_path.
    db.execute(
        "create function public.granted_fn() returns int language sql as 'select 1'; \
         create sequence public.granted_seq;",
    )
    .await;
    let row = client
        .query_one(
            "select has_function_privilege('authenticated', 'public.granted_fn()', 'execute'), \
                    has_sequence_privilege('authenticated', 'public.granted_seq', 'usage'), \
                    has_sequence_privilege('service_role', 'public.granted_seq', 'update')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get(0), row.get(1), row.get(2)), (true, true, true));
    // A fresh session (search_path from the database setting) finds gen_random_bytes and
    // uuid_generate_v4 without a schema.
    let fresh = db.admin().await;
    let row = fresh
        .query_one(
            "select length(gen_random_bytes(4)), uuid_generate_v4() is not null, \
                    current_setting('search_path')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
    assert!(row.get::<_, bool>(1));
    assert!(
        row.get::<_, String>(2).contains("extensions"),
        "{}",
        row.get::<_, String>(2)
    );
}
