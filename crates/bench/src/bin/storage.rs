//! `/storage/v1` benchmark: upload and download one large object (1 GiB by default) through a
//! server running in its own process, next to `dd` writing and reading the same amount on the
//! same filesystem in the same run, and the server process's peak RSS (VmHWM). Targets: peak
//! RSS under 100 MB; at least 70% of the disk's throughput.
//!
//! The large object goes through twice: with the default MD5 ETags (hashing bounds a single
//! upload at about one core's MD5 speed) and with `etag_algorithm = "mtime"` (no hash).
//!
//! Then the latency of small objects (64 KiB, one request at a time, a new connection each):
//! median and 99th percentile of upload and of download.
//!
//! `cargo run --release -p manifold-bench --bin storage [MiB]`
//!
//! The client speaks HTTP/1.1 over a plain socket, so the body streams from a reused buffer and
//! the client costs no copy or allocation per chunk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use manifold_bench::process::scratch_dir;
use manifold_testkit::EtagAlgorithm;
use manifold_testkit::{TestDb, TestServer};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

/// Set in the child process: the database and directory to serve.
const CHILD_ENV: &str = "MANIFOLD_BENCH_STORAGE_SERVER";
/// Size of each write and read the client makes.
const CHUNK: usize = 1 << 20;
/// Default object size in MiB.
const DEFAULT_MIB: u64 = 1024;
/// Small objects uploaded and downloaded one at a time for the latency figures.
const SMALL_OBJECTS: usize = 200;
/// Rounds of each large transfer, each after its own raw-disk `dd`; medians are reported.
const ROUNDS: usize = 3;
/// Size of each small object (a delivery photo or signature).
const SMALL_OBJECT_BYTES: u64 = 64 * 1024;

#[allow(clippy::print_stdout, reason = "the benchmark's report is its output")]
fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return runtime.block_on(serve(&spec));
    }
    let mib: u64 = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .context("the argument is the object size in MiB")?,
        None => DEFAULT_MIB,
    };
    runtime.block_on(run(mib))
}

/// The child: a server on the given database, until its parent kills it.
async fn serve(spec: &str) -> anyhow::Result<()> {
    let spec: serde_json::Value = serde_json::from_str(spec)?;
    let text = |key: &str| spec[key].as_str().map(str::to_owned).context("spec field");
    let db = TestDb {
        name: text("name")?,
        admin_url: text("admin_url")?,
        api_url: text("api_url")?,
    };
    let dir = std::path::PathBuf::from(text("dir")?);
    let etag = match text("etag")?.as_str() {
        "mtime" => EtagAlgorithm::Mtime,
        _ => EtagAlgorithm::Md5,
    };
    let server = TestServer::start_with(&db, |config| {
        config.storage.local_dir = Some(dir);
        config.storage.etag_algorithm = etag;
    })
    .await;
    #[allow(clippy::print_stdout, reason = "the parent reads this line")]
    {
        println!("READY {} {}", server.url, server.keys.service_role_key);
    }
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

struct ServerProcess {
    child: Child,
    addr: String,
    auth: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start(db: &TestDb, dir: &Path, etag: &str) -> anyhow::Result<ServerProcess> {
        let spec = json!({
            "name": db.name, "admin_url": db.admin_url, "api_url": db.api_url, "dir": dir,
            "etag": etag,
        });
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, spec.to_string())
            .env("MANIFOLD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = loop {
            let Some(line) = lines.next() else {
                bail!("the server process exited before it was ready");
            };
            if let Some(rest) = line?.strip_prefix("READY ") {
                break rest.to_owned();
            }
        };
        let (url, key) = ready.split_once(' ').context("READY line")?;
        Ok(ServerProcess {
            addr: url.trim_start_matches("http://").to_owned(),
            auth: format!("Bearer {key}"),
            child,
        })
    }

    /// Peak resident set size of the server process, in bytes (Linux `VmHWM`).
    fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .context("VmHWM in /proc/<pid>/status")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?;
        Ok(kib * 1024)
    }

    /// Sends one request; returns the status and the response head's lines.
    async fn request(&self, head: &str, body_len: u64) -> anyhow::Result<(TcpStream, Duration)> {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(head.as_bytes()).await?;
        if body_len > 0 {
            let chunk = vec![0x5au8; CHUNK];
            let mut left = body_len;
            while left > 0 {
                let n = usize::try_from(left.min(CHUNK as u64))?;
                stream.write_all(&chunk[..n]).await?;
                left -= n as u64;
            }
        }
        Ok((stream, started.elapsed()))
    }
}

/// Reads a response head; returns the status and the content length.
async fn read_head(reader: &mut AsyncBufReader<TcpStream>) -> anyhow::Result<(u16, u64)> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("status line")?
        .parse()?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    Ok((status, length))
}

fn dd(args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("dd")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("dd {args:?} failed");
    }
    Ok(started.elapsed())
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// One round: the raw disk right before each transfer, then the transfer, all in MB/s.
#[derive(Clone, Copy)]
struct Round {
    raw_write: f64,
    upload: f64,
    raw_read: f64,
    download: f64,
}

/// The large objects' rounds through a server with one ETag algorithm.
struct LargeObject {
    rounds: Vec<Round>,
    idle_rss: u64,
    peak_rss: u64,
    small: Option<(Vec<Duration>, Vec<Duration>)>,
}

/// `dd` writing then reading `mib` MiB at `file` with O_DIRECT (the disk without the page
/// cache); the file is removed after. Returns both rates in MB/s.
fn raw_disk(file: &Path, mib: u64) -> anyhow::Result<(f64, f64)> {
    let write = dd(&[
        "if=/dev/zero",
        &format!("of={}", file.display()),
        "bs=4M",
        &format!("count={}", mib / 4),
        "oflag=direct",
    ])?;
    let read = dd(&[
        &format!("if={}", file.display()),
        "of=/dev/null",
        "bs=4M",
        "iflag=direct",
    ])?;
    std::fs::remove_file(file)?;
    let bytes = (mib / 4) << 22;
    Ok((mb_per_s(bytes, write), mb_per_s(bytes, read)))
}

/// Starts a server making `etag` ETags; per round measures the raw disk with `dd`, then
/// uploads and downloads `size` bytes to bucket `bench-<etag>` (the disk of a virtual machine
/// varies by half from one minute to the next, so each transfer is compared with the disk
/// measured right before it); then (when asked) measures small objects.
async fn large_object(
    db: &TestDb,
    dir: &Path,
    size: u64,
    etag: &str,
    with_small: bool,
) -> anyhow::Result<LargeObject> {
    let server = ServerProcess::start(db, dir, etag)?;
    let idle_rss = server.peak_rss()?;
    let bucket = format!("bench-{etag}");
    let body = format!(r#"{{"name":"{bucket}"}}"#);
    let head = format!(
        "POST /storage/v1/bucket HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        server.addr,
        server.auth,
        body.len()
    );
    let (stream, _) = server.request(&head, 0).await?;
    let (status, _) = read_head(&mut AsyncBufReader::new(stream)).await?;
    if status != 200 {
        bail!("creating the bucket answered {status}");
    }

    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (raw_write, raw_read) = raw_disk(&dir.join("dd.bin"), size >> 20)?;
        let (upload, download) =
            round_trip(&server, &bucket, &format!("big-{round}.bin"), size).await?;
        rounds.push(Round {
            raw_write,
            upload: mb_per_s(size, upload),
            raw_read,
            download: mb_per_s(size, download),
        });
    }
    let small = if with_small {
        Some(small_object_latencies(&server, &bucket).await?)
    } else {
        None
    };
    let peak_rss = server.peak_rss()?;
    Ok(LargeObject {
        rounds,
        idle_rss,
        peak_rss,
        small,
    })
}

/// The median of some values.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Uploads `size` bytes to `bucket/name`, then downloads them; returns both times.
async fn round_trip(
    server: &ServerProcess,
    bucket: &str,
    name: &str,
    size: u64,
) -> anyhow::Result<(Duration, Duration)> {
    // The upload: raw body, content-length known, streamed from one buffer.
    let head = format!(
        "POST /storage/v1/object/{bucket}/{name} HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {size}\r\n\
         connection: close\r\n\r\n",
        server.addr, server.auth
    );
    let started = Instant::now();
    let (stream, _) = server.request(&head, size).await?;
    let (status, _) = read_head(&mut AsyncBufReader::new(stream)).await?;
    let upload = started.elapsed();
    if status != 200 {
        bail!("the upload answered {status}");
    }

    let head = format!(
        "GET /storage/v1/object/{bucket}/{name} HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\n\
         connection: close\r\n\r\n",
        server.addr, server.auth
    );
    let started = Instant::now();
    let (stream, _) = server.request(&head, 0).await?;
    let mut reader = AsyncBufReader::with_capacity(CHUNK, stream);
    let (status, length) = read_head(&mut reader).await?;
    if status != 200 || length != size {
        bail!("the download answered {status} with {length} bytes");
    }
    let mut buffer = vec![0u8; CHUNK];
    let mut received = 0u64;
    while received < size {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            bail!("the download ended after {received} bytes");
        }
        received += n as u64;
    }
    let download = started.elapsed();
    Ok((upload, download))
}

#[allow(clippy::print_stdout, reason = "the benchmark's report is its output")]
async fn run(mib: u64) -> anyhow::Result<()> {
    let size = mib << 20;
    let db = TestDb::create().await;
    // Objects and the dd file share one directory, so both measure the same filesystem.
    let dir = scratch_dir("storage")?;

    // For reference, dd through the page cache in the same directory (the synced write too);
    // the comparison is with the raw disk (O_DIRECT dd), measured before each transfer.
    let dd_file = dir.join("dd.bin");
    let of = format!("of={}", dd_file.display());
    let count = format!("count={mib}");
    let dd_write = dd(&["if=/dev/zero", &of, "bs=1M", &count])?;
    let dd_sync = dd(&["if=/dev/zero", &of, "bs=1M", &count, "conv=fdatasync"])?;
    let dd_read = dd(&[
        &format!("if={}", dd_file.display()),
        "of=/dev/null",
        "bs=1M",
    ])?;
    std::fs::remove_file(&dd_file)?;

    let md5 = large_object(&db, &dir, size, "md5", true).await?;
    let mtime = large_object(&db, &dir, size, "mtime", false).await?;
    let _ = std::fs::remove_dir_all(&dir);

    let disk_write = mb_per_s(size, dd_write);
    let disk_read = mb_per_s(size, dd_read);
    println!("object size                 {mib} MiB, {ROUNDS} rounds per ETag algorithm (medians)");
    println!(
        "dd write (page cache)       {disk_write:>8.0} MB/s   (with fdatasync {:.0} MB/s)",
        mb_per_s(size, dd_sync)
    );
    println!("dd read (page cache)        {disk_read:>8.0} MB/s");
    for (label, run) in [("etag md5  ", &md5), ("etag mtime", &mtime)] {
        let column = |pick: fn(&Round) -> f64| median(run.rounds.iter().map(pick).collect());
        println!(
            "{label} upload           {:>8.0} MB/s   {:>5.1}% of raw disk write (O_DIRECT dd right before: {:.0} MB/s)",
            column(|r| r.upload),
            column(|r| 100.0 * r.upload / r.raw_write),
            column(|r| r.raw_write),
        );
        println!(
            "{label} download         {:>8.0} MB/s   {:>5.1}% of raw disk read  (O_DIRECT dd right before: {:.0} MB/s)",
            column(|r| r.download),
            column(|r| 100.0 * r.download / r.raw_read),
            column(|r| r.raw_read),
        );
        println!(
            "{label} server peak RSS  {:>8.1} MB      (idle {:.1} MB; target < 100 MB)",
            run.peak_rss as f64 / 1e6,
            run.idle_rss as f64 / 1e6
        );
    }
    if let Some((small_up, small_down)) = &md5.small {
        println!(
            "{SMALL_OBJECTS} x {} KiB upload      p50 {:>6.2} ms   p99 {:>6.2} ms",
            SMALL_OBJECT_BYTES / 1024,
            percentile_ms(small_up, 0.50),
            percentile_ms(small_up, 0.99)
        );
        println!(
            "{SMALL_OBJECTS} x {} KiB download    p50 {:>6.2} ms   p99 {:>6.2} ms",
            SMALL_OBJECT_BYTES / 1024,
            percentile_ms(small_down, 0.50),
            percentile_ms(small_down, 0.99)
        );
    }
    Ok(())
}

/// Uploads then downloads [`SMALL_OBJECTS`] objects one request at a time; returns each
/// request's time to a complete response, sorted.
async fn small_object_latencies(
    server: &ServerProcess,
    bucket: &str,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut uploads = Vec::with_capacity(SMALL_OBJECTS);
    let mut downloads = Vec::with_capacity(SMALL_OBJECTS);
    for i in 0..SMALL_OBJECTS {
        let head = format!(
            "POST /storage/v1/object/{bucket}/small/{i}.jpg HTTP/1.1\r\nhost: {}\r\n\
             authorization: {}\r\ncontent-type: image/jpeg\r\n\
             content-length: {SMALL_OBJECT_BYTES}\r\nconnection: close\r\n\r\n",
            server.addr, server.auth
        );
        let started = Instant::now();
        let (stream, _) = server.request(&head, SMALL_OBJECT_BYTES).await?;
        let (status, _) = read_head(&mut AsyncBufReader::new(stream)).await?;
        uploads.push(started.elapsed());
        if status != 200 {
            bail!("small upload {i} answered {status}");
        }
    }
    let mut buffer = vec![0u8; CHUNK];
    for i in 0..SMALL_OBJECTS {
        let head = format!(
            "GET /storage/v1/object/{bucket}/small/{i}.jpg HTTP/1.1\r\nhost: {}\r\n\
             authorization: {}\r\nconnection: close\r\n\r\n",
            server.addr, server.auth
        );
        let started = Instant::now();
        let (stream, _) = server.request(&head, 0).await?;
        let mut reader = AsyncBufReader::new(stream);
        let (status, length) = read_head(&mut reader).await?;
        if status != 200 || length != SMALL_OBJECT_BYTES {
            bail!("small download {i} answered {status} with {length} bytes");
        }
        let mut received = 0u64;
        while received < length {
            let n = reader.read(&mut buffer).await?;
            if n == 0 {
                bail!("small download {i} ended after {received} bytes");
            }
            received += n as u64;
        }
        downloads.push(started.elapsed());
    }
    uploads.sort();
    downloads.sort();
    Ok((uploads, downloads))
}

/// The `q` quantile of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1e3
}
