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
//!                                   built in place (its scripts hold their absolute path),
//!                                   finished only once its `.complete` record is written
//!                                   ([`completion`]); anything else there is garbage
//!   dist/<k>/                       the compiled-distribution store: one distribution installed
//!                                   into a virtualenv of its own, compiled, sealed; the
//!                                   virtualenvs under envs/ hard-link its files (`env::dists`)
//!   current/<pack> -> ../releases/<pack>/<id>    the one link switched per pack (`activate`)
//!   adopted/<pack>-<time>/          what `st2 pack install` had put in place, moved aside
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SiteConfig;
use crate::diagnostics::Diagnose;
use crate::fsx;
use crate::model::{Digest, EnvInputs, PackName, ReleaseId, Revision};

mod completion;
mod tamper;

pub use completion::{
    COMPLETE_RECORD, Completion, VerifiedDist, is_complete, read_completion, write_completion,
};
pub use tamper::{
    PackVerification, Verification, last_verification, record_verification, set_aside, tampered,
};

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

/// Whether garbage is removed or only listed (`gc --dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    Remove,
    ListOnly,
}

/// What [`collect_garbage`] removed (or, with [`Sweep::ListOnly`], would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub releases: Vec<PathBuf>,
    pub envs: Vec<PathBuf>,
    /// Entries of the compiled-distribution store no remaining virtualenv links to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dists: Vec<PathBuf>,
    /// Runner sets beyond `keep_releases` (see `runners::collect`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runner_sets: Vec<PathBuf>,
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
/// virtualenvs without their completion record, temp links in `current/`. Run under the run
/// lock, after the children of an interrupted run are ended (`children::Children`).
pub fn prepare(layout: &Layout) -> Result<Recovered, StoreError> {
    // First: a process the interrupted run left could still be writing into `envs/`.
    let children = crate::children::Children::new(&layout.state_dir);
    children.end_leftovers().map_err(io_error(
        "end the leftover processes recorded in",
        children.dir(),
    ))?;
    for dir in [
        layout.staging(),
        releases_root(layout),
        envs_root(layout),
        current_root(layout),
        layout.adopted(),
    ] {
        fs_err::create_dir_all(&dir).map_err(io_error("create", &dir))?;
    }
    let mut recovered = Recovered::default();
    for path in entries(&layout.staging())? {
        tracing::warn!(path = %path.display(), "removing a staged release an interrupted run left");
        fsx::remove_tree(&path).map_err(io_error("remove", &path))?;
        recovered.staging.push(path);
    }
    for path in entries(&envs_root(layout))? {
        if read_completion(&path).is_none() {
            tracing::warn!(path = %path.display(), "removing a virtualenv an interrupted run left unfinished");
            remove_aside(layout, &path, &format!(".env-{}", lossy_name(&path)))?;
            recovered.envs.push(path);
        }
    }
    for path in entries(&dist_root(&layout.state_dir))? {
        if read_completion(&path).is_none() {
            tracing::warn!(path = %path.display(), "removing a store entry an interrupted run left unfinished");
            remove_aside(layout, &path, &format!(".dist-{}", lossy_name(&path)))?;
            recovered.envs.push(path);
        }
    }
    for path in entries(&current_root(layout))? {
        if lossy_name(&path).starts_with('.') {
            tracing::warn!(path = %path.display(), "removing a temp link an interrupted switch left");
            fsx::remove_tree(&path).map_err(io_error("remove", &path))?;
        }
    }
    Ok(recovered)
}

/// A fresh, empty staging folder for release `id` of `pack` (a leftover one is removed).
pub fn stage(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Result<ReleasePaths, StoreError> {
    let dir = layout.staging().join(format!("{pack}-{id}"));
    fsx::remove_tree(&dir).map_err(io_error("remove", &dir))?;
    let staged = ReleasePaths::at(dir, pack);
    // The caller exports the pack tree into `pack/<pack>`, which must not exist yet.
    let parent = staged.dir.join("pack");
    fs_err::create_dir_all(&parent).map_err(io_error("create", &parent))?;
    Ok(staged)
}

/// Writes the pack config as YAML to `config.yaml` of a staged release, in a form PyYAML reads
/// back as these same values (see [`crate::yaml::to_yaml`]).
pub fn write_config(
    staged: &ReleasePaths,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), StoreError> {
    let yaml = crate::yaml::to_yaml(&serde_json::Value::Object(values.clone()));
    // A plain write: the staged tree is not live, and `seal` syncs it before it can be.
    fs_err::write(&staged.config, yaml).map_err(io_error("write", &staged.config))
}

/// Points the staged release's `venv` at the virtualenv folder `env_dir` (absolute).
pub fn link_env(staged: &ReleasePaths, env_dir: &Path) -> Result<(), StoreError> {
    fs_err::os::unix::fs::symlink(env_dir, &staged.venv).map_err(io_error("create", &staged.venv))
}

/// Seals a staged release: writes `release.json`, makes the tree read-only and renames it to
/// `releases/<pack>/<id>`. When that release already exists (same inputs), the staged copy is
/// discarded and the existing one returned.
///
/// The staged files are synced to disk before `release.json` is written, so a release that has
/// its manifest is complete after a crash too. The release folder itself is made read-only
/// only after the rename: moving a folder to another parent rewrites its `..` entry, which
/// needs write permission on the folder.
pub fn seal(
    layout: &Layout,
    staged: ReleasePaths,
    manifest: &ReleaseManifest,
) -> Result<ReleasePaths, StoreError> {
    let sealed = layout.release(&manifest.pack, &manifest.id);
    if find(layout, &manifest.pack, &manifest.id).is_some() {
        tracing::debug!(release = %sealed.dir.display(), "release exists already; dropping the staged copy");
        discard(&staged)?;
        return Ok(sealed);
    }
    if fsx::exists(&sealed.dir).map_err(io_error("inspect", &sealed.dir))? {
        tracing::warn!(release = %sealed.dir.display(), "removing an incomplete release folder");
        fsx::remove_tree(&sealed.dir).map_err(io_error("remove", &sealed.dir))?;
    }

    // The staged paths are spent: the folder moves.
    let ReleasePaths {
        dir: staged_dir,
        manifest: staged_manifest,
        ..
    } = staged;
    let dir = fs_err::File::open(&staged_dir).map_err(io_error("open", &staged_dir))?;
    rustix::fs::syncfs(&dir).map_err(|errno| io_error("sync", &staged_dir)(errno.into()))?;
    drop(dir);
    let mut json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises to JSON");
    json.push(b'\n');
    fsx::write_atomic(&staged_manifest, &json).map_err(io_error("write", &staged_manifest))?;

    fsx::make_read_only(&staged_dir).map_err(io_error("make read-only", &staged_dir))?;
    set_owner_write(&staged_dir, true)?;
    let releases = layout.releases(&manifest.pack);
    fs_err::create_dir_all(&releases).map_err(io_error("create", &releases))?;
    let root = releases_root(layout);
    fsx::fsync_dir(&root).map_err(io_error("sync", &root))?;
    fs_err::rename(&staged_dir, &sealed.dir).map_err(io_error("rename", &staged_dir))?;
    fsx::fsync_dir(&releases).map_err(io_error("sync", &releases))?;
    set_owner_write(&sealed.dir, false)?;
    Ok(sealed)
}

/// Removes a staged release (e.g. its test gate failed).
pub fn discard(staged: &ReleasePaths) -> Result<(), StoreError> {
    fsx::remove_tree(&staged.dir).map_err(io_error("remove", &staged.dir))
}

/// The sealed release `id` of `pack`, when it exists complete (it has its `release.json`).
pub fn find(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Option<ReleasePaths> {
    let release = layout.release(pack, id);
    release.manifest.is_file().then_some(release)
}

/// What StackStorm registers from the pack tree `pack_dir` of a release (see
/// [`crate::pack::content`]).
pub fn release_content(
    pack: &PackName,
    pack_dir: &Path,
) -> Result<BTreeSet<crate::pack::content::Resource>, StoreError> {
    use crate::pack::content::{CONTENT_DIRS, ContentFile, content, is_resource_file};
    let mut files = Vec::new();
    for dir in CONTENT_DIRS {
        for path in entries(&pack_dir.join(dir))? {
            let name = lossy_name(&path);
            if !is_resource_file(dir, &name) || !path.is_file() {
                continue;
            }
            let bytes = fs_err::read(&path).map_err(io_error("read", &path))?;
            files.push(ContentFile { dir, name, bytes });
        }
    }
    Ok(content(pack, &files))
}

/// Takes the completion record away from the virtualenv `env` (something wrote into it): every
/// release using it is then broken, and the next run builds it again.
pub fn invalidate_env(env: &Path) -> Result<(), StoreError> {
    set_owner_write(env, true)?;
    let record = env.join(COMPLETE_RECORD);
    fsx::remove_if_exists(&record).map_err(io_error("remove", &record))?;
    set_owner_write(env, false)
}

/// Removes a sealed release that never went live (its gate failed): moved aside, then removed.
pub fn remove_release(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Result<(), StoreError> {
    let release = layout.release(pack, id);
    remove_aside(layout, &release.dir, &format!(".release-{pack}-{id}"))
}

/// Reads `release.json` of a release folder.
pub fn read_manifest(release_dir: &Path) -> Result<ReleaseManifest, StoreError> {
    let path = release_dir.join("release.json");
    let bytes = fs_err::read(&path).map_err(io_error("read", &path))?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Manifest { path, source })
}

/// Removes every sealed release not in `keep` (packs missing from `keep` lose all of theirs),
/// then every virtualenv no remaining release links to, then every entry of the
/// compiled-distribution store no remaining virtualenv links to. A release a `current/` link points at
/// is never removed, whatever `keep` says.
///
/// Virtualenvs linked from a staged release, or without their completion record, are left
/// alone: they belong to a run in progress, and [`prepare`] removes them when that run was
/// interrupted. While there is one without its record, so are the store entries.
/// Each folder is first moved into `staging/` and removed there, so that a crash in the middle
/// leaves no partial release or virtualenv that a later run would take as complete.
pub fn collect_garbage(
    layout: &Layout,
    keep: &BTreeMap<PackName, BTreeSet<ReleaseId>>,
    sweep: Sweep,
) -> Result<Collected, StoreError> {
    let staging = layout.staging();
    fs_err::create_dir_all(&staging).map_err(io_error("create", &staging))?;
    let live = live_releases(layout)?;
    let mut collected = Collected::default();
    let mut linked_envs = BTreeSet::new();
    let mut linked_dists = BTreeSet::new();
    let mut unfinished_env = false;
    for pack_dir in entries(&releases_root(layout))? {
        let pack = lossy_name(&pack_dir);
        let kept = keep
            .iter()
            .find(|(name, _)| name.as_str() == pack)
            .map(|(_, ids)| ids);
        let mut left = 0_usize;
        for release in entries(&pack_dir)? {
            let id = lossy_name(&release);
            let wanted = kept.is_some_and(|ids| ids.iter().any(|kept| kept.as_str() == id));
            if wanted || live.contains(&canonical(&release)?) {
                linked_envs.extend(env_name(&release.join("venv"))?);
                left += 1;
                continue;
            }
            if sweep == Sweep::Remove {
                tracing::info!(release = %release.display(), "removing a release");
                remove_aside(layout, &release, &format!(".release-{pack}-{id}"))?;
            }
            collected.releases.push(release);
        }
        if left == 0 && sweep == Sweep::Remove {
            fs_err::remove_dir(&pack_dir).map_err(io_error("remove", &pack_dir))?;
        }
    }
    for staged in entries(&staging)? {
        linked_envs.extend(env_name(&staged.join("venv"))?);
    }
    for env in entries(&envs_root(layout))? {
        let linked = env
            .file_name()
            .is_some_and(|name| linked_envs.contains(name));
        let Some(completion) = read_completion(&env) else {
            unfinished_env = true;
            continue;
        };
        if linked {
            linked_dists.extend(completion.store_entries);
            continue;
        }
        if sweep == Sweep::Remove {
            tracing::info!(env = %env.display(), "removing a virtualenv no release uses");
            remove_aside(layout, &env, &format!(".env-{}", lossy_name(&env)))?;
        }
        collected.envs.push(env);
    }
    // An unfinished virtualenv may link entries its completion record does not name yet.
    let dists = if unfinished_env {
        Vec::new()
    } else {
        entries(&dist_root(&layout.state_dir))?
    };
    for dist in dists {
        let linked = linked_dists.contains(&lossy_name(&dist));
        if linked || read_completion(&dist).is_none() {
            continue;
        }
        if sweep == Sweep::Remove {
            tracing::info!(entry = %dist.display(), "removing a store entry no virtualenv uses");
            remove_aside(layout, &dist, &format!(".dist-{}", lossy_name(&dist)))?;
        }
        collected.dists.push(dist);
    }
    Ok(collected)
}

/// `state_dir/dist`: the compiled-distribution store.
pub fn dist_root(state_dir: &Path) -> PathBuf {
    state_dir.join("dist")
}

fn releases_root(layout: &Layout) -> PathBuf {
    layout.state_dir.join("releases")
}

fn envs_root(layout: &Layout) -> PathBuf {
    layout.state_dir.join("envs")
}

fn current_root(layout: &Layout) -> PathBuf {
    layout.state_dir.join("current")
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// The entries of the folder `dir`, sorted; none when it does not exist.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let read = match fs_err::read_dir(dir) {
        Ok(read) => read,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("list", dir)(err)),
    };
    let mut paths = read
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_error("list", dir))?;
    paths.sort();
    Ok(paths)
}

fn lossy_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Adds or takes away the owner's write permission on `dir` itself (not its entries).
fn set_owner_write(dir: &Path, writable: bool) -> Result<(), StoreError> {
    let mode = fs_err::symlink_metadata(dir)
        .map_err(io_error("inspect", dir))?
        .permissions()
        .mode();
    let mode = if writable {
        mode | 0o200
    } else {
        mode & !0o222
    };
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(io_error("set the mode of", dir))
}

/// Moves the folder `path` to `staging/<name>`, then removes it there: a crash in the middle
/// of the removal leaves a partial tree in staging, which [`prepare`] wipes, never a partial
/// release or virtualenv where a later run would take it as complete.
fn remove_aside(layout: &Layout, path: &Path, name: &str) -> Result<(), StoreError> {
    let trash = layout.staging().join(name);
    fsx::remove_tree(&trash).map_err(io_error("remove", &trash))?;
    // Moving a folder to another parent rewrites its `..`: it must be writable.
    set_owner_write(path, true)?;
    fs_err::rename(path, &trash).map_err(io_error("rename", path))?;
    if let Some(parent) = path.parent() {
        fsx::fsync_dir(parent).map_err(io_error("sync", parent))?;
    }
    fsx::remove_tree(&trash).map_err(io_error("remove", &trash))
}

/// The release folders the links in `current/` point at, canonical.
fn live_releases(layout: &Layout) -> Result<BTreeSet<PathBuf>, StoreError> {
    let mut live = BTreeSet::new();
    for link in entries(&current_root(layout))? {
        if fsx::link_target(&link)
            .map_err(io_error("read", &link))?
            .is_none()
        {
            continue;
        }
        match fs_err::canonicalize(&link) {
            Ok(release) => {
                live.insert(release);
            }
            // A dangling link protects nothing.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("resolve", &link)(err)),
        }
    }
    Ok(live)
}

fn canonical(path: &Path) -> Result<PathBuf, StoreError> {
    fs_err::canonicalize(path).map_err(io_error("resolve", path))
}

/// The folder name of the virtualenv the link `venv` points at (`envs/<d>`), if it is a link.
fn env_name(venv: &Path) -> Result<Option<OsString>, StoreError> {
    let target = fsx::link_target(venv).map_err(io_error("read", venv))?;
    Ok(target.and_then(|target| target.file_name().map(ToOwned::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pin;

    fn layout(root: &Path) -> Layout {
        Layout {
            state_dir: root.join("state"),
            packs_dir: root.join("packs"),
            virtualenvs_dir: root.join("virtualenvs"),
            configs_dir: root.join("configs"),
        }
    }

    fn pack(name: &str) -> PackName {
        PackName::new(name).unwrap()
    }

    fn id(name: &str) -> ReleaseId {
        ReleaseId::from_name(name).unwrap()
    }

    fn manifest(pack_name: &str, release: &str) -> ReleaseManifest {
        ReleaseManifest {
            pack: pack(pack_name),
            id: id(release),
            revision: Revision {
                commit: "3f2a9c1d00000000000000000000000000000000".into(),
                version: semver::Version::new(1, 8, 1),
                git_ref: "v1.8.1".into(),
                tree: Digest::git_tree("aa"),
                env: Digest::sha256(b"env"),
                config: Digest::sha256(b"config"),
            },
            env_inputs: EnvInputs {
                python: "cpython-3.11.7-x86_64-linux-gnu /usr/bin/python3".into(),
                settings: vec!["system-site-packages".into()],
                requirements: vec!["requests==2.31.0".into()],
                pins: vec![Pin {
                    name: "requests".into(),
                    version: "2.31.0".into(),
                    file: "requests-2.31.0-py3-none-any.whl".into(),
                    sha256: "ab".repeat(32),
                }],
            },
            built_at: "2026-11-25T10:15:00Z".parse().unwrap(),
        }
    }

    /// Stages a release of `pack` with one pack file holding `content`, linked to `env`, and
    /// seals it.
    fn release(
        layout: &Layout,
        name: &str,
        release: &str,
        content: &str,
        env: &Path,
    ) -> ReleasePaths {
        let staged = stage(layout, &pack(name), &id(release)).unwrap();
        fs_err::create_dir_all(staged.pack.join("actions")).unwrap();
        fs_err::write(staged.pack.join("pack.yaml"), content).unwrap();
        link_env(&staged, env).unwrap();
        seal(layout, staged, &manifest(name, release)).unwrap()
    }

    /// A finished virtualenv `name` linking the finished store entry `d-<name>`.
    fn env(layout: &Layout, name: &str) -> PathBuf {
        let dir = envs_root(layout).join(name);
        fs_err::create_dir_all(dir.join("bin")).unwrap();
        fs_err::write(dir.join("bin/python"), "").unwrap();
        let entry = format!("d-{name}");
        let completion = Completion {
            digest: Digest::sha256(name.as_bytes()),
            dists: Vec::new(),
            store_entries: vec![entry.clone()],
        };
        write_completion(&dir, &completion).unwrap();
        fsx::make_read_only(&dir).unwrap();
        let dist = dist_root(&layout.state_dir).join(entry);
        fs_err::create_dir_all(&dist).unwrap();
        write_completion(
            &dist,
            &Completion {
                digest: Digest::sha256(name.as_bytes()),
                dists: Vec::new(),
                store_entries: Vec::new(),
            },
        )
        .unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs_err::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        entries(dir)
            .unwrap()
            .iter()
            .map(|p| lossy_name(p))
            .collect()
    }

    #[test]
    fn prepare_creates_the_layout_and_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let recovered = prepare(&layout).unwrap();
        assert_eq!(recovered, Recovered::default());
        assert_eq!(
            names(&layout.state_dir),
            ["adopted", "current", "envs", "releases", "staging"]
        );

        let leftover = layout.staging().join("clush-1.0.0-abc");
        fs_err::create_dir_all(leftover.join("pack/clush")).unwrap();
        fs_err::write(leftover.join("pack/clush/pack.yaml"), "x").unwrap();
        fsx::make_read_only(&leftover).unwrap();
        let unfinished = env(&layout, "aaaa");
        fsx::remove_tree(&unfinished).unwrap();
        // Written into after a crash by a process that outlived it: no marker, no record.
        fs_err::create_dir_all(unfinished.join("bin")).unwrap();
        let finished = env(&layout, "bbbb");
        let current = current_root(&layout);
        fs_err::os::unix::fs::symlink("../releases/clush/1", current.join(".clush.link")).unwrap();
        fs_err::os::unix::fs::symlink("../releases/clush/0", current.join("clush")).unwrap();

        let recovered = prepare(&layout).unwrap();
        assert_eq!(
            recovered,
            Recovered {
                staging: vec![leftover],
                envs: vec![unfinished],
            }
        );
        assert!(names(&layout.staging()).is_empty());
        assert_eq!(names(&envs_root(&layout)), ["bbbb"]);
        assert!(finished.join("bin/python").exists());
        assert_eq!(names(&current), ["clush"]);
    }

    #[test]
    fn stage_gives_a_fresh_folder() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        prepare(&layout).unwrap();
        let staged = stage(&layout, &pack("clush"), &id("1.0.0-abc")).unwrap();
        assert_eq!(staged.dir, layout.staging().join("clush-1.0.0-abc"));
        assert_eq!(staged.pack, staged.dir.join("pack/clush"));
        assert!(staged.pack.parent().unwrap().is_dir());
        assert!(!staged.pack.exists());
        fs_err::create_dir(&staged.pack).unwrap();
        fs_err::write(staged.pack.join("junk"), "").unwrap();
        fsx::make_read_only(&staged.dir).unwrap();

        let again = stage(&layout, &pack("clush"), &id("1.0.0-abc")).unwrap();
        assert_eq!(again, staged);
        assert_eq!(names(&again.dir), ["pack"]);
        assert!(!again.pack.exists());
    }

    #[test]
    fn seal_moves_a_complete_read_only_release_in_place() {
        // Run as a user without CAP_DAC_OVERRIDE, this also checks that a read-only tree can
        // be moved between folders (root may move anything).
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        prepare(&layout).unwrap();
        let env_dir = env(&layout, "eeee");
        let staged = stage(&layout, &pack("clush"), &id("1.8.1-abc")).unwrap();
        fs_err::create_dir_all(staged.pack.join("actions")).unwrap();
        fs_err::write(staged.pack.join("actions/run.sh"), "#!/bin/sh\n").unwrap();
        let mut values = serde_json::Map::new();
        values.insert("hosts".into(), serde_json::json!(["a", "b"]));
        values.insert("timeout".into(), serde_json::json!(30));
        write_config(&staged, &values).unwrap();
        link_env(&staged, &env_dir).unwrap();
        let staged_dir = staged.dir.clone();

        let written = manifest("clush", "1.8.1-abc");
        let sealed = seal(&layout, staged, &written).unwrap();
        assert_eq!(sealed, layout.release(&pack("clush"), &id("1.8.1-abc")));
        assert!(!staged_dir.exists());
        assert_eq!(read_manifest(&sealed.dir).unwrap(), written);
        assert_eq!(
            find(&layout, &pack("clush"), &id("1.8.1-abc")),
            Some(sealed.clone())
        );
        let config = crate::yaml::load(&fs_err::read(&sealed.config).unwrap()).unwrap();
        assert_eq!(config, serde_json::Value::Object(values.clone()));
        assert_eq!(fs_err::read_link(&sealed.venv).unwrap(), env_dir);
        for path in [
            &sealed.dir,
            &sealed.pack,
            &sealed.pack.join("actions"),
            &sealed.pack.join("actions/run.sh"),
            &sealed.config,
            &sealed.manifest,
        ] {
            assert_eq!(mode(path) & 0o222, 0, "{}", path.display());
        }
    }

    #[test]
    fn seal_keeps_an_existing_release_and_replaces_an_incomplete_one() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        prepare(&layout).unwrap();
        let env_dir = env(&layout, "eeee");

        // A folder without `release.json` is not a release: it is replaced.
        let incomplete = layout.release(&pack("clush"), &id("1.8.1-abc"));
        fs_err::create_dir_all(&incomplete.pack).unwrap();
        fs_err::write(incomplete.pack.join("junk"), "").unwrap();
        assert_eq!(find(&layout, &pack("clush"), &id("1.8.1-abc")), None);
        let first = release(&layout, "clush", "1.8.1-abc", "first", &env_dir);
        assert!(!first.pack.join("junk").exists());

        // Same id means same inputs: the release is found again, never rewritten.
        let second = release(&layout, "clush", "1.8.1-abc", "second", &env_dir);
        assert_eq!(second, first);
        assert_eq!(
            fs_err::read_to_string(first.pack.join("pack.yaml")).unwrap(),
            "first"
        );
        assert!(names(&layout.staging()).is_empty());
    }

    #[test]
    fn discard_removes_a_read_only_staged_release() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let staged = stage(&layout, &pack("clush"), &id("1.8.1-abc")).unwrap();
        fs_err::create_dir_all(&staged.pack).unwrap();
        fs_err::write(staged.pack.join("pack.yaml"), "").unwrap();
        fsx::make_read_only(&staged.dir).unwrap();
        discard(&staged).unwrap();
        assert!(!staged.dir.exists());
        discard(&staged).unwrap();
    }

    #[test]
    fn bad_manifests_name_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("release");
        fs_err::create_dir_all(&release).unwrap();
        let err = read_manifest(&release).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { action: "read", .. }),
            "{err:?}"
        );
        fs_err::write(release.join("release.json"), "{}").unwrap();
        let err = read_manifest(&release).unwrap_err();
        assert!(
            matches!(&err, StoreError::Manifest { path, .. } if *path == release.join("release.json")),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_collection_keeps_wanted_live_and_linked_folders() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        prepare(&layout).unwrap();
        let [e1, e2, e3, e4, e5, e6] =
            ["e1", "e2", "e3", "e4", "e5", "e6"].map(|name| env(&layout, name));
        let live = release(&layout, "clush", "1", "live", &e1);
        let old = release(&layout, "clush", "2", "old", &e2);
        let wanted = release(&layout, "clush", "3", "wanted", &e3);
        let dropped = release(&layout, "gone", "1", "gone", &e3);
        let gone_env = release(&layout, "gone", "2", "gone", &e4);
        fs_err::os::unix::fs::symlink("../releases/clush/1", layout.current(&pack("clush")))
            .unwrap();
        // e5 is being built and e6 belongs to a staged release: a run is in progress.
        fsx::remove_tree(&e5).unwrap();
        fs_err::create_dir_all(e5.join("bin")).unwrap();
        let staged = stage(&layout, &pack("other"), &id("1")).unwrap();
        link_env(&staged, &e6).unwrap();
        let keep = BTreeMap::from([(pack("clush"), BTreeSet::from([id("3")]))]);

        let collected = collect_garbage(&layout, &keep, Sweep::Remove).unwrap();
        assert_eq!(
            collected,
            Collected {
                releases: vec![old.dir, dropped.dir, gone_env.dir],
                envs: vec![e2, e4],
                dists: Vec::new(),
                runner_sets: Vec::new(),
            }
        );
        assert!(live.manifest.is_file());
        assert!(wanted.manifest.is_file());
        assert_eq!(names(&releases_root(&layout)), ["clush"]);
        assert_eq!(names(&envs_root(&layout)), ["e1", "e3", "e5", "e6"]);
        assert_eq!(names(&layout.staging()), ["other-1"]);

        // The store entries wait while e5 is unfinished: it may link them already.
        let dists = dist_root(&layout.state_dir);
        assert_eq!(
            names(&dists),
            ["d-e1", "d-e2", "d-e3", "d-e4", "d-e5", "d-e6"]
        );
        // e5 finished, and an entry being filled (no record yet).
        write_completion(&e5, &read_completion(&e1).unwrap()).unwrap();
        fs_err::create_dir_all(dists.join("d-filling")).unwrap();
        let collected = collect_garbage(&layout, &keep, Sweep::Remove).unwrap();
        assert_eq!(
            (collected.envs, collected.dists),
            (
                vec![e5],
                vec![dists.join("d-e2"), dists.join("d-e4"), dists.join("d-e5")]
            )
        );
        assert_eq!(names(&dists), ["d-e1", "d-e3", "d-e6", "d-filling"]);

        // Nothing more to collect.
        assert_eq!(
            collect_garbage(&layout, &keep, Sweep::Remove).unwrap(),
            Collected::default()
        );
    }
}
