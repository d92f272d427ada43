//! The agent's Prometheus metrics, exposed by `http` at `/metrics` in the `OpenMetrics` text
//! format (prometheus-client): runs, changes and failures by action, run durations, when each
//! pack was last seen converged, one `packsync_pack_info` series per pack (live version,
//! release, state), the last run's time and result, the last verification, the build, and the
//! event queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::events::Events;
use crate::execute::StatusReport;
use crate::model::PackName;
use crate::state::Operation;
use crate::store::Verification;

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PackLabels {
    pack: String,
}

/// `packsync_pack_info`: what is live of a pack and how it stands.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PackInfoLabels {
    pack: String,
    /// Empty when nothing is live.
    version: String,
    release: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The agent's metrics, shared with the server.
#[derive(Debug, Clone)]
pub(super) struct Metrics {
    registry: Arc<Registry>,
    runs: Family<ResultLabels, Counter>,
    changes: Family<ActionLabels, Counter>,
    failures: Family<ActionLabels, Counter>,
    duration: Histogram,
    last_success: Family<PackLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    drifted: Gauge,
    last_run: Gauge<f64, std::sync::atomic::AtomicU64>,
    last_run_ok: Gauge,
    packs: Family<PackInfoLabels, Gauge>,
    verified: Gauge<f64, std::sync::atomic::AtomicU64>,
    tampered: Gauge,
    /// Whether the last run finished and reached the store (`/healthz`).
    healthy: Arc<AtomicBool>,
}

/// The event queue's figures, read at each scrape.
#[derive(Debug)]
struct EventQueue(Events);

impl Collector for EventQueue {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (queued, dropped) = self.0.counts();
        let queued = ConstGauge::new(i64::try_from(queued).unwrap_or(i64::MAX));
        queued.encode(encoder.encode_descriptor(
            "packsync_events_queued",
            "Events waiting for the broker.",
            None,
            queued.metric_type(),
        )?)?;
        let dropped = ConstCounter::new(dropped);
        dropped.encode(encoder.encode_descriptor(
            "packsync_events_dropped",
            "Events dropped because the queue was full.",
            None,
            dropped.metric_type(),
        )?)
    }
}

impl Metrics {
    pub(super) fn new(events: Option<Events>) -> Self {
        let mut registry = Registry::default();
        let runs = Family::<ResultLabels, Counter>::default();
        registry.register("packsync_runs", "Reconcile runs, by result.", runs.clone());
        let changes = Family::<ActionLabels, Counter>::default();
        registry.register(
            "packsync_changes",
            "Changes that went live, by action.",
            changes.clone(),
        );
        let failures = Family::<ActionLabels, Counter>::default();
        registry.register(
            "packsync_failures",
            "Changes that failed, by action.",
            failures.clone(),
        );
        let duration = Histogram::new(BUCKETS);
        registry.register(
            "packsync_run_duration_seconds",
            "How long a reconcile run took.",
            duration.clone(),
        );
        let last_success = Family::default();
        registry.register(
            "packsync_last_success_timestamp_seconds",
            "When each pack was last seen live at its desired release.",
            last_success.clone(),
        );
        let drifted = Gauge::default();
        registry.register(
            "packsync_drifted_packs",
            "Packs whose record disagreed with disk at the last run.",
            drifted.clone(),
        );
        let last_run = Gauge::default();
        registry.register(
            "packsync_last_run_timestamp_seconds",
            "When the last reconcile run ended.",
            last_run.clone(),
        );
        let last_run_ok = Gauge::default();
        registry.register(
            "packsync_last_run_success",
            "1 when the last run changed all it had to, 0 when something failed.",
            last_run_ok.clone(),
        );
        let packs = Family::default();
        registry.register(
            "packsync_pack_info",
            "Each pack: its live version and release (empty when none is live) and its state.",
            packs.clone(),
        );
        let verified = Gauge::default();
        registry.register(
            "packsync_verify_timestamp_seconds",
            "When `packsync verify` last checked the live releases.",
            verified.clone(),
        );
        let tampered = Gauge::default();
        registry.register(
            "packsync_tampered_packs",
            "Live releases the last `packsync verify` found changed since they were built.",
            tampered.clone(),
        );
        registry.register(
            "packsync_build",
            "The packsync build serving these metrics.",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        if let Some(events) = events {
            registry.register_collector(Box::new(EventQueue(events)));
        }
        Self {
            registry: Arc::new(registry),
            runs,
            changes,
            failures,
            duration,
            last_success,
            drifted,
            last_run,
            last_run_ok,
            packs,
            verified,
            tampered,
            healthy: Arc::default(),
        }
    }

    /// Counts a run; `None`: it could not run (lock, store).
    pub(super) fn record(&self, summary: Option<&RunSummary>) {
        let now = unix_seconds(std::time::SystemTime::now());
        self.last_run.set(now);
        self.healthy.store(summary.is_some(), Ordering::Relaxed);
        let Some(summary) = summary else {
            self.runs
                .get_or_create(&ResultLabels { result: "failed" })
                .inc();
            self.last_run_ok.set(0);
            return;
        };
        let ok = summary.failed.values().sum::<u64>() == 0;
        let result = if ok { "ok" } else { "failed" };
        self.runs.get_or_create(&ResultLabels { result }).inc();
        self.last_run_ok.set(i64::from(ok));
        for (operation, n) in &summary.applied {
            let action = operation.as_str();
            self.changes
                .get_or_create(&ActionLabels { action })
                .inc_by(*n);
        }
        for (operation, n) in &summary.failed {
            let action = operation.as_str();
            self.failures
                .get_or_create(&ActionLabels { action })
                .inc_by(*n);
        }
        self.duration.observe(summary.duration.as_secs_f64());
        for pack in &summary.converged {
            self.last_success
                .get_or_create(&PackLabels {
                    pack: pack.to_string(),
                })
                .set(now);
        }
        self.drifted
            .set(i64::try_from(summary.drifted).unwrap_or(i64::MAX));
    }

    /// Replaces the `packsync_pack_info` series by those of `report`.
    pub(super) fn packs(&self, report: &StatusReport) {
        self.packs.clear();
        for pack in &report.packs {
            let (version, release) = pack.active.as_ref().map_or_else(Default::default, |a| {
                (a.version.clone(), a.release.to_string())
            });
            self.packs
                .get_or_create(&PackInfoLabels {
                    pack: pack.pack.to_string(),
                    version,
                    release,
                    state: pack.state.as_str().to_string(),
                })
                .set(1);
        }
    }

    /// What the last verification found.
    pub(super) fn verified(&self, verification: &Verification) {
        self.verified
            .set(verification.at.as_duration().as_secs_f64());
        self.tampered
            .set(i64::try_from(verification.tampered().count()).unwrap_or(i64::MAX));
    }

    pub(super) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The `OpenMetrics` text exposition.
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn unix_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
