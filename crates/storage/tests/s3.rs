//! The S3 backend against a real S3-protocol server on loopback: moto's server, installed from
//! PyPI (`pip install 'moto[server]'`, done by `.ci/run`). A missing server fails the test with
//! that instruction; nothing is skipped.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use manifold_config::{S3Config, Secret, StorageBackend};
use manifold_testkit::{TestDb, TestServer, free_port};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use serde_json::{Value, json};

use crate::support::{RawUpload, error_code, row_count, wait_for};

/// How long a test waits for an effect on the S3 server before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

const S3_BUCKET: &str = "manifold-objects";
/// What to do when the S3 server is missing.
const INSTALL_HINT: &str = "the S3 backend tests need moto's S3 server on loopback; install it \
     with `python3 -m pip install 'moto[server]'` (as .ci/run does)";

/// A moto S3 server on a free loopback port, stopped (by pid) when dropped.
struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    async fn start() -> MotoServer {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start `python3 -m moto.server` ({error}): {INSTALL_HINT}")
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = MotoServer { child, endpoint };
        let http = reqwest::Client::new();
        let started = Instant::now();
        // Creating the bucket doubles as the readiness check.
        loop {
            if let Ok(response) = http
                .put(format!("{}/{S3_BUCKET}", server.endpoint))
                .send()
                .await
                && response.status().is_success()
            {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("`python3 -m moto.server` exited with {status}: {INSTALL_HINT}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not answer on {}",
                server.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            bucket: S3_BUCKET.into(),
            access_key_id: Some(Secret::new("testing")),
            secret_access_key: Some(Secret::new("testing")),
            force_path_style: true,
        }
    }

    /// A client of the same bucket, to look at what the server stored.
    fn client(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_bucket_name(S3_BUCKET)
                .with_region("us-east-1")
                .with_access_key_id("testing")
                .with_secret_access_key("testing")
                .build()
                .unwrap(),
        )
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn keys_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn objects_live_in_s3_with_one_blob_per_current_version() {
    let moto = MotoServer::start().await;
    let db = TestDb::create().await;
    let s3 = moto.config();
    let server = TestServer::start_with(&db, |config| {
        config.storage.backend = StorageBackend::S3;
        config.storage.s3 = s3;
    })
    .await;
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", server.keys.service_role_key);
    let url = |path: &str| server.endpoint(&format!("/storage/v1/{path}"));
    let store = moto.client();

    let created = http
        .post(url("bucket"))
        .header("authorization", &auth)
        .json(&json!({"name": "media"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    // 12 MiB: three multipart parts of 5 MiB, 5 MiB and 2 MiB.
    let first: Vec<u8> = (0..12 * 1024 * 1024)
        .map(|i: u32| (i % 253) as u8)
        .collect();
    let uploaded = http
        .post(url("object/media/videos/clip.bin"))
        .header("authorization", &auth)
        .header("content-type", "video/mp4")
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200, "{}", uploaded.text().await.unwrap());
    let stored = keys_under(&store, "media/videos/clip.bin").await;
    assert_eq!(stored.len(), 1, "{stored:?}");

    let download = http
        .get(url("object/media/videos/clip.bin"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "video/mp4");
    let etag = download.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        download.bytes().await.unwrap() == first,
        "S3 returned other bytes"
    );

    let partial = http
        .get(url("object/media/videos/clip.bin"))
        .header("authorization", &auth)
        .header("range", "bytes=6291456-6291465")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(partial.bytes().await.unwrap(), first[6_291_456..6_291_466]);

    // Overwrite: new version, new ETag, and the old blob is gone from S3.
    let second = vec![9u8; 1024];
    let replaced = http
        .put(url("object/media/videos/clip.bin"))
        .header("authorization", &auth)
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let after = http
        .get(url("object/media/videos/clip.bin"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_ne!(after.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(after.bytes().await.unwrap(), second);
    let stored_after = keys_under(&store, "media/videos/clip.bin").await;
    assert_eq!(stored_after.len(), 1);
    assert_ne!(stored_after, stored, "the blob key carries the new version");

    // Copy and move are server-side copies; signed URLs read from S3 as well.
    let copied = http
        .post(url("object/copy"))
        .header("authorization", &auth)
        .json(&json!({"bucketId": "media", "sourceKey": "videos/clip.bin", "destinationKey": "copy.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.status(), 200);
    let moved = http
        .post(url("object/move"))
        .header("authorization", &auth)
        .json(&json!({"bucketId": "media", "sourceKey": "copy.bin", "destinationKey": "moved/copy.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let signed: Value = http
        .post(url("object/sign/media/moved/copy.bin"))
        .header("authorization", &auth)
        .json(&json!({"expiresIn": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed_url = server.endpoint(&format!(
        "/storage/v1{}",
        signed["signedURL"].as_str().unwrap()
    ));
    assert_eq!(
        http.get(signed_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        second
    );
    assert_eq!(
        keys_under(&store, "media/copy.bin").await,
        Vec::<String>::new()
    );
    assert_eq!(keys_under(&store, "media/moved").await.len(), 1);

    // A denied upload stores nothing in S3.
    let anon = format!("Bearer {}", server.keys.anon_key);
    let denied = http
        .post(url("object/media/denied.bin"))
        .header("authorization", &anon)
        .body(vec![1u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(denied).await, "AccessDenied");
    assert_eq!(
        keys_under(&store, "media/denied.bin").await,
        Vec::<String>::new()
    );
    assert_eq!(row_count(&db, "media", "denied.bin").await, 0);

    // Removing every object empties the S3 bucket.
    let removed: Value = http
        .delete(url("object/media"))
        .header("authorization", &auth)
        .json(&json!({"prefixes": ["videos/clip.bin", "moved/copy.bin"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed.as_array().unwrap().len(), 2);
    assert_eq!(keys_under(&store, "media").await, Vec::<String>::new());
}

/// Multipart uploads in progress in the S3 bucket, by key (ListMultipartUploads; moto answers
/// it unsigned).
async fn uploads_in_progress(moto: &MotoServer) -> Vec<String> {
    let listing = reqwest::get(format!("{}/{S3_BUCKET}?uploads", moto.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_no_s3_multipart_upload() {
    let moto = MotoServer::start().await;
    let db = TestDb::create().await;
    let s3 = moto.config();
    let server = TestServer::start_with(&db, |config| {
        config.storage.backend = StorageBackend::S3;
        config.storage.s3 = s3;
    })
    .await;
    let auth = format!("Bearer {}", server.keys.service_role_key);
    let created = reqwest::Client::new()
        .post(server.endpoint("/storage/v1/bucket"))
        .header("authorization", &auth)
        .json(&json!({"name": "cut"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    let mut upload = RawUpload::start(
        &server.url,
        "/storage/v1/object/cut/big.bin",
        &auth,
        64 << 20,
    )
    .await;
    let chunk = vec![3u8; 1 << 20];
    for _ in 0..12 {
        upload.send(&chunk).await;
    }
    // The server has opened its S3 multipart upload…
    let opened = wait_for(PATIENCE, async || {
        uploads_in_progress(&moto).await.len() == 1
    })
    .await;
    assert!(opened, "the upload never started on S3");
    // …when the client goes away: the dropped request must abort it.
    drop(upload);
    let aborted = wait_for(PATIENCE, async || {
        uploads_in_progress(&moto).await.is_empty()
    })
    .await;
    assert!(
        aborted,
        "a multipart upload was left on S3: {:?}",
        uploads_in_progress(&moto).await
    );
    assert_eq!(row_count(&db, "cut", "big.bin").await, 0);
    assert_eq!(
        keys_under(&moto.client(), "cut").await,
        Vec::<String>::new()
    );
}
