//! REST read benchmark: single-row GET by id and a 20-row list with one embed, as a user under
//! RLS, over loopback HTTP against a release `manifold` process, next to pgbench running the same
//! SQL transaction (begin; settings; the translator's statement; commit) in the same run.
//!
//! Run: `cargo build --release -p manifold-server -p manifold-bench && target/release/rest`
//! Options (env): BENCH_SECONDS (default 10), BENCH_CONCURRENCY (default 32), BENCH_CLIENTS
//! (pgbench clients, default 16).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use manifold_bench::process::{ServerProcess, env_number, scratch_dir, sibling_binary};
use manifold_bench::run_for;
use manifold_db::schema_cache;
use manifold_query::{Method, RestInput, Settings, parse, translate_read};
use manifold_sql::BindValue;
use manifold_testkit::{TestCluster, TestDb, cluster, mint_jwt};
use serde_json::json;

const USER: &str = "0b6f6a3e-5e2b-4c55-9d5b-111111111111";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-123";
const ROWS: i64 = 100_000;
/// Marks the bound filter value so the pgbench script can turn it into a variable.
const SENTINEL: &str = "987654321";

const FIXTURE: &str = "
create table public.bench_customers (id int primary key, name text not null);
create table public.bench_items (
  id int primary key,
  owner uuid not null,
  customer_id int not null references public.bench_customers (id),
  name text not null,
  qty int not null,
  created_at timestamptz not null default now()
);
create index on public.bench_items (owner, id);
alter table public.bench_items enable row level security;
create policy own_items on public.bench_items for select to authenticated using (owner = (select auth.uid()));
alter table public.bench_customers enable row level security;
create policy customers_readable on public.bench_customers for select to authenticated using (true);
insert into public.bench_customers select g, 'customer ' || g from generate_series(1, 1000) g;
";

struct Scenario {
    name: &'static str,
    query: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_number("BENCH_SECONDS", 10);
    let concurrency = env_number("BENCH_CONCURRENCY", 32) as usize;
    let clients = env_number("BENCH_CLIENTS", 16);
    let manifold = sibling_binary("manifold")?;

    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    db.execute(&format!(
        "insert into public.bench_items select g, case when g % 10 = 0 then '{USER}'::uuid else gen_random_uuid() end, \
         1 + g % 1000, 'item ' || g, g % 100 from generate_series(1, {ROWS}) g; analyze;"
    ))
    .await;

    let server = ServerProcess::start(
        &manifold,
        &db,
        SECRET,
        &[("MANIFOLD_API__REQUIRE_APIKEY", "false")],
    )
    .await?;
    let base = server.base.clone();
    let token = mint_jwt(
        SECRET,
        &json!({"sub": USER, "role": "authenticated", "aud": "authenticated", "exp": 4_000_000_000u64}),
    );
    let anon = server.anon_key()?;

    let scenarios = [
        Scenario {
            name: "single row by id",
            query: format!("/bench_items?id=eq.{SENTINEL}"),
        },
        Scenario {
            name: "20 rows with one embed",
            query: format!(
                "/bench_items?select=id,name,qty,customer:bench_customers(name)&id=gt.{SENTINEL}&order=id&limit=20"
            ),
        },
    ];
    println!(
        "rest benchmark: {seconds}s per run, HTTP concurrency {concurrency}, pgbench clients {clients}, {ROWS} rows under RLS"
    );
    for scenario in &scenarios {
        let script = pgbench_script(&db, &scenario.query).await?;
        let facts = cluster().await;
        let plain = pgbench(facts, &db, &script, clients, seconds, false)?;
        let pipelined = pgbench(facts, &db, &script, clients, seconds, true)?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let url = format!("{base}/rest/v1{}", scenario.query);
        let (rate, mut latencies) = run_for(concurrency, Duration::from_secs(seconds), {
            let (client, url, token, anon) =
                (client.clone(), url.clone(), token.clone(), anon.clone());
            move |n: usize| {
                let (client, token, anon) = (client.clone(), token.clone(), anon.clone());
                let id = 10 * (1 + (n * 7919) % (ROWS as usize / 10 - 30));
                let url = url.replace(SENTINEL, &id.to_string());
                async move {
                    let response = client
                        .get(url)
                        .header("apikey", anon)
                        .header("authorization", format!("Bearer {token}"))
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("status {}", response.status());
                    }
                    response.bytes().await?;
                    Ok(())
                }
            }
        })
        .await;
        println!("\n== {} ==", scenario.name);
        if let (errors @ 1.., first) = latencies.failures() {
            println!(
                "  FAILED    {errors} requests failed; first: {}",
                first.unwrap_or("?")
            );
        }
        println!(
            "  manifold  {rate:>9.0} req/s   p50 {:.2} ms   p99 {:.2} ms",
            latencies.quantile_ms(0.5),
            latencies.quantile_ms(0.99)
        );
        println!("  pgbench   {plain:>9.0} tps     (one round trip per statement)");
        println!("  pgbench   {pipelined:>9.0} tps     (pipelined)");
        println!(
            "  ratio     {:.0}% of pgbench, {:.0}% of pipelined pgbench",
            100.0 * rate / plain,
            100.0 * rate / pipelined
        );
    }
    drop(server);
    Ok(())
}

/// The pgbench script of one request: exactly the SQL the server runs for it.
async fn pgbench_script(db: &TestDb, path_and_query: &str) -> anyhow::Result<String> {
    let client = db.admin().await;
    let cache = schema_cache::load(&client, &["public".to_owned()]).await?;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let settings = Settings::default();
    let input = RestInput {
        method: Some(Method::Get),
        path,
        query,
        ..RestInput::default()
    };
    let request = parse(&input, &settings).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let statement = translate_read(&request, &cache, &settings)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
        .statement;
    let mut sql = statement.text().to_owned();
    // Highest placeholder first, so $1 does not eat the prefix of $12.
    for (index, bind) in statement.binds().iter().enumerate().rev() {
        let placeholder = format!("${}", index + 1);
        let literal = match bind {
            BindValue::Text(text) if text == SENTINEL => ":id".to_owned(),
            BindValue::Text(text) => format!("'{}'", text.replace('\'', "''")),
            BindValue::Int(number) => number.to_string(),
            BindValue::Bool(flag) => flag.to_string(),
            BindValue::Null => "null".to_owned(),
        };
        sql = sql.replace(&placeholder, &literal);
    }
    let claims = json!({"sub": USER, "role": "authenticated", "aud": "authenticated"}).to_string();
    let settings_json = json!({
        "search_path": "\"public\", \"extensions\"",
        "role": "authenticated",
        "request.jwt.claims": claims,
        "request.jwt.claim.sub": USER,
        "request.jwt.claim.role": "authenticated",
        "request.jwt.claim.email": "",
        "request.method": "GET",
        "request.path": path,
        "request.headers": "{}",
        "request.cookies": "{}",
        "statement_timeout": "8s",
    })
    .to_string()
    .replace('\'', "''");
    Ok(format!(
        "\\set id 10 * random(1, {})\n\
         begin isolation level read committed read only;\n\
         select set_config(s.key, s.value, true) from json_each_text('{settings_json}'::text::json) as s;\n\
         {sql};\n\
         commit;\n",
        ROWS / 10 - 30
    ))
}

fn pgbench(
    cluster: &TestCluster,
    db: &TestDb,
    script: &str,
    clients: u64,
    seconds: u64,
    pipelined: bool,
) -> anyhow::Result<f64> {
    let dir = scratch_dir("pgbench")?;
    let file = dir.join("script.sql");
    let body = if pipelined {
        let lines: Vec<&str> = script.lines().collect();
        format!(
            "{}\n\\startpipeline\n{}\n\\endpipeline\n",
            lines[0],
            lines[1..].join("\n")
        )
    } else {
        script.to_owned()
    };
    std::fs::write(&file, body)?;

    let bin = manifold_db::embedded::PgBinaries::locate(None)?.program("pgbench");
    let output = Command::new(bin)
        .args(["-n", "-M", "prepared", "-j", "2", "-h", "127.0.0.1"])
        .args([
            "-p",
            &cluster.port.to_string(),
            "-U",
            "authenticator",
            "-d",
            &db.name,
        ])
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string(), "-f"])
        .arg(&file)
        .env("PGPASSWORD", &cluster.authenticator_password)
        .output()
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let tps = stdout
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|value| value.parse::<f64>().ok());
    match tps {
        Some(tps) => Ok(tps),
        None => bail!(
            "pgbench failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}
