//! Refresh-token rotation: concurrency, reuse window, family revocation, transient failures.

use std::time::Duration;

use serde_json::json;

use crate::common::Api;

async fn session_of(api: &Api, refresh_token: &str) -> String {
    let admin = api.db.admin().await;
    admin
        .query_one(
            "select session_id::text from auth.refresh_tokens where token = $1",
            &[&refresh_token],
        )
        .await
        .unwrap()
        .get(0)
}

async fn live_tokens(api: &Api, session_id: &str) -> Vec<String> {
    let admin = api.db.admin().await;
    admin
        .query(
            "select token from auth.refresh_tokens where session_id = $1::text::uuid \
             and revoked is false",
            &[&session_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_yield_one_active_child() {
    let api = Api::start().await;
    let session = api.sign_up("race@example.com", "password-1").await;
    let original = session["refresh_token"].as_str().unwrap().to_owned();
    let session_id = session_of(&api, &original).await;

    let replies = futures_util::future::join_all((0..4).map(|_| api.refresh(&original))).await;
    let mut children = Vec::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
        children.push(reply.body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert!(
        children.iter().all(|child| *child == children[0]),
        "{children:?}"
    );
    assert_ne!(children[0], original);
    assert_eq!(
        live_tokens(&api, &session_id).await,
        vec![children[0].clone()]
    );
    // Every answer carries a fresh access token for the same session.
    assert_eq!(replies[0].body["user"]["email"], "race@example.com");
}

#[tokio::test]
async fn reuse_rules_and_late_reuse_revokes_the_family() {
    let api = Api::start().await;
    let session = api.sign_up("reuse@example.com", "password-1").await;
    let t0 = session["refresh_token"].as_str().unwrap().to_owned();
    let session_id = session_of(&api, &t0).await;
    let t1 = api.refresh(&t0).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t2 = api.refresh(&t1).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The parent of the active token gets that active token back.
    let again = api.refresh(&t1).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["refresh_token"], t2.as_str());

    // An older token inside the 10 s window gets a fresh child.
    let window = api.refresh(&t0).await;
    assert_eq!(window.status, 200, "{}", window.body);
    let t3 = window.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(t3, t2);

    // Past the window (t1 is no longer the parent of the active token): the whole family is
    // revoked, and that sticks although the request fails.
    api.db
        .admin()
        .await
        .execute(
            "update auth.refresh_tokens set updated_at = now() - interval '1 minute' where token = $1",
            &[&t1],
        )
        .await
        .unwrap();
    let late = api.refresh(&t1).await;
    assert_eq!(late.status, 400);
    assert_eq!(late.body["code"], "refresh_token_already_used");
    assert!(live_tokens(&api, &session_id).await.is_empty());
    let after = api.refresh(&t3).await;
    assert_eq!(after.status, 400);
    assert_eq!(after.body["code"], "refresh_token_already_used");

    let unknown = api.refresh("nosuchtoken1").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["code"], "refresh_token_not_found");
    let empty = api
        .post("/auth/v1/token?grant_type=refresh_token", json!({}))
        .await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.body["error"], "invalid_request");
}

#[tokio::test]
async fn a_transient_database_failure_on_refresh_is_5xx_not_a_sign_out() {
    let api = Api::start().await;
    let session = api.sign_up("transient@example.com", "password-1").await;
    let token = session["refresh_token"].as_str().unwrap().to_owned();

    let mut locker = api.db.admin().await;
    let lock = locker.transaction().await.unwrap();
    lock.execute("lock table auth.sessions in access exclusive mode", &[])
        .await
        .unwrap();
    let refresh = tokio::spawn({
        let api_url = api
            .server
            .endpoint("/auth/v1/token?grant_type=refresh_token");
        let anon = api.anon_key();
        async move {
            reqwest::Client::new()
                .post(api_url)
                .header("apikey", &anon)
                .header("authorization", format!("Bearer {anon}"))
                .header("x-supabase-api-version", "2024-01-01")
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap()
        }
    });
    // Wait for the refresh to block on the session lock, then kill its connection.
    let watcher = api.db.admin().await;
    let mut killed = false;
    for _ in 0..200 {
        let rows = watcher
            .query(
                "select pg_terminate_backend(pid) from pg_stat_activity \
                 where datname = current_database() and usename = 'authenticator' \
                   and wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap();
        if !rows.is_empty() {
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(killed, "the refresh never waited on the lock");
    let response = refresh.await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!((500..600).contains(&status), "status {status}: {body}");
    assert_eq!(body["code"], "unexpected_failure");
    lock.rollback().await.unwrap();
}
