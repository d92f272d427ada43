//! The documents of the MongoDB state store, field by field as queries read them, and their
//! conversions from and to packsync's records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

use super::{date, timestamp};
use crate::activate::Adoption;
use crate::model::{self, Digest, PackName, ReleaseId, Revision, Suspension};
use crate::state::{
    ActiveRelease, Failure, HistoryEntry, Operation, Outcome, PackRecord, ReleaseRecord, RunRecord,
    RunnerSwitch,
};
use crate::store::Layout;

/// `<prefix>releases`: the record of one pack on one host.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReleasesDocument {
    pub(super) host: String,
    pub(super) pack: PackName,
    pub(super) status: RecordStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) active: Option<ActiveDocument>,
    /// Kept releases, newest first.
    #[serde(default)]
    pub(super) releases: Vec<ReleaseRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<Failure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) adopted: Vec<Adoption>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) unpurged: bool,
    pub(super) updated_at: DateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RecordStatus {
    /// A release is live and the last step succeeded.
    Live,
    /// The last step failed (a release may still be live).
    Failed,
    /// Nothing live: removed (its releases stay until gc).
    Removed,
}

/// The active release, spelled out so that a query needs no lookup in `releases`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ActiveDocument {
    pub(super) id: ReleaseId,
    /// Commit, version, ref and the tree, env and config digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) revision: Option<Revision>,
    /// The release folder.
    pub(super) release_dir: PathBuf,
    /// The link StackStorm reads the pack through.
    pub(super) pack_dir: PathBuf,
    pub(super) activated_at: DateTime,
}

impl ReleasesDocument {
    pub(super) fn of(host: &str, layout: &Layout, pack: &PackName, record: &PackRecord) -> Self {
        let status = if record.last_failure.is_some() {
            RecordStatus::Failed
        } else if record.active.is_some() {
            RecordStatus::Live
        } else {
            RecordStatus::Removed
        };
        let active = record.active.as_ref().map(|active| ActiveDocument {
            id: active.id.clone(),
            revision: record.release(&active.id).map(|r| r.revision.clone()),
            release_dir: layout.release(pack, &active.id).dir,
            pack_dir: layout.pack_link(pack),
            activated_at: date(active.since),
        });
        Self {
            host: host.to_string(),
            pack: pack.clone(),
            status,
            active,
            releases: record.releases.clone(),
            last_error: record.last_failure.clone(),
            adopted: record.adopted.clone(),
            unpurged: record.unpurged,
            updated_at: date(model::now()),
        }
    }

    pub(super) fn into_record(self) -> PackRecord {
        PackRecord {
            active: self.active.map(|active| ActiveRelease {
                id: active.id,
                since: timestamp(active.activated_at),
            }),
            releases: self.releases,
            last_failure: self.last_error,
            adopted: self.adopted,
            unpurged: self.unpurged,
        }
    }
}

/// `<prefix>history`: one change.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HistoryDocument {
    pub(super) host: String,
    pub(super) pack: PackName,
    pub(super) action: Operation,
    pub(super) from: Option<Revision>,
    pub(super) to: Option<Revision>,
    pub(super) release: Option<ReleaseId>,
    pub(super) outcome: Outcome,
    pub(super) error: Option<String>,
    pub(super) duration_ms: u64,
    pub(super) run: String,
    pub(super) time: DateTime,
}

/// What tells two history entries apart, for an idempotent import.
pub(super) type HistoryKey = (String, PackName, i64, Operation, &'static str);

impl HistoryDocument {
    /// The entry, as recorded by `host`.
    pub(super) fn of(host: &str, entry: HistoryEntry) -> Self {
        Self {
            host: host.to_string(),
            pack: entry.pack,
            action: entry.operation,
            from: entry.from,
            to: entry.to,
            release: entry.release,
            outcome: entry.outcome,
            error: entry.error,
            duration_ms: entry.duration_ms,
            run: entry.run,
            time: date(entry.at),
        }
    }

    pub(super) fn key(&self) -> HistoryKey {
        (
            self.run.clone(),
            self.pack.clone(),
            self.time.timestamp_millis(),
            self.action,
            self.outcome.as_str(),
        )
    }
}

impl From<HistoryDocument> for HistoryEntry {
    fn from(document: HistoryDocument) -> Self {
        Self {
            at: timestamp(document.time),
            run: document.run,
            host: document.host,
            pack: document.pack,
            operation: document.action,
            from: document.from,
            to: document.to,
            release: document.release,
            outcome: document.outcome,
            error: document.error,
            duration_ms: document.duration_ms,
        }
    }
}

/// `<prefix>runs`: one run.
/// A document of `suspensions`: one per host and pack (`pack: null` for the whole host).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SuspensionDocument {
    pub(super) host: String,
    pub(super) pack: Option<PackName>,
    pub(super) reason: String,
    pub(super) time: DateTime,
}

impl SuspensionDocument {
    pub(super) fn of(host: &str, suspension: Suspension) -> Self {
        Self {
            host: host.to_string(),
            pack: suspension.pack,
            reason: suspension.reason,
            time: date(suspension.at),
        }
    }
}

impl From<SuspensionDocument> for Suspension {
    fn from(document: SuspensionDocument) -> Self {
        Self {
            pack: document.pack,
            reason: document.reason,
            at: timestamp(document.time),
        }
    }
}

/// A document of `runner_switches`: a [`RunnerSwitch`] with its time as a BSON date.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RunnerSwitchDocument {
    pub(super) host: String,
    pub(super) run: String,
    pub(super) action: Operation,
    pub(super) from: Option<Digest>,
    pub(super) to: Digest,
    pub(super) runners: Vec<String>,
    pub(super) outcome: Outcome,
    pub(super) error: Option<String>,
    pub(super) duration_ms: u64,
    pub(super) time: DateTime,
}

impl From<RunnerSwitch> for RunnerSwitchDocument {
    fn from(switch: RunnerSwitch) -> Self {
        Self {
            host: switch.host,
            run: switch.run,
            action: switch.operation,
            from: switch.from,
            to: switch.to,
            runners: switch.runners,
            outcome: switch.outcome,
            error: switch.error,
            duration_ms: switch.duration_ms,
            time: date(switch.at),
        }
    }
}

impl From<RunnerSwitchDocument> for RunnerSwitch {
    fn from(document: RunnerSwitchDocument) -> Self {
        Self {
            at: timestamp(document.time),
            run: document.run,
            host: document.host,
            operation: document.action,
            from: document.from,
            to: document.to,
            runners: document.runners,
            outcome: document.outcome,
            error: document.error,
            duration_ms: document.duration_ms,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RunDocument {
    pub(super) host: String,
    pub(super) run: String,
    pub(super) started_at: DateTime,
    pub(super) finished_at: DateTime,
    pub(super) noop: bool,
    pub(super) exit_code: u8,
    pub(super) applied: BTreeMap<Operation, u64>,
    pub(super) failed: BTreeMap<Operation, u64>,
    pub(super) planned: u64,
    pub(super) unchanged: u64,
}

impl From<RunRecord> for RunDocument {
    fn from(run: RunRecord) -> Self {
        Self {
            host: run.host,
            run: run.run,
            started_at: date(run.started_at),
            finished_at: date(run.finished_at),
            noop: run.noop,
            exit_code: run.exit_code,
            applied: run.applied,
            failed: run.failed,
            planned: run.planned,
            unchanged: run.unchanged,
        }
    }
}

impl From<RunDocument> for RunRecord {
    fn from(document: RunDocument) -> Self {
        Self {
            run: document.run,
            host: document.host,
            started_at: timestamp(document.started_at),
            finished_at: timestamp(document.finished_at),
            noop: document.noop,
            exit_code: document.exit_code,
            applied: document.applied,
            failed: document.failed,
            planned: document.planned,
            unchanged: document.unchanged,
        }
    }
}
