//! The compiled-distribution store, `state_dir/dist`: each distribution installed once per
//! (mirror file sha256, interpreter, installer), its bytecode compiled, verified and sealed
//! read-only; a pack virtualenv is assembled from it with hard links.
//!
//! Compiling bytecode is nearly all of an install's time, and an installer compiles again for
//! every virtualenv: a second pack with one pin changed paid for all its pins again. With the
//! store the installer runs only for a distribution the store lacks, several at once.
//!
//! An entry is a virtualenv of its own (`python -m venv --without-pip`, as a pack's) into which
//! the configured installer put that one file (`--no-deps`), verified against its pin as a pack
//! virtualenv is, and its manifest: every path the install added. Those are linked into a
//! virtualenv as they are, except the few that hold the entry's own path (scripts' shebangs):
//! those are written for each virtualenv with its path, and the distribution's `RECORD` with
//! their hashes. Bytecode holds the path it was compiled at and needs no rewrite: Python sets a
//! code object's file name from the source it loads it beside (`_imp._fix_co_filename`), and a
//! hard link keeps the source's mtime, which the `.pyc` is checked against.
//!
//! Entry paths (`dist/<32 hex>`) are as long as virtualenv paths (`envs/<32 hex>`), so the
//! rewrite keeps every length, in a binary file too. Where they differ (a virtualenv elsewhere),
//! a binary file holding the path cannot be rewritten: that distribution is installed into the
//! virtualenv by the installer instead.
//!
//! An entry is finished when its completion record is there, as a virtualenv is. Virtualenvs
//! name the entries they link to in theirs, and `gc` removes the entries none names.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{BUILD_FILES, EnvBuilder, EnvError, io, seal, site_packages, verify_installed};
use crate::config::Installer;
use crate::fsx;
use crate::model::{Digest, Pin};
use crate::store::{self, Completion};

/// The manifest's file name in an entry; written before its completion record.
const MANIFEST: &str = ".packsync-dist.json";

/// Bumped when what an entry holds or how it is filled changes: older entries are not reused.
const STORE_FORMAT: &str = "packsync-dist-1";

/// The store's entries and the locks that fill each once.
#[derive(Debug)]
pub(super) struct DistStore {
    root: PathBuf,
    /// One lock per entry, so that two virtualenvs needing the same distribution at once fill
    /// it once.
    filling: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
}

/// A finished entry.
#[derive(Debug)]
struct Entry {
    dir: PathBuf,
    manifest: Manifest,
}

/// Every path the install added to an entry, in the order they are to be created.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// The entry's path: what a relocated file holds.
    prefix: PathBuf,
    /// The distribution's `RECORD`, relative to the entry, when a relocated file is in it.
    record: Option<PathBuf>,
    /// The virtualenv's site-packages, relative to it (where `RECORD` paths start from).
    site_packages: PathBuf,
    paths: Vec<Added>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Added {
    path: PathBuf,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Folder,
    File,
    Symlink,
    /// A text file holding the entry's path.
    Relocate,
    /// A binary file (NUL bytes) holding the entry's path: rewritten only where the
    /// virtualenv's path is as long.
    RelocateBinary,
}

impl DistStore {
    pub(super) fn at(state_dir: &Path) -> Self {
        Self {
            root: store::dist_root(state_dir),
            filling: Mutex::new(HashMap::new()),
        }
    }

    /// The entry of `pin` installed by `installer` for the interpreter `python` (its identity).
    fn key(python: &str, installer: &Installer, pin: &Pin) -> Digest {
        let installer = match installer {
            Installer::Pip => "pip".to_string(),
            Installer::Uv(uv) => format!("uv {}", uv.display()),
        };
        let mut hasher = Sha256::new();
        for part in [STORE_FORMAT, python, &installer, &pin.file, &pin.sha256] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        Digest::from_sha256(hasher.finalize().as_slice())
    }

    /// `dist/<32 hex>`, as long as `envs/<32 hex>`.
    fn entry_dir(&self, key: &Digest) -> PathBuf {
        let hex = key.hex();
        self.root.join(&hex[..hex.len().min(32)])
    }
}

impl EnvBuilder {
    /// Installs `pins` into the virtualenv `dir` (created, not yet sealed) from the store,
    /// filling it first with what it lacks; the names of the entries linked, for the
    /// virtualenv's completion record. `work` is a scratch folder inside `dir`.
    pub(super) fn install_from_store(
        &self,
        dir: &Path,
        python: &str,
        pins: &[Pin],
        work: &Path,
    ) -> Result<Vec<String>, EnvError> {
        let entries = self.store_entries(python, pins)?;
        let mut by_installer = Vec::new();
        let mut linked = Vec::new();
        for (pin, entry) in pins.iter().zip(&entries) {
            if entry.relocatable_to(dir) {
                entry.link_into(dir)?;
                linked.push(entry.name());
            } else {
                by_installer.push(pin.clone());
            }
        }
        if !by_installer.is_empty() {
            tracing::debug!(env = %dir.display(), pins = by_installer.len(), "installing what the store cannot link here");
            self.install_pins(&by_installer, &dir.join("bin/python"), None, &[], work)?;
        }
        Ok(linked)
    }

    /// The entries of `pins`, in their order; the missing ones filled, up to one per core at
    /// a time.
    fn store_entries(&self, python: &str, pins: &[Pin]) -> Result<Vec<Entry>, EnvError> {
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(pins.len());
        let next = AtomicUsize::new(0);
        let found: Vec<Mutex<Option<Result<Entry, EnvError>>>> =
            pins.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(pin) = pins.get(index) else { break };
                        let entry = self.store_entry(python, pin);
                        *found[index].lock().unwrap_or_else(PoisonError::into_inner) = Some(entry);
                    }
                });
            }
        });
        found
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expect("every pin was taken by a worker")
            })
            .collect()
    }

    /// The entry of `pin`, filled now when it is not there finished.
    fn store_entry(&self, python: &str, pin: &Pin) -> Result<Entry, EnvError> {
        let key = DistStore::key(python, &self.installer, pin);
        let dir = self.dists.entry_dir(&key);
        let lock = Arc::clone(
            self.dists
                .filling
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_default(),
        );
        // A fill that panicked wrote no completion record: the poisoned lock is safe to take.
        let _filling = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if store::is_complete(&dir, &key) {
            let manifest_path = dir.join(MANIFEST);
            let bytes = fs_err::read(&manifest_path).map_err(io("read", &manifest_path))?;
            if let Ok(manifest) = serde_json::from_slice(&bytes) {
                return Ok(Entry { dir, manifest });
            }
            tracing::warn!(entry = %dir.display(), "a store entry's manifest is unreadable; filling it again");
        }
        if fsx::exists(&dir).map_err(io("read", &dir))? {
            fsx::remove_tree_aside(&dir).map_err(io("remove the unfinished store entry", &dir))?;
        }
        fs_err::create_dir_all(&self.dists.root).map_err(io("create", &self.dists.root))?;
        tracing::info!(dist = %pin.file, entry = %dir.display(), "installing into the distribution store");
        let filled = self.fill(&dir, &key, pin);
        if filled.is_err()
            && let Err(err) = fsx::remove_tree_aside(&dir)
        {
            tracing::warn!(entry = %dir.display(), error = %err, "failed to remove a failed store entry");
        }
        filled
    }

    /// Installs `pin` alone into a new virtualenv at `dir`, verifies it, and seals it with its
    /// manifest.
    fn fill(&self, dir: &Path, key: &Digest, pin: &Pin) -> Result<Entry, EnvError> {
        self.create_venv(dir, false)?;
        let skeleton: BTreeSet<PathBuf> = walk(dir)
            .map_err(io("list", dir))?
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        let work = dir.join(BUILD_FILES);
        fs_err::create_dir(&work).map_err(io("create", &work))?;
        let pins = std::slice::from_ref(pin);
        self.install_pins(pins, &dir.join("bin/python"), None, &[], &work)?;
        fsx::remove_tree(&work).map_err(io("remove", &work))?;
        let site = site_packages(dir)?;
        let dists = verify_installed(&site, dir, pins)?;
        let manifest = Manifest::of(dir, &site, &skeleton).map_err(io("read", dir))?;
        let json = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let manifest_path = dir.join(MANIFEST);
        fs_err::write(&manifest_path, json).map_err(io("write", &manifest_path))?;
        let completion = Completion {
            digest: key.clone(),
            dists,
            store_entries: Vec::new(),
        };
        seal(dir, &completion).map_err(io("seal the store entry", dir))?;
        Ok(Entry {
            dir: dir.to_path_buf(),
            manifest,
        })
    }
}

impl Manifest {
    /// What `dir` holds beyond `skeleton`, each file read once to find the ones holding `dir`.
    fn of(dir: &Path, site_packages: &Path, skeleton: &BTreeSet<PathBuf>) -> io::Result<Self> {
        let prefix = dir.as_os_str().as_bytes();
        let finder = memchr::memmem::Finder::new(prefix);
        let site_packages = site_packages
            .strip_prefix(dir)
            .unwrap_or(site_packages)
            .to_path_buf();
        let mut paths = Vec::new();
        for (path, file_type) in walk(dir)? {
            if skeleton.contains(&path) {
                continue;
            }
            let kind = if file_type.is_dir() {
                Kind::Folder
            } else if file_type.is_symlink() {
                Kind::Symlink
            } else if path.extension().is_some_and(|ext| ext == "pyc") {
                Kind::File
            } else {
                let bytes = fs_err::read(dir.join(&path))?;
                match finder.find(&bytes) {
                    None => Kind::File,
                    Some(_) if memchr::memchr(0, &bytes).is_some() => Kind::RelocateBinary,
                    Some(_) => Kind::Relocate,
                }
            };
            paths.push(Added { path, kind });
        }
        let relocates = paths
            .iter()
            .any(|added| matches!(added.kind, Kind::Relocate | Kind::RelocateBinary));
        let record = paths
            .iter()
            .map(|added| &added.path)
            .find(|path| {
                path.file_name().is_some_and(|name| name == "RECORD")
                    && path.parent().is_some_and(|dist_info| {
                        dist_info.parent() == Some(site_packages.as_path())
                            && dist_info.extension().is_some_and(|ext| ext == "dist-info")
                    })
            })
            .filter(|_| relocates)
            .cloned();
        Ok(Self {
            prefix: dir.to_path_buf(),
            record,
            site_packages,
            paths,
        })
    }
}

impl Entry {
    /// The entry's folder name, as a virtualenv's completion record lists it.
    fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Whether every file holding the entry's path can be rewritten for the virtualenv `env`.
    fn relocatable_to(&self, env: &Path) -> bool {
        self.manifest.prefix.as_os_str().len() == env.as_os_str().len()
            || self
                .manifest
                .paths
                .iter()
                .all(|added| added.kind != Kind::RelocateBinary)
    }

    /// Links (or writes, where they hold the entry's path) the entry's paths into `env`.
    fn link_into(&self, env: &Path) -> Result<(), EnvError> {
        let from = self.manifest.prefix.as_os_str().as_bytes();
        let to = env.as_os_str().as_bytes();
        let mut relocated = HashMap::new();
        for added in &self.manifest.paths {
            let source = self.dir.join(&added.path);
            let target = env.join(&added.path);
            match added.kind {
                Kind::Folder => match fs_err::create_dir(&target) {
                    Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(io("create", &target)(err));
                    }
                    _ => {}
                },
                Kind::File => link_file(&source, &target).map_err(io("link", &target))?,
                Kind::Symlink => {
                    let points_to = fs_err::read_link(&source).map_err(io("read", &source))?;
                    fsx::remove_if_exists(&target).map_err(io("replace", &target))?;
                    fs_err::os::unix::fs::symlink(&points_to, &target)
                        .map_err(io("link", &target))?;
                }
                Kind::Relocate | Kind::RelocateBinary => {
                    let bytes = fs_err::read(&source).map_err(io("read", &source))?;
                    let rewritten = replace_all(&bytes, from, to);
                    let mode = fs_err::metadata(&source)
                        .map_err(io("read", &source))?
                        .permissions()
                        .mode();
                    write_file(&target, &rewritten, mode).map_err(io("write", &target))?;
                    relocated.insert(added.path.clone(), rewritten);
                }
            }
        }
        if let Some(record) = &self.manifest.record {
            let source = self.dir.join(record);
            let text = fs_err::read_to_string(&source).map_err(io("read", &source))?;
            let rewritten = rewrite_record(&text, &self.manifest.site_packages, &relocated);
            let target = env.join(record);
            write_file(&target, rewritten.as_bytes(), 0o644).map_err(io("write", &target))?;
        }
        Ok(())
    }
}

/// Every path under `root` (not following symlinks), relative to it, a folder before what it
/// holds, sorted.
pub(super) fn walk(root: &Path) -> io::Result<Vec<(PathBuf, std::fs::FileType)>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let mut entries = fs_err::read_dir(root.join(&relative))?
            .map(|entry| entry.and_then(|entry| Ok((entry.file_name(), entry.file_type()?))))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        for (name, file_type) in entries {
            let path = relative.join(name);
            if file_type.is_dir() {
                pending.push(path.clone());
            }
            found.push((path, file_type));
        }
    }
    Ok(found)
}

/// A hard link of `source` at `target` (replacing what is there, as an installer overwrites a
/// file another distribution installed); a copy with the same mtime, which bytecode is checked
/// against, where no link can be made (another filesystem, the link count at its limit).
fn link_file(source: &Path, target: &Path) -> io::Result<()> {
    let linked = match std::fs::hard_link(source, target) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            fs_err::remove_file(target)?;
            std::fs::hard_link(source, target)
        }
        linked => linked,
    };
    match linked {
        Err(err)
            if err.kind() == io::ErrorKind::CrossesDevices
                || err.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) =>
        {
            fs_err::copy(source, target)?;
            let modified = fs_err::metadata(source)?.modified()?;
            fs_err::File::options()
                .write(true)
                .open(target)?
                .set_modified(modified)
        }
        linked => linked,
    }
}

/// Writes a new file at `target` (replacing a link there) with `mode`.
fn write_file(target: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    fsx::remove_if_exists(target)?;
    fs_err::write(target, bytes)?;
    fs_err::set_permissions(target, std::fs::Permissions::from_mode(mode))
}

pub(super) fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let finder = memchr::memmem::Finder::new(from);
    while let Some(at) = finder.find(rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// `record` with the hash and size of each `relocated` file (by path relative to the
/// virtualenv) as it was written; `site_packages` is where `RECORD` paths start from.
fn rewrite_record(
    record: &str,
    site_packages: &Path,
    relocated: &HashMap<PathBuf, Vec<u8>>,
) -> String {
    let mut out = String::with_capacity(record.len());
    for raw in record.split_inclusive('\n') {
        // Python's csv module ends lines with `\r\n`; kept as they are.
        let line = raw.trim_end_matches(['\r', '\n']);
        let end = &raw[line.len()..];
        // The hash and the size never hold a comma, the path may (quoted).
        let mut fields = line.rsplitn(3, ',');
        let (Some(_size), Some(_hash), Some(path_field)) =
            (fields.next(), fields.next(), fields.next())
        else {
            out.push_str(raw);
            continue;
        };
        let path = super::verify::csv_fields(path_field).remove(0);
        match super::verify::normalize(&site_packages.join(path))
            .and_then(|path| relocated.get(&path))
        {
            Some(bytes) => {
                let hash =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
                let _ = write!(out, "{path_field},sha256={hash},{}{end}", bytes.len());
            }
            None => out.push_str(raw),
        }
    }
    out
}
