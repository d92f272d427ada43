//! The embedded state store: one JSON document in `state_dir`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{HistoryEntry, PackRecord};
use super::{StateError, StateStore};
use crate::model::PackName;

pub(super) const FORMAT_VERSION: u32 = 1;
const FILE_NAME: &str = "state.json";

/// `state_dir/state.json`; a missing file is an empty record.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

/// The document on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDocument {
    version: u32,
    #[serde(default)]
    packs: BTreeMap<PackName, PackRecord>,
}

impl FileStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
        }
    }

    fn read(&self) -> Result<StateDocument, StateError> {
        let bytes = match fs_err::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(StateDocument {
                    version: FORMAT_VERSION,
                    ..StateDocument::default()
                });
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let document: StateDocument =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        if document.version != FORMAT_VERSION {
            return Err(StateError::Version {
                path: self.path.clone(),
                found: document.version,
            });
        }
        Ok(document)
    }
}

impl StateStore for FileStore {
    fn load(&self) -> Result<BTreeMap<PackName, PackRecord>, StateError> {
        Ok(self.read()?.packs)
    }

    fn save(
        &self,
        pack: &PackName,
        record: &PackRecord,
        entry: Option<&HistoryEntry>,
    ) -> Result<(), StateError> {
        let _ = (pack, record, entry);
        todo!()
    }

    fn history(
        &self,
        pack: Option<&PackName>,
        limit: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, StateError> {
        let _ = (pack, limit);
        todo!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
