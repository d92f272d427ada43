//! The installed-state store: packsync's record of what it installed.
//!
//! One trait, two backends: the embedded [`FileStore`] (`state_dir/state.json` and the
//! append-only `state_dir/history.jsonl`), the default, and [`MongoStore`] (`[state] url`),
//! where several hosts keep their state side by side, next to StackStorm's own. Disk (where
//! the links point) is the ground truth for what is live; the store is the record
//! ([`read_installed`] puts the two together).

#[cfg(test)]
mod contract;
mod disk;
mod file;
mod held;
mod mongo;
mod record;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use disk::{Drift, Observed, read_installed};
pub use file::FileStore;
pub use held::{Held, hold, write_held};
pub use mongo::{Imported, MongoStore, driver_error, open_database};
pub use record::{
    ActiveRelease, Failure, HistoryEntry, HistoryReport, Operation, Outcome, PackRecord,
    RegisteredPack, ReleaseRecord, RunRecord, RunnerSwitch, installed,
};

use crate::config::{SiteConfig, StateConfig};
use crate::diagnostics::Diagnose;
use crate::model::{PackName, Suspension};

/// The records of every pack of one host.
pub type HostRecords = BTreeMap<PackName, PackRecord>;

/// The store the site config names, for `host`: the MongoDB client connects lazily, so an
/// unreachable server shows at the first read, before anything changes.
pub fn open(config: &SiteConfig, host: &str) -> Result<Box<dyn StateStore>, StateError> {
    Ok(match &config.state {
        StateConfig::File => Box::new(FileStore::new(&config.agent.state_dir)),
        StateConfig::MongoDb(mongo) => Box::new(MongoStore::connect(
            mongo,
            host,
            crate::store::Layout::new(config),
        )?),
    })
}

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

    /// Records a finished run.
    fn record_run(&self, run: &RunRecord) -> Result<(), StateError>;

    /// The runs, newest first, at most `limit`.
    fn runs(&self, limit: Option<usize>) -> Result<Vec<RunRecord>, StateError>;

    /// What `packsync suspend` holds back on this host: packs, and the host itself (no pack).
    fn suspensions(&self) -> Result<Vec<Suspension>, StateError>;

    /// Suspends a pack or, with no pack, the host; replaces an earlier suspension of it.
    fn suspend(&self, suspension: &Suspension) -> Result<(), StateError>;

    /// Lifts the suspension of `pack` (or of the host); whether there was one.
    fn resume(&self, pack: Option<&PackName>) -> Result<bool, StateError>;

    /// Records a switch of the runner set (or a failed attempt).
    fn record_runner_switch(&self, switch: &RunnerSwitch) -> Result<(), StateError>;

    /// The runner set switches, newest first, at most `limit`.
    fn runner_switches(&self, limit: Option<usize>) -> Result<Vec<RunnerSwitch>, StateError>;

    /// The records of the other hosts that share this store, by host.
    fn other_hosts(&self) -> Result<BTreeMap<String, HostRecords>, StateError> {
        Ok(BTreeMap::new())
    }

    /// What StackStorm has registered, by pack, where this store can see its database;
    /// `None` where it cannot.
    fn registered_packs(&self) -> Result<Option<BTreeMap<PackName, RegisteredPack>>, StateError> {
        Ok(None)
    }

    /// Where the state is, for messages (never with a password).
    fn describe(&self) -> String;
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
    #[error("Line {line} of `{}` is not valid", path.display())]
    Line {
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
        source: crate::diagnostics::Cause,
    },
    #[error("Failed to write the state file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The state file `{}` has format version {found}; this packsync reads version {}", path.display(), file::FORMAT_VERSION)]
    Version { path: PathBuf, found: u32 },
    #[error("The site config `{}` keeps the state in the embedded store: there is nothing to import into", config.display())]
    NoDatabase { config: PathBuf },
    #[error("Failed to reach the MongoDB state store at {hosts}: {message}")]
    Unreachable { hosts: String, message: String },
    #[error("The MongoDB state store at {hosts} refused packsync's credentials: {message}")]
    Auth { hosts: String, message: String },
    #[error("The MongoDB state store at {hosts} failed to {operation}: {message}")]
    Mongo {
        hosts: String,
        operation: &'static str,
        message: String,
    },
    #[error(
        "A document of `{collection}` in the MongoDB state store at {hosts} is not valid: {message}"
    )]
    Document {
        hosts: String,
        collection: String,
        message: String,
    },
}

impl Diagnose for StateError {
    fn hint(&self) -> Option<String> {
        match self {
            StateError::Read { .. }
            | StateError::Inspect { .. }
            | StateError::Disk { .. }
            | StateError::Write { .. }
            | StateError::Mongo { .. } => None,
            StateError::Unreachable { .. } => Some(
                "check that MongoDB runs and that `[state] url` of the site config names it \
                 (and `timeout`, for a slow network); nothing was changed"
                    .to_string(),
            ),
            StateError::Auth { .. } => Some(
                "check the user and password of `[state] url`, its `authSource` (the database \
                 the user was created in, often `admin`), and that the user may read and \
                 write the database (role `readWrite`)"
                    .to_string(),
            ),
            StateError::NoDatabase { .. } => Some(
                "add a `[state]` section with the MongoDB `url` to the site config, then run \
                 `packsync state import` again"
                    .to_string(),
            ),
            StateError::Document { collection, .. } => Some(format!(
                "packsync writes `{collection}` through its own types, so the document was \
                 edited by hand or by a newer packsync: fix or delete it"
            )),
            StateError::Corrupt { path, .. } => Some(format!(
                "packsync writes this file atomically, so it was edited or damaged by hand: \
                 restore it from a backup, or move it away to start with an empty record \
                 (installed packs are then taken over again) `{}`",
                path.display()
            )),
            StateError::Line { path, line, .. } => Some(format!(
                "packsync only appends whole lines to this file, so this one was edited or \
                 damaged by hand: fix or delete line {line} of `{}`",
                path.display()
            )),
            StateError::Version { .. } => {
                Some("run the packsync version that wrote it, or a newer one".to_string())
            }
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        match self {
            StateError::Disk { source, .. } => Some(source),
            _ => None,
        }
    }
}
