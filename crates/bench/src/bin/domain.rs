//! Domain query benchmark (DOMAIN.md §10): seeds the `--scale` data set (10 organizations, 1M
//! cylinders, ~12M events) into a throwaway cluster, starts a release `manifold`, and measures
//! the latency of each §10 query through `/rest/v1` as a driver and as a manager of one
//! organization (RLS decides what each sees), next to the table's target.
//!
//! Run: `cargo build --release -p manifold-server -p manifold-bench && target/release/domain`
//! Options (env): BENCH_ORGS (default 10), BENCH_BOTTLES (per organization, default 100000),
//! BENCH_REQUESTS (per query and role, default 200).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::Instant;

use anyhow::{Context, bail};
use manifold_bench::Latencies;
use manifold_bench::process::{ServerProcess, env_number, sibling_binary};
use manifold_db::seed::{SeedOptions, seed};
use manifold_testkit::{TestDb, mint_jwt};
use serde_json::{Value, json};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-123";
/// Requests per query before measuring (plans and caches warm).
const WARMUP: usize = 10;

struct Query {
    name: &'static str,
    target_ms: f64,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
}

fn get(name: &'static str, target_ms: f64, path: String) -> Query {
    Query {
        name,
        target_ms,
        method: reqwest::Method::GET,
        path,
        body: None,
    }
}

fn rpc(name: &'static str, target_ms: f64, function: &str, body: Value) -> Query {
    Query {
        name,
        target_ms,
        method: reqwest::Method::POST,
        path: format!("/rpc/{function}"),
        body: Some(body),
    }
}

/// Values the queries ask about, picked from organization 1's data.
struct Sample {
    driver: String,
    manager: String,
    barcode: String,
    customer: String,
    bottle: String,
    route: String,
}

async fn sample(db: &TestDb, org: &str) -> anyhow::Result<Sample> {
    let client = db.admin().await;
    let text = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[&org])
                .await
                .map(|row| row.get::<_, String>(0))
                .with_context(|| format!("sampling: {sql}"))
        }
    };
    let slug = text("select slug from public.organizations where id = $1::text::uuid").await?;
    let user = |role: &str| {
        let client = &client;
        let email = format!("{role}@{slug}.test");
        async move {
            client
                .query_one(
                    "select id::text from auth.users where email = $1",
                    &[&email],
                )
                .await
                .map(|row| row.get::<_, String>(0))
                .with_context(|| format!("no seeded user {email}"))
        }
    };
    Ok(Sample {
        driver: user("driver1").await?,
        manager: user("manager").await?,
        barcode: text(
            "select barcode_number from public.bottles where organization_id = $1::text::uuid \
             order by serial_number offset 777 limit 1",
        )
        .await?,
        customer: text(
            "select current_customer_id::text from public.bottles \
             where organization_id = $1::text::uuid and status = 'at_customer' \
             group by 1 order by count(*) desc limit 1",
        )
        .await?,
        bottle: text(
            "select id::text from public.bottles where organization_id = $1::text::uuid \
             order by serial_number offset 4242 limit 1",
        )
        .await?,
        route: text(
            "select id::text from public.routes where organization_id = $1::text::uuid \
             and route_date < current_date order by route_date desc limit 1",
        )
        .await?,
    })
}

fn queries(s: &Sample, today: &str, month: (&str, &str), due_by: &str) -> Vec<Query> {
    vec![
        get(
            "scan lookup (barcode)",
            5.0,
            format!(
                "/bottles?barcode_number=eq.{}&deleted_at=is.null\
                 &select=id,status,fill_state,current_customer_id,next_inspection_date",
                s.barcode
            ),
        ),
        rpc(
            "scan lookup (rpc lookup_bottle)",
            5.0,
            "lookup_bottle",
            json!({"p_code": s.barcode}),
        ),
        rpc(
            "customer current balance",
            20.0,
            "customer_balance",
            json!({"p_customer_id": s.customer}),
        ),
        get(
            "rental run, one customer-month",
            200.0,
            format!(
                "/rentals?customer_id=eq.{}&rental_start_date=lte.{}&or=(rental_end_date.is.null,rental_end_date.gte.{})\
                 &select=bottle_id,bottle_type_id,rental_start_date,rental_end_date",
                s.customer, month.1, month.0
            ),
        ),
        get(
            "aging (oldest at customers)",
            100.0,
            "/bottles?status=eq.at_customer&order=last_event_at.asc&limit=50\
             &select=id,serial_number,current_customer_id,last_event_at"
                .to_owned(),
        ),
        rpc(
            "aging (rpc aging_report, 60+ days)",
            100.0,
            "aging_report",
            json!({"p_min_days": 60}),
        ),
        get(
            "requalification due",
            100.0,
            format!(
                "/bottles?deleted_at=is.null&status=not.in.(retired,condemned)&next_inspection_date=lte.{due_by}\
                 &order=next_inspection_date&limit=50&select=id,serial_number,next_inspection_date"
            ),
        ),
        get(
            "cylinder history",
            10.0,
            format!(
                "/bottle_events?bottle_id=eq.{}&order=occurred_at.desc&limit=50\
                 &select=id,event_type,occurred_at,from_status,to_status,customer_id",
                s.bottle
            ),
        ),
        get(
            "driver's route today",
            10.0,
            format!(
                "/deliveries?driver_id=eq.{}&delivery_date=eq.{today}&order=stop_sequence\
                 &select=id,status,stop_sequence,window_start,customers(name,address,delivery_instructions)",
                s.driver
            ),
        ),
        get(
            "dispatch board",
            50.0,
            format!(
                "/deliveries?delivery_date=eq.{today}&order=status,stop_sequence\
                 &select=id,status,driver_id,customer_id,stop_sequence"
            ),
        ),
        get(
            "dashboard (business_metrics)",
            200.0,
            "/business_metrics".to_owned(),
        ),
        get(
            "customer search (name ilike)",
            50.0,
            "/customers?name=ilike.*weld*&order=name&limit=20&select=id,name,account_number"
                .to_owned(),
        ),
        get(
            "truck reconciliation (route)",
            200.0,
            format!(
                "/bottle_events?route_id=eq.{}&select=id,event_type,bottle_id,occurred_at",
                s.route
            ),
        ),
        get(
            "audit log browse",
            100.0,
            "/audit_logs?order=occurred_at.desc&limit=50&select=id,table_name,action,occurred_at"
                .to_owned(),
        ),
    ]
}

/// Measures one query as one role: sequential requests (latency, not throughput).
async fn measure(
    http: &reqwest::Client,
    base: &str,
    anon: &str,
    token: &str,
    query: &Query,
    requests: usize,
) -> anyhow::Result<(Latencies, u16, usize)> {
    let url = format!("{base}/rest/v1{}", query.path);
    let mut latencies = Latencies::default();
    let mut status = 0;
    let mut rows = 0;
    for n in 0..WARMUP + requests {
        let mut request = http
            .request(query.method.clone(), &url)
            .header("apikey", anon)
            .header("authorization", format!("Bearer {token}"));
        if let Some(body) = &query.body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await?;
        status = response.status().as_u16();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        if n == 0 {
            rows = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                .unwrap_or(0);
        }
        if n >= WARMUP {
            latencies.record(elapsed);
        }
    }
    Ok((latencies, status, rows))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = SeedOptions::scale();
    options.organizations = env_number("BENCH_ORGS", options.organizations.into()) as u32;
    options.bottles_per_org = env_number("BENCH_BOTTLES", options.bottles_per_org.into()) as u32;
    let requests = env_number("BENCH_REQUESTS", 200) as usize;
    let manifold = sibling_binary("manifold")?;

    let db = TestDb::create().await;
    let mut client = db.admin().await;
    println!(
        "domain benchmark: seeding {} organizations x {} cylinders",
        options.organizations, options.bottles_per_org
    );
    let started = Instant::now();
    let report = seed(&mut client, &options).await?;
    println!(
        "  seeded {} cylinders, {} events, {} deliveries in {:.1} s (generation {:.1} s)",
        report.bottles,
        report.events,
        report.deliveries,
        started.elapsed().as_secs_f64(),
        report.elapsed_ms as f64 / 1000.0
    );
    let org = report
        .organizations
        .first()
        .context("the seed made no organization")?
        .id
        .clone();
    let sample = sample(&db, &org).await?;
    let dates = client
        .query_one(
            "select current_date::text, date_trunc('month', current_date - 31)::date::text, \
             (date_trunc('month', current_date - 31) + interval '1 month - 1 day')::date::text, \
             (current_date + 90)::text",
            &[],
        )
        .await?;
    let (today, month_start, month_end, due_by): (String, String, String, String) =
        (dates.get(0), dates.get(1), dates.get(2), dates.get(3));

    let server = ServerProcess::start(&manifold, &db, SECRET, &[]).await?;
    let anon = server.anon_key()?;
    let http = reqwest::Client::new();
    let token = |sub: &str| {
        mint_jwt(
            SECRET,
            &json!({"sub": sub, "role": "authenticated", "aud": "authenticated",
                    "exp": 4_000_000_000u64}),
        )
    };
    let roles = [
        ("manager", token(&sample.manager)),
        ("driver", token(&sample.driver)),
    ];
    println!(
        "\n{:<34} {:>7}  {:<8} {:>6} {:>6} {:>9} {:>9}  verdict",
        "query (DOMAIN.md §10)", "target", "role", "status", "rows", "p50 ms", "p99 ms"
    );
    let mut failures = 0;
    for query in queries(&sample, &today, (&month_start, &month_end), &due_by) {
        for (role, token) in &roles {
            let (mut latencies, status, rows) =
                measure(&http, &server.base, &anon, token, &query, requests).await?;
            let p50 = latencies.quantile_ms(0.5);
            let p99 = latencies.quantile_ms(0.99);
            let verdict = if status >= 500 {
                failures += 1;
                "ERROR"
            } else if p50 <= query.target_ms {
                "ok"
            } else {
                "SLOW"
            };
            println!(
                "{:<34} {:>5.0}ms  {:<8} {:>6} {:>6} {:>9.2} {:>9.2}  {verdict}",
                query.name, query.target_ms, role, status, rows, p50, p99
            );
        }
    }
    println!(
        "\nnot measured: lot recall trace and the org-wide rental run need the compliance and \
         billing tables of a later issue"
    );
    drop(server);
    if failures > 0 {
        bail!("{failures} queries failed");
    }
    Ok(())
}
