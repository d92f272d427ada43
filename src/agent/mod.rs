//! `packsync run`: the long-running controller a site deploys (systemd service, Kubernetes
//! sidecar).
//!
//! Level-triggered, as kube-rs controllers are: a trigger never carries what changed, only
//! which packs to look at again, and each reconcile plans from scratch against disk and the
//! store. The triggers are the start (a full reconcile), the watches of `watch` (a commit
//! reconciles the packs of that repo; a mirror or config change, everything), debounced, and
//! the `[schedule] cron` (a full reconcile, with a random splay drawn again for every run).
//!
//! One reconcile at a time, under the same lock as `packsync apply` (which waits or exits 75).
//! SIGHUP re-reads the site config (an invalid one is logged, the old one kept); SIGTERM and
//! SIGINT let the pack step in progress finish, leave the others for the next start, and exit
//! 0.

mod events;
mod http;
mod metrics;
mod notify;
mod watch;

use std::collections::BTreeSet;
use std::hash::{BuildHasher as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::{self, SiteConfig};
use crate::diagnostics::{Diagnose, Report};
use crate::execute::{self, ApplyOptions, DryRun, FailedBuildPolicy, RunInfo};
use crate::model::PackName;

/// How long a reconcile waits for a manual `apply` holding the lock.
const LOCK_WAIT: Duration = Duration::from_hours(1);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("Cannot start the agent's event loop")]
    Runtime(#[source] std::io::Error),
    #[error("Cannot listen for {signal}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for AgentError {}

/// What a reconcile looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Everything,
    Packs(BTreeSet<PackName>),
}

impl Scope {
    fn merge(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::Packs(mut a), Scope::Packs(b)) => {
                a.extend(b);
                Scope::Packs(a)
            }
            _ => Scope::Everything,
        }
    }
}

/// Pack names as a log field's value: `alpha,clush`.
fn names(packs: &BTreeSet<PackName>) -> String {
    packs
        .iter()
        .map(PackName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// What a watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A file of the mirror changed: it may still be being copied in, so the burst is let settle
    /// for `[watch] debounce`.
    Reconcile(Scope),
    /// A Git ref moved: Git writes a ref to a lock file and renames it, so the commit is whole
    /// the moment it is seen and is reconciled after [`REF_SETTLE`] only.
    Commit(Scope),
    /// The site config file changed.
    Reload,
}

/// The triggers of one burst, merged.
struct Burst {
    scope: Option<Scope>,
    reload: bool,
    /// Every trigger so far is a commit.
    commits_only: bool,
}

impl Default for Burst {
    fn default() -> Self {
        Self {
            scope: None,
            reload: false,
            commits_only: true,
        }
    }
}

impl Burst {
    fn add(&mut self, trigger: Trigger) {
        let more = match trigger {
            Trigger::Commit(more) => more,
            Trigger::Reconcile(more) => {
                self.commits_only = false;
                more
            }
            Trigger::Reload => {
                self.commits_only = false;
                self.reload = true;
                return;
            }
        };
        self.scope = Some(match self.scope.take() {
            Some(scope) => Scope::merge(scope, more),
            None => more,
        });
    }
}

/// The quiet time after a ref moved: enough to take in the other refs one `git push` or `git
/// fetch` moves, short enough that a commit goes live at once.
const REF_SETTLE: Duration = Duration::from_millis(50);

/// Runs the agent on the site config at `path` (already loaded as `config`) until SIGTERM or
/// SIGINT.
pub fn run(path: &Path, config: SiteConfig) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(Agent::new(path, config).run())
}

struct Agent {
    path: PathBuf,
    config: Arc<SiteConfig>,
    /// Runs started by this process, for unique run ids.
    runs: u64,
    stop: Arc<AtomicBool>,
    retry: Option<Retry>,
    metrics: metrics::Metrics,
    /// What the status page and API show.
    view: http::View,
    /// The queue of `[messaging]` events (fixed at start, as the broker connection is).
    events: Option<events::Events>,
}

/// Packs that failed, and when they are tried again.
struct Retry {
    packs: BTreeSet<PackName>,
    /// Consecutive runs they failed in.
    attempts: u32,
    at: tokio::time::Instant,
}

struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

fn listen(kind: SignalKind, name: &'static str) -> Result<Signal, AgentError> {
    signal(kind).map_err(|source| AgentError::Signal {
        signal: name,
        source,
    })
}

impl Agent {
    fn new(path: &Path, config: SiteConfig) -> Self {
        let events = config
            .messaging
            .as_ref()
            .map(|messaging| events::Events::new(messaging.queue_limit, &config.agent.state_dir));
        let config = Arc::new(config);
        let metrics = metrics::Metrics::new(events.clone());
        Self {
            path: path.to_path_buf(),
            view: http::View::new(metrics.clone(), Arc::clone(&config)),
            config,
            runs: 0,
            stop: Arc::new(AtomicBool::new(false)),
            retry: None,
            metrics,
            events,
        }
    }

    async fn run(mut self) -> Result<(), AgentError> {
        let mut signals = Signals {
            hangup: listen(SignalKind::hangup(), "SIGHUP")?,
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
        };
        let (sender, mut triggers) = mpsc::unbounded_channel();
        let mut watches = watch::Watches::start(&self.path, &self.config, sender.clone());
        // Bound once: a new address in a re-read config needs a restart.
        if let Some(address) = self.config.agent.metrics_listen {
            tokio::spawn(http::serve(address, self.view.clone()));
        }
        if let (Some(messaging), Some(events)) = (&self.config.messaging, &self.events) {
            tokio::spawn(events::publish(messaging.clone(), events.clone()));
        }
        let notifier = notify::Notifier::from_env().map(Arc::new);
        if let Some(notifier) = &notifier {
            // Listening for every trigger: ready, though the first reconcile is still to run.
            notifier.send("READY=1");
            if let Some(every) = notify::watchdog_interval() {
                let notifier = Arc::clone(notifier);
                tokio::spawn(async move {
                    loop {
                        notifier.send("WATCHDOG=1");
                        tokio::time::sleep(every).await;
                    }
                });
            }
        }
        tracing::info!(config = %self.path.display(), "agent started");
        if let Some(last) = crate::store::last_verification(&self.config.agent.state_dir) {
            self.metrics.verified(&last);
        }
        let mut next_verify = self.next_verify();
        let mut pending = Some(Scope::Everything);
        loop {
            if let Some(scope) = pending.take() {
                let reload = self.reconcile(scope, &mut signals).await;
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                if reload && self.reload() {
                    watches = watch::Watches::start(&self.path, &self.config, sender.clone());
                    pending = Some(Scope::Everything);
                    continue;
                }
            }
            let next_run = self.next_scheduled();
            let retry_at = self.retry.as_ref().map(|retry| retry.at);
            tokio::select! {
                () = sleep_until(next_verify) => {
                    pending = self.verify().await;
                    next_verify = self.next_verify();
                }
                () = sleep_until(retry_at) => {
                    let packs = self.retry.as_ref().map(|retry| retry.packs.clone()).unwrap_or_default();
                    tracing::info!(packs = %names(&packs), "retrying what failed");
                    pending = Some(Scope::Packs(packs));
                }
                _ = signals.terminate.recv() => break,
                _ = signals.interrupt.recv() => break,
                _ = signals.hangup.recv() => {
                    tracing::info!("SIGHUP: re-reading the site config");
                    if self.reload() {
                        watches = watch::Watches::start(&self.path, &self.config, sender.clone());
                        pending = Some(Scope::Everything);
                    }
                }
                () = tokio::time::sleep(next_run) => {
                    tracing::info!("scheduled reconcile");
                    pending = Some(Scope::Everything);
                }
                Some(trigger) = triggers.recv() => {
                    let (scope, reload) = self.debounce(trigger, &mut triggers).await;
                    if reload && self.reload() {
                        watches = watch::Watches::start(&self.path, &self.config, sender.clone());
                        pending = Some(Scope::Everything);
                    } else {
                        pending = scope;
                    }
                }
            }
        }
        drop(watches);
        if let Some(notifier) = &notifier {
            notifier.send("STOPPING=1");
        }
        tracing::info!("agent stopped");
        Ok(())
    }

    /// Collects the triggers of a burst until `[watch] debounce` passes without one ([`REF_SETTLE`]
    /// while all are commits): the scope to reconcile (if any) and whether the config changed.
    /// The triggers that came during a run are all taken in here, so a burst of commits during
    /// a run makes one more run, not one each.
    async fn debounce(
        &self,
        first: Trigger,
        triggers: &mut mpsc::UnboundedReceiver<Trigger>,
    ) -> (Option<Scope>, bool) {
        let mut burst = Burst::default();
        burst.add(first);
        let debounce = self.config.watch.debounce;
        loop {
            let quiet = if burst.commits_only {
                REF_SETTLE.min(debounce)
            } else {
                debounce
            };
            match tokio::time::timeout(quiet, triggers.recv()).await {
                Ok(Some(trigger)) => burst.add(trigger),
                _ => break,
            }
        }
        (burst.scope, burst.reload)
    }

    /// Re-reads the site config; an invalid one is logged and the current one kept. Whether it
    /// changed.
    fn reload(&mut self) -> bool {
        match config::load(&self.path) {
            Ok(config) => {
                tracing::info!(config = %self.path.display(), "site config re-read");
                self.config = Arc::new(config);
                self.view.reloaded(Arc::clone(&self.config));
                true
            }
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!(
                        error = %Report::new(error).one_line(),
                        "the new site config is invalid; running on the previous one"
                    );
                }
                false
            }
        }
    }

    /// When `[agent] verify_every` next checks the live releases.
    fn next_verify(&self) -> Option<tokio::time::Instant> {
        self.config
            .agent
            .verify_every
            .map(|every| tokio::time::Instant::now() + every)
    }

    /// `packsync verify`, under the run lock, in a blocking thread: the packs found tampered,
    /// to reconcile now (their releases are built again from Git).
    async fn verify(&self) -> Option<Scope> {
        let config = Arc::clone(&self.config);
        let verified = tokio::task::spawn_blocking(move || {
            let _lock = crate::lock::acquire(&config.agent.state_dir, Some(LOCK_WAIT))
                .map_err(|err| Report::new(&err).one_line())?;
            let store = crate::state::open(&config, &config.host())
                .map_err(|err| Report::new(&err).one_line())?;
            crate::verify::verify(&config, store.as_ref(), None)
                .map_err(|err| Report::new(&err).one_line())
        })
        .await;
        let verification = match verified {
            Ok(Ok(verification)) => verification,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot verify the live releases");
                return None;
            }
            Err(error) => {
                tracing::error!(%error, "the verification panicked");
                return None;
            }
        };
        self.metrics.verified(&verification);
        let host = self.config.host();
        let mut events = Vec::new();
        let tampered: BTreeSet<PackName> = verification
            .tampered()
            .map(|found| {
                tracing::warn!(pack = %found.pack, release = %found.release, found = %found.summary(), "tampered: built again from Git");
                let body = TamperedEvent {
                    host: &host,
                    found,
                    time: verification.at,
                };
                events.push(events::Event::new(&host, found.pack.as_str(), "tampered", &body));
                found.pack.clone()
            })
            .collect();
        if let Some(queue) = &self.events {
            queue.push(events);
        }
        tracing::info!(
            releases = verification.packs.len(),
            tampered = tampered.len(),
            "live releases verified"
        );
        (!tampered.is_empty()).then_some(Scope::Packs(tampered))
    }

    /// Time until the next scheduled run: the next cron time plus a splay drawn now.
    fn next_scheduled(&self) -> Duration {
        let schedule = &self.config.schedule;
        let now = jiff::Timestamp::now();
        let until_cron = schedule
            .cron
            .next_after(now)
            .and_then(|next| Duration::try_from(next.duration_since(now)).ok())
            .unwrap_or(Duration::from_hours(1));
        until_cron + random_below(schedule.splay)
    }

    /// One reconcile of `scope`, in a blocking thread, while the signals are still heard: a
    /// SIGTERM lets the step in progress finish and stops there. Whether a SIGHUP came.
    async fn reconcile(&mut self, scope: Scope, signals: &mut Signals) -> bool {
        self.runs += 1;
        let config = Arc::clone(&self.config);
        let stop = Arc::clone(&self.stop);
        let sequence = self.runs;
        let looked_at = scope.clone();
        let mut task =
            tokio::task::spawn_blocking(move || reconcile(&config, &scope, sequence, stop));
        let mut reload = false;
        loop {
            tokio::select! {
                done = &mut task => {
                    match done {
                        Ok(Some((failed, summary, events))) => {
                            self.metrics.record(Some(&summary));
                            if let Some(queue) = &self.events {
                                queue.push(events);
                            }
                            self.schedule_retry(&looked_at, failed);
                        }
                        Ok(None) => self.metrics.record(None),
                        Err(err) => tracing::error!(error = %err, "the reconcile panicked"),
                    }
                    self.view.ran(sequence);
                    return reload;
                }
                _ = signals.terminate.recv() => self.stop_after_step("SIGTERM"),
                _ = signals.interrupt.recv() => self.stop_after_step("SIGINT"),
                _ = signals.hangup.recv() => reload = true,
            }
        }
    }

    /// After a run of `scope`: the packs that failed are tried again after `[schedule] retry`,
    /// doubled for each run they fail again, at most the cron period; packs that went through
    /// are no longer retried.
    fn schedule_retry(&mut self, scope: &Scope, failed: BTreeSet<PackName>) {
        let previous = self.retry.take();
        let attempts = previous.as_ref().map_or(0, |retry| retry.attempts);
        // Those a run did not look at are still to be retried.
        let mut packs: BTreeSet<PackName> = match (previous, scope) {
            (Some(retry), Scope::Packs(looked_at)) => {
                retry.packs.difference(looked_at).cloned().collect()
            }
            _ => BTreeSet::new(),
        };
        let failed_again = !failed.is_empty();
        packs.extend(failed);
        if packs.is_empty() {
            return;
        }
        let attempts = attempts + u32::from(failed_again);
        let schedule = &self.config.schedule;
        let period = schedule
            .cron
            .period(jiff::Timestamp::now())
            .unwrap_or(Duration::from_hours(1));
        let delay = schedule
            .retry
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
            .min(period.max(schedule.retry));
        tracing::info!(packs = %names(&packs), attempts, ?delay, "failed packs will be tried again");
        self.retry = Some(Retry {
            packs,
            attempts,
            at: tokio::time::Instant::now() + delay,
        });
    }

    fn stop_after_step(&self, signal: &str) {
        tracing::info!(signal, "stopping once the pack step in progress is done");
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Sleeps until `at`; never wakes without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A random duration below `bound` (zero for zero): std's per-process random hash keys, as
/// nothing here needs more than spreading hosts apart.
fn random_below(bound: Duration) -> Duration {
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    Duration::from_nanos(hasher.finish() % nanos)
}

/// One reconcile, as `packsync apply` does it: lock, plan, apply, record the run. The packs
/// that failed (or could not be planned), to be tried again, and what the run did; `None` when
/// the run itself failed.
fn reconcile(
    config: &SiteConfig,
    scope: &Scope,
    sequence: u64,
    stop: Arc<AtomicBool>,
) -> Option<(BTreeSet<PackName>, metrics::RunSummary, Vec<events::Event>)> {
    let started = std::time::Instant::now();
    let mut run = RunInfo::new(config.host());
    run.id = format!("{}-{sequence}", run.id);
    let span = tracing::info_span!("run", run = %run.id);
    let _span = span.enter();
    let only = match scope {
        Scope::Everything => None,
        Scope::Packs(packs) => Some(packs.clone()),
    };
    tracing::info!(packs = %only.as_ref().map_or_else(|| "all".to_string(), names), "reconciling");
    let _lock = match crate::lock::acquire(&config.agent.state_dir, Some(LOCK_WAIT)) {
        Ok(lock) => lock,
        Err(err) => {
            tracing::error!(error = %Report::new(&err).one_line(), "skipping this run");
            return None;
        }
    };
    let store = match crate::state::open(config, &config.host()) {
        Ok(store) => store,
        Err(err) => {
            tracing::error!(error = %Report::new(&err).one_line(), "skipping this run");
            return None;
        }
    };
    let options = ApplyOptions {
        mode: DryRun::Apply,
        only,
        allow_empty: false,
        failed_builds: FailedBuildPolicy::Wait,
        stop: Some(stop),
    };
    let applied = match execute::apply(config, store.as_ref(), &options, run.clone(), &log_phase) {
        Ok(applied) => applied,
        Err(err @ execute::ExecuteError::HostSuspended { .. }) => {
            tracing::info!(reason = %err, "nothing to do");
            return Some((BTreeSet::new(), metrics::RunSummary::default(), Vec::new()));
        }
        Err(err) => {
            tracing::error!(error = %Report::new(&err).one_line(), "the run failed");
            return None;
        }
    };
    for problem in &applied.planned.resolution.problems {
        tracing::warn!(problem = %problem.report.one_line(), "{}", problem.severity.as_str());
    }
    for step in &applied.steps {
        let operation = step.operation.as_str();
        if let Some(error) = &step.error {
            tracing::error!(pack = %step.pack, operation, error = %error.one_line(), "failed");
        } else {
            let release = step.release.as_ref().map(crate::model::ReleaseId::as_str);
            tracing::info!(pack = %step.pack, operation, release, "done");
        }
    }
    let (record, warnings) = execute::finish_run(config, store.as_ref(), &applied, &run, false);
    for warning in warnings {
        tracing::warn!(warning = %warning.one_line(), "run not fully recorded");
    }
    tracing::info!(
        applied = applied.changes(),
        failed = applied.failures(),
        exit_code = applied.detailed_exit_code(false),
        "run finished"
    );
    let failed: BTreeSet<PackName> = applied
        .steps
        .iter()
        .filter(|step| step.outcome != crate::state::Outcome::Applied)
        .map(|step| step.pack.clone())
        .chain(
            applied
                .planned
                .resolution
                .desired
                .unresolved
                .iter()
                .cloned(),
        )
        .collect();
    let summary = metrics::RunSummary {
        applied: record.applied.clone(),
        failed: record.failed.clone(),
        converged: applied
            .planned
            .resolution
            .desired
            .packs
            .iter()
            .map(|pack| pack.name.clone())
            .filter(|pack| !failed.contains(pack))
            .collect(),
        drifted: applied.planned.observed.drift.len(),
        duration: started.elapsed(),
    };
    let events = run_events(&applied, &run, &record);
    Some((failed, summary, events))
}

/// A pack's progress, in the log: its phases at info, the installer's lines at debug.
fn log_phase(pack: &PackName, phase: execute::Phase<'_>) {
    match phase {
        execute::Phase::Doing(what) => tracing::info!(%pack, "{what}"),
        execute::Phase::Installer(line) => tracing::debug!(%pack, line, "installer"),
        execute::Phase::Finished(outcome) => {
            tracing::info!(%pack, outcome = outcome.as_str(), "step ended");
        }
    }
}

/// The body of `packsync.<host>.<pack>.tampered`: what `packsync verify` found.
#[derive(Serialize)]
struct TamperedEvent<'a> {
    host: &'a str,
    #[serde(flatten)]
    found: &'a crate::store::PackVerification,
    time: jiff::Timestamp,
}

/// The body of a pack's (or the runner set's) event.
#[derive(Serialize)]
struct OutcomeEvent<'a> {
    host: &'a str,
    pack: &'a str,
    action: &'a str,
    from: Option<String>,
    to: Option<String>,
    outcome: &'a str,
    error: Option<String>,
    run: &'a str,
    time: jiff::Timestamp,
}

/// One event per step, one per drift repaired, and `run.completed`.
fn run_events(
    applied: &execute::Applied,
    run: &RunInfo,
    record: &crate::state::RunRecord,
) -> Vec<events::Event> {
    use crate::state::{Operation, Outcome};
    let time = crate::model::now();
    let word = |operation: Operation, outcome: Outcome| match (outcome, operation) {
        (Outcome::Failed, _) => "failed",
        (Outcome::Reverted, _) | (Outcome::Applied, Operation::Rollback) => "rolled_back",
        (Outcome::Applied, Operation::Install) => "installed",
        (Outcome::Applied, Operation::Upgrade | Operation::Downgrade) => "upgraded",
        (Outcome::Applied, Operation::Rebuild) => "rebuilt",
        (Outcome::Applied, Operation::Reconfigure) => "reconfigured",
        (Outcome::Applied, Operation::Remove) => "removed",
        (Outcome::Applied, Operation::Repair) => "drift",
    };
    let mut events = Vec::new();
    let mut push = |pack: &str, operation, outcome, from, to, error: Option<String>| {
        let outcome = word(operation, outcome);
        let body = OutcomeEvent {
            host: &run.host,
            pack,
            action: operation.as_str(),
            from,
            to,
            outcome,
            error,
            run: &run.id,
            time,
        };
        events.push(events::Event::new(&run.host, pack, outcome, &body));
    };
    if let Some(runners) = &applied.runners {
        push(
            "runners",
            runners.operation,
            runners.outcome,
            runners.from.as_ref().map(|d| d.short().to_string()),
            Some(runners.to.short().to_string()),
            runners.error.as_ref().map(Report::one_line),
        );
    }
    for step in &applied.steps {
        push(
            step.pack.as_str(),
            step.operation,
            step.outcome,
            step.from.as_ref().map(|r| r.version.to_string()),
            step.to.as_ref().map(|r| r.version.to_string()),
            step.error.as_ref().map(Report::one_line),
        );
    }
    events.push(events::Event::new(&run.host, "run", "completed", record));
    events
}
