//! Realtime postgres_changes benchmark: 1,000 websocket subscribers (one channel each, serializer
//! 2.0.0) spread over 50 organizations watch one RLS-protected table of a release `manifold`
//! process; inserts come at rising rates, each row visible to the 20 subscribers of its
//! organization. Per rate it reports authorized deliveries/s and the latency from just before
//! the insert was sent until the frame was read by the subscriber (an upper bound of
//! commit→client). Two subscription styles are measured: `filtered` bindings
//! (`organization_id=eq.<org>`, matched through the registry's value index, then RLS) and
//! `rls-only` bindings (no filter: every change meets all 1,000 subscribers and the batch
//! authorizer alone decides who sees it — Supabase's slow path).
//!
//! Run: `cargo build --release -p manifold-server -p manifold-bench && target/release/realtime`
//! Options (env): BENCH_SUBSCRIBERS (default 1000), BENCH_ORGS (default 50), BENCH_STEP_SECONDS
//! (default 5), BENCH_RATES (inserts/s, default "100,250,500,1000,2000,4000"), BENCH_MODES
//! (default "filtered,rls-only").

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use manifold_bench::Latencies;
use manifold_bench::process::{ServerProcess, env_number, sibling_binary};
use manifold_testkit::{TestDb, mint_jwt};
use serde_json::json;
use tokio::sync::{Mutex, watch};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "bench-secret-bench-secret-bench-secret-123";
/// Insert ticks per second; each tick inserts rate / TICKS rows in one statement.
const TICKS: u64 = 100;
/// Heartbeat period of the subscribers (the server closes sockets silent for 60 s).
const HEARTBEAT: Duration = Duration::from_secs(20);
/// How often each subscriber hands its latency samples to the shared set.
const SAMPLE_FLUSH: Duration = Duration::from_millis(100);
/// How long a step may take to drain after its last insert.
const DRAIN: Duration = Duration::from_secs(30);

const FIXTURE: &str = "
create table public.bench_rt (
  id bigint generated always as identity primary key,
  organization_id uuid not null,
  note text not null,
  sent_us int8 not null
);
alter table public.bench_rt replica identity full;
alter table public.bench_rt enable row level security;
create function public.bench_org() returns uuid language sql stable
  as $$ select nullif(auth.jwt() ->> 'organization_id', '')::uuid $$;
create policy members_read on public.bench_rt for select to authenticated
  using (organization_id = public.bench_org());
alter publication supabase_realtime add table public.bench_rt;
";

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn org_id(index: u64) -> String {
    format!("00000000-0000-4000-8000-{index:012}")
}

/// What the subscribers saw, shared with the reader tasks.
#[derive(Default)]
struct Seen {
    deliveries: AtomicU64,
    latencies: Mutex<Latencies>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let subscribers = env_number("BENCH_SUBSCRIBERS", 1000);
    let orgs = env_number("BENCH_ORGS", 50).max(1);
    let step = Duration::from_secs(env_number("BENCH_STEP_SECONDS", 5));
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "100,250,500,1000,2000,4000".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let modes: Vec<String> = std::env::var("BENCH_MODES")
        .unwrap_or_else(|_| "filtered,rls-only".to_owned())
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect();
    let manifold = sibling_binary("manifold")?;
    println!(
        "realtime benchmark: {subscribers} subscribers over {orgs} organizations, {}s per rate",
        step.as_secs()
    );
    for mode in &modes {
        let filtered = match mode.as_str() {
            "filtered" => true,
            "rls-only" => false,
            other => bail!("unknown mode {other}"),
        };
        run_mode(&manifold, subscribers, orgs, step, &rates, filtered).await?;
    }
    Ok(())
}

async fn run_mode(
    manifold: &Path,
    subscribers: u64,
    orgs: u64,
    step: Duration,
    rates: &[u64],
    filtered: bool,
) -> anyhow::Result<()> {
    let db = TestDb::create().await;
    db.execute(FIXTURE).await;
    let server = ServerProcess::start(
        manifold,
        &db,
        SECRET,
        &[("MANIFOLD_REALTIME__MAX_JOINS_PER_SECOND", "100000")],
    )
    .await?;
    let outcome = measure(&server, &db, subscribers, orgs, step, rates, filtered).await;
    drop(server);
    drop_slots(&db).await;
    outcome
}

async fn measure(
    server: &ServerProcess,
    db: &TestDb,
    subscribers: u64,
    orgs: u64,
    step: Duration,
    rates: &[u64],
    filtered: bool,
) -> anyhow::Result<()> {
    let base = server.base.trim_start_matches("http://");
    let anon = mint_jwt(SECRET, &json!({"role": "anon", "exp": 4_000_000_000u64}));
    let seen = Arc::new(Seen::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut readers = Vec::new();
    for index in 0..subscribers {
        let org = org_id(index % orgs);
        let token = mint_jwt(
            SECRET,
            &json!({"sub": format!("10000000-0000-4000-8000-{index:012}"), "role": "authenticated",
                    "organization_id": org, "exp": 4_000_000_000u64}),
        );
        let mut binding = json!({"event": "INSERT", "schema": "public", "table": "bench_rt"});
        if filtered {
            binding["filter"] = json!(format!("organization_id=eq.{org}"));
        }
        let url = format!("ws://{base}/realtime/v1/websocket?apikey={anon}&vsn=2.0.0");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("connecting a subscriber")?;
        let topic = format!("realtime:bench-{index}");
        let join = json!(["1", "1", topic, "phx_join",
            {"config": {"postgres_changes": [binding], "private": false}, "access_token": token}]);
        ws.send(Message::text(join.to_string())).await?;
        // Wait for the join reply, so every subscriber is live before the first insert.
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .context("join reply")?
                .context("socket closed during join")??;
            if let Message::Text(text) = frame
                && text.contains("phx_reply")
            {
                if !text.contains("\"ok\"") {
                    bail!("join refused: {text}");
                }
                break;
            }
        }
        let seen = seen.clone();
        let mut stop = stop_rx.clone();
        readers.push(tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            // Samples go to the shared set at least this often, so a step's figures include
            // subscribers that received only a few changes in it.
            let mut flush = tokio::time::interval(SAMPLE_FLUSH);
            let mut local = Latencies::default();
            let mut reference = 2u64;
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = flush.tick() => {
                        if local.count() > 0 {
                            seen.latencies.lock().await.merge(std::mem::take(&mut local));
                        }
                    }
                    _ = heartbeat.tick() => {
                        reference += 1;
                        let frame = format!("[null,\"{reference}\",\"phoenix\",\"heartbeat\",{{}}]");
                        if ws.send(Message::text(frame)).await.is_err() { break; }
                    }
                    frame = ws.next() => {
                        let Some(Ok(Message::Text(text))) = frame else {
                            if matches!(frame, None | Some(Err(_))) { break; }
                            continue;
                        };
                        if let Some(sent) = sent_us_of(text.as_str()) {
                            let latency = now_us().saturating_sub(sent);
                            local.record(Duration::from_micros(u64::try_from(latency).unwrap_or(0)));
                            seen.deliveries.fetch_add(1, Ordering::Relaxed);
                            if local.count() >= 256 {
                                seen.latencies.lock().await.merge(std::mem::take(&mut local));
                            }
                        }
                    }
                }
            }
            seen.latencies.lock().await.merge(local);
        }));
    }
    println!(
        "\n== {} ({} subscribers joined in {:.1}s) ==",
        if filtered {
            "filtered: organization_id=eq.<org>, then RLS"
        } else {
            "rls-only: no filter, RLS decides"
        },
        subscribers,
        started.elapsed().as_secs_f64()
    );
    println!("  inserts/s  deliveries/s (offered)   p50 ms   p99 ms   delivered");

    let admin = db.admin().await;
    // The throwaway cluster runs with synchronous_commit off, where a commit reaches the WAL
    // sender only at the WAL writer's next flush (up to 200 ms later); PostgreSQL's default (on)
    // is what a deployment measures.
    admin.execute("set synchronous_commit = on", &[]).await?;
    let insert = admin
        .prepare(
            "insert into public.bench_rt (organization_id, note, sent_us) \
             select o::uuid, 'bench', $2::int8 from unnest($1::text[]) as o",
        )
        .await?;
    let per_org = subscribers / orgs;
    let mut next_org = 0u64;
    for &rate in rates {
        let per_tick = (rate / TICKS).max(1);
        let ticks = step.as_millis() as u64 * TICKS / 1000;
        let before = seen.deliveries.load(Ordering::Relaxed);
        *seen.latencies.lock().await = Latencies::default();
        let mut expected = 0u64;
        let begin = Instant::now();
        let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / TICKS));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..ticks {
            interval.tick().await;
            let rows: Vec<String> = (0..per_tick)
                .map(|_| {
                    next_org = (next_org + 1) % orgs;
                    org_id(next_org)
                })
                .collect();
            admin.execute(&insert, &[&rows, &now_us()]).await?;
            expected += per_tick * per_org;
        }
        let inserted_in = begin.elapsed();
        let deadline = Instant::now() + DRAIN;
        while seen.deliveries.load(Ordering::Relaxed) - before < expected
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = begin.elapsed();
        let delivered = seen.deliveries.load(Ordering::Relaxed) - before;
        // Let readers flush their local samples (they do every SAMPLE_FLUSH).
        tokio::time::sleep(SAMPLE_FLUSH * 3).await;
        let mut latencies = seen.latencies.lock().await.clone();
        let offered = (per_tick * TICKS) as f64 * per_org as f64;
        let achieved_inserts = (per_tick * ticks) as f64 / inserted_in.as_secs_f64();
        println!(
            "  {:>9.0}  {:>12.0} ({:>7.0})   {:>6.1}   {:>6.1}   {delivered}/{expected}",
            achieved_inserts,
            delivered as f64 / elapsed.as_secs_f64(),
            offered,
            latencies.quantile_ms(0.5),
            latencies.quantile_ms(0.99),
        );
        if delivered < expected {
            println!(
                "  (stopped: deliveries did not drain within {}s)",
                DRAIN.as_secs()
            );
            break;
        }
        if latencies.quantile_ms(0.99) > 2000.0 {
            println!("  (stopped: p99 above 2 s)");
            break;
        }
    }
    let _ = stop_tx.send(true);
    for reader in readers {
        let _ = reader.await;
    }
    Ok(())
}

/// The `sent_us` value of a postgres_changes frame, without parsing the whole frame.
fn sent_us_of(text: &str) -> Option<i64> {
    if !text.contains("\"postgres_changes\"") {
        return None;
    }
    let start = text.find("\"sent_us\":")? + "\"sent_us\":".len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The server's durable slot outlives it; a benchmark database must not keep one.
async fn drop_slots(db: &TestDb) {
    let admin = db.admin().await;
    for _ in 0..100 {
        let dropped = admin
            .query(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
                 where database = current_database() and not active",
                &[],
            )
            .await;
        let left = admin
            .query_one(
                "select count(*) from pg_replication_slots where database = current_database()",
                &[],
            )
            .await
            .map(|row| row.get::<_, i64>(0))
            .unwrap_or(0);
        if dropped.is_ok() && left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
