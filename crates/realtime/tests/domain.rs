//! The domain's publication as the migrations leave it: every published domain table keeps
//! full old rows (a DELETE or an UPDATE out of view is authorized on the committed old image;
//! a key-only image would fail every tenant policy and never be delivered), and the
//! high-volume `bottle_events` stays out.

use manifold_testkit::TestDb;

#[tokio::test]
async fn published_domain_tables_keep_full_old_rows_and_bottle_events_stays_out() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let rows = admin
        .query(
            "select p.tablename::text, c.relreplident::text from pg_publication_tables p \
             join pg_namespace n on n.nspname = p.schemaname \
             join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename \
             where p.pubname = 'supabase_realtime' and p.schemaname = 'public' order by 1",
            &[],
        )
        .await
        .unwrap();
    let published: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let names: Vec<&str> = published.iter().map(|(name, _)| name.as_str()).collect();
    for wanted in ["bottles", "deliveries", "routes"] {
        assert!(names.contains(&wanted), "{wanted} is published: {names:?}");
    }
    assert!(!names.contains(&"bottle_events"), "{names:?}");
    for (name, identity) in &published {
        assert_eq!(identity, "f", "public.{name} is REPLICA IDENTITY FULL");
    }
}
