//! Manifold settings: types with defaults, loaded from one TOML file and overridden by
//! `MANIFOLD_*` environment variables (`MANIFOLD_API__LISTEN`, `MANIFOLD_REST__MAX_ROWS`, ...).
//! Secrets are wrapped in [`Secret`] so they never print.

mod auth;
mod env;
mod realtime;
mod secret;
mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use auth::{AuthConfig, RateLimitConfig, SmtpConfig, SmtpTls};
pub use realtime::RealtimeConfig;
pub use secret::Secret;
pub use storage::{EtagAlgorithm, S3Config, StorageBackend, StorageConfig, parse_byte_size};

/// Default port of the HTTP API, the same as `supabase start`.
pub const DEFAULT_API_PORT: u16 = 54321;
/// Default port of the embedded PostgreSQL, the same as `supabase start`.
pub const DEFAULT_DB_PORT: u16 = 54322;
/// Shortest HS256 secret accepted; Supabase refuses anything under 32 characters.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// Every setting of a Manifold process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding the embedded cluster, generated keys and local object storage.
    pub data_dir: PathBuf,
    /// HTTP listener and gateway behaviour.
    pub api: ApiConfig,
    /// Database connection (external URL or the embedded cluster).
    pub database: DatabaseConfig,
    /// JWT secret, API keys and token lifetimes.
    pub auth: AuthConfig,
    /// PostgREST-equivalent knobs for `/rest/v1`.
    pub rest: RestConfig,
    /// `/storage/v1`: object store and limits.
    pub storage: StorageConfig,
    /// `/realtime/v1`: limits and replication.
    pub realtime: RealtimeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".manifold"),
            api: ApiConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            rest: RestConfig::default(),
            storage: StorageConfig::default(),
            realtime: RealtimeConfig::default(),
        }
    }
}

/// HTTP listener and gateway settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the API binds to.
    pub listen: SocketAddr,
    /// Public base URL used in links (defaults to `http://<listen>`).
    pub external_url: Option<String>,
    /// Require an `apikey` header or query parameter on `/rest/v1` and `/auth/v1`, as hosted
    /// Supabase does. When off, a request without key or bearer runs as anon.
    pub require_apikey: bool,
    /// Origins allowed by CORS; `["*"]` allows any origin, as Supabase's gateway does.
    pub cors_allowed_origins: Vec<String>,
    /// Largest JSON request body accepted by `/rest/v1` and `/auth/v1`, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after a shutdown signal, in seconds.
    pub shutdown_grace_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT)),
            external_url: None,
            require_apikey: true,
            cors_allowed_origins: vec!["*".to_owned()],
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

impl ApiConfig {
    /// The base URL clients use, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.external_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// Database settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// An external database (`postgresql://…`). Unset: Manifold runs its own cluster in
    /// `data_dir`. `DATABASE_URL` is read as well.
    pub url: Option<Secret>,
    /// Connection URL for API requests; defaults to `url`. Point it at a login role such as
    /// `authenticator` that may switch to `anon`, `authenticated` and `service_role`.
    pub api_url: Option<Secret>,
    /// Port of the embedded cluster.
    pub port: u16,
    /// Directory of the PostgreSQL server binaries; found automatically when unset.
    pub bin_dir: Option<PathBuf>,
    /// OS user that runs the embedded cluster when Manifold runs as root.
    pub os_user: String,
    /// Connections in the API pool.
    pub pool_size: usize,
    /// How long a request waits for a pooled connection, in milliseconds.
    pub pool_timeout_ms: u64,
    /// Extra `postgresql.conf` lines for the embedded cluster, e.g. `shared_buffers = '1GB'`.
    pub settings: Vec<String>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_url: None,
            port: DEFAULT_DB_PORT,
            bin_dir: None,
            os_user: "postgres".to_owned(),
            pool_size: 16,
            pool_timeout_ms: 10_000,
            settings: Vec::new(),
        }
    }
}

/// What `Prefer: tx=` may do, as PostgREST's `db-tx-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxEnd {
    /// Always commit; `Prefer: tx=rollback` is ignored.
    Commit,
    /// Commit by default; `Prefer: tx=rollback` is honoured.
    CommitAllowOverride,
    /// Always roll back.
    Rollback,
    /// Roll back by default; `Prefer: tx=commit` is honoured.
    RollbackAllowOverride,
}

/// PostgREST configuration knobs, under the same names with `_` for `-`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Exposed schemas (`db-schemas`); the first is the default profile.
    pub schemas: Vec<String>,
    /// Role for requests without a JWT (`db-anon-role`).
    pub anon_role: String,
    /// Schemas appended to `search_path` (`db-extra-search-path`).
    pub extra_search_path: Vec<String>,
    /// Cap on rows returned by one read (`db-max-rows`); `None` means no cap.
    pub max_rows: Option<u64>,
    /// Function called in every request transaction (`db-pre-request`), `schema.fn`.
    pub pre_request: Option<String>,
    /// Serve `Accept: application/vnd.pgrst.plan` (`db-plan-enabled`).
    pub plan_enabled: bool,
    /// Allow aggregate functions in `select` (`db-aggregates-enabled`).
    pub aggregates_enabled: bool,
    /// How request transactions end (`db-tx-end`).
    pub tx_end: TxEnd,
    /// Required `aud` claim (`jwt-aud`).
    pub jwt_aud: Option<String>,
    /// Path of the role claim (`jwt-role-claim-key`), e.g. `.role` or `.app_metadata.role`.
    pub jwt_role_claim_key: String,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            schemas: vec!["public".to_owned()],
            anon_role: "anon".to_owned(),
            extra_search_path: vec!["public".to_owned(), "extensions".to_owned()],
            max_rows: Some(1000),
            pre_request: None,
            plan_enabled: false,
            aggregates_enabled: false,
            tx_end: TxEnd::CommitAllowOverride,
            jwt_aud: None,
            jwt_role_claim_key: ".role".to_owned(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file or an environment override is not valid TOML for these settings.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// An environment variable names a setting that does not exist.
    #[error("unknown setting in environment variable {0}")]
    UnknownEnv(String),
    /// A value is out of range or inconsistent with another one.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path` (if given) and applies overrides from `vars`, normally `std::env::vars()`.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        let mut table: toml::Table = toml::from_str(&text)?;
        env::apply_overrides(&mut table, vars)?;
        let config: Config = table.try_into()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot: ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < MIN_JWT_SECRET_LEN
        {
            return Err(ConfigError::Invalid(format!(
                "auth.jwt_secret must be at least {MIN_JWT_SECRET_LEN} characters"
            )));
        }
        if self.rest.schemas.is_empty() {
            return Err(ConfigError::Invalid(
                "rest.schemas must name at least one schema".into(),
            ));
        }
        if self.database.pool_size == 0 {
            return Err(ConfigError::Invalid(
                "database.pool_size must be at least 1".into(),
            ));
        }
        if !self.auth.allowed_roles.contains(&self.rest.anon_role) {
            return Err(ConfigError::Invalid(format!(
                "rest.anon_role `{}` must be listed in auth.allowed_roles",
                self.rest.anon_role
            )));
        }
        if !self.rest.jwt_role_claim_key.starts_with('.') {
            return Err(ConfigError::Invalid(
                "rest.jwt_role_claim_key must start with `.`, e.g. `.role`".into(),
            ));
        }
        Ok(())
    }

    /// True when Manifold runs its own PostgreSQL cluster in the data dir.
    pub fn uses_embedded_database(&self) -> bool {
        self.database.url.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("manifold-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.toml", toml_text.len()));
        std::fs::write(&file, toml_text).unwrap();
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load(Some(&file), vars)
    }

    #[test]
    fn defaults_match_supabase_local_ports() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert_eq!(config.api.listen.port(), 54321);
        assert_eq!(config.database.port, 54322);
        assert!(config.api.require_apikey);
        assert_eq!(config.rest.max_rows, Some(1000));
        assert!(config.uses_embedded_database());
    }

    #[test]
    fn file_values_then_env_overrides() {
        let config = load(
            "[api]\nlisten = \"127.0.0.1:9000\"\n[rest]\nmax_rows = 50\n",
            &[
                ("MANIFOLD_REST__MAX_ROWS", "20"),
                ("MANIFOLD_API__REQUIRE_APIKEY", "false"),
            ],
        )
        .unwrap();
        assert_eq!(config.api.listen.port(), 9000);
        assert_eq!(config.rest.max_rows, Some(20));
        assert!(!config.api.require_apikey);
    }

    #[test]
    fn database_url_env_aliases() {
        let config = load("", &[("DATABASE_URL", "postgresql://u@h/db")]).unwrap();
        assert_eq!(config.database.url.unwrap().expose(), "postgresql://u@h/db");
    }

    #[test]
    fn string_env_values_stay_strings() {
        let config = load(
            "",
            &[(
                "MANIFOLD_AUTH__JWT_SECRET",
                "12345678901234567890123456789012345",
            )],
        )
        .unwrap();
        assert_eq!(config.auth.jwt_secret.unwrap().expose().len(), 35);
    }

    #[test]
    fn short_secret_is_refused() {
        let error = load("[auth]\njwt_secret = \"short\"\n", &[]).unwrap_err();
        assert!(error.to_string().contains("at least 32"), "{error}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(load("[api]\nlisen = \"x\"\n", &[]).is_err());
        assert!(matches!(
            load("", &[("MANIFOLD_NOPE", "1")]),
            Err(ConfigError::UnknownEnv(_))
        ));
    }

    #[test]
    fn list_values_from_env() {
        let config = load("", &[("MANIFOLD_REST__SCHEMAS", "[\"public\", \"api\"]")]).unwrap();
        assert_eq!(config.rest.schemas, ["public", "api"]);
    }
}
