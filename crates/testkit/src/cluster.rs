//! The throwaway cluster of a test run and the databases copied from its template.

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use manifold_auth::keys::random_token;
use manifold_db::bootstrap::prepare_database;
use manifold_db::embedded::{Cluster, ClusterOptions, PgBinaries, SUPERUSER};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// Shared parent of every run's cluster; sticky and world-writable like /tmp, so the cluster's
/// OS user can remove its own run directory when the run ends.
const ROOT: &str = "/tmp/manifold-testkit";
/// The migrated database every test database is copied from.
const TEMPLATE: &str = "manifold_template";
/// OS user that runs the cluster when tests run as root.
const OS_USER: &str = "postgres";

/// Connection facts of the run's cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestCluster {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Password of the `postgres` superuser.
    pub superuser_password: String,
    /// Password of the `authenticator` role.
    pub authenticator_password: String,
}

impl TestCluster {
    /// Superuser URL of database `dbname`.
    pub fn admin_url(&self, dbname: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/{dbname}",
            self.superuser_password, self.port
        )
    }

    /// `authenticator` URL of database `dbname`, as the API pool connects.
    pub fn api_url(&self, dbname: &str) -> String {
        format!(
            "postgresql://authenticator:{}@127.0.0.1:{}/{dbname}",
            self.authenticator_password, self.port
        )
    }
}

static CLUSTER: OnceCell<TestCluster> = OnceCell::const_new();

/// The run's cluster, started by the first test that asks and joined by every other one.
pub async fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(start_or_join).await
}

async fn start_or_join() -> TestCluster {
    // All processes of one nextest run share a cluster; it lives as long as the runner.
    let (key, watch_pid) = match std::env::var("NEXTEST_RUN_ID") {
        Ok(run_id) => (run_id, nix::unistd::getppid().as_raw().unsigned_abs()),
        Err(_) => (format!("pid-{}", std::process::id()), std::process::id()),
    };
    let root = Path::new(ROOT);
    if std::fs::create_dir(root).is_ok() {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let lock_path = root.join(format!("{key}.lock"));
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    let _lock = tokio::task::spawn_blocking(move || {
        Flock::lock(lock_file, FlockArg::LockExclusive).expect("locking the test cluster")
    })
    .await
    .unwrap();

    let dir = root.join(&key);
    let info_path = dir.join("info.json");
    if let Ok(text) = std::fs::read_to_string(&info_path) {
        return serde_json::from_str(&text).expect("valid cluster info");
    }
    let cluster = start(&dir, watch_pid).await;
    let temp = info_path.with_extension("tmp");
    std::fs::write(&temp, serde_json::to_vec(&cluster).unwrap()).unwrap();
    std::fs::rename(temp, info_path).unwrap();
    cluster
}

async fn start(dir: &Path, watch_pid: u32) -> TestCluster {
    std::fs::create_dir_all(dir).unwrap();
    give_to_os_user(dir);
    let facts = TestCluster {
        port: free_port(),
        superuser_password: random_token(18),
        authenticator_password: random_token(18),
    };
    let cluster = Cluster::new(
        PgBinaries::locate(None).expect("PostgreSQL server binaries are installed"),
        ClusterOptions {
            pgdata: dir.join("pgdata"),
            port: facts.port,
            superuser_password: facts.superuser_password.clone(),
            os_user: OS_USER.to_owned(),
            durable: false,
            watch_pid,
            remove_on_exit: Some(PathBuf::from(dir)),
            extra_settings: Vec::new(),
        },
    )
    .expect("test cluster options");
    cluster
        .initialize()
        .await
        .expect("initdb of the test cluster");
    // The watchdog stops the cluster when the run ends; nothing here needs the handle.
    drop(cluster.start().await.expect("starting the test cluster"));

    let admin = manifold_db::connect(&facts.admin_url("postgres"))
        .await
        .unwrap();
    admin
        .execute(&format!("create database {TEMPLATE}"), &[])
        .await
        .unwrap();
    drop(admin);
    prepare_database(
        &facts.admin_url(TEMPLATE),
        Some(&facts.authenticator_password),
    )
    .await
    .expect("migrating the template database");
    facts
}

fn give_to_os_user(dir: &Path) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let user = nix::unistd::User::from_name(OS_USER)
        .unwrap()
        .expect("the postgres OS user exists");
    nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).unwrap();
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database of its own for one test, copied from the migrated template.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// Superuser URL.
    pub admin_url: String,
    /// `authenticator` URL, as the API pool uses.
    pub api_url: String,
}

impl TestDb {
    /// Creates a fresh, fully migrated database.
    pub async fn create() -> TestDb {
        let cluster = cluster().await;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = manifold_db::connect(&cluster.admin_url("postgres"))
            .await
            .unwrap();
        // The name is generated here, never taken from input; DDL cannot take bind parameters.
        admin
            .execute(&format!("create database {name} template {TEMPLATE}"), &[])
            .await
            .expect("copying the template database");
        // Database-level settings are not copied with a template: repeat what the migration
        // schema/0002 set on the template, so sessions find `extensions` as on a real project.
        admin
            .execute(
                &format!("alter database {name} set search_path = \"$user\", public, extensions"),
                &[],
            )
            .await
            .expect("setting the copied database's search_path");
        TestDb {
            admin_url: cluster.admin_url(&name),
            api_url: cluster.api_url(&name),
            name,
        }
    }

    /// A superuser connection to this database.
    pub async fn admin(&self) -> tokio_postgres::Client {
        manifold_db::connect(&self.admin_url).await.unwrap()
    }

    /// Runs trusted fixture SQL (several statements) as the superuser.
    #[allow(
        clippy::disallowed_methods,
        reason = "fixture SQL written by the test itself"
    )]
    pub async fn execute(&self, sql: &str) {
        self.admin()
            .await
            .batch_execute(sql)
            .await
            .expect("fixture SQL runs");
    }
}
