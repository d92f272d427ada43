//! The installed-state store: packsync's record of what it installed.
//!
//! One trait, several backends; the embedded [`FileStore`] (`state_dir/state.json` and the
//! append-only `state_dir/history.jsonl`) is the default. Disk (where the links point) is the ground truth for what is live; the store is the
//! record ([`read_installed`] puts the two together).

#[cfg(test)]
mod contract;
mod disk;
mod file;
mod record;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use disk::{Drift, Observed, read_installed};
pub use file::FileStore;
pub use record::{
    ActiveRelease, Failure, HistoryEntry, Operation, Outcome, PackRecord, ReleaseRecord, installed,
};

use crate::diagnostics::Diagnose;
use crate::model::PackName;

/// A backend of the installed state. Shared by the threads of one run.
pub trait StateStore: Send + Sync {
    /// The record of every pack packsync manages (or managed) on this host.
    fn load(&self) -> Result<BTreeMap<PackName, PackRecord>, StateError>;

    /// Replaces the record of `pack` and appends `entry` to the history. A backend that cannot
    /// do both in one step writes the entry first: a crash between them leaves an entry
    /// whose record is stale, never a change without its entry, and the next run corrects the
    /// record to what disk says is live.
    fn save(
        &self,
        pack: &PackName,
        record: &PackRecord,
        entry: Option<&HistoryEntry>,
    ) -> Result<(), StateError>;

    /// History entries, newest first, of one pack or all, at most `limit`.
    fn history(
        &self,
        pack: Option<&PackName>,
        limit: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, StateError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("Failed to read the state file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The state file `{}` is not valid", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("Line {line} of the history file `{}` is not valid", path.display())]
    HistoryLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("Failed to inspect `{}`", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to read what is live for pack `{pack}`")]
    Disk {
        pack: PackName,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("Failed to write the state file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The state file `{}` has format version {found}; this packsync reads version {}", path.display(), file::FORMAT_VERSION)]
    Version { path: PathBuf, found: u32 },
}

impl Diagnose for StateError {
    fn hint(&self) -> Option<String> {
        match self {
            StateError::Read { .. }
            | StateError::Inspect { .. }
            | StateError::Disk { .. }
            | StateError::Write { .. } => None,
            StateError::Corrupt { path, .. } => Some(format!(
                "packsync writes this file atomically, so it was edited or damaged by hand: \
                 restore it from a backup, or move it away to start with an empty record \
                 (installed packs are then taken over again) `{}`",
                path.display()
            )),
            StateError::HistoryLine { path, line, .. } => Some(format!(
                "packsync only appends whole lines to this file, so this one was edited or \
                 damaged by hand: fix or delete line {line} of `{}`",
                path.display()
            )),
            StateError::Version { .. } => {
                Some("run the packsync version that wrote it, or a newer one".to_string())
            }
        }
    }
}
