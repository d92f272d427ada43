//! What the store records per pack and per change: the same shape for every backend.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::activate::Adoption;
use crate::model::{Action, Digest, EnvInputs, InstalledPack, PackName, ReleaseId, Revision};

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
    /// The last purge failed: StackStorm may hold content the live release does not carry, so
    /// the next run registers and purges again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpurged: bool,
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
    #[serde(rename = "action", alias = "operation")]
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
            Action::Repair => Operation::Repair,
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
    /// Went live, registration failed, and the previous release is live again (records
    /// written before 0.2 say `rolled_back`).
    #[serde(alias = "rolled_back")]
    Reverted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Reverted => "reverted",
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
    #[serde(rename = "action", alias = "operation")]
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

/// What `history --json` prints and the agent serves at `/api/v1/history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    /// Newest first.
    pub entries: Vec<HistoryEntry>,
}

/// One switch of the runner set (or an attempt at one), for `history --runners` and
/// `rollback --runners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerSwitch {
    pub at: jiff::Timestamp,
    pub run: String,
    pub host: String,
    /// `install` (the first set), `upgrade` (a new set) or `rollback`.
    #[serde(rename = "action", alias = "operation")]
    pub operation: Operation,
    /// The set that was live before, if any.
    #[serde(default)]
    pub from: Option<Digest>,
    pub to: Digest,
    /// The runner distributions of the set, `name version`.
    pub runners: Vec<String>,
    pub outcome: Outcome,
    #[serde(default)]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One `apply` (or `rollback`) on one host, for monitoring: when, whether it changed anything,
/// how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: String,
    pub host: String,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    /// `apply --noop`: planned, changed nothing.
    pub noop: bool,
    /// Puppet's detailed exit code of the run (0, 2, 4 or 6), whatever flags it ran with.
    pub exit_code: u8,
    /// Changes that went live, per operation.
    #[serde(default)]
    pub applied: BTreeMap<Operation, u64>,
    /// Changes that failed or were switched back, per operation.
    #[serde(default)]
    pub failed: BTreeMap<Operation, u64>,
    /// Changes the plan had (with `noop`: pending).
    pub planned: u64,
    pub unchanged: u64,
}

/// What StackStorm has registered for a pack (its `pack_d_b` document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredPack {
    pub version: String,
    /// The pack folder StackStorm read it from (the link path, as registered).
    pub path: Option<String>,
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
                    // What disk holds is for `state::disk` to say.
                    broken_links: Vec::new(),
                    broken_env: None,
                    engine_repair: None,
                    tampered: None,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::state::contract::{applied, at, live, pack, release};

    #[test]
    fn installed_maps_only_active_releases() {
        let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
        let clush_2 = release("clush", "1.1.0", "1.17.0", at(10));
        let slurm = release("slurm", "0.3.0", "1.16.0", at(1));
        // Rolled back: the older release is the live one.
        let clush = PackRecord {
            active: Some(ActiveRelease {
                id: clush_1.id.clone(),
                since: at(20),
            }),
            releases: vec![clush_2, clush_1.clone()],
            ..PackRecord::default()
        };
        let removed = PackRecord {
            active: None,
            ..live(vec![slurm.clone()])
        };
        // A record whose live release is not among its releases has nothing to show.
        let dangling = PackRecord {
            active: Some(ActiveRelease {
                id: slurm.id.clone(),
                since: at(2),
            }),
            ..PackRecord::default()
        };
        let records = BTreeMap::from([
            (pack("clush"), clush),
            (pack("slurm"), removed),
            (pack("nagios"), dangling),
        ]);
        let installed = installed(&records);
        assert_eq!(
            installed,
            BTreeMap::from([(
                pack("clush"),
                InstalledPack {
                    name: pack("clush"),
                    revision: clush_1.revision,
                    env_inputs: Some(clush_1.env_inputs),
                    broken_links: Vec::new(),
                    broken_env: None,
                    engine_repair: None,
                    tampered: None,
                }
            )])
        );
    }

    #[test]
    fn every_changing_action_has_its_operation() {
        for action in Action::ALL {
            match Operation::of(action) {
                Some(operation) => assert_eq!(operation.as_str(), action.as_str()),
                None => assert!(!action.changes_host(), "{action} changes the host"),
            }
        }
        assert_eq!(Operation::of(Action::Orphan), None);
        assert_eq!(Operation::of(Action::Unchanged), None);
    }

    #[test]
    fn names_are_their_serde_names() {
        let operations = [
            Operation::Install,
            Operation::Upgrade,
            Operation::Downgrade,
            Operation::Rebuild,
            Operation::Reconfigure,
            Operation::Remove,
            Operation::Rollback,
            Operation::Repair,
        ];
        for operation in operations {
            assert_eq!(json!(operation), json!(operation.as_str()));
            assert_eq!(operation.to_string(), operation.as_str());
        }
        for outcome in [Outcome::Applied, Outcome::Failed, Outcome::Reverted] {
            assert_eq!(json!(outcome), json!(outcome.as_str()));
        }
    }

    /// Users read `state.json` and `history.jsonl`: the field names are part of the interface.
    #[test]
    fn records_keep_their_json_shape() {
        let old = release("clush", "1.0.0", "1.16.0", at(0));
        let new = release("clush", "1.1.0", "1.17.0", at(30));
        let record = PackRecord {
            active: Some(ActiveRelease {
                id: new.id.clone(),
                since: at(31),
            }),
            releases: vec![new.clone(), old.clone()],
            last_failure: Some(Failure {
                at: at(15),
                operation: Operation::Upgrade,
                revision: Some(new.revision.clone()),
                error: "The test gate of pack `clush` failed".to_string(),
            }),
            adopted: vec![Adoption {
                from: PathBuf::from("/opt/stackstorm/packs/clush"),
                to: PathBuf::from("/var/lib/packsync/adopted/clush-20250602T093000Z"),
            }],
            unpurged: true,
        };
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(
            value["active"],
            json!({"id": new.id, "since": "2025-06-02T10:01:00Z"})
        );
        assert_eq!(
            value["releases"][0],
            json!({
                "id": new.id,
                "revision": {
                    "commit": new.revision.commit,
                    "version": "1.1.0",
                    "ref": "v1.1.0",
                    "tree": new.revision.tree,
                    "env": new.revision.env,
                    "config": new.revision.config,
                },
                "env_inputs": {
                    "python": "cpython-3.11.7-x86_64-linux-gnu /opt/stackstorm/st2/bin/python3",
                    "settings": [
                        "system-site-packages",
                        "st2-pth /opt/stackstorm/st2/lib/python3.11/site-packages",
                    ],
                    "requirements": ["six>=1.9.0,<2.0"],
                    "pins": [{
                        "name": "six",
                        "version": "1.17.0",
                        "file": "six-1.17.0-py2.py3-none-any.whl",
                        "sha256": new.env_inputs.pins[0].sha256,
                    }],
                },
                "built_at": "2025-06-02T10:00:00Z",
            })
        );
        assert_eq!(
            value["last_failure"],
            json!({
                "at": "2025-06-02T09:45:00Z",
                "action": "upgrade",
                "revision": value["releases"][0]["revision"],
                "error": "The test gate of pack `clush` failed",
            })
        );
        assert_eq!(
            value["adopted"],
            json!([{
                "from": "/opt/stackstorm/packs/clush",
                "to": "/var/lib/packsync/adopted/clush-20250602T093000Z",
            }])
        );
        assert_eq!(serde_json::from_value::<PackRecord>(value).unwrap(), record);

        // What is empty is left out.
        let removed = PackRecord {
            releases: vec![old],
            ..PackRecord::default()
        };
        let value = serde_json::to_value(&removed).unwrap();
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["releases"]
        );
        assert_eq!(
            serde_json::from_value::<PackRecord>(value).unwrap(),
            removed
        );
        assert_eq!(
            serde_json::from_value::<PackRecord>(json!({})).unwrap(),
            PackRecord::default()
        );
    }

    #[test]
    fn history_entries_keep_their_json_shape() {
        let old = release("clush", "1.0.0", "1.16.0", at(0));
        let new = release("clush", "1.1.0", "1.17.0", at(30));
        let entry = HistoryEntry {
            outcome: Outcome::Reverted,
            error: Some("Registering pack `clush` failed".to_string()),
            ..applied("clush", Operation::Upgrade, Some(&old), &new)
        };
        let value = serde_json::to_value(&entry).unwrap();
        // serde_json keeps the order of the fields (`preserve_order`, which bson turns on).
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "at",
                "run",
                "host",
                "pack",
                "action",
                "from",
                "to",
                "release",
                "outcome",
                "error",
                "duration_ms",
            ]
        );
        assert_eq!(value["at"], "2025-06-02T10:00:00Z");
        assert_eq!(value["pack"], "clush");
        assert_eq!(value["action"], "upgrade");
        assert_eq!(value["from"]["version"], "1.0.0");
        assert_eq!(value["release"], new.id.as_str());
        assert_eq!(value["outcome"], "reverted");
        assert_eq!(
            serde_json::from_value::<HistoryEntry>(value.clone()).unwrap(),
            entry
        );

        // Entries written before `operation` was named `action`, as plan and events name it,
        // still read.
        let mut older = value;
        let action = older.as_object_mut().unwrap().remove("action").unwrap();
        older["operation"] = action;
        assert_eq!(
            serde_json::from_value::<HistoryEntry>(older).unwrap(),
            entry
        );
    }
}
