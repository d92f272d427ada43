//! `status`: per pack what the site config asks for, what is live, what StackStorm has
//! registered (where the store can see it), and how they relate; and what the other hosts
//! sharing the store have recorded.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{ExecuteError, Planned, plan};
use crate::config::SiteConfig;
use crate::diagnostics::Severity;
use crate::fleet::{Fleet, FleetError, RolloutStatus};
use crate::model::{Action, Digest, PackName, ReleaseId};
use crate::source::RefSelector;
use crate::state::{
    Failure, HistoryEntry, Outcome, PackRecord, RegisteredPack, RunnerSwitch, StateStore,
};

/// How a pack stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackState {
    /// Live and what the site config asks for.
    Ok,
    /// The last step failed, or its desired state cannot be read.
    Failed,
    /// Disk disagrees with the record, a folder packsync does not manage is in the way, or
    /// StackStorm has another version registered than the live one.
    Drifted,
    /// `apply` would change it.
    Pending,
    /// `packsync suspend` holds its changes back.
    Suspended,
    /// The live release's virtualenv is incomplete: `apply` builds it again.
    Broken,
}

impl PackState {
    /// The state as `status --json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PackState::Ok => "ok",
            PackState::Failed => "failed",
            PackState::Drifted => "drifted",
            PackState::Pending => "pending",
            PackState::Suspended => "suspended",
            PackState::Broken => "broken",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PackStatus {
    pub pack: PackName,
    /// What the site config asks for (`HEAD`, a ref, `version <range>`), `None` when the
    /// pack left the config.
    pub desired: Option<String>,
    pub enabled: bool,
    pub state: PackState,
    /// What `apply` would do, when not `unchanged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Action>,
    /// Why `packsync suspend` holds it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    pub active: Option<ActiveStatus>,
    /// Kept releases, newest first.
    pub releases: Vec<ReleaseId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// Why its desired state cannot be read (the first error `check` reports for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The desired virtualenv failed to build with these inputs: nothing is tried again
    /// before its retry time (or `apply --retry-failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_build: Option<crate::model::FailedBuild>,
    pub last_change: Option<HistoryEntry>,
    /// What StackStorm has registered, where the state store can see its database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineStatus>,
    /// What the last `packsync verify` found changed in the live release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tampered: Option<crate::store::PackVerification>,
}

/// The pack as StackStorm's `pack_d_b` has it.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    /// `None`: not registered.
    pub registered: Option<RegisteredPack>,
    /// The registered version is not the live one (someone ran `st2 pack install`, or a
    /// registration failed), or a pack packsync removed is still registered.
    pub drift: bool,
}

/// How a pack of another host stands, from that host's record alone (its disk is out of
/// reach).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedStatus {
    pub pack: PackName,
    pub state: RecordedState,
    pub active: Option<ActiveStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedState {
    Ok,
    Failed,
    Removed,
}

/// The recorded status of every pack of each other host sharing the store.
fn other_hosts(store: &dyn StateStore) -> Result<Vec<HostStatus>, ExecuteError> {
    Ok(store
        .other_hosts()?
        .into_iter()
        .map(|(host, records)| {
            let packs = records
                .into_iter()
                .map(|(pack, record)| RecordedStatus {
                    state: if record.last_failure.is_some() {
                        RecordedState::Failed
                    } else if record.active.is_some() {
                        RecordedState::Ok
                    } else {
                        RecordedState::Removed
                    },
                    active: active_status(&record),
                    last_failure: record.last_failure,
                    pack,
                })
                .collect();
            HostStatus { host, packs }
        })
        .collect())
}

fn active_status(record: &PackRecord) -> Option<ActiveStatus> {
    let release = record.active_release()?;
    Some(ActiveStatus::of(
        &release.revision,
        record.active.as_ref().map(|a| a.since),
    ))
}

impl ActiveStatus {
    fn of(revision: &crate::model::Revision, since: Option<jiff::Timestamp>) -> Self {
        Self {
            release: ReleaseId::of(revision),
            version: revision.version.to_string(),
            commit: revision.commit.clone(),
            git_ref: revision.git_ref.clone(),
            env: revision.env.clone(),
            since,
            env_verified: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveStatus {
    pub release: ReleaseId,
    pub version: String,
    /// The full commit id, as in `plan --json` and `history --json`.
    pub commit: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub env: Digest,
    pub since: Option<jiff::Timestamp>,
    /// Whether the live virtualenv has its completion record (every pin verified when it was
    /// built); unknown for another host's release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_verified: Option<bool>,
}

/// The runner set: what is live, what the site config asks for, and the last switch.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerSetStatus {
    pub state: PackState,
    /// The digest of the live set.
    pub active: Option<Digest>,
    /// Its runner distributions, `name version`.
    pub runners: Vec<String>,
    /// The set the plan would switch to.
    pub pending: Option<Digest>,
    pub last_switch: Option<RunnerSwitch>,
}

/// What `status --json` prints and the agent serves at `/api/v1/status`: this host's packs and
/// runner set, and on request what the other hosts sharing the store recorded and the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub host: String,
    /// The suspension of the whole host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_suspended: Option<crate::model::Suspension>,
    pub packs: Vec<PackStatus>,
    /// When `packsync verify` last checked the live releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<jiff::Timestamp>,
    /// `None` when the site has no runners and none are live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runners: Option<RunnerSetStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_hosts: Option<Vec<HostStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStatus>,
}

/// What another host sharing the store recorded.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub packs: Vec<RecordedStatus>,
}

/// The fleet of `[fleet]` as this host and the store see it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub name: String,
    pub hosts: Vec<String>,
    pub packs: Vec<FleetPack>,
    /// The latest rollouts, newest first.
    pub rollouts: Vec<RolloutStatus>,
}

/// One pack across the fleet: its live release on each host (`None`: not live there).
#[derive(Debug, Clone, Serialize)]
pub struct FleetPack {
    pub pack: String,
    pub hosts: BTreeMap<String, Option<String>>,
}

/// How many rollouts a status shows.
const ROLLOUTS_SHOWN: i64 = 20;

/// What a status report takes in beside this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Include {
    /// What the other hosts sharing the store recorded.
    pub other_hosts: bool,
    /// The fleet's table and rollouts (an error when the site has no `[fleet]`).
    pub fleet: bool,
}

/// The status of every pack of the site config and every pack packsync has a record of, and
/// of the runner set; with `include`, the other hosts' and the fleet's.
pub fn report(
    config: &SiteConfig,
    store: &dyn StateStore,
    include: Include,
) -> Result<StatusReport, ExecuteError> {
    let planned = plan(config, store, None)?;
    let runners = runner_status(config, store, &planned)?;
    let verification = crate::store::last_verification(&config.agent.state_dir);
    let packs = pack_status(config, store, &planned, verification.as_ref())?;
    let others = if include.other_hosts || include.fleet {
        other_hosts(store)?
    } else {
        Vec::new()
    };
    let fleet = if include.fleet {
        Some(fleet_status(config, &packs, &others)?)
    } else {
        None
    };
    Ok(StatusReport {
        host: config.host(),
        host_suspended: planned.host_suspended.clone(),
        packs,
        verified_at: verification.map(|verification| verification.at),
        runners,
        other_hosts: include.other_hosts.then_some(others),
        fleet,
    })
}

fn fleet_status(
    config: &SiteConfig,
    packs: &[PackStatus],
    others: &[HostStatus],
) -> Result<FleetStatus, ExecuteError> {
    let host = config.host();
    let (Some(fleet), Some(fleet_config)) = (Fleet::open(config, &host)?, &config.fleet) else {
        return Err(FleetError::NotConfigured {
            config: config.path.clone(),
        }
        .into());
    };
    let live_here = |name: &str| {
        packs
            .iter()
            .find(|p| p.pack.as_str() == name)
            .and_then(|p| p.active.as_ref())
    };
    let live_on = |member: &str, name: &str| {
        others
            .iter()
            .find(|other| other.host == member)
            .and_then(|other| other.packs.iter().find(|p| p.pack.as_str() == name))
            .and_then(|p| p.active.as_ref())
    };
    let names: BTreeSet<&str> = packs
        .iter()
        .map(|p| p.pack.as_str())
        .chain(
            others
                .iter()
                .flat_map(|other| other.packs.iter().map(|p| p.pack.as_str())),
        )
        .collect();
    let packs = names
        .into_iter()
        .map(|name| FleetPack {
            pack: name.to_string(),
            hosts: fleet_config
                .hosts
                .iter()
                .map(|member| {
                    let live = if *member == host {
                        live_here(name)
                    } else {
                        live_on(member, name)
                    };
                    (member.clone(), live.map(|a| a.release.to_string()))
                })
                .collect(),
        })
        .collect();
    Ok(FleetStatus {
        name: fleet_config.name.clone(),
        hosts: fleet_config.hosts.clone(),
        packs,
        rollouts: fleet.rollouts(None, ROLLOUTS_SHOWN)?,
    })
}

fn runner_status(
    config: &SiteConfig,
    store: &dyn StateStore,
    planned: &Planned,
) -> Result<Option<RunnerSetStatus>, ExecuteError> {
    let live = planned.observed.installed.runners.as_ref();
    if config.runners.is_empty() && live.is_none() {
        return Ok(None);
    }
    let last_switch = store.runner_switches(Some(1))?.into_iter().next();
    let pending = planned
        .plan
        .runners
        .as_ref()
        .map(|change| change.to.digest());
    let failed = last_switch.as_ref().is_some_and(|switch| {
        switch.outcome != Outcome::Applied && Some(&switch.to) == pending.as_ref()
    });
    let unresolved = !config.runners.is_empty() && planned.resolution.desired.runners.is_none();
    let state = if failed || unresolved {
        PackState::Failed
    } else if planned.observed.installed.runners_unhooked {
        PackState::Drifted
    } else if pending.is_some() {
        PackState::Pending
    } else {
        PackState::Ok
    };
    Ok(Some(RunnerSetStatus {
        state,
        active: live.map(crate::model::EnvInputs::digest),
        runners: live
            .map(|inputs| crate::runners::versions(config, inputs))
            .unwrap_or_default(),
        pending,
        last_switch,
    }))
}

/// Sorts `packs` in the plan's order (dependencies first, as `plan` and `apply` list them),
/// then the packs the plan leaves out (disabled, unreadable) by name.
fn in_plan_order(planned: &Planned, packs: &mut [PackName]) {
    let position = |pack: &PackName| {
        planned
            .plan
            .changes
            .iter()
            .position(|change| change.pack == *pack)
            .unwrap_or(usize::MAX)
    };
    packs.sort_by(|a, b| position(a).cmp(&position(b)).then_with(|| a.cmp(b)));
}

fn pack_status(
    config: &SiteConfig,
    store: &dyn StateStore,
    planned: &Planned,
    verification: Option<&crate::store::Verification>,
) -> Result<Vec<PackStatus>, ExecuteError> {
    let history = store.history(None, None)?;
    let registered = store.registered_packs()?;
    let mut packs: Vec<PackName> = config.packs.iter().map(|p| p.name.clone()).collect();
    packs.extend(planned.records.keys().cloned());
    packs.extend(planned.observed.installed.packs.keys().cloned());
    let mut seen = std::collections::BTreeSet::new();
    packs.retain(|p| seen.insert(p.clone()));
    in_plan_order(planned, &mut packs);
    Ok(packs
        .into_iter()
        .map(|pack| {
            let pack_config = config.packs.iter().find(|p| p.name == pack);
            let record = planned.records.get(&pack);
            let live = planned.observed.installed.packs.get(&pack);
            let change = planned.plan.changes.iter().find(|c| c.pack == pack);
            let unresolved = planned.resolution.desired.unresolved.contains(&pack);
            let problem = unresolved
                .then(|| {
                    planned.resolution.problems.iter().find(|problem| {
                        problem.severity == Severity::Error
                            && problem.report.pack.as_ref() == Some(&pack)
                    })
                })
                .flatten()
                .map(|problem| problem.report.one_line());
            let drifted = planned.observed.drift.iter().any(|d| d.pack == pack)
                || planned.observed.installed.unmanaged.contains_key(&pack)
                || live.is_some_and(|live| !live.broken_links.is_empty());
            let last_failure = record.and_then(|r| r.last_failure.clone());
            let pending = change.map(|c| c.action).filter(|a| a.changes_host());
            let engine = registered.as_ref().map(|registered| {
                let registered = registered.get(&pack).cloned();
                let drift = match (live, &registered) {
                    (Some(live), Some(registered)) => {
                        live.revision.version.to_string() != registered.version
                    }
                    (Some(_), None) => true,
                    (None, Some(_)) => record.is_some(),
                    (None, None) => false,
                };
                EngineStatus { registered, drift }
            });
            let engine_drift = engine.as_ref().is_some_and(|e| e.drift);
            let suspended = planned.resolution.desired.suspended.get(&pack).cloned();
            let failed_build = planned.resolution.desired.failed_builds.get(&pack).cloned();
            let broken = live.is_some_and(|live| live.broken_env.is_some());
            let tampered = live.and_then(|live| {
                crate::store::tampered(verification, &pack, &ReleaseId::of(&live.revision))
            });
            let state = if suspended.is_some() {
                PackState::Suspended
            } else if broken {
                PackState::Broken
            } else if last_failure.is_some() || unresolved || failed_build.is_some() {
                PackState::Failed
            } else if drifted || engine_drift || tampered.is_some() {
                PackState::Drifted
            } else if pending.is_some() {
                PackState::Pending
            } else {
                PackState::Ok
            };
            let active = live.map(|live| ActiveStatus {
                env_verified: Some(live.broken_env.is_none()),
                ..ActiveStatus::of(
                    &live.revision,
                    record.and_then(|r| r.active.as_ref()).map(|a| a.since),
                )
            });
            PackStatus {
                desired: pack_config.map(|p| match &p.selector {
                    RefSelector::Head => "HEAD".to_string(),
                    RefSelector::Ref(git_ref) => git_ref.clone(),
                    RefSelector::Version(range) => format!("version {range}"),
                }),
                enabled: pack_config.is_some_and(|p| p.enabled),
                state,
                pending,
                suspended,
                active,
                releases: record
                    .map(|r| r.releases.iter().map(|r| r.id.clone()).collect())
                    .unwrap_or_default(),
                last_failure,
                problem,
                failed_build,
                last_change: history.iter().find(|e| e.pack == pack).cloned(),
                engine,
                tampered,
                pack,
            }
        })
        .collect())
}
