//! What a run could not write to the state store (a MongoDB that went away mid-run): each
//! record and history entry, and the run's record, appended to `state_dir/held.jsonl` (on disk
//! when the append returns) and written to the store, in order, by the next run before it reads
//! the store. So a step that went live during an outage keeps its own history entry (an
//! `install`, not the `repair` that disk would otherwise be read back as) and the run its
//! record.
//!
//! A crash while the held lines are written again may write one of them twice: a history
//! entry shown twice, never one lost.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{HistoryEntry, PackRecord, RunRecord, StateError, StateStore};
use crate::model::PackName;

/// Under `state_dir`.
const FILE: &str = "held.jsonl";

/// One write the store missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Held {
    /// [`StateStore::save`].
    Save {
        pack: PackName,
        record: PackRecord,
        entry: Option<Box<HistoryEntry>>,
    },
    /// [`StateStore::record_run`].
    Run { record: RunRecord },
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Keeps `held` for the next run to write.
pub fn hold(state_dir: &Path, held: &Held) -> Result<(), StateError> {
    let path = path(state_dir);
    let write = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    let mut line = serde_json::to_vec(held).expect("held writes serialise to JSON");
    line.push(b'\n');
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(write)?;
    file.write_all(&line).map_err(write)?;
    file.sync_data().map_err(write)
}

/// Writes what earlier runs held to `store`, oldest first, and forgets it; how many writes.
/// When the store fails again, what is left stays held and the error is returned.
pub fn write_held(state_dir: &Path, store: &dyn StateStore) -> Result<usize, StateError> {
    let path = path(state_dir);
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    for (index, line) in lines.iter().enumerate() {
        let held: Held = match serde_json::from_str(line) {
            Ok(held) => held,
            Err(error) => {
                // Torn by a crash during its append: that write is lost, not the others.
                tracing::warn!(file = %path.display(), line = index + 1, %error, "a held write cannot be read; skipped");
                continue;
            }
        };
        let written = match &held {
            Held::Save {
                pack,
                record,
                entry,
            } => store.save(pack, record, entry.as_deref()),
            Held::Run { record } => store.record_run(record),
        };
        if let Err(err) = written {
            let rest = lines[index..].join("\n") + "\n";
            crate::fsx::write_atomic(&path, rest.as_bytes()).map_err(|source| {
                StateError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
            return Err(err);
        }
    }
    crate::fsx::remove_if_exists(&path).map_err(|source| StateError::Write { path, source })?;
    Ok(lines.len())
}
