//! The installed-state store: packsync's record of what it installed.
//!
//! One trait, several backends; the embedded [`FileStore`] (`state_dir/state.json`) is the
//! default. Disk (where the links point) is the ground truth for what is live; the store is the
//! record ([`read_installed`] puts the two together).

mod disk;
mod file;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use disk::read_installed;
pub use file::FileStore;

use crate::diagnostics::Diagnose;
use crate::model::{InstalledPack, PackName};

/// A backend of the installed state.
pub trait StateStore {
    /// The active release of every pack packsync installed on this host.
    fn installed(&self) -> Result<BTreeMap<PackName, InstalledPack>, StateError>;
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
    #[error("Failed to inspect `{}`", path.display())]
    Inspect {
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
            StateError::Read { .. } | StateError::Inspect { .. } => None,
            StateError::Corrupt { path, .. } => Some(format!(
                "packsync writes this file atomically, so it was edited or damaged by hand: \
                 restore it from a backup, or move it away to start with an empty record \
                 (installed packs are then taken over again) `{}`",
                path.display()
            )),
            StateError::Version { .. } => {
                Some("run the packsync version that wrote it, or a newer one".to_string())
            }
        }
    }
}
