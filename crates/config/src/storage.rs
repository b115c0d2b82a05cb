//! `[storage]`: where object bytes live and the limits uploads obey.

use serde::Deserialize;

/// Storage settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Largest object accepted by any bucket, in bytes.
    pub max_file_size: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_file_size: 50 * 1024 * 1024 * 1024,
        }
    }
}
