//! What disk says is installed, beside the store's record: pack directories that packsync did
//! not put there (`st2 pack install`, a hand copy) and that it would take over.

use std::io;
use std::path::Path;

use super::{StateError, StateStore};
use crate::model::{Installed, PackName, UnmanagedPack};

/// The store's record plus, for each of `names` the store does not know, the directory that
/// `packs_dir/<name>` already holds.
pub fn read_installed<'a>(
    store: &dyn StateStore,
    packs_dir: &Path,
    names: impl IntoIterator<Item = &'a PackName>,
) -> Result<Installed, StateError> {
    let packs = store.installed()?;
    let mut unmanaged = std::collections::BTreeMap::new();
    for name in names {
        if packs.contains_key(name) {
            continue;
        }
        let path = packs_dir.join(name.as_str());
        match fs_err::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                let version = read_version(&path.join("pack.yaml"));
                unmanaged.insert(name.clone(), UnmanagedPack { path, version });
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StateError::Inspect { path, source }),
        }
    }
    Ok(Installed { packs, unmanaged })
}

/// `version` of a `pack.yaml` on disk, when it can be read; only shown to humans.
fn read_version(pack_yaml: &Path) -> Option<String> {
    let text = fs_err::read_to_string(pack_yaml).ok()?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    match value.get("version")? {
        serde_yaml::Value::String(version) => Some(version.clone()),
        serde_yaml::Value::Number(version) => Some(version.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::FileStore;

    #[test]
    fn pack_dirs_packsync_does_not_know_are_unmanaged() {
        let dir = tempfile::tempdir().unwrap();
        let packs_dir = dir.path().join("packs");
        fs_err::create_dir_all(packs_dir.join("clush")).unwrap();
        fs_err::write(
            packs_dir.join("clush/pack.yaml"),
            "name: clush\nversion: 1.7.0\n",
        )
        .unwrap();
        fs_err::create_dir_all(packs_dir.join("bare")).unwrap();
        let names = ["clush", "bare", "absent"].map(|n| PackName::new(n).unwrap());
        let store = FileStore::new(&dir.path().join("state"));
        let installed = read_installed(&store, &packs_dir, &names).unwrap();
        assert!(installed.packs.is_empty());
        let clush = &installed.unmanaged[&names[0]];
        assert_eq!(clush.path, packs_dir.join("clush"));
        assert_eq!(clush.version.as_deref(), Some("1.7.0"));
        assert_eq!(installed.unmanaged[&names[1]].version, None);
        assert!(!installed.unmanaged.contains_key(&names[2]));
    }
}
