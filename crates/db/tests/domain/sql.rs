//! Privileges, triggers and reports of the domain SQL: what a signed-in user may execute and
//! update, rows that never change tenant, the seed's status aliases, and dates in the
//! organization's timezone.

use super::{ORG_X, ORG_Y, Role, Session, seeded, user};

/// `Err((sqlstate, message))` of a statement that must be refused.
fn refused(outcome: Result<Vec<tokio_postgres::Row>, (String, String)>) -> (String, String) {
    match outcome {
        Ok(rows) => panic!("expected a refusal, got {} rows", rows.len()),
        Err(error) => error,
    }
}

#[tokio::test]
async fn signed_in_users_execute_only_the_policy_helpers_of_the_app_schema() {
    let db = seeded().await;
    let admin = db.admin().await;
    let executable = |role: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "select p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
                     where n.nspname = 'app' and has_function_privilege($1, p.oid, 'execute') \
                     order by 1",
                    &[&role],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        executable("authenticated").await,
        [
            "current_org_id",
            "current_role",
            "has_role",
            "org_can_write"
        ]
    );
    assert!(executable("anon").await.is_empty());

    // The auth server runs the access-token hook as supabase_auth_admin: it needs the schema too.
    let row = admin
        .query_one(
            "select has_schema_privilege('supabase_auth_admin', 'app', 'usage'), \
                    has_function_privilege('supabase_auth_admin', 'app.custom_access_token_hook(jsonb)', 'execute'), \
                    has_function_privilege('authenticated', 'app.custom_access_token_hook(jsonb)', 'execute')",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
    assert!(!row.get::<_, bool>(2));

    // So an internal that trusts its organization argument is out of a member's reach.
    let session = Session::open(&db, &user('x', Role::Owner)).await;
    let (code, message) = refused(
        session
            .run(
                "select app.write_audit($1::text::uuid, 'customers', null, 'rpc', '{}')",
                &[&ORG_Y],
            )
            .await,
    );
    assert_eq!(code, "42501");
    assert_eq!(message, "permission denied for function write_audit");
}

#[tokio::test]
async fn events_and_audit_rows_never_move_to_another_organization() {
    let db = seeded().await;
    let admin = db.admin().await;
    admin
        .execute(
            "insert into public.bottles (organization_id, serial_number, status) \
             values ($1::text::uuid, 'S-1', 'empty')",
            &[&ORG_X],
        )
        .await
        .unwrap();
    for table in ["bottle_events", "audit_logs"] {
        let sql = match table {
            "bottle_events" => {
                "update public.bottle_events set organization_id = $2::text::uuid \
                 where organization_id = $1::text::uuid"
            }
            _ => {
                "update public.audit_logs set organization_id = $2::text::uuid \
                 where organization_id = $1::text::uuid"
            }
        };
        let error = admin.execute(sql, &[&ORG_X, &ORG_Y]).await.unwrap_err();
        let error = error.as_db_error().unwrap();
        assert_eq!(error.code().code(), "42501", "{table}");
        assert_eq!(error.message(), "organization_id cannot change", "{table}");
    }
}

#[tokio::test]
async fn members_edit_only_the_descriptive_columns_of_a_cylinder() {
    let db = seeded().await;
    let admin = db.admin().await;
    admin
        .execute(
            "insert into public.bottles (organization_id, serial_number, barcode_number, status) \
             values ($1::text::uuid, 'S-1', 'BC-1', 'empty')",
            &[&ORG_X],
        )
        .await
        .unwrap();

    for update in [
        "update public.bottles set barcode_number = 'BC-2' where serial_number = 'S-1'",
        "update public.bottles set rfid_tag = 'TAG-2' where serial_number = 'S-1'",
        "update public.bottles set type = 'lpg' where serial_number = 'S-1'",
        "update public.bottles set last_inspection_date = current_date where serial_number = 'S-1'",
        "update public.bottles set next_inspection_date = current_date + 3650 where serial_number = 'S-1'",
        "update public.bottles set status = 'full' where serial_number = 'S-1'",
        "update public.bottles set current_customer_id = null where serial_number = 'S-1'",
        "update public.bottles set is_blocked = true where serial_number = 'S-1'",
    ] {
        let session = Session::open(&db, &user('x', Role::Manager)).await;
        let outcome = session.run(update, &[]).await;
        session.finish(&outcome).await;
        let (code, message) = refused(outcome);
        assert_eq!(code, "42501", "{update}");
        assert_eq!(message, "permission denied for table bottles", "{update}");
    }

    let session = Session::open(&db, &user('x', Role::Manager)).await;
    let edited = session
        .run(
            "update public.bottles set notes = 'dented valve guard', condition = 'fair' \
             where serial_number = 'S-1' returning notes",
            &[],
        )
        .await;
    session.finish(&edited).await;
    assert_eq!(edited.unwrap().len(), 1);
    let row = admin
        .query_one(
            "select barcode_number, notes, status from public.bottles where serial_number = 'S-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "BC-1");
    assert_eq!(row.get::<_, String>(1), "dented valve guard");
    assert_eq!(row.get::<_, String>(2), "empty");
}

#[tokio::test]
async fn the_owner_edits_the_organization_and_an_admin_only_its_settings() {
    let db = seeded().await;
    let admin = db.admin().await;

    let session = Session::open(&db, &user('x', Role::Admin)).await;
    let renamed = session
        .run(
            "update public.organizations set name = 'Admin Gas' returning id",
            &[],
        )
        .await;
    session.finish(&renamed).await;
    let (code, message) = refused(renamed);
    assert_eq!(code, "42501");
    assert_eq!(
        message,
        "only the owner changes the organization's name, slug, timezone, currency or regime"
    );

    let session = Session::open(&db, &user('x', Role::Admin)).await;
    let zoned = session
        .run(
            "update public.organizations set timezone = 'Europe/Oslo' returning id",
            &[],
        )
        .await;
    session.finish(&zoned).await;
    assert_eq!(refused(zoned).0, "42501");

    let session = Session::open(&db, &user('x', Role::Admin)).await;
    let settings = session
        .run(
            "update public.organizations set settings = '{\"aging_warn_days\": 45}' returning id",
            &[],
        )
        .await;
    session.finish(&settings).await;
    assert_eq!(settings.unwrap().len(), 1);

    // A manager's update matches no row (RLS), so nothing changes.
    let session = Session::open(&db, &user('x', Role::Manager)).await;
    let managed = session
        .run(
            "update public.organizations set settings = '{}' returning id",
            &[],
        )
        .await;
    session.finish(&managed).await;
    assert_eq!(managed.unwrap().len(), 0);

    let session = Session::open(&db, &user('x', Role::Owner)).await;
    let owned = session
        .run(
            "update public.organizations set name = 'Xeno Gases', timezone = 'Europe/Oslo' returning id",
            &[],
        )
        .await;
    session.finish(&owned).await;
    assert_eq!(owned.unwrap().len(), 1);

    let row = admin
        .query_one(
            "select name, timezone, settings::text from public.organizations where id = $1::text::uuid",
            &[&ORG_X],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Xeno Gases");
    assert_eq!(row.get::<_, String>(1), "Europe/Oslo");
    assert_eq!(row.get::<_, String>(2), "{\"aging_warn_days\": 45}");
}

#[tokio::test]
async fn the_seeds_delivered_status_means_completed() {
    let db = seeded().await;
    let session = Session::open(&db, &user('x', Role::Manager)).await;
    let inserted = session
        .run(
            "insert into public.deliveries (customer_id, status, signature_waived_reason) \
             select c.id, 'delivered', 'left at the dock' from public.customers c where c.name = 'Weld Co' \
             returning status, completed_at is not null",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted[0].get::<_, String>(0), "completed");
    assert!(inserted[0].get::<_, bool>(1));

    // The proof is still required: without a signature or a waiver it is refused.
    let unproven = session
        .run(
            "insert into public.deliveries (customer_id, status) \
             select c.id, 'delivered' from public.customers c where c.name = 'Weld Co' returning id",
            &[],
        )
        .await;
    assert_eq!(refused(unproven).0, "23514");
}

#[tokio::test]
async fn the_aging_report_counts_days_in_the_organizations_timezone() {
    let db = seeded().await;
    let admin = db.admin().await;
    // UTC+14 all year: the organization's calendar day and UTC's differ for ten hours a day.
    admin
        .execute(
            "update public.organizations set timezone = 'Pacific/Kiritimati' where id = $1::text::uuid",
            &[&ORG_X],
        )
        .await
        .unwrap();

    // One transaction, so now() is one instant for the setup and the report. The cylinder's
    // last scan is one minute either side of the organization's last midnight, picked so the
    // organization's day count and a UTC day count disagree.
    let session = Session::open(&db, &user('x', Role::Manager)).await;
    session.run("reset role", &[]).await.unwrap();
    let scanned = session
        .run(
            "with local as (
               select date_trunc('day', now() at time zone 'Pacific/Kiritimati') as midnight,
                      extract(hour from now() at time zone 'Pacific/Kiritimati') as hour
             )
             insert into public.bottles (organization_id, serial_number, status, current_customer_id, custody_since)
             select $1::text::uuid, 'S-AGED', 'at_customer', c.id,
                    (local.midnight + case when local.hour < 14 then interval '-1 minute' else interval '1 minute' end)
                      at time zone 'Pacific/Kiritimati'
             from public.customers c, local
             where c.organization_id = $1::text::uuid and c.name = 'Weld Co'
             returning extract(hour from now() at time zone 'Pacific/Kiritimati')::int,
                       (now() at time zone 'UTC')::date - (last_event_at at time zone 'UTC')::date",
            &[&ORG_X],
        )
        .await
        .unwrap();
    let local_hour: i32 = scanned[0].get(0);
    let utc_days: i32 = scanned[0].get(1);
    // A minute before today's local midnight is yesterday; a minute after is today.
    let local_days = if local_hour < 14 { 1 } else { 0 };
    assert_ne!(
        local_days, utc_days,
        "the setup must tell the two calendars apart"
    );

    session
        .run("set local role authenticated", &[])
        .await
        .unwrap();
    let report = session
        .run(
            "select serial_number, days_since_scan from public.aging_report(0)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].get::<_, String>(0), "S-AGED");
    assert_eq!(report[0].get::<_, i32>(1), local_days);
}
