//! The real `manifold` binary: first start (initdb included), restart, shutdown without orphans,
//! recovery after a crash, and refusing an external database without logical WAL.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use manifold_testkit::free_port;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BINARY: &str = env!("CARGO_BIN_EXE_manifold");

/// A data dir under /tmp that the postgres OS user can reach.
fn reachable_data_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("manifold-it-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    api_port: u16,
}

impl Running {
    fn start(data_dir: &Path, api_port: u16, db_port: u16, env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(BINARY);
        command
            .args(["start", "--data-dir"])
            .arg(data_dir)
            .env("MANIFOLD_API__LISTEN", format!("127.0.0.1:{api_port}"))
            .env("MANIFOLD_DATABASE__PORT", db_port.to_string())
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = stdout.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        Running {
            child,
            stdout,
            api_port,
        }
    }

    fn output(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Time until `/health` answered 200, or a failure with the process output.
    async fn wait_healthy(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/health", self.api_port);
        let client = reqwest::Client::new();
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().as_u16() == 200
            {
                return started.elapsed();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("manifold exited with {status}:\n{}", self.output());
            }
            assert!(
                started.elapsed() < limit + Duration::from_secs(20),
                "no healthy answer; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "manifold did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.wait_exit();
        }
    }
}

/// Processes whose command line mentions `needle` (e.g. a data dir).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

async fn wait_until_no_process_mentions(needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn banner_value(output: &str, label: &str) -> Option<String> {
    output
        .lines()
        .find(|line| line.trim_start().starts_with(label))
        .map(|line| {
            line.split_once(": ")
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        })
}

#[tokio::test]
async fn first_start_prints_keys_and_is_healthy_fast_then_restarts_and_stops_cleanly() {
    let dir = reachable_data_dir();
    let data_dir = dir.path().join("data");
    let data_text = data_dir.display().to_string();
    let (api_port, db_port) = (free_port(), free_port());

    let mut first = Running::start(&data_dir, api_port, db_port, &[]);
    let elapsed = first.wait_healthy(Duration::from_secs(10)).await;
    assert!(
        elapsed < Duration::from_secs(10),
        "first start took {elapsed:?}"
    );
    let output = first.output();
    let anon = banner_value(&output, "anon key:").expect("anon key printed");
    assert!(anon.starts_with("eyJ"), "{output}");
    assert!(
        banner_value(&output, "Publishable key:")
            .unwrap()
            .starts_with("sb_publishable_")
    );
    assert!(
        banner_value(&output, "Secret key:")
            .unwrap()
            .starts_with("sb_secret_")
    );
    assert!(
        banner_value(&output, "service_role key:")
            .unwrap()
            .starts_with("eyJ")
    );
    assert!(banner_value(&output, "JWT secret:").unwrap().len() >= 32);
    let mode = std::fs::metadata(data_dir.join("keys.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "keys.json must be private");

    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit().success(), "{}", first.output());
    assert!(!data_dir.join("pgdata/postmaster.pid").exists());
    wait_until_no_process_mentions(&data_text, Duration::from_secs(2)).await;

    let mut second = Running::start(&data_dir, api_port, db_port, &[]);
    let elapsed = second.wait_healthy(Duration::from_secs(2)).await;
    assert!(
        elapsed < Duration::from_secs(2),
        "second start took {elapsed:?}"
    );
    let output = second.output();
    assert_eq!(
        banner_value(&output, "anon key:"),
        Some(anon),
        "keys are reused"
    );
    assert!(
        banner_value(&output, "JWT secret:").is_none(),
        "secrets are printed once only"
    );
    assert!(output.contains("manifold keys"), "{output}");

    second.signal(Signal::SIGINT);
    assert!(second.wait_exit().success(), "{}", second.output());
    wait_until_no_process_mentions(&data_text, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_killed_server_leaves_no_postgres_and_the_next_start_recovers() {
    let dir = reachable_data_dir();
    let data_dir = dir.path().join("data");
    let data_text = data_dir.display().to_string();
    let (api_port, db_port) = (free_port(), free_port());

    let mut crashed = Running::start(&data_dir, api_port, db_port, &[]);
    crashed.wait_healthy(Duration::from_secs(10)).await;
    crashed.signal(Signal::SIGKILL);
    crashed.wait_exit();
    // The watchdog notices the dead parent and shuts the cluster down.
    wait_until_no_process_mentions(&data_text, Duration::from_secs(10)).await;

    // A postmaster.pid naming a live process that is not our postgres (this test) is stale.
    let pid_file = data_dir.join("pgdata/postmaster.pid");
    std::fs::write(
        &pid_file,
        format!("{}\n{}\n", std::process::id(), data_text),
    )
    .unwrap();
    let mut recovered = Running::start(&data_dir, api_port, db_port, &[]);
    recovered.wait_healthy(Duration::from_secs(10)).await;
    assert!(
        recovered.output().contains("stale postmaster.pid"),
        "{}",
        recovered.output()
    );
    recovered.signal(Signal::SIGTERM);
    assert!(recovered.wait_exit().success());
    wait_until_no_process_mentions(&data_text, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_external_database_without_logical_wal_is_refused_with_a_clear_message() {
    use manifold_db::embedded::{Cluster, ClusterOptions, PgBinaries};

    let dir = reachable_data_dir();
    let port = free_port();
    let cluster = Cluster::new(
        PgBinaries::locate(None).unwrap(),
        ClusterOptions {
            pgdata: dir.path().join("pgdata"),
            port,
            superuser_password: "pw-for-replica-test".into(),
            os_user: "postgres".into(),
            durable: false,
            watch_pid: std::process::id(),
            remove_on_exit: None,
            extra_settings: vec!["wal_level = replica".into()],
        },
    )
    .unwrap();
    cluster.initialize().await.unwrap();
    let running = cluster.start().await.unwrap();

    let data_dir = dir.path().join("data");
    let mut manifold = Running::start(
        &data_dir,
        free_port(),
        free_port(),
        &[("DATABASE_URL", running.admin_url())],
    );
    let status = manifold.wait_exit();
    assert!(!status.success());
    let output = manifold.output();
    assert!(output.contains("wal_level=replica"), "{output}");
    assert!(output.contains("wal_level=logical"), "{output}");
    assert!(
        !output.contains("pw-for-replica-test"),
        "the password leaked: {output}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn as_root_a_data_dir_out_of_reach_gets_its_cluster_where_postgres_can_live() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let outer = tempfile::Builder::new()
        .prefix("manifold-private-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = outer.path().join("data");
    let mut running = Running::start(&data_dir, free_port(), free_port(), &[]);
    running.wait_healthy(Duration::from_secs(10)).await;
    let output = running.output();
    assert!(output.contains("the cluster lives elsewhere"), "{output}");
    let relocated: PathBuf = std::fs::read_dir("/var/lib/manifold/clusters")
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| output.contains(&path.display().to_string()))
        .expect("the log names the relocated cluster");
    running.signal(Signal::SIGTERM);
    assert!(running.wait_exit().success());
    std::fs::remove_dir_all(relocated).unwrap();
}

/// `manifold seed` on a fresh data dir: starts its own cluster, migrates, writes the demo
/// organization, prints how to sign in, stops the cluster; a second run is refused whole.
#[tokio::test]
async fn seed_writes_a_demo_organization_once_and_stops_its_cluster() {
    let dir = reachable_data_dir();
    let data_dir = dir.path().join("data");
    let seed = || {
        Command::new(BINARY)
            .args([
                "seed",
                "--demo",
                "--bottles",
                "300",
                "--customers",
                "25",
                "--days",
                "90",
            ])
            .args(["--password", "seed-cli-password", "--data-dir"])
            .arg(&data_dir)
            .env("MANIFOLD_DATABASE__PORT", free_port().to_string())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let first = seed();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("seeded 1 organization(s): 300 cylinders"),
        "{stdout}"
    );
    assert!(stdout.contains("driver1..4@demo-gas.test"), "{stdout}");
    assert!(stdout.contains("seed-cli-password"), "{stdout}");
    let data_text = data_dir.display().to_string();
    wait_until_no_process_mentions(&data_text, Duration::from_secs(5)).await;

    let second = seed();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("organization \"demo-gas\" already exists"),
        "{stderr}"
    );
    wait_until_no_process_mentions(&data_text, Duration::from_secs(5)).await;
}
