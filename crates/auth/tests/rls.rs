//! A user created by /auth/v1 reads its own rows through /rest/v1 under RLS with the token it
//! was issued.

use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};

#[tokio::test]
async fn a_signed_up_user_reads_only_its_own_rows_through_rest() {
    let db = TestDb::create().await;
    db.execute(
        "create table public.notes (
           id bigserial primary key,
           owner uuid not null references auth.users (id) on delete cascade,
           body text not null
         );
         alter table public.notes enable row level security;
         create policy notes_own on public.notes for select to authenticated
           using (owner = auth.uid());
         grant select on public.notes to authenticated;",
    )
    .await;
    let server = TestServer::start(&db).await;
    let http = reqwest::Client::new();
    let anon = server.keys.anon_key.clone();
    let mut sessions = Vec::new();
    for email in ["owner-a@example.com", "owner-b@example.com"] {
        let session: Value = http
            .post(server.endpoint("/auth/v1/signup"))
            .header("apikey", &anon)
            .json(&json!({"email": email, "password": "password-1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions.push(session);
    }
    let admin = db.admin().await;
    for (index, session) in sessions.iter().enumerate() {
        let owner = session["user"]["id"].as_str().unwrap();
        admin
            .execute(
                "insert into public.notes (owner, body) values ($1::text::uuid, $2)",
                &[&owner, &format!("note of user {index}")],
            )
            .await
            .unwrap();
    }

    let read = |token: String| {
        let http = http.clone();
        let url = server.endpoint("/rest/v1/notes?select=body");
        let anon = anon.clone();
        async move {
            let response = http
                .get(url)
                .header("apikey", anon)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let token_a = sessions[0]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        read(token_a).await,
        (200, json!([{"body": "note of user 0"}]))
    );
    let token_b = sessions[1]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        read(token_b).await,
        (200, json!([{"body": "note of user 1"}]))
    );
    // The anon key alone sees nothing (no policy for anon: empty, or refused without a grant).
    let (status, body) = read(anon.clone()).await;
    assert!(status == 401 || body == json!([]), "{status} {body}");
}
