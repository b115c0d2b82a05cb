//! The cylinder domain's SQL (schema/01xx, policies/0100) exercised the way the API runs it: a
//! transaction with role `authenticated` and the caller's JWT claims, against two seeded
//! organizations (seed.sql).

mod limits;
mod sql;

use std::time::Duration;

use manifold_testkit::TestDb;
use serde_json::json;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

/// How long a test waits for another session to reach a lock before failing.
const LOCK_WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Pause between two looks at `pg_stat_activity` while waiting for a lock.
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(10);

pub(crate) const ORG_X: &str = "10000000-0000-4000-8000-000000000000";
pub(crate) const ORG_Y: &str = "20000000-0000-4000-8000-000000000000";

/// Seeded roles, by the last digit of their user id.
#[derive(Clone, Copy)]
pub(crate) enum Role {
    Owner = 1,
    Admin = 2,
    Manager = 3,
}

/// The seeded user with `role` in organization X (`'x'`) or Y (`'y'`).
pub(crate) fn user(org: char, role: Role) -> String {
    let digit = if org == 'x' { 1 } else { 2 };
    format!("{digit}0000000-0000-4000-8000-00000000000{}", role as u8)
}

/// A fresh database with the two organizations of seed.sql.
pub(crate) async fn seeded() -> TestDb {
    let db = TestDb::create().await;
    db.execute(include_str!("seed.sql")).await;
    db
}

/// One connection in an open transaction, acting as a signed-in user exactly as a REST request
/// does: role `authenticated`, `request.jwt.claims` carrying the user's id.
pub(crate) struct Session {
    client: Client,
}

impl Session {
    pub(crate) async fn open(db: &TestDb, user_id: &str) -> Session {
        let client = db.admin().await;
        client.execute("begin", &[]).await.unwrap();
        client
            .execute("set local role authenticated", &[])
            .await
            .unwrap();
        let claims = json!({"sub": user_id, "role": "authenticated"}).to_string();
        client
            .execute(
                "select set_config('request.jwt.claims', $1, true)",
                &[&claims],
            )
            .await
            .unwrap();
        Session { client }
    }

    /// The backend's process id, to find it in `pg_stat_activity`.
    pub(crate) async fn pid(&self) -> i32 {
        self.client
            .query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Runs a statement; a database error comes back as `Err((sqlstate, message))`.
    pub(crate) async fn run(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, (String, String)> {
        self.client.query(sql, params).await.map_err(|error| {
            let db = error
                .as_db_error()
                .expect("a database error, not a connection one");
            (db.code().code().to_owned(), db.message().to_owned())
        })
    }

    /// Commits after success, rolls back after an error (the transaction is aborted anyway).
    pub(crate) async fn finish<T>(self, outcome: &Result<T, (String, String)>) {
        let end = if outcome.is_ok() {
            "commit"
        } else {
            "rollback"
        };
        self.client.execute(end, &[]).await.unwrap();
    }
}

/// Waits until backend `pid` is blocked on a heavyweight lock (a row or table lock), so a test
/// can release the holder knowing the other session is really queued behind it.
pub(crate) async fn wait_until_blocked(admin: &Client, pid: i32) {
    let waited = tokio::time::timeout(LOCK_WAIT_LIMIT, async {
        loop {
            let blocked: bool = admin
                .query_one(
                    "select coalesce((select wait_event_type = 'Lock' from pg_stat_activity \
                     where pid = $1), false)",
                    &[&pid],
                )
                .await
                .unwrap()
                .get(0);
            if blocked {
                return;
            }
            tokio::time::sleep(LOCK_POLL_INTERVAL).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "backend {pid} never waited on a lock");
}

/// A count over the whole database, as the superuser (no RLS).
pub(crate) async fn count(admin: &Client, sql: &str, org: &str) -> i64 {
    admin
        .query_one(sql, &[&org])
        .await
        .unwrap()
        .get::<_, i64>(0)
}
