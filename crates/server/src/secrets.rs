//! `keys.json` in the data dir: the JWT secret, API keys and database passwords generated on
//! first run (file mode 0600). Later runs reuse them; configured values win.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use manifold_auth::ProjectKeys;
use manifold_auth::keys::random_token;
use manifold_config::Config;
use serde::{Deserialize, Serialize};

/// The file name inside the data dir.
const FILE_NAME: &str = "keys.json";

/// Everything secret that Manifold generates for itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataDirSecrets {
    /// JWT secret and API keys.
    #[serde(flatten)]
    pub keys: ProjectKeys,
    /// Password of the embedded cluster's `postgres` superuser.
    pub postgres_password: String,
    /// Password of the `authenticator` login role used by the API pool.
    pub authenticator_password: String,
}

/// Path of the secrets file.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Loads the stored secrets, or generates and stores them. Returns whether they were created.
pub fn load_or_create(config: &Config) -> anyhow::Result<(DataDirSecrets, bool)> {
    let file = path(&config.data_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let mut stored: DataDirSecrets = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid keys file", file.display()))?;
            let stored_secret = stored.keys.jwt_secret.clone();
            stored.keys = stored.keys.with_overrides(&config.auth)?;
            // A configured secret that differs from the stored one re-signs the legacy keys:
            // store them, or every restart would sign (and `manifold keys` print) new ones.
            if stored.keys.jwt_secret != stored_secret {
                write_private(&file, &serde_json::to_vec_pretty(&stored)?)?;
            }
            Ok((stored, false))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secrets = DataDirSecrets {
                keys: ProjectKeys::generate(&config.auth)?,
                postgres_password: random_token(24),
                authenticator_password: random_token(24),
            };
            write_private(&file, &serde_json::to_vec_pretty(&secrets)?)?;
            Ok((secrets, true))
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", file.display())),
    }
}

/// Reads the stored secrets without creating them (for `manifold keys`).
pub fn load(data_dir: &Path) -> anyhow::Result<DataDirSecrets> {
    let file = path(data_dir);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("no keys in {}; run `manifold start` first", file.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Writes `contents` to `file` with mode 0600, atomically (temp file, fsync, rename).
fn write_private(file: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let temp = file.with_extension("json.tmp");
    let mut handle = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    handle.write_all(contents)?;
    handle.sync_all()?;
    std::fs::rename(&temp, file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use manifold_config::Secret;

    use super::*;

    #[test]
    fn a_changed_secret_re_signs_the_keys_once_and_later_starts_reuse_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let (first, created) = load_or_create(&config).unwrap();
        assert!(created);

        config.auth.jwt_secret = Some(Secret::new("a-configured-secret-of-32-characters!!"));
        let (changed, created) = load_or_create(&config).unwrap();
        assert!(!created);
        assert_ne!(changed.keys.anon_key, first.keys.anon_key);
        assert_eq!(changed.keys.publishable_key, first.keys.publishable_key);

        let (again, _) = load_or_create(&config).unwrap();
        assert_eq!(again.keys.anon_key, changed.keys.anon_key);
        assert_eq!(again.keys.service_role_key, changed.keys.service_role_key);
        assert_eq!(
            load(dir.path()).unwrap().keys.anon_key,
            changed.keys.anon_key
        );
    }
}
