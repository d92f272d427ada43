//! What the store records per pack and per change: the same shape for every backend.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::activate::Adoption;
use crate::model::{Action, EnvInputs, InstalledPack, PackName, ReleaseId, Revision};

/// Everything recorded about one pack on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    /// The live release; `None` once the pack was removed (its releases stay until gc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveRelease>,
    /// Kept releases, newest first; the active one is among them.
    #[serde(default)]
    pub releases: Vec<ReleaseRecord>,
    /// The last step that failed, cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// What packsync moved aside when it took the pack over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<Adoption>,
}

impl PackRecord {
    /// The record of the active release.
    pub fn active_release(&self) -> Option<&ReleaseRecord> {
        let active = self.active.as_ref()?;
        self.releases.iter().find(|r| r.id == active.id)
    }

    pub fn release(&self, id: &ReleaseId) -> Option<&ReleaseRecord> {
        self.releases.iter().find(|r| &r.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRelease {
    pub id: ReleaseId,
    pub since: jiff::Timestamp,
}

/// A sealed release of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub id: ReleaseId,
    pub revision: Revision,
    pub env_inputs: EnvInputs,
    pub built_at: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub at: jiff::Timestamp,
    pub operation: Operation,
    /// What it tried to go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    pub error: String,
}

/// What a history entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Install,
    Upgrade,
    Downgrade,
    Rebuild,
    Reconfigure,
    Remove,
    /// `packsync rollback`.
    Rollback,
    /// The store was corrected to what disk says (after a crash or a hand edit).
    Repair,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Install => "install",
            Operation::Upgrade => "upgrade",
            Operation::Downgrade => "downgrade",
            Operation::Rebuild => "rebuild",
            Operation::Reconfigure => "reconfigure",
            Operation::Remove => "remove",
            Operation::Rollback => "rollback",
            Operation::Repair => "repair",
        }
    }

    /// The operation that carries out a planned action; `None` for actions that change nothing.
    pub fn of(action: Action) -> Option<Self> {
        Some(match action {
            Action::Install => Operation::Install,
            Action::Upgrade => Operation::Upgrade,
            Action::Downgrade => Operation::Downgrade,
            Action::Rebuild => Operation::Rebuild,
            Action::Reconfigure => Operation::Reconfigure,
            Action::Remove => Operation::Remove,
            Action::Orphan | Action::Unchanged => return None,
        })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Live (or, for a removal, gone).
    Applied,
    /// Never went live: the build or the test gate failed.
    Failed,
    /// Went live, registration failed, and the previous release is live again.
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled_back",
        }
    }
}

/// One line of the append-only history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: jiff::Timestamp,
    /// Groups the entries of one `apply` (or `rollback`).
    pub run: String,
    pub host: String,
    pub pack: PackName,
    pub operation: Operation,
    #[serde(default)]
    pub from: Option<Revision>,
    #[serde(default)]
    pub to: Option<Revision>,
    /// The release that went live (or was tried).
    #[serde(default)]
    pub release: Option<ReleaseId>,
    pub outcome: Outcome,
    #[serde(default)]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The active release of every pack, as the plan reads it.
pub fn installed(records: &BTreeMap<PackName, PackRecord>) -> BTreeMap<PackName, InstalledPack> {
    records
        .iter()
        .filter_map(|(name, record)| {
            let release = record.active_release()?;
            Some((
                name.clone(),
                InstalledPack {
                    name: name.clone(),
                    revision: release.revision.clone(),
                    env_inputs: Some(release.env_inputs.clone()),
                },
            ))
        })
        .collect()
}
