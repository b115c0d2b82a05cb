//! `/auth/v1` benchmark: token refresh rate and password sign-in rate under concurrency, next to
//! `GET /auth/v1/health` as the HTTP baseline of the same run. Anchors (PocketBase on 2 vCPU):
//! about 2,900 refreshes/s and 28 password logins/s.
//!
//! `cargo run --release -p manifold-bench --bin auth [seconds]`

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use manifold_bench::{Latencies, run_for};
use manifold_testkit::{TestDb, TestServer};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const REFRESH_CONCURRENCY: usize = 32;
const SIGN_IN_CONCURRENCY: usize = 8;
const PASSWORD: &str = "bench-password-1";

struct Target {
    http: reqwest::Client,
    base: String,
    anon: String,
}

impl Target {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("apikey", &self.anon)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("{path}: {status} {body}");
        }
        Ok(body)
    }
}

fn report(name: &str, rate: f64, latencies: &mut Latencies, anchor: Option<&str>) {
    #[allow(clippy::print_stdout, reason = "the benchmark's report is its output")]
    {
        if let (errors @ 1.., first) = latencies.failures() {
            println!(
                "{name}: FAILED {errors} requests; first: {}",
                first.unwrap_or("?")
            );
        }
        println!(
            "{name:<28} {rate:>9.1} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   n={}{}",
            latencies.quantile_ms(0.5),
            latencies.quantile_ms(0.99),
            latencies.count(),
            anchor
                .map(|a| format!("   (anchor: {a})"))
                .unwrap_or_default()
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse())
        .transpose()
        .context("the argument is the duration of each run in seconds")?
        .unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    let db = TestDb::create().await;
    let server = TestServer::start_with(&db, |config| {
        // Measure the work, not the limiter.
        config.auth.rate_limit.token_per_5min = 0;
        config.auth.rate_limit.signup_per_5min = 0;
        config.database.pool_size = 32;
    })
    .await;
    let target = Arc::new(Target {
        http: reqwest::Client::new(),
        base: server.url.clone(),
        anon: server.keys.anon_key.clone(),
    });

    // Baseline: the cheapest authenticated-gateway route.
    let (rate, mut latencies) = run_for(REFRESH_CONCURRENCY, duration, {
        let target = target.clone();
        move |_| {
            let target = target.clone();
            async move {
                let response = target
                    .http
                    .get(format!("{}/auth/v1/health", target.base))
                    .header("apikey", &target.anon)
                    .send()
                    .await?;
                response.error_for_status()?;
                Ok(())
            }
        }
    })
    .await;
    report("baseline GET /health", rate, &mut latencies, None);

    // One user and session chain per refresh worker: each refresh rotates the token.
    let mut chains = Vec::new();
    for worker in 0..REFRESH_CONCURRENCY {
        let session = target
            .post(
                "/auth/v1/signup",
                &json!({"email": format!("bench-{worker}@example.com"), "password": PASSWORD}),
            )
            .await?;
        let token = session["refresh_token"]
            .as_str()
            .context("sign-up returned no refresh token")?
            .to_owned();
        chains.push(Arc::new(Mutex::new(token)));
    }
    let chains = Arc::new(chains);
    let (rate, mut latencies) = run_for(REFRESH_CONCURRENCY, duration, {
        let target = target.clone();
        let chains = chains.clone();
        move |iteration| {
            let target = target.clone();
            let chain = chains[iteration / 1_000_000].clone();
            async move {
                let mut token = chain.lock().await;
                let session = target
                    .post(
                        "/auth/v1/token?grant_type=refresh_token",
                        &json!({"refresh_token": *token}),
                    )
                    .await?;
                *token = session["refresh_token"]
                    .as_str()
                    .context("no refresh token")?
                    .to_owned();
                Ok(())
            }
        }
    })
    .await;
    report(
        "refresh (rotation)",
        rate,
        &mut latencies,
        Some("PocketBase ~2.9k/s"),
    );

    let (rate, mut latencies) = run_for(SIGN_IN_CONCURRENCY, duration, {
        let target = target.clone();
        move |iteration| {
            let target = target.clone();
            async move {
                let worker = iteration / 1_000_000;
                target
                    .post(
                        "/auth/v1/token?grant_type=password",
                        &json!({"email": format!("bench-{worker}@example.com"), "password": PASSWORD}),
                    )
                    .await?;
                Ok(())
            }
        }
    })
    .await;
    report(
        "password sign-in (bcrypt 10)",
        rate,
        &mut latencies,
        Some("PocketBase ~28/s"),
    );
    Ok(())
}
