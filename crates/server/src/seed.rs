//! `manifold seed`: brings up the database as `start` does (its own cluster when no URL is
//! configured, migrations applied), writes demo or benchmark data in one transaction, and stops
//! what it started.

use anyhow::Context;
use manifold_config::Config;
use manifold_db::seed::{SeedOptions, SeedReport, seed_url};

use crate::start::prepare;

/// Runs the seed and prints what was written and how to sign in.
pub async fn run(config: Config, options: SeedOptions) -> anyhow::Result<()> {
    let prepared = prepare(config).await?;
    tracing::info!(
        organizations = options.organizations,
        bottles_per_org = options.bottles_per_org,
        "seeding"
    );
    let seeded = seed_url(&prepared.admin_url, &options).await;
    prepared.state.db.pool().close();
    if let Some(cluster) = prepared.cluster {
        cluster
            .stop()
            .await
            .context("stopping the embedded postgres")?;
    }
    let report = seeded?;
    print_report(&options, &report);
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "the summary of what was seeded is the command's output"
)]
fn print_report(options: &SeedOptions, report: &SeedReport) {
    println!(
        "seeded {} organization(s): {} cylinders, {} events, {} deliveries in {:.1} s",
        report.organizations.len(),
        report.bottles,
        report.events,
        report.deliveries,
        report.elapsed_ms as f64 / 1000.0
    );
    for organization in &report.organizations {
        println!(
            "  {} ({}): sign in as owner|admin|manager|plant|viewer|driver1..{}@{}.test",
            organization.slug, organization.id, options.drivers_per_org, organization.slug
        );
    }
    println!("  password for every seeded user: {}", options.password);
}
