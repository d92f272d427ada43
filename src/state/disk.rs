//! What is live, read from disk, beside the store's record: disk (where the `current` links
//! point) is the ground truth, the store is the record. Also finds pack folders that packsync
//! did not put there (`st2 pack install`, a hand copy) and would take over.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use super::{PackRecord, StateError};
use crate::activate::{self, StableLinks};
use crate::diagnostics::Cause;
use crate::fsx;
use crate::model::{EngineRepair, Installed, InstalledPack, PackName, ReleaseId, UnmanagedPack};
use crate::store::{self, Layout};

/// What disk says, and where the store's record disagrees with it.
#[derive(Debug, Default)]
pub struct Observed {
    pub installed: Installed,
    pub drift: Vec<Drift>,
}

/// A pack whose live release is not the one the store records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub pack: PackName,
    pub recorded: Option<ReleaseId>,
    pub live: Option<ReleaseId>,
}

/// The live release of every pack the store knows or `current/` holds, and, for each of
/// `names` that is not live, the folder `packs_dir/<name>` already holds.
pub fn read_installed<'a>(
    layout: &Layout,
    records: &BTreeMap<PackName, PackRecord>,
    names: impl IntoIterator<Item = &'a PackName>,
) -> Result<Observed, StateError> {
    let mut observed = Observed::default();
    let mut packs: Vec<PackName> = records.keys().cloned().collect();
    packs.extend(current_packs(layout)?);
    packs.sort();
    packs.dedup();
    let mut complete_envs = BTreeMap::new();
    let verification = store::last_verification(&layout.state_dir);
    for pack in packs {
        let live = activate::active(layout, &pack).map_err(|err| StateError::Disk {
            pack: pack.clone(),
            source: Cause::new(err),
        })?;
        let recorded = records
            .get(&pack)
            .and_then(|r| r.active.as_ref())
            .map(|a| a.id.clone());
        if live != recorded {
            observed.drift.push(Drift {
                pack: pack.clone(),
                recorded,
                live: live.clone(),
            });
        }
        let Some(live) = live else { continue };
        // A release is sealed and named by what it was built from: the record of the same
        // release says what its `release.json` says, without opening it.
        let recorded = records
            .get(&pack)
            .and_then(|record| record.release(&live))
            .map(|release| (release.revision.clone(), release.env_inputs.clone()));
        let (revision, env_inputs) = if let Some(recorded) = recorded {
            recorded
        } else {
            let manifest =
                store::read_manifest(&layout.release(&pack, &live).dir).map_err(|err| {
                    StateError::Disk {
                        pack: pack.clone(),
                        source: Cause::new(err),
                    }
                })?;
            (manifest.revision, manifest.env_inputs)
        };
        let broken_links = broken_links(layout, &pack, &live)?;
        // The completion record is read, never the env hashed again, and once per env shared
        // by several packs: a no-op run stays cheap.
        let env = layout.env(&revision.env);
        let digest = env_inputs.digest();
        let complete = *complete_envs
            .entry((revision.env.clone(), digest.clone()))
            .or_insert_with(|| store::is_complete(&env, &digest));
        let broken_env = (!complete).then_some(env);
        let unpurged = records.get(&pack).is_some_and(|record| record.unpurged);
        let tampered =
            store::tampered(verification.as_ref(), &pack, &live).map(|found| found.summary());
        observed.installed.packs.insert(
            pack.clone(),
            InstalledPack {
                name: pack,
                revision,
                env_inputs: Some(env_inputs),
                broken_links,
                broken_env,
                engine_repair: unpurged.then_some(EngineRepair::Unpurged),
                tampered,
            },
        );
    }
    for name in names {
        if observed.installed.packs.contains_key(name) {
            continue;
        }
        let path = layout.pack_link(name);
        match fs_err::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                let version = read_version(&path.join("pack.yaml"));
                observed
                    .installed
                    .unmanaged
                    .insert(name.clone(), UnmanagedPack { path, version });
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StateError::Inspect { path, source }),
        }
    }
    Ok(observed)
}

/// The stable links of the live release `live` of `pack` that do not lead to it, as
/// `activate::link` makes them.
fn broken_links(
    layout: &Layout,
    pack: &PackName,
    live: &ReleaseId,
) -> Result<Vec<PathBuf>, StateError> {
    let links = StableLinks::of(layout, pack);
    let has_config = layout.release(pack, live).config.exists();
    let mut broken = Vec::new();
    for link in [links.pack, links.venv]
        .into_iter()
        .chain(has_config.then_some(links.config))
    {
        match fsx::link_target(&link.path) {
            Ok(Some(found)) if found == link.target => {}
            Ok(_) => broken.push(link.path),
            Err(source) => {
                return Err(StateError::Inspect {
                    path: link.path,
                    source,
                });
            }
        }
    }
    Ok(broken)
}

/// The packs `current/` has a link for.
fn current_packs(layout: &Layout) -> Result<Vec<PackName>, StateError> {
    let dir = layout.state_dir.join("current");
    let entries = match fs_err::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StateError::Inspect { path: dir, source }),
    };
    let mut packs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StateError::Inspect {
            path: dir.clone(),
            source,
        })?;
        // Temp links (`.clush.link`) are not packs; `PackName` refuses their names.
        if let Ok(name) = PackName::new(entry.file_name().to_string_lossy().into_owned()) {
            packs.push(name);
        }
    }
    Ok(packs)
}

/// `version` of a `pack.yaml` on disk, when it can be read; only shown to humans.
fn read_version(pack_yaml: &std::path::Path) -> Option<String> {
    let text = fs_err::read_to_string(pack_yaml).ok()?;
    let value = crate::yaml::load_str(&text).ok()?;
    match value.get("version")? {
        serde_json::Value::String(version) => Some(version.clone()),
        serde_json::Value::Number(version) => Some(version.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(root: &std::path::Path) -> Layout {
        Layout {
            state_dir: root.join("state"),
            packs_dir: root.join("packs"),
            virtualenvs_dir: root.join("virtualenvs"),
            configs_dir: root.join("configs"),
        }
    }

    #[test]
    fn pack_dirs_packsync_does_not_know_are_unmanaged() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        fs_err::create_dir_all(layout.packs_dir.join("clush")).unwrap();
        fs_err::write(
            layout.packs_dir.join("clush/pack.yaml"),
            "name: clush\nversion: 1.7.0\n",
        )
        .unwrap();
        fs_err::create_dir_all(layout.packs_dir.join("bare")).unwrap();
        let names = ["clush", "bare", "absent"].map(|n| PackName::new(n).unwrap());
        let observed = read_installed(&layout, &BTreeMap::new(), &names).unwrap();
        let installed = observed.installed;
        assert!(installed.packs.is_empty());
        let clush = &installed.unmanaged[&names[0]];
        assert_eq!(clush.path, layout.packs_dir.join("clush"));
        assert_eq!(clush.version.as_deref(), Some("1.7.0"));
        assert_eq!(installed.unmanaged[&names[1]].version, None);
        assert!(!installed.unmanaged.contains_key(&names[2]));
        assert!(observed.drift.is_empty());
    }
}
