//! One PostgreSQL cluster owned by this process: `initdb` once, start under a watchdog, wait until
//! it accepts connections, stop it on shutdown.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::os_user::{self, RunAs};
use super::{EmbeddedError, PgBinaries};

/// How long `postgres` may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the cluster is stopped immediately.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// Name of the superuser created by `initdb`.
pub const SUPERUSER: &str = "postgres";

/// Runs `postgres` in the background and stops it (fast shutdown) as soon as the process named
/// by `$3` is gone, so a killed Manifold or test binary never leaves a cluster behind. After
/// `postgres` exits it removes `$4` when that is set (throwaway test clusters).
const WATCHDOG_SCRIPT: &str = r#"
"$1" -D "$2" &
pg=$!
( while [ -d "/proc/$3" ] && kill -0 "$pg" 2>/dev/null; do sleep 1; done
  kill -INT "$pg" 2>/dev/null ) &
watcher=$!
wait "$pg"
status=$?
kill "$watcher" 2>/dev/null
if [ -n "$4" ]; then rm -rf "$4"; fi
exit $status
"#;

/// How a cluster is laid out and run.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The PostgreSQL data directory (`PGDATA`).
    pub pgdata: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Password of the `postgres` superuser, set by `initdb`.
    pub superuser_password: String,
    /// OS account that runs the cluster when this process is root.
    pub os_user: String,
    /// `false` for throwaway clusters: fsync and synchronous commit off.
    pub durable: bool,
    /// The cluster stops when this process exits.
    pub watch_pid: u32,
    /// Directory removed after the cluster stops (throwaway clusters), if any.
    pub remove_on_exit: Option<PathBuf>,
    /// Extra `postgresql.conf` lines, applied after Manifold's own settings.
    pub extra_settings: Vec<String>,
}

/// A cluster that can be initialised and started.
#[derive(Debug)]
pub struct Cluster {
    bins: PgBinaries,
    options: ClusterOptions,
    run_as: Option<RunAs>,
}

impl Cluster {
    /// Prepares a cluster; fails early when the data directory cannot be used.
    pub fn new(bins: PgBinaries, options: ClusterOptions) -> Result<Self, EmbeddedError> {
        let run_as = os_user::resolve(&options.os_user)?;
        let cluster = Self {
            bins,
            options,
            run_as,
        };
        if let Some(run_as) = &cluster.run_as {
            tracing::info!(
                os_user = %run_as.name,
                "running as root: the embedded postgres runs as an unprivileged user"
            );
            if let Some(blocked) = os_user::blocking_ancestor(&cluster.options.pgdata, run_as) {
                return Err(EmbeddedError::NotTraversable {
                    pgdata: cluster.options.pgdata.clone(),
                    blocked,
                    user: run_as.name.clone(),
                });
            }
        }
        Ok(cluster)
    }

    /// True when `initdb` has already run in the data directory.
    pub fn is_initialized(&self) -> bool {
        self.options.pgdata.join("PG_VERSION").is_file()
    }

    /// Connection URL of the superuser.
    pub fn admin_url(&self) -> String {
        format!(
            "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/postgres",
            self.options.superuser_password, self.options.port
        )
    }

    /// Runs `initdb` into an empty data directory.
    pub async fn initialize(&self) -> Result<(), EmbeddedError> {
        let pgdata = &self.options.pgdata;
        create_private_dir(pgdata)?;
        if let Some(run_as) = &self.run_as {
            os_user::give(pgdata, run_as)?;
        }
        // initdb reads the password from a file; keep it next to the data dir, private to the
        // cluster's account, and remove it as soon as initdb is done.
        let pwfile = pgdata.with_extension("pwfile");
        write_private_file(&pwfile, self.options.superuser_password.as_bytes())?;
        if let Some(run_as) = &self.run_as {
            os_user::give(&pwfile, run_as)?;
        }
        // C.UTF-8 gives Unicode-aware lower()/ilike with a stable code-point sort order; systems
        // without that locale fall back to plain C.
        let mut result = self.run_initdb(&pwfile, "--locale=C.UTF-8").await;
        if matches!(&result, Err(EmbeddedError::InitdbFailed { output }) if output.contains("locale"))
        {
            result = self.run_initdb(&pwfile, "--no-locale").await;
        }
        let _ = std::fs::remove_file(&pwfile);
        result?;
        let conf = pgdata.join("postgresql.conf");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|source| EmbeddedError::Io {
                context: format!("opening {}", conf.display()),
                source,
            })?;
        file.write_all(b"\n# Settings managed by manifold, rewritten on every start.\ninclude_if_exists = 'manifold.conf'\n")
            .map_err(|source| EmbeddedError::Io { context: "editing postgresql.conf".into(), source })?;
        tracing::info!(pgdata = %pgdata.display(), "initialised postgres cluster");
        Ok(())
    }

    async fn run_initdb(&self, pwfile: &Path, locale: &str) -> Result<(), EmbeddedError> {
        let mut command = self.command(&self.bins.program("initdb"));
        command
            .arg("-D")
            .arg(&self.options.pgdata)
            .args(["-U", SUPERUSER, "-E", "UTF8", locale])
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        if !self.options.durable {
            command.arg("--no-sync");
        }
        let output = command.output().await.map_err(|source| EmbeddedError::Io {
            context: "running initdb".into(),
            source,
        })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(EmbeddedError::InitdbFailed {
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Starts the cluster and waits until it accepts connections.
    pub async fn start(&self) -> Result<RunningCluster, EmbeddedError> {
        let pgdata = &self.options.pgdata;
        let lock = self.lock()?;
        self.stop_leftover_postmaster().await?;
        self.write_settings()?;
        let log_path = pgdata.with_extension("log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| EmbeddedError::Io {
                context: format!("opening {}", log_path.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| EmbeddedError::Io {
            context: "duplicating the log handle".into(),
            source,
        })?;
        let remove = self
            .options
            .remove_on_exit
            .as_ref()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default();
        let mut command = self.command(Path::new("/bin/sh"));
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("manifold-postgres")
            .arg(self.bins.program("postgres"))
            .arg(pgdata)
            .arg(self.options.watch_pid.to_string())
            .arg(remove)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C in the terminal reaches Manifold, which then stops
            // the cluster after draining requests, instead of killing the database first.
            .process_group(0);
        let child = command.spawn().map_err(|source| EmbeddedError::Io {
            context: "starting postgres".into(),
            source,
        })?;
        let mut running = RunningCluster {
            child,
            pgdata: pgdata.clone(),
            log_path,
            admin_url: self.admin_url(),
            _lock: lock,
        };
        running.wait_until_ready().await?;
        tracing::info!(port = self.options.port, "embedded postgres is ready");
        Ok(running)
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("LC_ALL", "C.UTF-8")
            .env_remove("PGDATA")
            .kill_on_drop(false);
        if let Some(run_as) = &self.run_as {
            command.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
        }
        command
    }

    /// Takes the cluster lock so two Manifold processes never run one data directory.
    fn lock(&self) -> Result<Flock<File>, EmbeddedError> {
        let path = self.options.pgdata.with_extension("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| EmbeddedError::Io {
                context: format!("opening {}", path.display()),
                source,
            })?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| EmbeddedError::InUse {
            pgdata: self.options.pgdata.clone(),
        })
    }

    /// Handles a `postmaster.pid` left by a crash: a live postmaster of this data dir (we hold
    /// the lock, so nobody else owns it) is shut down; a dead or reused pid is just removed.
    async fn stop_leftover_postmaster(&self) -> Result<(), EmbeddedError> {
        let pid_file = self.options.pgdata.join("postmaster.pid");
        let Some(pid) = read_postmaster_pid(&pid_file) else {
            return Ok(());
        };
        let pgdata = self.options.pgdata.display().to_string();
        let is_ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline);
                cmdline.contains("postgres") && cmdline.contains(&pgdata)
            })
            .unwrap_or(false);
        if !is_ours {
            tracing::warn!(pid, "removing a stale postmaster.pid left by a crash");
            std::fs::remove_file(&pid_file).map_err(|source| EmbeddedError::Io {
                context: "removing stale postmaster.pid".into(),
                source,
            })?;
            return Ok(());
        }
        tracing::warn!(
            pid,
            "stopping a postgres left running by an earlier manifold process"
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
                return Err(EmbeddedError::LeftoverPostmaster { pid });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        Ok(())
    }

    fn write_settings(&self) -> Result<(), EmbeddedError> {
        let durability = if self.options.durable {
            ""
        } else {
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        };
        let settings = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             max_connections = 200\n\
             wal_level = logical\n\
             max_replication_slots = 32\n\
             max_wal_senders = 32\n\
             max_slot_wal_keep_size = '4GB'\n\
             wal_sender_timeout = '60s'\n\
             password_encryption = 'scram-sha-256'\n\
             log_min_messages = warning\n\
             log_min_error_statement = panic\n\
             {durability}\
             {extra}\n",
            port = self.options.port,
            extra = self.options.extra_settings.join("\n"),
        );
        let path = self.options.pgdata.join("manifold.conf");
        std::fs::write(&path, settings).map_err(|source| EmbeddedError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
    }
}

/// A started cluster. Stop it with [`RunningCluster::stop`]; if this process dies instead, the
/// watchdog stops it.
#[derive(Debug)]
pub struct RunningCluster {
    child: Child,
    pgdata: PathBuf,
    log_path: PathBuf,
    admin_url: String,
    _lock: Flock<File>,
}

impl RunningCluster {
    /// Connection URL of the superuser.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    async fn wait_until_ready(&mut self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EmbeddedError::StartFailed {
                    status: status.to_string(),
                    log_tail: log_tail(&self.log_path),
                });
            }
            if let Ok((client, connection)) =
                tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await
            {
                let task = tokio::spawn(connection);
                let ready = client.query_one("select 1", &[]).await.is_ok();
                drop(client);
                let _ = task.await;
                if ready {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(EmbeddedError::StartFailed {
                    status: "timed out waiting for connections".into(),
                    log_tail: log_tail(&self.log_path),
                });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Fast shutdown: sessions are disconnected, committed work is kept. Waits for the exit.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        let postmaster = read_postmaster_pid(&self.pgdata.join("postmaster.pid"));
        if let Some(pid) = postmaster {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(_) => {
                tracing::info!("embedded postgres stopped");
                Ok(())
            }
            Err(_) => {
                if let Some(pid) = postmaster {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
                }
                let _ = self.child.wait().await;
                Err(EmbeddedError::StopTimedOut)
            }
        }
    }
}

fn read_postmaster_pid(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn log_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 4096;
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut tail = String::new();
    let _ = file.read_to_string(&mut tail);
    tail
}

fn create_private_dir(path: &Path) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| EmbeddedError::Io {
            context: format!("creating {}", path.display()),
            source,
        })
}

fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), EmbeddedError> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|source| EmbeddedError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
}
