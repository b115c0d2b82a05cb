//! `manifold`: `start` serves the APIs (with its own PostgreSQL when no database URL is set);
//! `keys` prints the stored keys; `seed` writes demo or benchmark data.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use manifold_config::Config;
use manifold_db::seed::SeedOptions;
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
    /// Write gas-cylinder data: a demo organization (default) or benchmark scale.
    Seed(SeedArgs),
}

/// `manifold seed`: a preset, then any of its numbers overridden.
#[derive(clap::Args)]
struct SeedArgs {
    /// One organization, a user per role, 200 customers, 5,000 cylinders, six months of history.
    #[arg(long, conflicts_with = "scale")]
    demo: bool,
    /// Ten organizations with 100,000 cylinders each (1M) and a year of history (~12M events).
    #[arg(long)]
    scale: bool,
    /// Number of organizations.
    #[arg(long)]
    organizations: Option<u32>,
    /// Cylinders per organization.
    #[arg(long)]
    bottles: Option<u32>,
    /// Customers per organization.
    #[arg(long)]
    customers: Option<u32>,
    /// Drivers (and trucks) per organization.
    #[arg(long)]
    drivers: Option<u32>,
    /// Complete delivery rounds per cylinder (about five events each).
    #[arg(long)]
    rounds: Option<u32>,
    /// Days of history.
    #[arg(long)]
    days: Option<u32>,
    /// Organization slug; users are <role>@<slug>.test.
    #[arg(long)]
    slug: Option<String>,
    /// Password of every seeded user.
    #[arg(long)]
    password: Option<String>,
}

impl SeedArgs {
    fn options(self) -> SeedOptions {
        let mut options = if self.scale {
            SeedOptions::scale()
        } else {
            SeedOptions::demo()
        };
        options.organizations = self.organizations.unwrap_or(options.organizations);
        options.bottles_per_org = self.bottles.unwrap_or(options.bottles_per_org);
        options.customers_per_org = self.customers.unwrap_or(options.customers_per_org);
        options.drivers_per_org = self.drivers.unwrap_or(options.drivers_per_org);
        options.turns = self.rounds.unwrap_or(options.turns);
        options.history_days = self.days.unwrap_or(options.history_days);
        options.slug = self.slug.unwrap_or(options.slug);
        options.password = self.password.unwrap_or(options.password);
        options
    }
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

    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
    };
    match cli.command {
        Command::Start => runtime()?.block_on(manifold_server::start::run(config)),
        Command::Keys { json } => print_keys(&config, json),
        Command::Seed(args) => {
            runtime()?.block_on(manifold_server::seed::run(config, args.options()))
        }
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
