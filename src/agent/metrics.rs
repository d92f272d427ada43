//! What the agent serves on `[agent] metrics_listen`: `/metrics` in Prometheus' text format
//! and `/healthz` (200 when the last run finished and reached the state store, 503 before the
//! first run or after a run that could not).
//!
//! Two GET routes over HTTP/1.1 with `Connection: close` are all Prometheus and a kubelet
//! probe need, so the server is a few lines on tokio's listener rather than an HTTP framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::events::Events;
use crate::model::PackName;
use crate::state::Operation;

/// Upper bounds of the run duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// What one run did, for the metrics.
#[derive(Debug, Default)]
pub(super) struct RunSummary {
    /// Changes that went live, by action.
    pub(super) applied: BTreeMap<Operation, u64>,
    /// Changes that failed, by action.
    pub(super) failed: BTreeMap<Operation, u64>,
    /// Packs live at the desired release after the run.
    pub(super) converged: Vec<PackName>,
    /// Packs whose record disagreed with disk.
    pub(super) drifted: usize,
    pub(super) duration: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    runs_ok: u64,
    runs_failed: u64,
    changes: BTreeMap<Operation, u64>,
    failures: BTreeMap<Operation, u64>,
    /// Cumulative counts per bucket, then the total count and sum.
    buckets: [u64; BUCKETS.len()],
    duration_count: u64,
    duration_sum: f64,
    last_success: BTreeMap<PackName, f64>,
    drifted: usize,
    /// Whether the last run finished and reached the store.
    healthy: bool,
}

/// The agent's counters, shared with the server, and its event queue.
#[derive(Debug, Clone)]
pub(super) struct Metrics {
    counters: Arc<Mutex<Counters>>,
    events: Option<Events>,
}

impl Metrics {
    pub(super) fn new(events: Option<Events>) -> Self {
        Self {
            counters: Arc::default(),
            events,
        }
    }

    /// Counts a run; `None`: it could not run (lock, store).
    pub(super) fn record(&self, summary: Option<&RunSummary>) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(summary) = summary else {
            counters.runs_failed += 1;
            counters.healthy = false;
            return;
        };
        counters.healthy = true;
        if summary.failed.values().sum::<u64>() > 0 {
            counters.runs_failed += 1;
        } else {
            counters.runs_ok += 1;
        }
        for (operation, n) in &summary.applied {
            *counters.changes.entry(*operation).or_default() += n;
        }
        for (operation, n) in &summary.failed {
            *counters.failures.entry(*operation).or_default() += n;
        }
        let seconds = summary.duration.as_secs_f64();
        for (bucket, bound) in counters.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        counters.duration_count += 1;
        counters.duration_sum += seconds;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        for pack in &summary.converged {
            counters.last_success.insert(pack.clone(), now);
        }
        counters.drifted = summary.drifted;
    }

    fn healthy(&self) -> bool {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .healthy
    }

    /// The Prometheus text exposition.
    fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP packsync_runs_total Reconcile runs, by result.\n\
             # TYPE packsync_runs_total counter\n\
             packsync_runs_total{{result=\"ok\"}} {}\n\
             packsync_runs_total{{result=\"failed\"}} {}",
            counters.runs_ok, counters.runs_failed
        );
        for (name, help, values) in [
            (
                "packsync_changes_total",
                "Changes that went live, by action.",
                &counters.changes,
            ),
            (
                "packsync_failures_total",
                "Changes that failed, by action.",
                &counters.failures,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (operation, n) in values {
                let _ = writeln!(out, "{name}{{action=\"{}\"}} {n}", operation.as_str());
            }
        }
        let _ = writeln!(
            out,
            "# HELP packsync_run_duration_seconds How long a reconcile run took.\n\
             # TYPE packsync_run_duration_seconds histogram"
        );
        for (bound, count) in BUCKETS.iter().zip(counters.buckets) {
            let _ = writeln!(
                out,
                "packsync_run_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "packsync_run_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             packsync_run_duration_seconds_sum {}\n\
             packsync_run_duration_seconds_count {count}",
            counters.duration_sum,
            count = counters.duration_count,
        );
        let _ = writeln!(
            out,
            "# HELP packsync_last_success_timestamp_seconds When each pack was last seen live \
             at its desired release.\n# TYPE packsync_last_success_timestamp_seconds gauge"
        );
        for (pack, at) in &counters.last_success {
            let _ = writeln!(
                out,
                "packsync_last_success_timestamp_seconds{{pack=\"{pack}\"}} {at}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP packsync_drifted_packs Packs whose record disagreed with disk at the last \
             run.\n# TYPE packsync_drifted_packs gauge\npacksync_drifted_packs {}",
            counters.drifted
        );
        if let Some(events) = &self.events {
            let (queued, dropped) = events.counts();
            let _ = writeln!(
                out,
                "# HELP packsync_events_queued Events waiting for the broker.\n\
                 # TYPE packsync_events_queued gauge\npacksync_events_queued {queued}\n\
                 # HELP packsync_events_dropped_total Events dropped because the queue was full.\n\
                 # TYPE packsync_events_dropped_total counter\npacksync_events_dropped_total {dropped}"
            );
        }
        out
    }
}

/// Serves `/metrics` and `/healthz` on `address` until the agent stops.
pub(super) async fn serve(address: SocketAddr, metrics: Metrics) {
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, %error, "cannot serve metrics");
            return;
        }
    };
    tracing::info!(%address, "serving /metrics and /healthz");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // The request line and headers; a body is never expected.
            let mut request = Vec::new();
            let mut chunk = [0; 1024];
            let complete = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return false,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                    if request.len() > 16 * 1024 {
                        return false;
                    }
                }
                true
            })
            .await;
            if complete != Ok(true) {
                return;
            }
            let line = String::from_utf8_lossy(&request);
            let path = line
                .lines()
                .next()
                .and_then(|first| first.strip_prefix("GET "))
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or("");
            let (status, content_type, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/healthz" if metrics.healthy() => ("200 OK", "text/plain", "ok\n".to_string()),
                "/healthz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "no successful run yet, or the state store was unreachable\n".to_string(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_ok() {
                let _ = stream.shutdown().await;
            }
        });
    }
}
