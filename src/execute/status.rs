//! `status`: per pack what the site config asks for, what is live, what StackStorm has
//! registered (where the store can see it), and how they relate; and what the other hosts
//! sharing the store have recorded.

use serde::Serialize;

use super::{ExecuteError, Planned, plan};
use crate::config::SiteConfig;
use crate::model::{Action, PackName, ReleaseId, short_commit};
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
    /// The desired virtualenv failed to build with these inputs: nothing is tried again
    /// before its retry time (or `apply --retry-failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_build: Option<crate::model::FailedBuild>,
    pub last_change: Option<HistoryEntry>,
    /// What StackStorm has registered, where the state store can see its database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineStatus>,
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
pub fn other_hosts(
    store: &dyn StateStore,
) -> Result<Vec<(String, Vec<RecordedStatus>)>, ExecuteError> {
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
            (host, packs)
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
            commit: short_commit(&revision.commit).to_string(),
            git_ref: revision.git_ref.clone(),
            env: revision.env.short().to_string(),
            since,
            env_verified: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveStatus {
    pub release: ReleaseId,
    pub version: String,
    pub commit: String,
    pub git_ref: String,
    pub env: String,
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
    /// The short digest of the live set.
    pub active: Option<String>,
    /// Its runner distributions, `name version`.
    pub runners: Vec<String>,
    /// The set the plan would switch to.
    pub pending: Option<String>,
    pub last_switch: Option<RunnerSwitch>,
}

/// The status of the packs and of the runner set.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The suspension of the whole host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_suspended: Option<crate::model::Suspension>,
    pub packs: Vec<PackStatus>,
    /// `None` when the site has no runners and none are live.
    pub runners: Option<RunnerSetStatus>,
}

/// The status of every pack of the site config and every pack packsync has a record of, and
/// of the runner set.
pub fn status(config: &SiteConfig, store: &dyn StateStore) -> Result<Status, ExecuteError> {
    let planned = plan(config, store, None)?;
    let runners = runner_status(config, store, &planned)?;
    Ok(Status {
        host_suspended: planned.host_suspended.clone(),
        packs: pack_status(config, store, &planned)?,
        runners,
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
        active: live.map(|inputs| inputs.digest().short().to_string()),
        runners: live
            .map(|inputs| crate::runners::versions(config, inputs))
            .unwrap_or_default(),
        pending: pending.map(|digest| digest.short().to_string()),
        last_switch,
    }))
}

fn pack_status(
    config: &SiteConfig,
    store: &dyn StateStore,
    planned: &Planned,
) -> Result<Vec<PackStatus>, ExecuteError> {
    let history = store.history(None, None)?;
    let registered = store.registered_packs()?;
    let mut packs: Vec<PackName> = config.packs.iter().map(|p| p.name.clone()).collect();
    packs.extend(planned.records.keys().cloned());
    packs.extend(planned.observed.installed.packs.keys().cloned());
    let mut seen = std::collections::BTreeSet::new();
    packs.retain(|p| seen.insert(p.clone()));
    Ok(packs
        .into_iter()
        .map(|pack| {
            let pack_config = config.packs.iter().find(|p| p.name == pack);
            let record = planned.records.get(&pack);
            let live = planned.observed.installed.packs.get(&pack);
            let change = planned.plan.changes.iter().find(|c| c.pack == pack);
            let unresolved = planned.resolution.desired.unresolved.contains(&pack);
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
            let state = if suspended.is_some() {
                PackState::Suspended
            } else if broken {
                PackState::Broken
            } else if last_failure.is_some() || unresolved || failed_build.is_some() {
                PackState::Failed
            } else if drifted || engine_drift {
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
                failed_build,
                last_change: history.iter().find(|e| e.pack == pack).cloned(),
                engine,
                pack,
            }
        })
        .collect())
}
