//! The desired state of each pack as an earlier run read it, used again while nothing it was
//! read from changed: the site config, the interpreters, the mirror's files, packsync itself,
//! and the files a lookup of the pack's ref reads ([`RefStamps`]). A run that changes nothing
//! then opens no Git repo and parses no pack.
//!
//! Only packs read without a problem are kept: a warning is shown on every run. The cache is
//! only a cache: unreadable, it costs a full read; unwritable, it is logged at debug level.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{DesiredPack, Digest, PackName};
use crate::source::{GitDirs, RefStamps};

/// Under `state_dir`.
const FILE: &str = "cache/desired.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// What every entry was read against.
    key: String,
    packs: BTreeMap<PackName, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    dirs: GitDirs,
    stamps: RefStamps,
    desired: DesiredPack,
}

/// The cache of one run.
#[derive(Debug)]
pub(super) struct DesiredCache {
    path: PathBuf,
    stored: Stored,
    changed: bool,
}

/// What a pack was read from: its repo's Git folders and the stamps of its ref lookup, taken
/// before the lookup.
pub(super) type ReadFrom = (GitDirs, RefStamps);

impl DesiredCache {
    /// The cache under `state_dir`, its entries dropped unless they were read against `key`.
    pub(super) fn open(state_dir: &Path, key: &[String]) -> Self {
        let key = Digest::sha256(key.join("\n").as_bytes()).to_string();
        let path = state_dir.join(FILE);
        let stored = fs_err::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|stored| stored.key == key)
            .unwrap_or(Stored {
                key,
                packs: BTreeMap::new(),
            });
        Self {
            path,
            stored,
            changed: false,
        }
    }

    /// What `pack` was read as, when its ref lookup would find the same commit.
    pub(super) fn get(&self, pack: &PackName) -> Option<DesiredPack> {
        let entry = self.stored.packs.get(pack)?;
        entry.stamps.unchanged().then(|| entry.desired.clone())
    }

    /// Keeps what `pack` was read as.
    pub(super) fn put(&mut self, desired: &DesiredPack, (dirs, stamps): ReadFrom) {
        self.stored.packs.insert(
            desired.name.clone(),
            Entry {
                dirs,
                stamps,
                desired: desired.clone(),
            },
        );
        self.changed = true;
    }

    /// Writes the cache, keeping only the packs of `site` (the others left the site config).
    pub(super) fn save<'a>(mut self, site: impl IntoIterator<Item = &'a PackName>) {
        let site: std::collections::BTreeSet<&PackName> = site.into_iter().collect();
        let before = self.stored.packs.len();
        self.stored.packs.retain(|pack, _| site.contains(&pack));
        if !self.changed && self.stored.packs.len() == before {
            return;
        }
        let json = serde_json::to_vec(&self.stored).expect("the cache serialises");
        let written = self
            .path
            .parent()
            .map_or(Ok(()), fs_err::create_dir_all)
            .and_then(|()| crate::fsx::write_atomic(&self.path, &json));
        if let Err(error) = written {
            tracing::debug!(path = %self.path.display(), %error, "the desired-state cache was not written");
        }
    }
}
