//! Shared pieces of the benchmark binaries: latency statistics and concurrent load loops.

pub mod process;

use std::time::{Duration, Instant};

/// Latencies of one run.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Latencies {
    /// Records one sample.
    pub fn record(&mut self, latency: Duration) {
        self.samples.push(latency);
    }

    /// Records one failed request (not a sample: it counts toward neither rate nor latency).
    pub fn fail(&mut self, error: &anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{error:#}"));
        }
    }

    /// Merges another run's samples and failures.
    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Failed requests, and the first failure's message, so a broken run cannot pass for a
    /// slow one.
    pub fn failures(&self) -> (u64, Option<&str>) {
        (self.errors, self.first_error.as_deref())
    }

    /// Number of samples.
    pub fn count(&self) -> usize {
        self.samples.len()
    }

    /// The `q` quantile (0.0–1.0), in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.sort_unstable();
        let index = ((self.samples.len() as f64 - 1.0) * q).round() as usize;
        self.samples[index].as_secs_f64() * 1000.0
    }
}

/// Runs `task` on `concurrency` workers for `duration`; returns requests/s and latencies.
pub async fn run_for<F, Fut>(concurrency: usize, duration: Duration, task: F) -> (f64, Latencies)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let task = task.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut iteration = 0usize;
            while Instant::now() < deadline {
                let start = Instant::now();
                match task(worker * 1_000_000 + iteration).await {
                    Ok(()) => latencies.record(start.elapsed()),
                    Err(error) => latencies.fail(&error),
                }
                iteration += 1;
            }
            latencies
        }));
    }
    let mut all = Latencies::default();
    for worker in workers {
        if let Ok(latencies) = worker.await {
            all.merge(latencies);
        }
    }
    let rate = all.count() as f64 / started.elapsed().as_secs_f64();
    (rate, all)
}
