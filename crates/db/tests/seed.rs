//! `manifold seed`: the generated history is exactly what the event engine would have written
//! (replaying every cylinder changes nothing), and a seed lands whole or not at all.

use manifold_db::seed::{SeedOptions, seed};
use manifold_testkit::TestDb;

fn small() -> SeedOptions {
    SeedOptions {
        organizations: 2,
        bottles_per_org: 40,
        customers_per_org: 6,
        drivers_per_org: 2,
        turns: 2,
        history_days: 60,
        slug: "seed-test".to_owned(),
        password: "seed-password".to_owned(),
        bulk: false,
    }
}

/// Every cylinder's derived columns, custody periods and event statuses, as text rows in a
/// stable order.
const SNAPSHOT_SQL: &str = "select b.id::text || '|' || concat_ws('|', b.status, b.fill_state, \
       b.current_location_id, b.current_vehicle_id, b.current_customer_id, b.custody_since, \
       b.last_event_id, b.last_event_at, b.last_filled_at, b.customer_name, b.rental_start_date, \
       b.rental_end_date, b.is_blocked) \
     from public.bottles b \
     union all \
     select 'rental|' || concat_ws('|', r.bottle_id, r.customer_id, r.started_at, r.ended_at, \
       r.rental_start_date, r.rental_end_date, r.status, r.start_event_id, r.end_event_id, r.end_reason) \
     from public.rentals r where r.status <> 'voided' \
     union all \
     select 'event|' || concat_ws('|', e.id, e.from_status, e.to_status, e.fill_state_after, e.applied) \
     from public.bottle_events e \
     order by 1";

async fn snapshot(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(SNAPSHOT_SQL, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn seeded_history_is_what_the_event_engine_replays() {
    let db = TestDb::create().await;
    let mut client = db.admin().await;
    // Bulk mode drops the secondary indexes and the custody exclusion while writing: every one
    // of them is back afterwards.
    let indexes = "select string_agg(indexdef, ';' order by indexdef) from pg_indexes \
                   where schemaname = 'public' and tablename in \
                   ('bottles', 'bottle_events', 'rentals', 'deliveries', 'delivery_items', 'routes')";
    let before_indexes: String = client.query_one(indexes, &[]).await.unwrap().get(0);
    let options = SeedOptions {
        bulk: true,
        ..small()
    };
    let report = seed(&mut client, &options).await.unwrap();
    let after_indexes: String = client.query_one(indexes, &[]).await.unwrap().get(0);
    assert_eq!(before_indexes, after_indexes);
    let exclusion: i64 = client
        .query_one(
            "select count(*) from pg_constraint where conname = 'rentals_one_custody' and contype = 'x'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(exclusion, 1);
    assert_eq!(report.organizations.len(), 2);
    assert_eq!(report.bottles, 80);
    // A registration, five scans per complete round, and 0-3 scans of the partial last round.
    let (low, high) = (80 * 11, 80 * 14);
    assert!(
        (low..=high).contains(&report.events),
        "{} events",
        report.events
    );
    let row = client
        .query_one(
            "select (select count(*) from public.bottle_events), \
                    (select count(*) from public.profiles), \
                    (select count(*) from public.bottles where status = 'at_customer'), \
                    (select count(*) from public.rentals where status = 'active'), \
                    (select count(distinct status) from public.bottles), \
                    (select count(*) from public.deliveries \
                       where delivery_date = current_date and status = 'assigned'), \
                    (select count(*) from public.bottles where status = 'on_truck')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), report.events as i64);
    // owner, admin, manager, plant, viewer and two drivers, per organization.
    assert_eq!(row.get::<_, i64>(1), 14);
    assert_eq!(
        row.get::<_, i64>(2),
        row.get::<_, i64>(3),
        "one open custody per cylinder at a customer"
    );
    assert_eq!(
        row.get::<_, i64>(4),
        4,
        "empty, full, on_truck and at_customer all occur"
    );
    assert!(
        row.get::<_, i64>(5) > 0,
        "cylinders on trucks are on today's route"
    );
    assert!(row.get::<_, i64>(6) > 0);

    // Replaying every cylinder through the engine (app.replay_bottle folds its events with the
    // same step function the scan RPCs use) refuses nothing and changes nothing.
    let before = snapshot(&client).await;
    let replayed = client
        .query(
            "select (app.replay_bottle(b.organization_id, b.id) ->> 'refused')::int from public.bottles b",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(replayed.len(), 80);
    assert!(replayed.iter().all(|row| row.get::<_, i32>(0) == 0));
    let after = snapshot(&client).await;
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .take(3)
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "{changed:#?}"
    );

    // The seeded users sign in with the given password (GoTrue-compatible bcrypt).
    let row = client
        .query_one(
            "select count(*) filter (where encrypted_password = extensions.crypt('seed-password', encrypted_password)), \
                    count(*) \
             from auth.users where email like '%@seed-test-_.test'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 14);
    assert_eq!(row.get::<_, i64>(1), 14);
}

#[tokio::test]
async fn a_second_seed_of_the_same_organization_is_refused_and_writes_nothing() {
    let db = TestDb::create().await;
    let mut client = db.admin().await;
    let mut options = small();
    options.organizations = 1;
    seed(&mut client, &options).await.unwrap();
    let count = "select (select count(*) from public.organizations) + (select count(*) from auth.users) \
                 + (select count(*) from public.bottles)";
    let before: i64 = client.query_one(count, &[]).await.unwrap().get(0);

    let error = seed(&mut client, &options).await.unwrap_err().to_string();
    assert!(
        error.contains("organization \"seed-test\" already exists"),
        "{error}"
    );
    let after: i64 = client.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(before, after);

    // Options that cannot make a history are refused before anything is written.
    options.slug = "other".to_owned();
    options.history_days = 20;
    let error = seed(&mut client, &options).await.unwrap_err().to_string();
    assert!(error.contains("at least 18 days"), "{error}");
    let after: i64 = client.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(before, after);
}
