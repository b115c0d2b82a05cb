//! `manifold`: `start` serves the APIs (with its own PostgreSQL when no database URL is set);
//! `keys` prints the stored keys.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use manifold_config::Config;
use tracing_subscriber::EnvFilter;

/// Default log filter; `MANIFOLD_LOG` or `RUST_LOG` override it.
const DEFAULT_LOG_FILTER: &str = "info,tokio_postgres=warn";
/// Config file read from the working directory when `--config` is not given.
const DEFAULT_CONFIG_FILE: &str = "manifold.toml";

#[derive(Parser)]
#[command(
    name = "manifold",
    version,
    about = "Supabase-compatible backend in one binary"
)]
struct Cli {
    /// TOML config file (default: ./manifold.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (cluster, keys, objects); overrides the config file.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server (and the embedded PostgreSQL when no database URL is configured).
    Start,
    /// Print the stored API keys and secrets.
    Keys {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = std::env::var("MANIFOLD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_LOG_FILTER.to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter).context("invalid log filter")?)
        .with_writer(std::io::stderr)
        .init();

    let config_file = cli.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_FILE);
        default.is_file().then_some(default)
    });
    let mut config = Config::load(config_file.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }

    match cli.command {
        Command::Start => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(manifold_server::start::run(config)),
        Command::Keys { json } => print_keys(&config, json),
    }
}

#[allow(
    clippy::print_stdout,
    reason = "printing the keys is what the command is for"
)]
fn print_keys(config: &Config, json: bool) -> anyhow::Result<()> {
    let secrets = manifold_server::secrets::load(&config.data_dir)?;
    let keys = secrets.keys.with_overrides(&config.auth)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
    } else {
        println!("      JWT secret: {}", keys.jwt_secret);
        println!("        anon key: {}", keys.anon_key);
        println!("service_role key: {}", keys.service_role_key);
        println!(" Publishable key: {}", keys.publishable_key);
        println!("      Secret key: {}", keys.secret_key);
    }
    Ok(())
}
