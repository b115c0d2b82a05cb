//! Plan limits under concurrency (DOMAIN.md §8): two sessions of one organization, both in open
//! transactions, racing past `max_cylinders`, `max_customers` or `max_users`. The lock on the
//! organization row serialises them, so the loser counts the winner's committed rows and is
//! refused; nothing overshoots the limit.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Barrier;

use super::{ORG_X, Role, Session, count, seeded, user, wait_until_blocked};

const LIVE_CYLINDERS: &str = "select count(*) from public.bottles \
     where organization_id = $1::text::uuid and deleted_at is null and status <> 'retired'";
const LIVE_CUSTOMERS: &str = "select count(*) from public.customers \
     where organization_id = $1::text::uuid and deleted_at is null and status <> 'inactive'";
const PENDING_INVITATIONS: &str = "select count(*) from public.org_invitations \
     where organization_id = $1::text::uuid and accepted_at is null and expires_at > now()";

const REGISTER: &str = "select public.register_bottles($1::text::jsonb)::text";
const INSERT_CYLINDERS: &str = "insert into public.bottles (serial_number, barcode_number) \
     select $1::text || g, $1::text || g from generate_series(1, 3) g";
const INSERT_CUSTOMERS: &str =
    "insert into public.customers (name) select $1::text || g from generate_series(1, 3) g";
const INVITE: &str = "select public.invite_member($1, 'driver')::text";

type Outcome = Result<Vec<tokio_postgres::Row>, (String, String)>;

/// Three cylinders for register_bottles, with codes starting with `prefix`.
fn three_cylinders(prefix: &str) -> String {
    json!(
        [1, 2, 3]
            .iter()
            .map(|n| json!({"serial_number": format!("{prefix}{n}"),
                        "barcode_number": format!("{prefix}{n}"), "product_code": "OX200"}))
            .collect::<Vec<_>>()
    )
    .to_string()
}

async fn set_limit(admin: &tokio_postgres::Client, column_update: &'static str) {
    admin.execute(column_update, &[&ORG_X]).await.unwrap();
}

/// Opens one session per user, lets both reach the starting line inside their transactions,
/// then runs each one's statement at the same time and commits whatever succeeded.
async fn race(
    db: &manifold_testkit::TestDb,
    users: [String; 2],
    sql: &'static str,
    params: [String; 2],
) -> [Outcome; 2] {
    let start = Arc::new(Barrier::new(2));
    let contender = |user_id: String, param: String| {
        let start = Arc::clone(&start);
        async move {
            let session = Session::open(db, &user_id).await;
            start.wait().await;
            let outcome = session.run(sql, &[&param]).await;
            session.finish(&outcome).await;
            outcome
        }
    };
    let [first_user, second_user] = users;
    let [first_param, second_param] = params;
    let (first, second) = tokio::join!(
        contender(first_user, first_param),
        contender(second_user, second_param)
    );
    [first, second]
}

/// Exactly one contender won and the other got the plan-limit error for `kind`.
fn one_winner(outcomes: &[Outcome; 2], kind: &str) {
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    let refused = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert_eq!(
        refused,
        &("P0001".to_owned(), format!("plan_limit_exceeded:{kind}"))
    );
}

#[tokio::test]
async fn two_managers_registering_at_once_cannot_pass_max_cylinders() {
    let db = seeded().await;
    let admin = db.admin().await;
    set_limit(
        &admin,
        "update public.organizations set max_cylinders = 5 where id = $1::text::uuid",
    )
    .await;

    let outcomes = race(
        &db,
        [user('x', Role::Manager), user('x', Role::Admin)],
        REGISTER,
        [three_cylinders("M-"), three_cylinders("A-")],
    )
    .await;

    one_winner(&outcomes, "max_cylinders");
    assert_eq!(count(&admin, LIVE_CYLINDERS, ORG_X).await, 3);
    // The loser's registration events were rolled back with its cylinders.
    let events = count(
        &admin,
        "select count(*) from public.bottle_events where organization_id = $1::text::uuid",
        ORG_X,
    )
    .await;
    assert_eq!(events, 3);
}

#[tokio::test]
async fn two_plain_inserts_at_once_cannot_pass_max_cylinders() {
    let db = seeded().await;
    let admin = db.admin().await;
    set_limit(
        &admin,
        "update public.organizations set max_cylinders = 4 where id = $1::text::uuid",
    )
    .await;

    let outcomes = race(
        &db,
        [user('x', Role::Manager), user('x', Role::Owner)],
        INSERT_CYLINDERS,
        ["M-".to_owned(), "O-".to_owned()],
    )
    .await;

    one_winner(&outcomes, "max_cylinders");
    assert_eq!(count(&admin, LIVE_CYLINDERS, ORG_X).await, 3);
}

#[tokio::test]
async fn the_session_queued_on_the_organization_lock_counts_the_winners_cylinders() {
    let db = seeded().await;
    let admin = db.admin().await;
    set_limit(
        &admin,
        "update public.organizations set max_cylinders = 5 where id = $1::text::uuid",
    )
    .await;

    let first = Session::open(&db, &user('x', Role::Manager)).await;
    let second = Session::open(&db, &user('x', Role::Admin)).await;
    let second_pid = second.pid().await;
    // The first registration holds the organization's row lock until it commits.
    let won = first.run(REGISTER, &[&three_cylinders("M-")]).await;
    assert!(won.is_ok(), "{won:?}");

    let rows = three_cylinders("A-");
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&rows];
    let queued = second.run(REGISTER, &params);
    let release = async {
        wait_until_blocked(&admin, second_pid).await;
        first.finish(&won).await;
    };
    let (lost, ()) = tokio::join!(queued, release);

    assert_eq!(
        lost.as_ref().unwrap_err(),
        &(
            "P0001".to_owned(),
            "plan_limit_exceeded:max_cylinders".to_owned()
        )
    );
    second.finish(&lost).await;
    assert_eq!(count(&admin, LIVE_CYLINDERS, ORG_X).await, 3);
}

#[tokio::test]
async fn two_managers_adding_customers_at_once_cannot_pass_max_customers() {
    let db = seeded().await;
    let admin = db.admin().await;
    // The seed's Weld Co counts: room for three more.
    set_limit(
        &admin,
        "update public.organizations set max_customers = 4 where id = $1::text::uuid",
    )
    .await;

    let outcomes = race(
        &db,
        [user('x', Role::Manager), user('x', Role::Admin)],
        INSERT_CUSTOMERS,
        ["M-".to_owned(), "A-".to_owned()],
    )
    .await;

    one_winner(&outcomes, "max_customers");
    assert_eq!(count(&admin, LIVE_CUSTOMERS, ORG_X).await, 4);
}

#[tokio::test]
async fn two_admins_inviting_at_once_cannot_pass_max_users() {
    let db = seeded().await;
    let admin = db.admin().await;
    // Four active members: room for one invitation.
    set_limit(
        &admin,
        "update public.organizations set max_users = 5 where id = $1::text::uuid",
    )
    .await;

    let outcomes = race(
        &db,
        [user('x', Role::Owner), user('x', Role::Admin)],
        INVITE,
        ["first@xeno.test".to_owned(), "second@xeno.test".to_owned()],
    )
    .await;

    one_winner(&outcomes, "max_users");
    assert_eq!(count(&admin, PENDING_INVITATIONS, ORG_X).await, 1);
}

#[tokio::test]
async fn renewing_an_expired_invitation_counts_toward_max_users() {
    let db = seeded().await;
    let admin = db.admin().await;
    // Four members and one pending invitation fill the plan; the expired one does not count.
    admin
        .execute(
            "insert into public.org_invitations (organization_id, email, role, token_hash, expires_at) \
             values ($1::text::uuid, 'pending@xeno.test', 'driver', 'h1', now() + interval '1 day'), \
                    ($1::text::uuid, 'lapsed@xeno.test', 'driver', 'h2', now() - interval '1 day')",
            &[&ORG_X],
        )
        .await
        .unwrap();
    set_limit(
        &admin,
        "update public.organizations set max_users = 5 where id = $1::text::uuid",
    )
    .await;

    let session = Session::open(&db, &user('x', Role::Admin)).await;
    let renewed = session.run(INVITE, &[&"lapsed@xeno.test"]).await;
    assert_eq!(
        renewed.as_ref().unwrap_err(),
        &(
            "P0001".to_owned(),
            "plan_limit_exceeded:max_users".to_owned()
        )
    );
    session.finish(&renewed).await;
    assert_eq!(count(&admin, PENDING_INVITATIONS, ORG_X).await, 1);

    // Re-sending an invitation that already counts is not a new seat.
    let session = Session::open(&db, &user('x', Role::Admin)).await;
    let resent = session.run(INVITE, &[&"pending@xeno.test"]).await;
    assert!(resent.is_ok(), "{resent:?}");
    session.finish(&resent).await;
    assert_eq!(count(&admin, PENDING_INVITATIONS, ORG_X).await, 1);
}
