//! Carrying out a plan: per pack, stage -> gate -> switch -> register -> record, independent
//! packs in parallel, one pack's failure never touching another.
//!
//! [`plan`] is the one way both `plan` and `apply` compute what to do, so the two always agree.
//! [`apply`], [`rollback`] and [`collect_garbage`] expect the caller to hold the run lock.

mod purge;
mod schedule;
mod status;
mod step;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use purge::preview_purges;
pub use status::{
    ActiveStatus, EngineStatus, FleetPack, FleetStatus, HostStatus, Include, PackState, PackStatus,
    RecordedState, RecordedStatus, RunnerSetStatus, StatusReport, report,
};
pub use step::{EnvReport, StepError};

use crate::activate::Adoption;
use crate::config::SiteConfig;
use crate::desired::{self, Resolution, WorkTrees};
use crate::diagnostics::{Diagnose, Report};
use crate::env::{EnvBuilder, FailedBuilds};
use crate::fleet::{Fleet, FleetError};
use crate::fsx;
use crate::model::{
    Action, Digest, EngineRepair, EnvInputs, Installed, PackName, Plan, ReleaseId, Revision,
    RunnerChange, Suspension,
};
use crate::pack::content::Resource;
use crate::plan::PlanError;
use crate::python::PythonIdentity;
use crate::runners::{self, RunnersLayout};
use crate::state::{
    self, Observed, Operation, Outcome, PackRecord, RegisteredPack, RunRecord, RunnerSwitch,
    StateError, StateStore,
};
use crate::store::{self, Collected, Layout, Recovered, StoreError, Sweep};

/// The desired state, what is live, and the plan between them.
#[derive(Debug)]
pub struct Planned {
    pub resolution: Resolution,
    pub records: BTreeMap<PackName, PackRecord>,
    pub observed: Observed,
    pub plan: Plan,
    /// The suspension of the whole host, if any: `apply` changes nothing while it lasts.
    pub host_suspended: Option<Suspension>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("No pack `{pack}` in the site config `{}` nor installed", config.display())]
    UnknownPack { pack: PackName, config: PathBuf },
    #[error("Failed to read the installed state")]
    State(#[from] StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("The plan removes every pack of this host ({count})")]
    WouldRemoveAll { count: usize },
    #[error("Pack `{pack}` has no release `{release}` to roll back to")]
    NoSuchRelease { pack: PackName, release: String },
    #[error("Pack `{pack}` has no earlier release to roll back to")]
    NoEarlierRelease { pack: PackName },
    #[error("Pack `{pack}` is not installed by packsync on this host")]
    NotInstalled { pack: PackName },
    #[error("No runner set `{set}` is kept in `{}`", dir.display())]
    NoSuchRunnerSet { set: String, dir: PathBuf },
    #[error("No earlier runner set to roll back to")]
    NoEarlierRunnerSet,
    #[error("This host is suspended since {since} ({reason}): nothing changes")]
    HostSuspended {
        reason: String,
        since: jiff::Timestamp,
    },
    #[error(transparent)]
    Runners(#[from] runners::RunnerError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl Diagnose for ExecuteError {
    fn hint(&self) -> Option<String> {
        match self {
            ExecuteError::WouldRemoveAll { .. } => Some(
                "check that the site config lists the packs (a config emptied by mistake looks \
                 the same); pass `--allow-empty` if removing them all is intended"
                    .to_string(),
            ),
            ExecuteError::HostSuspended { .. } => {
                Some("`packsync resume` lets changes happen again".to_string())
            }
            ExecuteError::NoSuchRunnerSet { .. } | ExecuteError::NoEarlierRunnerSet => Some(
                "`packsync history --runners` lists the runner sets that went live".to_string(),
            ),
            ExecuteError::NoSuchRelease { pack, .. } | ExecuteError::NoEarlierRelease { pack } => {
                Some(format!(
                    "`packsync status --json` lists the kept releases of `{pack}`"
                ))
            }
            _ => None,
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        match self {
            ExecuteError::Plan(err) => Some(err),
            ExecuteError::Store(err) => Some(err),
            ExecuteError::State(err) => Some(err),
            ExecuteError::Runners(err) => Some(err),
            ExecuteError::Fleet(err) => Some(err),
            _ => None,
        }
    }
}

/// Reads the desired state (of every pack, or of those in `only`), the store's record and what
/// disk says is live, and plans.
pub fn plan(
    config: &SiteConfig,
    store: &dyn StateStore,
    only: Option<&BTreeSet<PackName>>,
) -> Result<Planned, ExecuteError> {
    plan_from(
        config,
        store.load()?,
        store.suspensions()?,
        store.registered_packs()?.as_ref(),
        only,
        FailedBuildPolicy::Wait,
    )
}

/// [`plan`] from the store's `records`, already read.
fn plan_from(
    config: &SiteConfig,
    records: BTreeMap<PackName, PackRecord>,
    suspensions: Vec<Suspension>,
    registered: Option<&BTreeMap<PackName, RegisteredPack>>,
    only: Option<&BTreeSet<PackName>>,
    failed_builds: FailedBuildPolicy,
) -> Result<Planned, ExecuteError> {
    let layout = Layout::new(config);
    let mut observed = state::read_installed(
        &layout,
        &records,
        config.packs.iter().map(|pack| &pack.name),
    )?;
    if let Some(only) = only {
        for pack in only {
            let known = config.packs.iter().any(|p| &p.name == pack)
                || observed.installed.packs.contains_key(pack);
            if !known {
                return Err(ExecuteError::UnknownPack {
                    pack: pack.clone(),
                    config: config.path.clone(),
                });
            }
        }
        observed
            .installed
            .packs
            .retain(|name, _| only.contains(name));
    }
    if let Some(registered) = registered
        && config.stackstorm.repair_engine_drift
        && config.stackstorm.register.is_some()
    {
        mark_engine_drift(&mut observed.installed, registered);
    }
    let runners_layout = RunnersLayout::new(config);
    observed.installed.runners = runners::installed(&runners_layout);
    if observed.installed.runners.is_some()
        && let Some(st2_python) = &config.stackstorm.st2_python
    {
        let probes = config.agent.state_dir.join(crate::python::PROBE_CACHE);
        // An interpreter that cannot be asked is reported by the resolution.
        observed.installed.runners_unhooked = PythonIdentity::probe_cached(st2_python, &probes)
            .is_ok_and(|st2| !runners::hooked(&st2, &runners_layout));
    }
    let mut resolution = desired::resolve(config, only, WorkTrees::Ignore);
    let mut host_suspended = None;
    for suspension in suspensions {
        match suspension.pack {
            Some(pack) => {
                resolution.desired.suspended.insert(pack, suspension.reason);
            }
            None => host_suspended = Some(suspension),
        }
    }
    if failed_builds == FailedBuildPolicy::Wait {
        let memo = FailedBuilds::open(config);
        let now = crate::model::now();
        hold_failed_runner_set(
            &mut resolution,
            observed.installed.runners.as_ref(),
            &memo,
            now,
        );
        let desired = &mut resolution.desired;
        for pack in &desired.packs {
            // The memo first: it is in memory, the completion record is a file to read.
            if let Some(failed) = memo.holding(&pack.revision.env, now)
                && !store::is_complete(&layout.env(&pack.revision.env), &pack.revision.env)
            {
                desired.failed_builds.insert(pack.name.clone(), failed);
            }
        }
    }
    let plan = crate::plan::plan(&resolution.desired, &observed.installed, config.agent.prune)?;
    Ok(Planned {
        resolution,
        records,
        observed,
        plan,
        host_suspended,
    })
}

/// A runner set that failed to go live waits for its retry time: no switch is planned, and a
/// warning says when and why.
fn hold_failed_runner_set(
    resolution: &mut Resolution,
    live: Option<&EnvInputs>,
    memo: &FailedBuilds,
    now: jiff::Timestamp,
) {
    let Some(set) = resolution
        .desired
        .runners
        .as_ref()
        .filter(|set| live.is_none_or(|live| live.digest() != set.digest()))
    else {
        return;
    };
    let Some(failed) = memo.holding(&set.digest(), now) else {
        return;
    };
    resolution.problems.push(crate::diagnostics::Problem {
        severity: crate::diagnostics::Severity::Warning,
        report: Report {
            pack: None,
            message: format!(
                "runners: the set {} failed to go live ({} failure{}), retry after {}: {}",
                set.digest().short(),
                failed.failures,
                if failed.failures == 1 { "" } else { "s" },
                failed.retry_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
                failed.cause
            ),
            causes: Vec::new(),
            location: None,
            hint: Some("`packsync apply --retry-failed` tries again now".to_string()),
            output: None,
        },
    });
    resolution.desired.runners = None;
}

/// Marks the live packs whose version StackStorm's `pack_d_b` does not have registered: their
/// plan registers and purges them again.
fn mark_engine_drift(installed: &mut Installed, registered: &BTreeMap<PackName, RegisteredPack>) {
    for (name, pack) in &mut installed.packs {
        let registered = registered.get(name).map(|r| r.version.clone());
        if registered.as_deref() != Some(pack.revision.version.to_string().as_str()) {
            pack.engine_repair
                .get_or_insert(EngineRepair::Drift { registered });
        }
    }
}

/// Whether `apply` changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Plan, repair nothing, change nothing (`--noop`).
    Noop,
    Apply,
}

/// What a virtualenv that failed to build with the same inputs before does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBuildPolicy {
    /// Waits for its retry time (the memo of failed builds).
    Wait,
    /// Is built again now (`--retry-failed`).
    Retry,
}

/// How `apply` runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub mode: DryRun,
    /// Apply only these packs.
    pub only: Option<BTreeSet<PackName>>,
    /// Allow a plan that removes every pack.
    pub allow_empty: bool,
    /// Whether a virtualenv that failed to build waits for its retry time.
    pub failed_builds: FailedBuildPolicy,
    /// Set (by a SIGTERM to the agent): steps not started yet are left for the next run; a
    /// step in progress finishes, so no switch is ever left half done.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Who runs, for history entries.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    pub host: String,
    pub started_at: jiff::Timestamp,
}

impl RunInfo {
    /// A new run on `host`: its id is the start time and the process id.
    pub fn new(host: String) -> Self {
        let now = crate::model::now();
        Self {
            id: format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), std::process::id()),
            host,
            started_at: now,
        }
    }
}

/// What one pack's step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub pack: PackName,
    #[serde(rename = "action")]
    pub operation: Operation,
    pub outcome: Outcome,
    pub from: Option<Revision>,
    pub to: Option<Revision>,
    pub release: Option<ReleaseId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<Adoption>,
    /// What StackStorm held for the pack that the live release does not carry, removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub purged: Vec<Resource>,
    /// The purge failed: StackStorm may still hold content the live release does not carry.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unpurged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Report>,
    pub duration_ms: u64,
}

impl StepReport {
    /// A step about to run: failed until it says otherwise, nothing built, no error yet.
    fn new(
        pack: PackName,
        operation: Operation,
        from: Option<Revision>,
        to: Option<Revision>,
        release: Option<ReleaseId>,
    ) -> Self {
        Self {
            pack,
            operation,
            outcome: Outcome::Failed,
            from,
            to,
            release,
            env: None,
            adopted: Vec::new(),
            purged: Vec::new(),
            unpurged: false,
            error: None,
            duration_ms: 0,
        }
    }
}

/// Milliseconds since `started`, for step reports.
fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What `apply` did.
#[derive(Debug)]
pub struct Applied {
    pub planned: Planned,
    /// What an interrupted run had left and was removed.
    pub recovered: Recovered,
    /// The repairs of records that disagreed with disk (`planned.observed.drift`), then one
    /// per change that touches the host, in plan order (none with
    /// `--noop`).
    pub steps: Vec<StepReport>,
    /// Releases and virtualenvs beyond `keep_releases`, removed.
    pub collected: Collected,
    /// The runner set switch, when the plan has one (none with `--noop`).
    pub runners: Option<RunnerStep>,
}

/// What became of the runner set change.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerStep {
    #[serde(rename = "action")]
    pub operation: Operation,
    pub from: Option<Digest>,
    pub to: Digest,
    /// The runner distributions of the set, `name version`.
    pub runners: Vec<String>,
    pub outcome: Outcome,
    pub error: Option<Report>,
}

impl Applied {
    pub fn failures(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| step.outcome != Outcome::Applied || step.error.is_some())
            .count()
            + self
                .runners
                .iter()
                .filter(|runners| runners.outcome != Outcome::Applied)
                .count()
            + self.planned.resolution.desired.unresolved.len()
            + self.held_by_failed_builds()
    }

    /// Changes held back because their virtualenv failed to build before: not done, so failed.
    fn held_by_failed_builds(&self) -> usize {
        self.planned
            .plan
            .changes
            .iter()
            .filter(|change| {
                change
                    .reasons
                    .iter()
                    .any(|reason| matches!(reason, crate::model::Reason::BuildFailed { .. }))
            })
            .count()
    }

    pub fn changes(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.outcome)
            .chain(self.runners.iter().map(|r| r.outcome))
            .filter(|outcome| *outcome == Outcome::Applied)
            .count()
    }

    /// Changes of the plan that touch the host (with `--noop`: pending), the runner set
    /// included.
    pub fn planned(&self) -> usize {
        self.planned
            .plan
            .changes
            .iter()
            .filter(|c| c.action.changes_host())
            .count()
            + usize::from(self.planned.plan.runners.is_some())
    }

    /// Packs the plan leaves as they are.
    pub fn unchanged(&self) -> usize {
        self.planned.plan.changes.len() + usize::from(self.planned.plan.runners.is_some())
            - self.planned()
    }

    /// Puppet's detailed exit code: 0 nothing to change, 2 changes (with `noop`: pending), 4
    /// failures, 6 both.
    pub fn detailed_exit_code(&self, noop: bool) -> u8 {
        let changed = if noop {
            self.planned() > 0
        } else {
            self.changes() > 0
        };
        u8::from(changed) * 2 + u8::from(self.failures() > 0) * 4
    }

    /// The record of this run, ended now with Puppet's detailed `exit_code`.
    pub fn run_record(&self, run: &RunInfo, noop: bool, exit_code: u8) -> RunRecord {
        let mut applied = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for step in &self.steps {
            let counts = if step.outcome == Outcome::Applied {
                &mut applied
            } else {
                &mut failed
            };
            *counts.entry(step.operation).or_insert(0) += 1;
        }
        RunRecord {
            run: run.id.clone(),
            host: run.host.clone(),
            started_at: run.started_at,
            finished_at: crate::model::now(),
            noop,
            exit_code,
            applied,
            failed,
            planned: self.planned() as u64,
            unchanged: self.unchanged() as u64,
        }
    }
}

/// Where a pack's step is, for a live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase<'a> {
    /// What it does now, for a human: `building its virtualenv`.
    Doing(&'a str),
    /// The installer's latest line while its virtualenv is built.
    Installer(&'a str),
    /// Its step ended.
    Finished(Outcome),
}

/// Told each phase of each pack's step as it happens (from the threads building packs).
pub type Progress<'a> = &'a (dyn Fn(&PackName, Phase<'_>) + Sync);

/// What every step of one run shares.
struct Context<'a> {
    config: &'a SiteConfig,
    layout: Layout,
    store: &'a dyn StateStore,
    builder: EnvBuilder,
    run: RunInfo,
    /// The store's records, kept current as steps finish (each step writes only its pack's).
    records: Mutex<BTreeMap<PackName, PackRecord>>,
    progress: Progress<'a>,
    stop: Option<Arc<AtomicBool>>,
    /// The fleet this host deploys with, if any: each release goes live on every host together.
    fleet: Option<Fleet>,
    /// What the last `packsync verify` found, read once for the run.
    verification: Option<crate::store::Verification>,
    /// The tampered virtualenvs this run moved aside (one may serve several packs).
    envs_set_aside: Mutex<std::collections::HashSet<PathBuf>>,
}

/// Switches the runner set to `to` and records the switch.
fn runner_step(
    config: &SiteConfig,
    store: &dyn StateStore,
    builder: &EnvBuilder,
    run: &RunInfo,
    operation: Operation,
    from: Option<Digest>,
    to: &EnvInputs,
) -> RunnerStep {
    let digest = to.digest();
    tracing::info!(set = %digest.short(), "switching the runner set");
    let started = std::time::Instant::now();
    let switched = runners::switch(config, builder, to);
    let outcome = match &switched {
        Ok(()) => Outcome::Applied,
        Err(runners::RunnerError::Reverted { .. }) => Outcome::Reverted,
        Err(_) => Outcome::Failed,
    };
    match &switched {
        Ok(()) => builder.failures().forget(&digest),
        Err(err) => {
            tracing::info!(error = %err, "the runner set did not go live");
            // Tried again at its retry time, as a failed build is (`--retry-failed`: now).
            builder.failures().failed(&digest, &Report::new(err));
        }
    }
    let step = RunnerStep {
        operation,
        from,
        to: digest,
        runners: runners::versions(config, to),
        outcome,
        error: switched.err().map(|err| Report::new(&err)),
    };
    let record = RunnerSwitch {
        at: crate::model::now(),
        run: run.id.clone(),
        host: run.host.clone(),
        operation,
        from: step.from.clone(),
        to: step.to.clone(),
        runners: step.runners.clone(),
        outcome,
        error: step.error.as_ref().map(Report::one_line),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if let Err(err) = store.record_runner_switch(&record) {
        tracing::warn!(error = %err, "the runner switch was not recorded");
    }
    step
}

impl<'a> Context<'a> {
    fn new(
        config: &'a SiteConfig,
        store: &'a dyn StateStore,
        records: BTreeMap<PackName, PackRecord>,
        run: RunInfo,
        progress: Progress<'a>,
    ) -> Self {
        Self {
            config,
            layout: Layout::new(config),
            store,
            builder: EnvBuilder::for_site(config),
            run,
            records: Mutex::new(records),
            progress,
            stop: None,
            fleet: None,
            verification: crate::store::last_verification(&config.agent.state_dir),
            envs_set_aside: Mutex::default(),
        }
    }
}

/// Reconciles the host with the site config: cleans what an interrupted run left, corrects
/// the record where disk disagrees, then carries out the plan (unless `--noop`) and removes
/// releases beyond `keep_releases`.
pub fn apply(
    config: &SiteConfig,
    store: &dyn StateStore,
    options: &ApplyOptions,
    run: RunInfo,
    progress: Progress<'_>,
) -> Result<Applied, ExecuteError> {
    let layout = Layout::new(config);
    // First: a store that cannot be read (a database down) stops the run before anything on
    // disk changes. What the last run could not write goes in before it is read.
    let written = crate::state::write_held(&config.agent.state_dir, store)?;
    if written > 0 {
        tracing::info!(
            writes = written,
            "wrote what an earlier run held while the store was away"
        );
    }
    let records = store.load()?;
    let suspensions = store.suspensions()?;
    let registered = store.registered_packs()?;
    if options.mode == DryRun::Apply
        && let Some(host) = suspensions.iter().find(|s| s.pack.is_none())
    {
        return Err(ExecuteError::HostSuspended {
            reason: host.reason.clone(),
            since: host.at,
        });
    }
    // Before anything changes: a host that is not a member of its fleet stops here.
    let fleet = Fleet::open(config, &run.host)?;
    let recovered = match options.mode {
        DryRun::Apply => store::prepare(&layout)?,
        DryRun::Noop => Recovered::default(),
    };
    let planned = plan_from(
        config,
        records,
        suspensions,
        registered.as_ref(),
        options.only.as_ref(),
        options.failed_builds,
    )?;
    let removals = planned
        .plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Remove)
        .count();
    let remaining = planned
        .plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Remove && c.to.is_some() || c.action == Action::Orphan)
        .count()
        + planned.resolution.desired.unresolved.len()
        + planned.resolution.desired.disabled.len();
    if removals > 0 && remaining == 0 && options.only.is_none() && !options.allow_empty {
        return Err(ExecuteError::WouldRemoveAll { count: removals });
    }
    let mut applied = Applied {
        planned,
        recovered,
        steps: Vec::new(),
        collected: Collected::default(),
        runners: None,
    };
    if options.mode == DryRun::Noop {
        return Ok(applied);
    }
    let mut context = Context::new(
        config,
        store,
        applied.planned.records.clone(),
        run,
        progress,
    );
    context.stop.clone_from(&options.stop);
    context.fleet = fleet;
    applied.steps = context.repair(&applied.planned);
    // Runners first: the packs' actions may use them, and registering an action whose runner
    // StackStorm does not know fails.
    applied.runners = applied
        .planned
        .plan
        .runners
        .as_ref()
        .map(|change| context.switch_runners(change));
    applied.steps.extend(context.carry_out(&applied.planned));
    // Only a run that built, switched or repaired something leaves releases to collect: a
    // no-op run does not walk every release (`packsync gc` collects at any time).
    if !applied.steps.is_empty() || applied.runners.is_some() {
        applied.collected = context.collect_garbage()?;
    }
    Ok(applied)
}

impl Context<'_> {
    fn switch_runners(&self, change: &RunnerChange) -> RunnerStep {
        let installed = self
            .records_installed_runners()
            .filter(|installed| Some(installed.digest()) == change.from);
        let operation = match (&change.from, installed) {
            (Some(from), _) if *from == change.to.digest() => Operation::Repair,
            (Some(_), Some(installed))
                if runners::downgrades(self.config, &installed, &change.to) =>
            {
                Operation::Downgrade
            }
            (Some(_), _) => Operation::Upgrade,
            (None, _) => Operation::Install,
        };
        runner_step(
            self.config,
            self.store,
            &self.builder,
            &self.run,
            operation,
            change.from.clone(),
            &change.to,
        )
    }

    /// The runner set live now, as its `runner-set.json` says.
    fn records_installed_runners(&self) -> Option<EnvInputs> {
        runners::installed(&RunnersLayout::new(self.config))
    }

    /// Corrects every record that disagrees with disk, each a `repair` step; a pack that went
    /// live without its record (a run killed after the switch) is registered again, unless the
    /// plan changes it anyway.
    fn repair(&self, planned: &Planned) -> Vec<StepReport> {
        let mut steps = Vec::new();
        for drift in &planned.observed.drift {
            tracing::info!(pack = %drift.pack, recorded = drift.recorded.as_ref().map_or("nothing", ReleaseId::as_str), live = drift.live.as_ref().map_or("nothing", ReleaseId::as_str), "the record disagrees with disk; disk wins");
            let from = planned
                .records
                .get(&drift.pack)
                .and_then(PackRecord::active_release)
                .map(|r| r.revision.clone());
            // What `read_installed` read from the live release's `release.json`.
            let live = planned.observed.installed.packs.get(&drift.pack);
            let revision = live.map(|l| &l.revision);
            let env_inputs = live.and_then(|l| l.env_inputs.as_ref());
            let mut step = StepReport::new(
                drift.pack.clone(),
                Operation::Repair,
                from,
                revision.cloned(),
                drift.live.clone(),
            );
            step.outcome = Outcome::Applied;
            self.record(&step, revision, env_inputs);
            let unchanged = planned
                .plan
                .changes
                .iter()
                .any(|c| c.pack == drift.pack && !c.action.changes_host());
            // On a fleet, the release a host switched to before it died was registered for
            // the whole site by the rollout's lease holder.
            let registered_by_fleet = |live: &ReleaseId| {
                self.fleet.as_ref().is_some_and(|fleet| {
                    fleet
                        .is_live(&drift.pack, live)
                        .inspect_err(|err| tracing::warn!(pack = %drift.pack, error = %err, "cannot read the fleet's rollout; registering"))
                        .unwrap_or(false)
                })
            };
            if let Some(live) = drift
                .live
                .as_ref()
                .filter(|live| unchanged && !registered_by_fleet(live))
            {
                match self.register(&drift.pack) {
                    Ok(()) => self.purge_into(&drift.pack, live, &mut step),
                    Err(err) => {
                        step.outcome = Outcome::Failed;
                        step.error = Some(Report::new(&err));
                    }
                }
                if step.error.is_some() {
                    self.record(&step, revision, env_inputs);
                }
            }
            steps.push(step);
        }
        steps
    }

    /// Runs every change that touches the host, dependencies first, independent packs at
    /// once (up to `[agent] concurrency`).
    fn carry_out(&self, planned: &Planned) -> Vec<StepReport> {
        let changes: Vec<_> = planned
            .plan
            .changes
            .iter()
            .filter(|c| c.action.changes_host())
            .collect();
        let desired = &planned.resolution.desired.packs;
        let deps: Vec<Vec<usize>> = changes
            .iter()
            .map(|change| {
                desired
                    .iter()
                    .find(|d| d.name == change.pack)
                    .map(|d| {
                        d.dependencies
                            .iter()
                            .filter_map(|dep| changes.iter().position(|c| &c.pack == dep))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let steps = schedule::in_dependency_order(&deps, self.config.agent.concurrency, |i| {
            let change = changes[i];
            if self
                .stop
                .as_ref()
                .is_some_and(|stop| stop.load(Ordering::SeqCst))
            {
                tracing::info!(pack = %change.pack, "stopping: left for the next run");
                return None;
            }
            let operation = Operation::of(change.action).expect("only changes that touch the host");
            let _span = tracing::info_span!("step", pack = %change.pack, %operation).entered();
            if change.action == Action::Remove {
                return Some(self.remove(&change.pack, change.from.as_ref()));
            }
            let pack = self
                .config
                .packs
                .iter()
                .find(|p| p.name == change.pack)
                .expect("the plan deploys only packs of the site config");
            let target = desired
                .iter()
                .find(|d| d.name == change.pack)
                .expect("the plan deploys only resolved packs");
            Some(self.deploy(operation, pack, target, change.from.as_ref()))
        });
        steps.into_iter().flatten().collect()
    }

    /// Removes the releases the records no longer keep (`[agent] keep_releases` per pack) and
    /// the virtualenvs no release uses.
    fn collect_garbage(&self) -> Result<Collected, ExecuteError> {
        let records = self
            .records
            .lock()
            .expect("no step panics while holding the records");
        let mut collected =
            store::collect_garbage(&self.layout, &kept_releases(&records, None), Sweep::Remove)?;
        collected.runner_sets = runners::collect(
            &RunnersLayout::new(self.config),
            self.config.agent.keep_releases,
            Sweep::Remove,
        )?;
        Ok(collected)
    }
}

/// The releases to keep per pack: those the records keep, or with `keep`, the `keep` newest
/// of each live pack (the active one always) and none of the others.
fn kept_releases(
    records: &BTreeMap<PackName, PackRecord>,
    keep: Option<usize>,
) -> BTreeMap<PackName, BTreeSet<ReleaseId>> {
    records
        .iter()
        .map(|(pack, record)| {
            let ids = match keep {
                None => record.releases.iter().map(|r| r.id.clone()).collect(),
                Some(_) if record.active.is_none() => BTreeSet::new(),
                Some(n) => record
                    .releases
                    .iter()
                    .take(n)
                    .map(|r| r.id.clone())
                    .chain(record.active.iter().map(|a| a.id.clone()))
                    .collect(),
            };
            (pack.clone(), ids)
        })
        .collect()
}

/// `state_dir/last_run.json`, for monitoring that reads files (Puppet's
/// `last_run_summary.yaml`): the run's record and its failures.
const LAST_RUN: &str = "last_run.json";

#[derive(Debug, Serialize)]
struct LastRun<'a> {
    #[serde(flatten)]
    record: &'a RunRecord,
    duration_ms: i64,
    failures: Vec<LastFailure<'a>>,
}

#[derive(Debug, Serialize)]
struct LastFailure<'a> {
    /// A pack, or `runners`.
    subject: &'a str,
    error: String,
}

/// Ends a run: records it in the store and writes `state_dir/last_run.json`. Returns the record,
/// and what failed for a warning: the run itself is done either way.
pub fn finish_run(
    config: &SiteConfig,
    store: &dyn StateStore,
    applied: &Applied,
    run: &RunInfo,
    noop: bool,
) -> (RunRecord, Vec<Report>) {
    let record = applied.run_record(run, noop, applied.detailed_exit_code(noop));
    let mut warnings = Vec::new();
    if let Err(err) = store.record_run(&record) {
        let write = crate::state::Held::Run {
            record: record.clone(),
        };
        if let Err(not_held) = crate::state::hold(&config.agent.state_dir, &write) {
            warnings.push(Report::new(&not_held));
        }
        warnings.push(Report::new(&err));
    }
    let failures = applied
        .steps
        .iter()
        .filter_map(|step| Some((step.pack.as_str(), step.error.as_ref()?)))
        .chain(
            applied
                .runners
                .iter()
                .filter_map(|step| Some(("runners", step.error.as_ref()?))),
        )
        .map(|(subject, error)| LastFailure {
            subject,
            error: error.one_line(),
        })
        .collect();
    let last_run = LastRun {
        duration_ms: record
            .finished_at
            .duration_since(record.started_at)
            .as_millis()
            .try_into()
            .unwrap_or(i64::MAX),
        record: &record,
        failures,
    };
    let path = config.agent.state_dir.join(LAST_RUN);
    let json = serde_json::to_vec_pretty(&last_run).expect("the run serialises to JSON");
    if let Err(source) = fsx::write_atomic(&path, &json) {
        warnings.push(Report::new(&StoreError::Io {
            action: "write",
            path,
            source,
        }));
    }
    (record, warnings)
}

/// Makes an earlier runner set live again (default: the last one that went live before the
/// active one and is still kept), through the same switch, check and registration as `apply`.
pub fn rollback_runners(
    config: &SiteConfig,
    store: &dyn StateStore,
    to: Option<&str>,
    run: &RunInfo,
) -> Result<RunnerStep, ExecuteError> {
    let layout = RunnersLayout::new(config);
    let active = runners::installed(&layout).map(|inputs| inputs.digest());
    let target = match to {
        Some(set) => runners::kept(&layout, set).ok_or_else(|| ExecuteError::NoSuchRunnerSet {
            set: set.to_string(),
            dir: layout.sets(),
        })?,
        None => store
            .runner_switches(None)?
            .iter()
            .filter(|switch| switch.outcome == Outcome::Applied)
            .filter(|switch| Some(&switch.to) != active.as_ref())
            .find_map(|switch| runners::kept(&layout, switch.to.short()))
            .ok_or(ExecuteError::NoEarlierRunnerSet)?,
    };
    Ok(runner_step(
        config,
        store,
        &EnvBuilder::for_site(config),
        run,
        Operation::Rollback,
        active,
        &target,
    ))
}

/// Whether a rollback holds the pack where it went, as `suspend` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Until `resume`: the suspension says who rolled back, and to what.
    UntilResume { by: String },
    /// The next `apply` goes back to what the site config asks for (`--no-hold`).
    No,
}

/// Makes an earlier kept release of `pack` live again (default: the one before the active
/// one), through the same switch and registration as `apply`; with [`Hold::UntilResume`],
/// `apply` and the agent leave it there until `resume`.
pub fn rollback(
    config: &SiteConfig,
    store: &dyn StateStore,
    pack: &PackName,
    to: Option<&ReleaseId>,
    hold: &Hold,
    run: RunInfo,
    progress: Progress<'_>,
) -> Result<StepReport, ExecuteError> {
    let records = store.load()?;
    let record = records
        .get(pack)
        .filter(|r| r.active.is_some())
        .ok_or_else(|| ExecuteError::NotInstalled { pack: pack.clone() })?;
    let active = record.active_release().map(|r| r.id.clone());
    let target = match to {
        Some(id) => record
            .release(id)
            .ok_or_else(|| ExecuteError::NoSuchRelease {
                pack: pack.clone(),
                release: id.to_string(),
            })?,
        None => record
            .releases
            .iter()
            .find(|r| Some(&r.id) != active.as_ref())
            .ok_or_else(|| ExecuteError::NoEarlierRelease { pack: pack.clone() })?,
    }
    .clone();
    let context = Context::new(config, store, records.clone(), run, progress);
    let started = std::time::Instant::now();
    let mut report = StepReport::new(
        pack.clone(),
        Operation::Rollback,
        record.active_release().map(|r| r.revision.clone()),
        Some(target.revision.clone()),
        Some(target.id.clone()),
    );
    report.env = Some(EnvReport::ReleaseReused);
    context.reactivate(pack, &target.id, &mut report);
    report.duration_ms = elapsed_ms(started);
    context.record(&report, Some(&target.revision), Some(&target.env_inputs));
    if let (Hold::UntilResume { by }, Outcome::Applied) = (hold, report.outcome) {
        store.suspend(&Suspension {
            pack: Some(pack.clone()),
            reason: format!("rolled back to {} by {by}", target.id),
            at: crate::model::now(),
        })?;
    }
    Ok(report)
}

/// `packsync gc`: keeps the `keep` newest releases of each live pack, the active one and the
/// one the site config asks for always; removes the rest, the releases of packs that are not
/// live, and unused virtualenvs (with [`Sweep::ListOnly`], lists them).
pub fn collect_garbage(
    config: &SiteConfig,
    store: &dyn StateStore,
    keep: usize,
    sweep: Sweep,
) -> Result<Collected, ExecuteError> {
    let mut kept = kept_releases(&store.load()?, Some(keep));
    // The release the site config asks for stays too: after a rollback it is no longer the
    // newest, and `apply` (or `resume`) goes back to it.
    let desired = desired::resolve(config, None, WorkTrees::Ignore).desired;
    for pack in &desired.packs {
        kept.entry(pack.name.clone())
            .or_default()
            .insert(ReleaseId::of(&pack.revision));
    }
    let mut collected = store::collect_garbage(&Layout::new(config), &kept, sweep)?;
    collected.runner_sets = runners::collect(&RunnersLayout::new(config), keep, sweep)?;
    Ok(collected)
}
