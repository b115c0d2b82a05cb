//! The embedded PostgreSQL: used by `manifold start` when no database URL is configured, and by
//! the test kit for throwaway clusters.

mod binaries;
mod cluster;
mod os_user;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use binaries::PgBinaries;
pub use cluster::{Cluster, ClusterOptions, RunningCluster, SUPERUSER};

/// Where clusters go when the data directory is out of the cluster account's reach.
const RELOCATED_ROOT: &str = "/var/lib/manifold/clusters";

/// Why the embedded cluster could not be prepared, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No `initdb`/`postgres` pair was found.
    #[error(
        "PostgreSQL server binaries not found (searched {searched}); install PostgreSQL 15+ \
         server packages or set database.bin_dir"
    )]
    BinariesNotFound {
        /// Places that were searched.
        searched: String,
    },
    /// Running as root but the unprivileged account does not exist.
    #[error(
        "running as root, but the OS user `{name}` that should run postgres does not exist or is \
         root; create it (e.g. `useradd --system postgres`) or set database.os_user"
    )]
    NoOsUser {
        /// The configured account.
        name: String,
    },
    /// A parent directory cannot be entered by the cluster's account.
    #[error(
        "the postgres data directory {pgdata} is not reachable by OS user `{user}`: it cannot \
         enter {blocked}; choose a data dir it can reach (e.g. --data-dir /var/lib/manifold) or \
         run `chmod o+x {blocked}`"
    )]
    NotTraversable {
        /// The data directory.
        pgdata: PathBuf,
        /// The first directory that blocks access.
        blocked: PathBuf,
        /// The cluster's account.
        user: String,
    },
    /// Another process holds the cluster lock.
    #[error("the data directory {pgdata} is in use by another manifold process")]
    InUse {
        /// The data directory.
        pgdata: PathBuf,
    },
    /// `initdb` exited with an error.
    #[error("initdb failed:\n{output}")]
    InitdbFailed {
        /// What initdb printed.
        output: String,
    },
    /// `postgres` exited or never accepted connections.
    #[error("postgres did not start ({status}); end of its log:\n{log_tail}")]
    StartFailed {
        /// Exit status or timeout.
        status: String,
        /// Last lines of the server log.
        log_tail: String,
    },
    /// A postmaster from an earlier run would not stop.
    #[error("a postgres left running by an earlier run (pid {pid}) did not stop")]
    LeftoverPostmaster {
        /// Its pid.
        pid: i32,
    },
    /// The cluster did not stop within the timeout and was stopped immediately.
    #[error("postgres did not stop in time and was shut down immediately")]
    StopTimedOut,
    /// A file-system or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the cluster of `data_dir` lives: `<data_dir>/pgdata`, unless Manifold runs as root and
/// the cluster's account cannot reach that path (a checkout under `/root`, say). Then the
/// cluster lives under `/var/lib/manifold/clusters/<hash of data_dir>/pgdata`, which it can
/// reach, and the choice is logged.
pub fn pgdata_location(data_dir: &Path, os_user_name: &str) -> Result<PathBuf, EmbeddedError> {
    let preferred = data_dir.join("pgdata");
    let Some(run_as) = os_user::resolve(os_user_name)? else {
        return Ok(preferred);
    };
    if os_user::blocking_ancestor(&preferred, &run_as).is_none() {
        return Ok(preferred);
    }
    let absolute = std::fs::canonicalize(data_dir).map_err(|source| EmbeddedError::Io {
        context: format!("resolving {}", data_dir.display()),
        source,
    })?;
    let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let home = Path::new(RELOCATED_ROOT).join(&hex::encode(digest)[..16]);
    std::fs::create_dir_all(&home).map_err(|source| EmbeddedError::Io {
        context: format!("creating {}", home.display()),
        source,
    })?;
    let relocated = home.join("pgdata");
    if let Some(blocked) = os_user::blocking_ancestor(&relocated, &run_as) {
        return Err(EmbeddedError::NotTraversable {
            pgdata: preferred,
            blocked,
            user: run_as.name,
        });
    }
    tracing::warn!(
        data_dir = %absolute.display(),
        pgdata = %relocated.display(),
        "the data dir is not reachable by the postgres OS user; the cluster lives elsewhere"
    );
    Ok(relocated)
}
