//! The release store under `state_dir`: where releases and virtualenvs live on disk, how a
//! release is staged and sealed, what a crash leaves behind and what garbage collection removes.
//!
//! ```text
//! state_dir/
//!   staging/<pack>-<id>/            a release being built; wiped at start
//!   releases/<pack>/<id>/           a sealed release, read-only, never changed again
//!       pack/<pack>/                the pack tree exported from Git (the folder name is the
//!                                   pack's: st2-run-pack-tests and registration use it)
//!       venv -> state_dir/envs/<d>  the virtualenv the release runs with
//!       config.yaml                 the rendered pack config (when it has values)
//!       release.json                what it was built from ([`ReleaseManifest`])
//!   envs/<d>/                       a virtualenv, shared by every release with its env digest;
//!                                   built in place (its scripts hold their absolute path) with
//!                                   a `.building` marker that is removed last
//!   current/<pack> -> ../releases/<pack>/<id>    the one link switched per pack (`activate`)
//!   adopted/<pack>-<time>/          what `st2 pack install` had put in place, moved aside
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SiteConfig;
use crate::diagnostics::Diagnose;
use crate::model::{Digest, EnvInputs, PackName, ReleaseId, Revision};

/// Marks a virtualenv folder that is not finished; such a folder is garbage after a crash.
pub const BUILDING_MARKER: &str = ".building";

/// Every path packsync owns, from the site config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub packs_dir: PathBuf,
    pub virtualenvs_dir: PathBuf,
    pub configs_dir: PathBuf,
}

impl Layout {
    pub fn new(config: &SiteConfig) -> Self {
        Self {
            state_dir: config.agent.state_dir.clone(),
            packs_dir: config.stackstorm.packs_dir.clone(),
            virtualenvs_dir: config.stackstorm.virtualenvs_dir.clone(),
            configs_dir: config.stackstorm.configs_dir.clone(),
        }
    }

    pub fn staging(&self) -> PathBuf {
        self.state_dir.join("staging")
    }

    /// `releases/<pack>`: every kept release of one pack.
    pub fn releases(&self, pack: &PackName) -> PathBuf {
        self.state_dir.join("releases").join(pack.as_str())
    }

    /// The sealed release `id` of `pack` (which may not exist).
    pub fn release(&self, pack: &PackName, id: &ReleaseId) -> ReleasePaths {
        ReleasePaths::at(self.releases(pack).join(id.as_str()), pack)
    }

    /// `envs/<first 32 hex digits of the env digest>`; short enough for script shebangs.
    pub fn env(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.state_dir.join("envs").join(&hex[..hex.len().min(32)])
    }

    /// `current/<pack>`: the link that says which release is live.
    pub fn current(&self, pack: &PackName) -> PathBuf {
        self.state_dir.join("current").join(pack.as_str())
    }

    pub fn adopted(&self) -> PathBuf {
        self.state_dir.join("adopted")
    }

    /// `packs_dir/<pack>`: the path StackStorm knows the pack by.
    pub fn pack_link(&self, pack: &PackName) -> PathBuf {
        self.packs_dir.join(pack.as_str())
    }

    /// `virtualenvs_dir/<pack>`.
    pub fn venv_link(&self, pack: &PackName) -> PathBuf {
        self.virtualenvs_dir.join(pack.as_str())
    }

    /// `configs_dir/<pack>.yaml`.
    pub fn config_link(&self, pack: &PackName) -> PathBuf {
        self.configs_dir.join(format!("{pack}.yaml"))
    }
}

/// The entries of one release folder, staged or sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePaths {
    pub dir: PathBuf,
    /// `dir/pack/<pack>`: the pack tree.
    pub pack: PathBuf,
    /// `dir/venv`: a link to the virtualenv.
    pub venv: PathBuf,
    /// `dir/config.yaml`.
    pub config: PathBuf,
    /// `dir/release.json`.
    pub manifest: PathBuf,
}

impl ReleasePaths {
    pub fn at(dir: PathBuf, pack: &PackName) -> Self {
        Self {
            pack: dir.join("pack").join(pack.as_str()),
            venv: dir.join("venv"),
            config: dir.join("config.yaml"),
            manifest: dir.join("release.json"),
            dir,
        }
    }
}

/// `release.json`: what a release was built from. Written last before sealing, so a release
/// folder without it is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub pack: PackName,
    pub id: ReleaseId,
    pub revision: Revision,
    pub env_inputs: EnvInputs,
    pub built_at: jiff::Timestamp,
}

/// What [`prepare`] found left over by an interrupted run and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub staging: Vec<PathBuf>,
    pub envs: Vec<PathBuf>,
}

/// What [`collect_garbage`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub releases: Vec<PathBuf>,
    pub envs: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The release manifest `{}` is not valid", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Diagnose for StoreError {}

/// Creates the store's folders and removes what an interrupted run left: the staging area,
/// virtualenvs still marked as building, temp links in `current/`. Run under the run lock.
pub fn prepare(layout: &Layout) -> Result<Recovered, StoreError> {
    let _ = layout;
    todo!()
}

/// A fresh, empty staging folder for release `id` of `pack` (a leftover one is removed).
pub fn stage(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Result<ReleasePaths, StoreError> {
    let _ = (layout, pack, id);
    todo!()
}

/// Writes the pack config as YAML to `config.yaml` of a staged release.
pub fn write_config(
    staged: &ReleasePaths,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), StoreError> {
    let _ = (staged, values);
    todo!()
}

/// Points the staged release's `venv` at the virtualenv folder `env_dir` (absolute).
pub fn link_env(staged: &ReleasePaths, env_dir: &Path) -> Result<(), StoreError> {
    let _ = (staged, env_dir);
    todo!()
}

/// Seals a staged release: writes `release.json`, makes the tree read-only and renames it to
/// `releases/<pack>/<id>`. When that release already exists (same inputs), the staged copy is
/// discarded and the existing one returned.
pub fn seal(
    layout: &Layout,
    staged: ReleasePaths,
    manifest: &ReleaseManifest,
) -> Result<ReleasePaths, StoreError> {
    let _ = (layout, staged, manifest);
    todo!()
}

/// Removes a staged release (e.g. its test gate failed).
pub fn discard(staged: &ReleasePaths) -> Result<(), StoreError> {
    let _ = staged;
    todo!()
}

/// The sealed release `id` of `pack`, when it exists complete (it has its `release.json`).
pub fn find(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Option<ReleasePaths> {
    let _ = (layout, pack, id);
    todo!()
}

/// Reads `release.json` of a release folder.
pub fn read_manifest(release_dir: &Path) -> Result<ReleaseManifest, StoreError> {
    let _ = release_dir;
    todo!()
}

/// Removes every sealed release not in `keep` (packs missing from `keep` lose all of theirs),
/// then every virtualenv no remaining release links to. A release a `current/` link points at
/// is never removed, whatever `keep` says.
pub fn collect_garbage(
    layout: &Layout,
    keep: &BTreeMap<PackName, BTreeSet<ReleaseId>>,
) -> Result<Collected, StoreError> {
    let _ = (layout, keep);
    todo!()
}
