//! Helpers shared by the storage tests: a server whose objects live in a temp dir, HTTP calls
//! with the service or a user token, and row checks through a superuser connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use manifold_config::Config;
use manifold_testkit::{TestDb, TestServer};
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running server with its own object directory.
pub(crate) struct Storage {
    pub(crate) server: TestServer,
    pub(crate) db: TestDb,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) http: Client,
}

impl Storage {
    /// A fresh database and server, objects under a new temp dir.
    pub(crate) async fn start() -> Storage {
        let db = TestDb::create().await;
        Self::start_on(db).await
    }

    /// A server on `db` with objects under a new temp dir.
    pub(crate) async fn start_on(db: TestDb) -> Storage {
        Self::start_adjusted(db, |_| {}).await
    }

    /// A server on `db` with objects under a new temp dir, after `adjust` changed its settings.
    pub(crate) async fn start_adjusted(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Storage {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let server = TestServer::start_with(&db, |config| {
            config.storage.local_dir = Some(root);
            adjust(config);
        })
        .await;
        Storage {
            server,
            db,
            dir,
            http: Client::new(),
        }
    }

    /// `/storage/v1` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        self.server.endpoint(&format!("/storage/v1/{path}"))
    }

    /// The service role key, sent as bearer.
    pub(crate) fn service(&self) -> String {
        format!("Bearer {}", self.server.keys.service_role_key)
    }

    /// Creates a bucket as the service role.
    pub(crate) async fn create_bucket(&self, id: &str, settings: Value) {
        let mut body = json!({"id": id, "name": id, "public": false});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), settings.as_object()) {
            body.extend(extra.clone());
        }
        let response = self
            .http
            .post(self.url("bucket"))
            .header("authorization", self.service())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// Uploads `bytes` (raw body) as `auth`.
    pub(crate) async fn upload(
        &self,
        auth: &str,
        bucket: &str,
        name: &str,
        bytes: Vec<u8>,
        upsert: bool,
    ) -> Response {
        self.http
            .post(self.url(&format!("object/{bucket}/{name}")))
            .header("authorization", auth)
            .header("content-type", "application/octet-stream")
            .header("x-upsert", upsert.to_string())
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// Downloads as the service role: status, ETag and body.
    pub(crate) async fn download(
        &self,
        bucket: &str,
        name: &str,
    ) -> (u16, Option<String>, Vec<u8>) {
        let response = self
            .http
            .get(self.url(&format!("object/{bucket}/{name}")))
            .header("authorization", self.service())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .map(|value| value.to_str().unwrap().to_owned());
        (status, etag, response.bytes().await.unwrap().to_vec())
    }

    /// Number of rows for `bucket/name` (as the superuser, past RLS).
    pub(crate) async fn row_count(&self, bucket: &str, name: &str) -> i64 {
        row_count(&self.db, bucket, name).await
    }

    /// Every file under the object directory of `bucket`, relative paths.
    pub(crate) fn files(&self, bucket: &str) -> Vec<PathBuf> {
        files_under(&self.dir.path().join(bucket))
    }
}

/// Rows for `bucket/name`, counted as the superuser.
pub(crate) async fn row_count(db: &TestDb, bucket: &str, name: &str) -> i64 {
    db.admin()
        .await
        .query_one(
            "select count(*) from storage.objects where bucket_id = $1 and name = $2",
            &[&bucket, &name],
        )
        .await
        .unwrap()
        .get(0)
}

/// Every regular file below `root`.
pub(crate) fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    found.sort();
    found
}

/// The error code in Storage's envelope.
pub(crate) async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["code"].as_str().unwrap_or_default().to_owned()
}

/// Polls `check` until it holds or `limit` passes; true when it held. For waiting on an effect
/// the test cannot be told about directly (a file appearing, a lock being waited on).
pub(crate) async fn wait_for(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// An upload spoken by hand over one TCP connection, so a test decides how much of the body is
/// sent, and when the connection is cut.
pub(crate) struct RawUpload {
    stream: TcpStream,
}

impl RawUpload {
    /// Connects to `base_url` (`http://127.0.0.1:port`) and sends the request head of a raw
    /// `POST {path}` announcing `content_length` body bytes.
    pub(crate) async fn start(
        base_url: &str,
        path: &str,
        authorization: &str,
        content_length: u64,
    ) -> RawUpload {
        let address = base_url.strip_prefix("http://").unwrap();
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: {authorization}\r\n\
             content-type: application/octet-stream\r\ncontent-length: {content_length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        RawUpload { stream }
    }

    /// Sends `bytes` of the body.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Reads one response (status and JSON body), whatever is left of the body unsent.
    pub(crate) async fn response(&mut self) -> (u16, Value) {
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            if let Some(end) = find(&received, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                if received.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let body = &received[end + 4..end + 4 + length];
                    return (status, serde_json::from_slice(body).unwrap_or(Value::Null));
                }
            }
            let read = self.stream.read(&mut buffer).await.unwrap();
            assert!(
                read > 0,
                "the server closed the connection without a response"
            );
            received.extend_from_slice(&buffer[..read]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
