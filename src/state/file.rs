//! The embedded state store: one JSON document in `state_dir`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateError, StateStore};
use crate::model::{InstalledPack, PackName};

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

#[derive(Debug, Serialize, Deserialize)]
struct PackRecord {
    active: InstalledPack,
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
    fn installed(&self) -> Result<BTreeMap<PackName, InstalledPack>, StateError> {
        Ok(self
            .read()?
            .packs
            .into_iter()
            .map(|(name, record)| (name, record.active))
            .collect())
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
                .installed()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reads_the_active_release_of_each_pack() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"version": 1, "packs": {"clush": {"active": {
            "name": "clush",
            "revision": {"commit": "3f2a9c1d", "version": "1.8.1", "ref": "v1.8.1",
                         "tree": "git:aa", "env": "sha256:bb", "config": "sha256:cc"}}}}}"#;
        fs_err::write(dir.path().join("state.json"), json).unwrap();
        let installed = FileStore::new(dir.path()).installed().unwrap();
        let clush = &installed[&PackName::new("clush").unwrap()];
        assert_eq!(clush.revision.version.to_string(), "1.8.1");
        assert_eq!(clush.revision.git_ref, "v1.8.1");
        assert_eq!(clush.env_inputs, None);
    }

    #[test]
    fn damaged_or_future_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        fs_err::write(dir.path().join("state.json"), "{").unwrap();
        assert!(matches!(store.installed(), Err(StateError::Corrupt { .. })));
        fs_err::write(dir.path().join("state.json"), r#"{"version": 9}"#).unwrap();
        assert!(matches!(
            store.installed(),
            Err(StateError::Version { found: 9, .. })
        ));
    }
}
