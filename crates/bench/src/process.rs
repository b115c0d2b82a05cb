//! The `manifold` process a benchmark measures: a release binary next to the bench binary,
//! started against a test database with its own data dir, waited on, and stopped by SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use manifold_testkit::{TestDb, free_port};

/// How long a started server may take to answer `/health`.
const HEALTH_ATTEMPTS: u32 = 200;
const HEALTH_INTERVAL: Duration = Duration::from_millis(50);

/// A numeric benchmark option from the environment, or its default.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A binary built next to this one (`target/release/manifold`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no parent directory")?;
    let candidate = dir.join(name);
    if candidate.is_file() {
        Ok(candidate)
    } else {
        bail!(
            "{} not found: build it first with `cargo build --release -p manifold-server`",
            candidate.display()
        )
    }
}

/// A fresh directory under the system temp dir, named after `label` and this process.
pub fn scratch_dir(label: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "manifold-bench-{label}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A running `manifold start` on 127.0.0.1; stopped (SIGTERM, then reaped) on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    data_dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl ServerProcess {
    /// Starts `binary` against `db` with `jwt_secret` and extra `MANIFOLD_*` settings, and
    /// waits until it answers `/health`.
    pub async fn start(
        binary: &Path,
        db: &TestDb,
        jwt_secret: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port();
        let data_dir = scratch_dir("server")?;
        let child = Command::new(binary)
            .args(["start", "--data-dir"])
            .arg(&data_dir)
            .env("DATABASE_URL", &db.admin_url)
            .env("MANIFOLD_DATABASE__API_URL", &db.api_url)
            .env("MANIFOLD_API__LISTEN", format!("127.0.0.1:{port}"))
            .env("MANIFOLD_AUTH__JWT_SECRET", jwt_secret)
            .env("MANIFOLD_LOG", "warn")
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting manifold")?;
        let server = Self {
            child,
            data_dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    /// The server's generated anon key (from `keys.json` in its data dir).
    pub fn anon_key(&self) -> anyhow::Result<String> {
        let file = self.data_dir.join("keys.json");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let keys: serde_json::Value = serde_json::from_str(&text)?;
        keys["anon_key"]
            .as_str()
            .map(str::to_owned)
            .context("keys.json has no anon_key")
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        for _ in 0..HEALTH_ATTEMPTS {
            if let Ok(response) = reqwest::get(format!("{}/health", self.base)).await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(HEALTH_INTERVAL).await;
        }
        bail!("manifold did not become healthy")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
