//! Rows and blobs stay consistent: denied or failed writes leave neither, overwrites change the
//! ETag and remove the old blob, downloads never mix versions, and a server killed in the middle
//! of a large upload leaves no row and no visible object.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use manifold_testkit::{TestDb, TestServer};
use md5::{Digest, Md5};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::support::{Storage, error_code, files_under, row_count, wait_for};

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex(&Md5::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn denied_and_failed_writes_leave_no_blob_and_no_row() {
    let storage = Storage::start().await;
    storage
        .create_bucket("limited", json!({"file_size_limit": 1_000_000}))
        .await;

    // Denied by RLS: the probe refuses before the body is read.
    let anon = format!("Bearer {}", storage.server.keys.anon_key);
    let response = storage
        .upload(&anon, "limited", "denied.bin", vec![1; 4096], false)
        .await;
    assert_eq!(error_code(response).await, "AccessDenied");

    // Too large, announced by nobody: a chunked body without content-length crosses the limit
    // while streaming.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20)
        .map(|_| Ok(Bytes::from(vec![7u8; 100_000])))
        .collect();
    let response = storage
        .http
        .post(storage.url("object/limited/too-big.bin"))
        .header("authorization", storage.service())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, "EntityTooLarge");

    // The probe passes (size 0) but the real row fails (a trigger refuses non-empty objects):
    // the stored blob must be removed again.
    storage
        .db
        .execute(
            "create function public.refuse_big() returns trigger language plpgsql as $$ \
             begin if (new.metadata ->> 'size')::int8 > 0 then \
               raise exception 'no bytes today'; end if; return new; end $$; \
             create trigger refuse_big before insert on storage.objects \
               for each row execute function public.refuse_big();",
        )
        .await;
    let response = storage
        .upload(
            &storage.service(),
            "limited",
            "refused.bin",
            vec![1; 10],
            false,
        )
        .await;
    assert_eq!(error_code(response).await, "InvalidRequest");

    for name in ["denied.bin", "too-big.bin", "refused.bin"] {
        assert_eq!(storage.row_count("limited", name).await, 0, "{name}");
    }
    assert_eq!(storage.files("limited"), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn overwrites_change_the_etag_remove_old_blobs_and_downloads_never_mix_versions() {
    let storage = Storage::start().await;
    storage.create_bucket("photos", json!({})).await;
    let size = 3 * 1024 * 1024;
    let version_bytes = |fill: u8| vec![fill; size];
    let response = storage
        .upload(
            &storage.service(),
            "photos",
            "truck.jpg",
            version_bytes(b'a'),
            false,
        )
        .await;
    assert_eq!(response.status(), 200);

    let mut etags = vec![storage.download("photos", "truck.jpg").await.1.unwrap()];
    // Readers run while the object is overwritten again and again.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let http = storage.http.clone();
            let url = storage.url("object/photos/truck.jpg");
            let auth = storage.service();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..15 {
                    let response = http
                        .get(&url)
                        .header("authorization", &auth)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
                    let body = response.bytes().await.unwrap();
                    seen.push((etag, body));
                }
                seen
            })
        })
        .collect();
    for fill in [b'b', b'c', b'd', b'e'] {
        let response = storage
            .upload(
                &storage.service(),
                "photos",
                "truck.jpg",
                version_bytes(fill),
                true,
            )
            .await;
        assert_eq!(response.status(), 200);
        etags.push(storage.download("photos", "truck.jpg").await.1.unwrap());
    }
    for reader in readers {
        for (etag, body) in reader.await.unwrap() {
            assert_eq!(body.len(), size);
            let first = body[0];
            assert!(
                body.iter().all(|byte| *byte == first),
                "a download mixed two versions"
            );
            assert_eq!(
                etag,
                etag_of(&body),
                "headers and body come from one version"
            );
        }
    }
    let unique: std::collections::HashSet<_> = etags.iter().collect();
    assert_eq!(
        unique.len(),
        etags.len(),
        "every overwrite changed the ETag: {etags:?}"
    );
    assert_eq!(etags.last().unwrap(), &etag_of(&version_bytes(b'e')));
    // Only the current version's blob is left.
    let files = storage.files("photos");
    assert_eq!(files.len(), 1, "{files:?}");
}

/// Large objects take the local disk's direct path (past the first 4 MiB on upload, 8 MiB or
/// more on download) and, with `etag_algorithm = "mtime"`, skip the hash: bytes and ranges
/// come back exactly, the ETag still changes with every overwrite and If-None-Match still works.
#[tokio::test]
async fn large_objects_with_mtime_etags_round_trip_exactly() {
    let storage = Storage::start_adjusted(TestDb::create().await, |config| {
        config.storage.etag_algorithm = manifold_testkit::EtagAlgorithm::Mtime;
    })
    .await;
    storage.create_bucket("big", json!({})).await;
    let size = 13 * 1024 * 1024 + 777;
    let content = |seed: u8| -> Vec<u8> {
        (0..size)
            .map(|i| (i % 251) as u8 ^ seed)
            .collect::<Vec<u8>>()
    };
    let mut etags = Vec::new();
    for seed in [0u8, 0x55] {
        let bytes = content(seed);
        let response = storage
            .upload(&storage.service(), "big", "scan.bin", bytes.clone(), true)
            .await;
        assert_eq!(response.status(), 200);
        let (status, etag, body) = storage.download("big", "scan.bin").await;
        assert_eq!(status, 200);
        assert!(body == bytes, "the download differs from the upload");
        let etag = etag.unwrap();
        assert_ne!(etag, etag_of(&bytes), "mtime ETags are not the MD5");
        etags.push(etag.clone());

        // A range long enough to be read directly, starting and ending inside blocks.
        let (start, end) = (4095usize, 4095 + 9 * 1024 * 1024 + 3);
        let response = storage
            .http
            .get(storage.url("object/big/scan.bin"))
            .header("authorization", storage.service())
            .header("range", format!("bytes={start}-{}", end - 1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206);
        let part = response.bytes().await.unwrap();
        assert!(part[..] == bytes[start..end], "the range differs");

        let response = storage
            .http
            .get(storage.url("object/big/scan.bin"))
            .header("authorization", storage.service())
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 304);
    }
    assert_ne!(etags[0], etags[1], "the overwrite changed the ETag");
    // Only the current version's blob is left, and no staging file.
    let files = storage.files("big");
    assert_eq!(files.len(), 1, "{files:?}");
}

/// Set in the child process the kill test starts: it serves on the given database, prints its
/// address and keys, and runs until killed.
const CHILD_ENV: &str = "MANIFOLD_TEST_STORAGE_CHILD";

#[tokio::test]
async fn killing_the_server_mid_upload_leaves_no_row_and_no_visible_object() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return serve_until_killed(&spec).await;
    }
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({
        "name": db.name, "admin_url": db.admin_url, "api_url": db.api_url,
        "dir": dir.path(),
    });
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "consistency::killing_the_server_mid_upload_leaves_no_row_and_no_visible_object",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, spec.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = loop {
        let line = lines
            .next()
            .expect("the child server exited before it was ready")
            .unwrap();
        if let Some(rest) = line.strip_prefix("READY ") {
            break rest.to_owned();
        }
    };
    let (url, service_key) = ready.split_once(' ').unwrap();
    let http = reqwest::Client::new();
    let auth = format!("Bearer {service_key}");
    let created = http
        .post(format!("{url}/storage/v1/bucket"))
        .header("authorization", &auth)
        .json(&json!({"name": "big"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    // A 256 MiB upload fed by hand: 24 MiB go out, then the server is killed.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(receiver));
    let upload = tokio::spawn({
        let http = http.clone();
        let url = format!("{url}/storage/v1/object/big/huge.bin");
        let auth = auth.clone();
        async move {
            http.post(url)
                .header("authorization", auth)
                .header("content-length", (256u64 << 20).to_string())
                .body(body)
                .send()
                .await
        }
    });
    let chunk = Bytes::from(vec![42u8; 1 << 20]);
    for _ in 0..24 {
        sender.send(Ok(chunk.clone())).await.unwrap();
    }
    // Wait until the server has written parts of the upload to the store.
    let bucket_dir = dir.path().join("big");
    let staged = wait_for(Duration::from_secs(20), async || {
        files_under(&bucket_dir)
            .iter()
            .map(|file| std::fs::metadata(bucket_dir.join(file)).map_or(0, |m| m.len()))
            .sum::<u64>()
            >= 10 << 20
    })
    .await;
    assert!(staged, "the upload never reached the store");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    drop(sender);
    assert!(
        upload.await.unwrap().is_err(),
        "the killed upload cannot have succeeded"
    );

    // No row, and a restarted server shows no object.
    assert_eq!(row_count(&db, "big", "huge.bin").await, 0);
    let root = dir.path().to_owned();
    let server = TestServer::start_with(&db, |config| config.storage.local_dir = Some(root)).await;
    let auth = format!("Bearer {}", server.keys.service_role_key);
    let download = http
        .get(server.endpoint("/storage/v1/object/big/huge.bin"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(download).await, "NoSuchKey");
    let listed: serde_json::Value = http
        .post(server.endpoint("/storage/v1/object/list/big"))
        .header("authorization", &auth)
        .json(&json!({"prefix": ""}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    // At the store level only the unfinished staging file may remain, never a completed blob.
    use futures_util::StreamExt;
    use object_store::ObjectStore;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let blobs: Vec<_> = store.list(None).collect().await;
    assert!(blobs.is_empty(), "a blob became visible: {blobs:?}");
}

async fn serve_until_killed(spec: &str) {
    let spec: serde_json::Value = serde_json::from_str(spec).unwrap();
    let text = |key: &str| spec[key].as_str().unwrap().to_owned();
    let db = TestDb {
        name: text("name"),
        admin_url: text("admin_url"),
        api_url: text("api_url"),
    };
    let dir = std::path::PathBuf::from(text("dir"));
    let server = TestServer::start_with(&db, |config| config.storage.local_dir = Some(dir)).await;
    #[allow(clippy::print_stdout, reason = "the parent test reads this line")]
    {
        println!("READY {} {}", server.url, server.keys.service_role_key);
    }
    // Runs until the parent kills this process.
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
