//! The write path's guards: permission is decided before the body is read, a client that goes
//! away mid-body leaves nothing behind, folder placeholders get no way around the limits, empty
//! bodies behave as on Supabase, and connection pressure is a real 429.

use std::time::Duration;

use manifold_testkit::TestDb;
use serde_json::{Value, json};

use crate::support::{RawUpload, Storage, error_code, wait_for};

/// How long a test waits for an effect it cannot be told about before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn user_token(storage: &Storage) -> String {
    let sub = uuid::Uuid::new_v4().to_string();
    format!(
        "Bearer {}",
        storage.server.jwt(
            &json!({"sub": sub, "role": "authenticated", "aud": "authenticated",
                         "exp": 4_000_000_000u64})
        )
    )
}

#[tokio::test]
async fn a_denied_upload_is_answered_before_the_body_is_sent() {
    let storage = Storage::start().await;
    storage.create_bucket("private", json!({})).await;
    let mut upload = RawUpload::start(
        &storage.server.url,
        "/storage/v1/object/private/huge.bin",
        &user_token(&storage),
        1 << 30,
    )
    .await;
    // 64 KiB of an announced 1 GiB; the rest is never sent, so only an answer given before the
    // body was read can arrive.
    upload.send(&[7u8; 64 * 1024]).await;
    let (status, body) = tokio::time::timeout(PATIENCE, upload.response())
        .await
        .expect("no answer while the body was still unsent");
    assert_eq!(status, 400);
    assert_eq!(body["code"], "AccessDenied", "{body}");
    assert_eq!(body["statusCode"], "403");
    assert_eq!(storage.row_count("private", "huge.bin").await, 0);
    assert!(storage.files("private").is_empty());
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_no_staging_file_no_row_and_no_object() {
    let storage = Storage::start().await;
    storage.create_bucket("drop", json!({})).await;
    let mut upload = RawUpload::start(
        &storage.server.url,
        "/storage/v1/object/drop/cut.bin",
        &storage.service(),
        64 << 20,
    )
    .await;
    let chunk = vec![1u8; 1 << 20];
    for _ in 0..12 {
        upload.send(&chunk).await;
    }
    // The server is streaming into its staging file…
    let bucket_dir = storage.dir.path().join("drop");
    let staged = wait_for(PATIENCE, async || {
        crate::support::files_under(&bucket_dir)
            .iter()
            .map(|file| std::fs::metadata(bucket_dir.join(file)).map_or(0, |m| m.len()))
            .sum::<u64>()
            >= 5 << 20
    })
    .await;
    assert!(staged, "the upload never reached the store");
    // …when the client goes away with 52 MiB unsent.
    drop(upload);
    let cleaned = wait_for(PATIENCE, async || storage.files("drop").is_empty()).await;
    assert!(
        cleaned,
        "a staging file was left: {:?}",
        storage.files("drop")
    );
    assert_eq!(storage.row_count("drop", "cut.bin").await, 0);
    let (status, _, body) = storage.download("drop", "cut.bin").await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "NoSuchKey");
}

#[tokio::test]
async fn folder_placeholders_skip_the_mime_check_but_hold_no_bytes() {
    let storage = Storage::start().await;
    storage
        .create_bucket(
            "pics",
            json!({"file_size_limit": 1_000_000, "allowed_mime_types": ["image/png"]}),
        )
        .await;
    let service = storage.service();
    let upload = |name: &'static str, content_type: &'static str, bytes: Vec<u8>| {
        storage
            .http
            .post(storage.url(&format!("object/pics/{name}")))
            .header("authorization", &service)
            .header("content-type", content_type)
            .body(bytes)
            .send()
    };

    // An empty marker of a type the bucket does not accept: allowed.
    let marker = upload("a/.emptyFolderPlaceholder", "text/plain", Vec::new())
        .await
        .unwrap();
    assert_eq!(marker.status(), 200, "{}", marker.text().await.unwrap());

    // Any content is too large, announced or streamed, raw or in a form.
    let announced = upload("b/.emptyFolderPlaceholder", "image/png", vec![1; 10])
        .await
        .unwrap();
    assert_eq!(error_code(announced).await, "EntityTooLarge");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 100]), Ok(vec![2; 100])];
    let streamed = storage
        .http
        .post(storage.url("object/pics/c/.emptyFolderPlaceholder"))
        .header("authorization", &service)
        .header("content-type", "text/html")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(streamed).await, "EntityTooLarge");
    let form = "--b\r\ncontent-disposition: form-data; name=\"\"; filename=\"x.html\"\r\n\
                content-type: text/html\r\n\r\n<p>hello</p>\r\n--b--\r\n";
    let in_form = storage
        .http
        .post(storage.url("object/pics/d/.emptyFolderPlaceholder"))
        .header("authorization", &service)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(in_form).await, "EntityTooLarge");

    // Nor can a copy give a marker content.
    let photo = upload("photo.png", "image/png", vec![9; 100])
        .await
        .unwrap();
    assert_eq!(photo.status(), 200);
    let copied = storage
        .http
        .post(storage.url("object/copy"))
        .header("authorization", &service)
        .json(&json!({"bucketId": "pics", "sourceKey": "photo.png",
                      "destinationKey": "e/.emptyFolderPlaceholder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(copied).await, "EntityTooLarge");

    for name in ["b", "c", "d", "e"] {
        let marker = format!("{name}/.emptyFolderPlaceholder");
        assert_eq!(storage.row_count("pics", &marker).await, 0, "{marker}");
    }
    assert_eq!(
        storage.row_count("pics", "a/.emptyFolderPlaceholder").await,
        1
    );
    // The empty marker and the photo are the only blobs.
    assert_eq!(
        storage.files("pics").len(),
        2,
        "{:?}",
        storage.files("pics")
    );
}

#[tokio::test]
async fn a_full_connection_pool_is_a_real_429_slow_down() {
    let db = TestDb::create().await;
    let storage = Storage::start_adjusted(db, |config| {
        config.database.pool_size = 1;
        config.database.pool_timeout_ms = 200;
    })
    .await;
    storage.create_bucket("busy", json!({})).await;

    // Hold the object's advisory lock from outside, so the upload's final transaction waits for
    // it while holding the pool's only connection.
    let admin = storage.db.admin().await;
    admin
        .execute(
            "select pg_advisory_lock(hashtextextended('busy' || '/' || 'held.bin', 0))",
            &[],
        )
        .await
        .unwrap();
    let held = tokio::spawn({
        let http = storage.http.clone();
        let url = storage.url("object/busy/held.bin");
        let auth = storage.service();
        async move {
            http.post(url)
                .header("authorization", auth)
                .body(vec![1u8; 10])
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let waiting = wait_for(PATIENCE, async || {
        let row = admin
            .query_one(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
    .await;
    assert!(waiting, "the upload never waited for the object lock");

    let response = storage
        .http
        .get(storage.url("bucket"))
        .header("authorization", storage.service())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"statusCode": "429", "code": "SlowDown", "error": "too_many_connections",
               "message": "Too many connections issued to the database"})
    );

    admin
        .execute(
            "select pg_advisory_unlock(hashtextextended('busy' || '/' || 'held.bin', 0))",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(held.await.unwrap(), 200);
}
