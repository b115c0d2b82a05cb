//! `manifold seed`: demo and benchmark data for the gas-cylinder domain. The generator is SQL
//! (`seed.sql`, embedded) that runs set-based inside PostgreSQL in one transaction, so a seed
//! either lands whole or not at all.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::DbError;

/// The generator: temporary functions, created for this session only.
const SEED_FUNCTIONS: &str = include_str!("seed.sql");
const RUN_SQL: &str = "select pg_temp.manifold_seed($1::text::jsonb)::text";
/// Planner statistics for the bulk-written tables, so the first queries plan well.
const ANALYZE_SQL: &str = "analyze public.bottles, public.bottle_events, public.rentals, \
     public.deliveries, public.delivery_items, public.routes, public.customers, public.profiles";

/// What to generate. Every organization gets the same shape of data.
#[derive(Debug, Clone, Serialize)]
pub struct SeedOptions {
    /// Number of organizations (tenants).
    pub organizations: u32,
    /// Cylinders per organization.
    pub bottles_per_org: u32,
    /// Customers per organization.
    pub customers_per_org: u32,
    /// Drivers (each with a truck) per organization.
    pub drivers_per_org: u32,
    /// Complete fill-deliver-return rounds per cylinder (about five events each).
    pub turns: u32,
    /// Days of history.
    pub history_days: u32,
    /// Organization slug (numbered `-1`, `-2`… when there are several); user emails are
    /// `<role>@<slug>.test`.
    pub slug: String,
    /// Password of every seeded user.
    pub password: String,
    /// Builds the bulk tables' secondary indexes once at the end instead of row by row (takes
    /// exclusive locks on them: for fresh benchmark databases).
    pub bulk: bool,
}

impl SeedOptions {
    /// A realistic demo organization: a user per role, 200 customers, 5,000 cylinders with six
    /// months of rounds and deliveries (about 85k events).
    pub fn demo() -> Self {
        Self {
            organizations: 1,
            bottles_per_org: 5_000,
            customers_per_org: 200,
            drivers_per_org: 4,
            turns: 3,
            history_days: 180,
            slug: "demo-gas".to_owned(),
            password: "demo-password".to_owned(),
            bulk: false,
        }
    }

    /// Benchmark scale: 10 organizations with 100k cylinders each (1M), a year of history
    /// (about 12M events).
    pub fn scale() -> Self {
        Self {
            organizations: 10,
            bottles_per_org: 100_000,
            customers_per_org: 2_000,
            drivers_per_org: 20,
            turns: 2,
            history_days: 365,
            slug: "scale-gas".to_owned(),
            password: "demo-password".to_owned(),
            bulk: true,
        }
    }
}

/// One seeded organization.
#[derive(Debug, Clone, Deserialize)]
pub struct SeededOrganization {
    /// Its id.
    pub id: String,
    /// Its slug (users are `<role>@<slug>.test`).
    pub slug: String,
}

/// What a seed wrote.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedReport {
    /// The organizations created.
    pub organizations: Vec<SeededOrganization>,
    /// Cylinders written.
    pub bottles: u64,
    /// Events written.
    pub events: u64,
    /// Deliveries written.
    pub deliveries: u64,
    /// Time spent inside PostgreSQL generating the rows.
    pub elapsed_ms: u64,
}

/// Why a seed failed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The database refused (e.g. the organization exists, or the role is not a superuser).
    #[error("seeding failed: {}", explain(.0))]
    Database(#[from] tokio_postgres::Error),
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] DbError),
    /// The generator's report could not be read.
    #[error("unreadable seed report")]
    Report(#[from] serde_json::Error),
}

/// The server's message and hint, which say what to do (tokio-postgres prints only "db error").
fn explain(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    }
}

/// Seeds `options` through `client` (a superuser connection: the bulk tables are written with
/// triggers off). One transaction: on any error nothing is left behind.
pub async fn seed(client: &mut Client, options: &SeedOptions) -> Result<SeedReport, SeedError> {
    let transaction = client.transaction().await?;
    #[allow(
        clippy::disallowed_methods,
        reason = "the generator is a trusted file embedded in the binary, like the migrations"
    )]
    transaction.batch_execute(SEED_FUNCTIONS).await?;
    transaction
        .execute("set local statement_timeout = 0", &[])
        .await?;
    let options_json = serde_json::to_string(options)?;
    let row = transaction.query_one(RUN_SQL, &[&options_json]).await?;
    let report: String = row.get(0);
    transaction.execute(ANALYZE_SQL, &[]).await?;
    transaction.commit().await?;
    Ok(serde_json::from_str(&report)?)
}

/// Seeds into the database at `admin_url`.
pub async fn seed_url(admin_url: &str, options: &SeedOptions) -> Result<SeedReport, SeedError> {
    let mut client = crate::connect(admin_url).await?;
    seed(&mut client, options).await
}
