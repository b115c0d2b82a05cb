//! Finding the installed PostgreSQL server binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::EmbeddedError;

/// Where Debian and Ubuntu install versioned server binaries.
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";

/// The directory holding `initdb` and `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// Finds the binaries: the configured directory, then `PATH`, then `pg_config --bindir`,
    /// then the newest `/usr/lib/postgresql/*/bin`.
    pub fn locate(configured: Option<&Path>) -> Result<Self, EmbeddedError> {
        if let Some(dir) = configured {
            return Self::in_dir(dir).ok_or_else(|| EmbeddedError::BinariesNotFound {
                searched: format!("{} (database.bin_dir)", dir.display()),
            });
        }
        let from_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path).find_map(|dir| {
                let postgres = std::fs::canonicalize(dir.join("postgres")).ok()?;
                Self::in_dir(postgres.parent()?)
            })
        });
        if let Some(found) = from_path {
            return Ok(found);
        }
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| {
                let dir = String::from_utf8(output.stdout).ok()?;
                Self::in_dir(Path::new(dir.trim()))
            });
        if let Some(found) = from_pg_config {
            return Ok(found);
        }
        newest_debian_install().ok_or_else(|| EmbeddedError::BinariesNotFound {
            searched: format!("PATH, pg_config --bindir, {DEBIAN_LIB_DIR}/*/bin"),
        })
    }

    fn in_dir(dir: &Path) -> Option<Self> {
        let has = |name: &str| dir.join(name).is_file();
        (has("postgres") && has("initdb")).then(|| Self {
            dir: dir.to_owned(),
        })
    }

    /// Path of one server program, e.g. `initdb`.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn newest_debian_install() -> Option<PgBinaries> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_LIB_DIR)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find_map(|(_, dir)| PgBinaries::in_dir(&dir))
}
