//! Running the cluster as an unprivileged OS user when Manifold itself runs as root: PostgreSQL
//! refuses to start as root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use super::EmbeddedError;

/// The OS account that owns and runs the cluster.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    pub(crate) name: String,
}

/// The account to switch to, or `None` when Manifold is not root and runs the cluster itself.
pub(crate) fn resolve(os_user: &str) -> Result<Option<RunAs>, EmbeddedError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name(os_user)
        .ok()
        .flatten()
        .ok_or_else(|| EmbeddedError::NoOsUser {
            name: os_user.to_owned(),
        })?;
    if user.uid.is_root() {
        return Err(EmbeddedError::NoOsUser {
            name: os_user.to_owned(),
        });
    }
    Ok(Some(RunAs {
        uid: user.uid,
        gid: user.gid,
        name: user.name,
    }))
}

/// The first directory on the way to `path` that `run_as` may not enter, if any. The child
/// process drops supplementary groups, so only the primary group counts.
pub(crate) fn blocking_ancestor(path: &Path, run_as: &RunAs) -> Option<PathBuf> {
    path.ancestors().skip(1).find_map(|dir| {
        let meta = std::fs::metadata(dir).ok()?;
        let mode = meta.mode();
        let allowed = if meta.uid() == run_as.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == run_as.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!allowed).then(|| dir.to_owned())
    })
}

/// Hands `path` to the cluster's account.
pub(crate) fn give(path: &Path, run_as: &RunAs) -> Result<(), EmbeddedError> {
    nix::unistd::chown(path, Some(run_as.uid), Some(run_as.gid)).map_err(|errno| {
        EmbeddedError::Io {
            context: format!("chown {} to {}", path.display(), run_as.name),
            source: std::io::Error::from(errno),
        }
    })
}
