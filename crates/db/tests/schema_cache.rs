use std::time::Duration;

use manifold_db::schema_cache::{SchemaCacheStore, load};
use manifold_db::{Db, create_pool};
use manifold_sql::cache::Cardinality;
use manifold_testkit::TestDb;
use tokio_util::sync::CancellationToken;

const FIXTURE: &str = "
-- Its own schema: public holds the shipped domain tables.
create schema sc;
create table sc.orgs (id int primary key, name text not null);
create table sc.customers (
  id int primary key,
  org_id int references sc.orgs (id),
  \"CustomerListID\" text unique,
  name text
);
create table sc.bottles (
  id int primary key,
  serial text not null,
  customer_id int references sc.customers (id),
  owner_id int references sc.customers (id),
  status text default 'empty',
  tags text[],
  meta jsonb
);
create table sc.tags (id int primary key, label text);
create table sc.bottle_tags (
  bottle_id int references sc.bottles (id),
  tag_id int references sc.tags (id),
  primary key (bottle_id, tag_id)
);
create table sc.employees (id int primary key, manager_id int references sc.employees (id));
create table sc.profiles (id int primary key references sc.customers (id), bio text);
create schema private;
create table private.secrets (id int primary key, customer_id int references sc.customers (id));
create view sc.bottle_view as
  select b.id, b.serial as serial_no, b.customer_id, c.name as customer_name
  from sc.bottles b left join sc.customers c on c.id = b.customer_id;
create function sc.add(a int, b int default 1) returns int language sql immutable as 'select a + b';
create function sc.all_bottles() returns setof sc.bottles language sql stable as 'select * from sc.bottles';
create type sc.mood as enum ('happy', 'sad');
";

async fn loaded() -> (TestDb, manifold_sql::SchemaCache) {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let client = db.admin().await;
    let cache = load(&client, &["sc".to_owned()]).await.unwrap();
    (db, cache)
}

fn relationship_cardinalities(
    cache: &manifold_sql::SchemaCache,
    from: &str,
    to: &str,
) -> Vec<(Cardinality, String)> {
    let source = &cache.relation("sc", from).unwrap().qualified;
    let mut found: Vec<(Cardinality, String)> = cache
        .relationships_from(source)
        .iter()
        .filter(|r| r.target.name.as_str() == to)
        .map(|r| (r.cardinality, r.constraint.clone()))
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

#[tokio::test]
async fn relations_columns_keys_and_mixed_case_names() {
    let (_db, cache) = loaded().await;
    let customers = cache.relation("sc", "customers").unwrap();
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(
        customers
            .column("CustomerListID")
            .unwrap()
            .sql_type
            .as_str(),
        "text"
    );
    assert!(
        customers.column("customerlistid").is_none(),
        "case is preserved"
    );
    let bottles = cache.relation("sc", "bottles").unwrap();
    assert_eq!(bottles.column("tags").unwrap().sql_type.as_str(), "text[]");
    assert_eq!(
        bottles.column("status").unwrap().default.as_deref(),
        Some("'empty'::text")
    );
    assert!(
        cache.relation("private", "secrets").is_none(),
        "only exposed schemas are cached"
    );
    assert_eq!(cache.cast_type("mood").unwrap().as_str(), "sc.mood");
    assert_eq!(cache.cast_type("int").unwrap().as_str(), "integer");
    assert_eq!(cache.cast_type("text[]").unwrap().as_str(), "text[]");
    assert!(cache.cast_type("nonsense").is_none());
}

#[tokio::test]
async fn relationships_from_foreign_keys_junctions_and_views() {
    let (_db, cache) = loaded().await;
    assert_eq!(
        relationship_cardinalities(&cache, "bottles", "customers"),
        vec![
            (Cardinality::ManyToOne, "bottles_customer_id_fkey".into()),
            (Cardinality::ManyToOne, "bottles_owner_id_fkey".into()),
        ]
    );
    assert_eq!(
        relationship_cardinalities(&cache, "customers", "bottles"),
        vec![
            (Cardinality::OneToMany, "bottles_customer_id_fkey".into()),
            (Cardinality::OneToMany, "bottles_owner_id_fkey".into()),
        ]
    );
    assert_eq!(
        relationship_cardinalities(&cache, "bottles", "tags"),
        vec![(Cardinality::ManyToMany, "bottle_tags".into())]
    );
    assert_eq!(
        relationship_cardinalities(&cache, "customers", "profiles"),
        vec![(Cardinality::OneToOne, "profiles_id_fkey".into())]
    );
    assert_eq!(
        relationship_cardinalities(&cache, "employees", "employees").len(),
        2
    );
    // The view shows bottles.id (its key) and bottles.customer_id (a foreign key).
    let view = cache.relation("sc", "bottle_view").unwrap();
    assert_eq!(view.primary_key, ["id"]);
    assert_eq!(
        relationship_cardinalities(&cache, "bottle_view", "customers"),
        vec![(Cardinality::ManyToOne, "bottles_customer_id_fkey".into())]
    );
    assert!(
        relationship_cardinalities(&cache, "customers", "bottle_view")
            .contains(&(Cardinality::OneToMany, "bottles_customer_id_fkey".into()))
    );
}

#[tokio::test]
async fn functions_with_defaults_and_set_returns() {
    let (_db, cache) = loaded().await;
    let add = &cache.functions("sc", "add")[0];
    assert_eq!(add.params.len(), 2);
    assert!(!add.params[0].has_default);
    assert!(add.params[1].has_default);
    let all = &cache.functions("sc", "all_bottles")[0];
    assert!(matches!(
        &all.returns,
        manifold_sql::cache::ReturnType::Composite { relation: Some(r), set: true } if r.name.as_str() == "bottles"
    ));
}

#[tokio::test]
async fn ddl_notifies_and_the_store_reloads() {
    let db = TestDb::create().await;
    let pool = Db::new(create_pool(&db.api_url, 2, Duration::from_secs(5)).unwrap());
    let store = SchemaCacheStore::load(&db.admin_url, vec!["public".into()], pool)
        .await
        .unwrap();
    let (before, generation) = store.current();
    assert!(before.relation("public", "late").is_none());
    let shutdown = CancellationToken::new();
    let listener = tokio::spawn(store.clone().listen(shutdown.clone()));
    // Give the listener a moment to LISTEN before the DDL fires its notification.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        db.execute("create table if not exists public.late (id int primary key)")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if store.current().0.relation("public", "late").is_some() {
            break;
        }
        db.execute("drop table public.late").await;
        assert!(
            std::time::Instant::now() < deadline,
            "the cache never reloaded after DDL"
        );
    }
    assert!(store.current().1 > generation);
    shutdown.cancel();
    listener.await.unwrap();
}

#[tokio::test]
async fn a_miss_reloads_once_and_concurrent_misses_share_it() {
    let db = TestDb::create().await;
    let pool = Db::new(create_pool(&db.api_url, 2, Duration::from_secs(5)).unwrap());
    let store = SchemaCacheStore::load(&db.admin_url, vec!["public".into()], pool)
        .await
        .unwrap();
    let (_, generation) = store.current();
    // Nothing changed since the load: a miss (a made-up name) does not reload.
    assert!(!store.reload_after_miss(generation).await);
    assert_eq!(store.current().1, generation);

    db.execute("create table public.fresh (id int)").await;
    let (a, b) = tokio::join!(
        store.reload_after_miss(generation),
        store.reload_after_miss(generation)
    );
    assert!(a && b);
    assert_eq!(
        store.current().1,
        generation + 1,
        "one reload served both misses"
    );
    assert!(store.current().0.relation("public", "fresh").is_some());
    // Right after a reload, another miss does not reload again...
    assert!(!store.reload_after_miss(generation + 1).await);
    // ...but DDL right after it is found at once: the version moved, no waiting interval.
    db.execute("create table public.fresher (id int)").await;
    assert!(store.reload_after_miss(generation + 1).await);
    assert!(store.current().0.relation("public", "fresher").is_some());
}
