//! The embedded state store: `state_dir/state.json` holds the record of every pack,
//! `state_dir/history.jsonl` the history and `state_dir/runs.jsonl` the runs, one JSON document
//! a line, only ever appended to.
//!
//! `state.json` is replaced atomically (temp file, fsync, rename, fsync of the folder), so a
//! reader sees the old document or the new one. Lines are appended with `O_APPEND` and
//! fsynced; a crash during an append can only tear the last line, which readers skip and the
//! next append cuts off.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fs_err::os::unix::fs::FileExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{HistoryEntry, PackRecord, RunRecord, RunnerSwitch};
use super::{StateError, StateStore};
use crate::fsx;
use crate::model::{PackName, Suspension};

pub(super) const FORMAT_VERSION: u32 = 1;
const FILE_NAME: &str = "state.json";
const HISTORY_FILE_NAME: &str = "history.jsonl";
const RUNS_FILE_NAME: &str = "runs.jsonl";
const RUNNER_SWITCHES_FILE_NAME: &str = "runner-switches.jsonl";

/// `state_dir/state.json`, `state_dir/history.jsonl` and `state_dir/runs.jsonl`; missing
/// files are an empty record, history and list of runs.
///
/// Clones share one lock, so saves through any of them never lose each other's update. Other
/// processes are kept out by the run lock of `state_dir` (see [`crate::lock`]).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    path: PathBuf,
    history: PathBuf,
    runs: PathBuf,
    runner_switches: PathBuf,
    /// Held across the read-modify-write of `state.json` and every append or journal read.
    lock: Arc<Mutex<()>>,
}

/// The document on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDocument {
    version: u32,
    #[serde(default)]
    packs: BTreeMap<PackName, PackRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    suspensions: Vec<Suspension>,
}

/// The suspensions of `state.json` alone: the records are skipped, not built.
#[derive(Debug, Deserialize)]
struct SuspensionsPart {
    version: u32,
    #[serde(default)]
    suspensions: Vec<Suspension>,
}

/// A document, or a part of one, that knows its format version.
trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for StateDocument {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for SuspensionsPart {
    fn version(&self) -> u32 {
        self.version
    }
}

impl FileStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.to_path_buf(),
            path: state_dir.join(FILE_NAME),
            history: state_dir.join(HISTORY_FILE_NAME),
            runs: state_dir.join(RUNS_FILE_NAME),
            runner_switches: state_dir.join(RUNNER_SWITCHES_FILE_NAME),
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The lock guards no data, only the order of file operations: a thread that panicked
    /// while holding it left the files as consistent as a crash would, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> Result<StateDocument, StateError> {
        Ok(self.read_as::<StateDocument>()?.unwrap_or(StateDocument {
            version: FORMAT_VERSION,
            ..StateDocument::default()
        }))
    }

    /// `state.json` as `T` (the whole document, or a part of it), checked for its version;
    /// `None` when there is none yet.
    fn read_as<T: DeserializeOwned + Versioned>(&self) -> Result<Option<T>, StateError> {
        let bytes = match fs_err::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let document: T = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        if document.version() != FORMAT_VERSION {
            return Err(StateError::Version {
                path: self.path.clone(),
                found: document.version(),
            });
        }
        Ok(Some(document))
    }

    fn write(&self, document: &StateDocument) -> Result<(), StateError> {
        let mut bytes =
            serde_json::to_vec_pretty(document).expect("a state document has string keys only");
        bytes.push(b'\n');
        fsx::write_atomic(&self.path, &bytes).map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// `state_dir`, made before the first write.
    fn create_dir(&self) -> Result<(), StateError> {
        fs_err::create_dir_all(&self.dir).map_err(|source| StateError::Write {
            path: self.dir.clone(),
            source,
        })
    }

    /// Appends one line to the journal at `path` and makes it durable before returning.
    fn append<T: Serialize + DeserializeOwned>(
        &self,
        path: &Path,
        document: &T,
    ) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(document).expect("journal lines have string keys only");
        line.push(b'\n');
        self.append_line::<T>(path, &line)
            .map_err(|source| StateError::Write {
                path: path.to_path_buf(),
                source,
            })
    }

    fn append_line<T: DeserializeOwned>(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        let created = match fs_err::symlink_metadata(path) {
            Ok(_) => false,
            Err(err) if err.kind() == io::ErrorKind::NotFound => true,
            Err(err) => return Err(err),
        };
        let mut file = fs_err::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        end_with_whole_line::<T>(path, &mut file)?;
        // One write of the whole line: with `O_APPEND` it lands at the end in one piece, or,
        // on a crash, as a torn last line.
        file.write_all(line)?;
        file.sync_all()?;
        if created {
            fsx::fsync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Every document of the journal at `path`, newest first, that `keep` accepts, at most
/// `limit`. Lines are parsed from the end, so a long journal costs only the lines returned.
fn read_journal<T: DeserializeOwned>(
    path: &Path,
    keep: impl Fn(&T) -> bool,
    limit: usize,
) -> Result<Vec<T>, StateError> {
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut documents = Vec::new();
    // `split` ends with the bytes after the last newline: empty when the file ends with a
    // whole line, a torn line otherwise.
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = lines.len() - 1;
    for (index, line) in lines.iter().enumerate().rev() {
        if documents.len() == limit {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(document) => {
                if keep(&document) {
                    documents.push(document);
                }
            }
            Err(error) if index == last => tracing::warn!(
                path = %path.display(),
                line = index + 1,
                %error,
                "skipping the torn last line, left by an interrupted run"
            ),
            Err(source) => {
                return Err(StateError::Line {
                    path: path.to_path_buf(),
                    line: index + 1,
                    source,
                });
            }
        }
    }
    Ok(documents)
}

/// Makes the journal at `path` end with a whole line before an append, so that the new line
/// is not glued to what an interrupted append left: a torn last line is cut off, a document
/// that only lacks its newline gets it.
fn end_with_whole_line<T: DeserializeOwned>(
    path: &Path,
    file: &mut fs_err::File,
) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0];
    file.read_exact_at(&mut last, len - 1)?;
    if last == *b"\n" {
        return Ok(());
    }
    // Only after a crash: reading the whole file once is fine.
    let bytes = fs_err::read(path)?;
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if serde_json::from_slice::<T>(&bytes[start..]).is_ok() {
        return file.write_all(b"\n");
    }
    tracing::warn!(
        path = %path.display(),
        line = line_number(&bytes, start),
        "removing the torn last line, left by an interrupted run"
    );
    file.set_len(start as u64)
}

/// The 1-based number of the line that starts at byte `start`.
fn line_number(bytes: &[u8], start: usize) -> usize {
    // One more piece than newlines before it.
    bytes[..start].split(|&b| b == b'\n').count()
}

impl StateStore for FileStore {
    fn load(&self) -> Result<BTreeMap<PackName, PackRecord>, StateError> {
        // No lock: `state.json` is only ever replaced whole.
        Ok(self.read()?.packs)
    }

    fn save(
        &self,
        pack: &PackName,
        record: &PackRecord,
        entry: Option<&HistoryEntry>,
    ) -> Result<(), StateError> {
        let _guard = self.lock();
        self.create_dir()?;
        // Read first: a document that cannot be read (damaged, or of a newer packsync) fails
        // the save before anything is written.
        let mut document = self.read()?;
        // The history line goes before the record. Two files cannot change in one atomic
        // step, and this order makes the crash between them harmless: the history then tells
        // of a change whose record was not written, and the next run, which reads what is live
        // from disk (the `current` links) and corrects the record to it, repairs the record.
        // The other order would lose the entry of a change that happened.
        if let Some(entry) = entry {
            self.append(&self.history, entry)?;
        }
        document.packs.insert(pack.clone(), record.clone());
        self.write(&document)
    }

    fn history(
        &self,
        pack: Option<&PackName>,
        limit: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, StateError> {
        // Under the lock, so that an append in progress is not taken for a torn line.
        let _guard = self.lock();
        read_journal(
            &self.history,
            |entry: &HistoryEntry| pack.is_none_or(|pack| &entry.pack == pack),
            limit.unwrap_or(usize::MAX),
        )
    }

    fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        let _guard = self.lock();
        self.create_dir()?;
        self.append(&self.runs, run)
    }

    fn runs(&self, limit: Option<usize>) -> Result<Vec<RunRecord>, StateError> {
        let _guard = self.lock();
        read_journal(&self.runs, |_| true, limit.unwrap_or(usize::MAX))
    }

    fn suspensions(&self) -> Result<Vec<Suspension>, StateError> {
        let _guard = self.lock();
        Ok(self
            .read_as::<SuspensionsPart>()?
            .map(|part| part.suspensions)
            .unwrap_or_default())
    }

    fn suspend(&self, suspension: &Suspension) -> Result<(), StateError> {
        let _guard = self.lock();
        self.create_dir()?;
        let mut document = self.read()?;
        document.suspensions.retain(|s| s.pack != suspension.pack);
        document.suspensions.push(suspension.clone());
        self.write(&document)
    }

    fn resume(&self, pack: Option<&PackName>) -> Result<bool, StateError> {
        let _guard = self.lock();
        let mut document = self.read()?;
        let before = document.suspensions.len();
        document.suspensions.retain(|s| s.pack.as_ref() != pack);
        if document.suspensions.len() == before {
            return Ok(false);
        }
        self.write(&document)?;
        Ok(true)
    }

    fn record_runner_switch(&self, switch: &RunnerSwitch) -> Result<(), StateError> {
        let _guard = self.lock();
        self.create_dir()?;
        self.append(&self.runner_switches, switch)
    }

    fn runner_switches(&self, limit: Option<usize>) -> Result<Vec<RunnerSwitch>, StateError> {
        let _guard = self.lock();
        read_journal(&self.runner_switches, |_| true, limit.unwrap_or(usize::MAX))
    }

    fn describe(&self) -> String {
        format!("`{}`", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::contract::{self, applied, at, live, pack, release};
    use crate::state::{HistoryEntry, Operation};

    /// Runs a contract test with a store whose `state_dir` does not exist yet.
    fn with_store(test: fn(&dyn StateStore)) {
        let dir = tempfile::tempdir().unwrap();
        test(&FileStore::new(&dir.path().join("state")));
    }

    contract::state_store_contract!(with_store);

    /// Three entries of `clush`, saved in order.
    fn three_entries(store: &FileStore) -> Vec<HistoryEntry> {
        let releases = [
            release("clush", "1.0.0", "1.16.0", at(0)),
            release("clush", "1.1.0", "1.16.0", at(10)),
            release("clush", "1.2.0", "1.17.0", at(20)),
        ];
        let mut entries = Vec::new();
        for (i, to) in releases.iter().enumerate() {
            let from = i.checked_sub(1).map(|i| &releases[i]);
            let entry = applied("clush", Operation::Upgrade, from, to);
            store
                .save(&pack("clush"), &live(vec![to.clone()]), Some(&entry))
                .unwrap();
            entries.push(entry);
        }
        entries
    }

    fn history_file(dir: &Path) -> String {
        fs_err::read_to_string(dir.join("history.jsonl")).unwrap()
    }

    #[test]
    fn a_missing_file_is_an_empty_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            FileStore::new(&dir.path().join("absent"))
                .load()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn damaged_or_future_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        fs_err::write(dir.path().join("state.json"), "{").unwrap();
        assert!(matches!(store.load(), Err(StateError::Corrupt { .. })));
        fs_err::write(dir.path().join("state.json"), r#"{"version": 9}"#).unwrap();
        assert!(matches!(
            store.load(),
            Err(StateError::Version { found: 9, .. })
        ));
        // A save never overwrites a document it cannot read, nor writes history beside it.
        let clush = release("clush", "1.0.0", "1.16.0", at(0));
        let entry = applied("clush", Operation::Install, None, &clush);
        assert!(matches!(
            store.save(&pack("clush"), &live(vec![clush]), Some(&entry)),
            Err(StateError::Version { found: 9, .. })
        ));
        assert_eq!(
            fs_err::read_to_string(dir.path().join("state.json")).unwrap(),
            r#"{"version": 9}"#
        );
        assert!(!dir.path().join("history.jsonl").exists());
    }

    #[test]
    fn the_files_have_the_documented_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let entries = three_entries(&store);
        let state: serde_json::Value =
            serde_json::from_slice(&fs_err::read(dir.path().join("state.json")).unwrap()).unwrap();
        assert_eq!(state["version"], 1);
        assert_eq!(
            state["packs"]["clush"]["active"]["id"],
            entries[2].release.as_ref().unwrap().as_str()
        );
        let history = history_file(dir.path());
        let lines: Vec<&str> = history.lines().collect();
        assert_eq!(lines.len(), 3, "one entry a line: {history}");
        for (line, entry) in lines.iter().zip(&entries) {
            assert_eq!(serde_json::from_str::<HistoryEntry>(line).unwrap(), *entry);
        }
        assert!(history.ends_with('\n'));
        // No temp file is left beside them.
        let mut names: Vec<String> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["history.jsonl", "state.json"]);
    }

    #[test]
    fn a_torn_last_line_is_skipped_then_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let mut entries = three_entries(&store);
        let whole = history_file(dir.path());
        // A crash in the middle of the fourth append.
        let torn = r#"{"at":"2025-06-02T10:00:00Z","run":"run-17"#;
        fs_err::write(dir.path().join("history.jsonl"), format!("{whole}{torn}")).unwrap();
        let newest_first: Vec<HistoryEntry> = entries.iter().rev().cloned().collect();
        assert_eq!(store.history(None, None).unwrap(), newest_first);

        // The next append cuts the torn line off rather than gluing itself to it.
        let next = release("clush", "1.3.0", "1.17.0", at(30));
        let entry = applied("clush", Operation::Upgrade, None, &next);
        store
            .save(&pack("clush"), &live(vec![next]), Some(&entry))
            .unwrap();
        entries.push(entry);
        assert_eq!(history_file(dir.path()).lines().count(), 4);
        let newest_first: Vec<HistoryEntry> = entries.iter().rev().cloned().collect();
        assert_eq!(store.history(None, None).unwrap(), newest_first);
    }

    #[test]
    fn a_whole_last_entry_without_its_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let mut entries = three_entries(&store);
        let whole = history_file(dir.path());
        fs_err::write(dir.path().join("history.jsonl"), whole.trim_end()).unwrap();
        assert_eq!(store.history(None, Some(1)).unwrap(), [entries[2].clone()]);

        let next = release("clush", "1.3.0", "1.17.0", at(30));
        let entry = applied("clush", Operation::Upgrade, None, &next);
        store
            .save(&pack("clush"), &live(vec![next]), Some(&entry))
            .unwrap();
        entries.push(entry);
        let newest_first: Vec<HistoryEntry> = entries.iter().rev().cloned().collect();
        assert_eq!(store.history(None, None).unwrap(), newest_first);
    }

    #[test]
    fn a_damaged_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let entries = three_entries(&store);
        let history = history_file(dir.path());
        let mut lines: Vec<&str> = history.lines().collect();
        lines[1] = r#"{"at": "yesterday"}"#;
        fs_err::write(
            dir.path().join("history.jsonl"),
            format!("{}\n", lines.join("\n")),
        )
        .unwrap();
        let err = store.history(None, None).unwrap_err();
        assert!(
            matches!(&err, StateError::Line { path, line: 2, .. } if *path == dir.path().join("history.jsonl")),
            "{err:?}"
        );
        assert!(
            crate::diagnostics::Diagnose::hint(&err)
                .unwrap()
                .contains("line 2")
        );
        // The newest entries are still read when the damage is older than what is asked for.
        assert_eq!(store.history(None, Some(1)).unwrap(), [entries[2].clone()]);
    }

    #[test]
    fn write_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // `state_dir` is a file: it cannot be created.
        let state_dir = dir.path().join("state");
        fs_err::write(&state_dir, "").unwrap();
        let store = FileStore::new(&state_dir);
        let clush = live(vec![release("clush", "1.0.0", "1.16.0", at(0))]);
        let err = store.save(&pack("clush"), &clush, None).unwrap_err();
        assert!(
            matches!(&err, StateError::Write { path, .. } if *path == state_dir),
            "{err:?}"
        );
    }

    #[test]
    fn clones_share_the_lock_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let clone = store.clone();
        assert!(Arc::ptr_eq(&store.lock, &clone.lock));
        let entries = three_entries(&clone);
        assert_eq!(store.history(None, Some(1)).unwrap(), [entries[2].clone()]);
    }
}
