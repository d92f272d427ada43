//! The compiled-distribution store, `state_dir/dist`: each distribution installed once per
//! (mirror file sha256, interpreter, installer), its bytecode compiled, verified and sealed
//! read-only; a pack virtualenv is assembled from it with hard links.
//!
//! Compiling bytecode is nearly all of an install's time, and an installer compiles again for
//! every virtualenv: a second pack with one pin changed paid for all its pins again. With the
//! store the installer runs only for the distributions the store lacks: one installer run per
//! core, each installing its share into a batch virtualenv (pip compiles in one process, so
//! the shares compile in parallel), verified against the pins as a pack virtualenv is, then
//! split into one entry per distribution by what its `RECORD` names, its `.dist-info` and the
//! bytecode of its sources. Where a batch cannot be split (two distributions writing one file,
//! a file no `RECORD` names), each of its distributions is installed on its own.
//!
//! An entry holds the files at the paths they have in a virtualenv, and its manifest. Those
//! are linked into a virtualenv as they are, except the few that hold the path they were
//! installed at (scripts' shebangs): those are written for each virtualenv with its path, and
//! the distribution's `RECORD` with their hashes. Bytecode holds the path it was compiled at
//! and needs no rewrite: Python sets a code object's file name from the source it loads it
//! beside (`_imp._fix_co_filename`), and a hard link keeps the source's mtime, which the
//! `.pyc` is checked against.
//!
//! A virtualenv's own files (`python -m venv --without-pip`) are an entry too, made once per
//! interpreter and setting: linking it (its path and folder name written into `pyvenv.cfg`
//! and the activate scripts) takes a millisecond where the command takes a tenth of a second.
//!
//! Entry and batch paths (`dist/<32 hex>`) are as long as virtualenv paths (`envs/<32 hex>`),
//! so the rewrite keeps every length, in a binary file too. Where they differ (a virtualenv
//! elsewhere), a binary file holding the path cannot be rewritten: that distribution is
//! installed into the virtualenv by the installer instead.
//!
//! An entry is finished when its completion record is there, as a virtualenv is. Virtualenvs
//! name the entries they link to in theirs, and `gc` removes the entries none names.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{
    BUILD_FILES, Bytecode, EnvBuilder, EnvError, InstallerRun, KeyedLocks, Lines, io, output_tail,
    seal, site_packages, verify, verify_installed,
};
use crate::config::Installer;
use crate::fsx;
use crate::model::{Digest, Pin};
use crate::store::{self, Completion, VerifiedDist};

/// The manifest's file name in an entry; written before its completion record.
const MANIFEST: &str = ".packsync-dist.json";

/// The lock file uv makes in every environment it installs into: no distribution's.
const UV_LOCK: &str = ".lock";

/// Bumped when what an entry holds or how it is filled changes: older entries are not reused.
const STORE_FORMAT: &str = "packsync-dist-1";

/// The store's entries and the locks that fill each once.
#[derive(Debug)]
pub(super) struct DistStore {
    root: PathBuf,
    /// One lock per entry, so that two virtualenvs needing the same distribution at once fill
    /// it once.
    filling: KeyedLocks,
}

/// A finished entry.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    dir: PathBuf,
    manifest: Manifest,
}

/// Every path the install added to an entry, in the order they are to be created.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    /// The entry's path: what a relocated file holds.
    prefix: PathBuf,
    /// The distribution's `RECORD`, relative to the entry, when a relocated file is in it.
    record: Option<PathBuf>,
    /// The virtualenv's site-packages, relative to it (where `RECORD` paths start from).
    site_packages: PathBuf,
    /// The folder name `python -m venv` wrote into the activate scripts' prompt, `(<name>) `,
    /// for the entry of a virtualenv's own files: a virtualenv linked from it shows its own.
    prompt: Option<String>,
    paths: Vec<Added>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
            filling: KeyedLocks::default(),
        }
    }

    /// `dist/<32 hex of the hash of parts>`, as long as `envs/<32 hex>`, and its key.
    fn entry(&self, parts: &[&str]) -> (Digest, PathBuf) {
        let mut hasher = Sha256::new();
        for part in std::iter::once(&STORE_FORMAT).chain(parts) {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let key = Digest::from_sha256(hasher.finalize().as_slice());
        let hex = key.hex();
        let dir = self.root.join(&hex[..hex.len().min(32)]);
        (key, dir)
    }

    /// The entry of `pin` installed by `installer` for the interpreter `python` (its identity).
    fn dist_entry(&self, python: &str, installer: &Installer, pin: &Pin) -> (Digest, PathBuf) {
        let installer = match installer {
            Installer::Pip => "pip".to_string(),
            Installer::Uv(uv) => format!("uv {}", uv.display()),
        };
        self.entry(&[python, &installer, &pin.file, &pin.sha256])
    }
}

/// An entry's folder when it is there finished.
fn finished(dir: &Path, key: &Digest) -> Result<Option<Entry>, EnvError> {
    if !store::is_complete(dir, key) {
        return Ok(None);
    }
    let manifest_path = dir.join(MANIFEST);
    let bytes = fs_err::read(&manifest_path).map_err(io("read", &manifest_path))?;
    match serde_json::from_slice(&bytes) {
        Ok(manifest) => Ok(Some(Entry {
            dir: dir.to_path_buf(),
            manifest,
        })),
        Err(err) => {
            tracing::warn!(entry = %dir.display(), error = %err, "a store entry's manifest is unreadable; filling it again");
            Ok(None)
        }
    }
}

/// Removes what is at `dir` (an unfinished entry, a leftover batch) and makes sure the store
/// folder exists.
fn clear(dir: &Path) -> Result<(), EnvError> {
    if fsx::exists(dir).map_err(io("read", dir))? {
        fsx::remove_tree_aside(dir).map_err(io("remove the unfinished store entry", dir))?;
    }
    let root = fsx::parent(dir);
    fs_err::create_dir_all(root).map_err(io("create", root))
}

impl EnvBuilder {
    /// `python -m venv --without-pip [--system-site-packages]` at `dir`, linked from the store:
    /// the command runs once per interpreter (its identity `python`) and setting, into an entry
    /// of its own; every virtualenv after is its files with its own path (and prompt) in
    /// them. The entry, which the virtualenv's completion record names.
    pub(super) fn create_venv(
        &self,
        dir: &Path,
        python: &str,
        system_site_packages: bool,
    ) -> Result<Entry, EnvError> {
        let setting = if system_site_packages {
            "venv --system-site-packages"
        } else {
            "venv"
        };
        let (key, entry_dir) = self.dists.entry(&[python, setting]);
        let lock = self.dists.filling.of(&key);
        // A fill that panicked wrote no completion record: the poisoned lock is safe to take.
        let filling = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = if let Some(entry) = finished(&entry_dir, &key)? {
            entry
        } else {
            clear(&entry_dir)?;
            let filled = self
                .run_venv(&entry_dir, system_site_packages)
                .and_then(|()| {
                    let files = walk(&entry_dir)
                        .map_err(io("list", &entry_dir))?
                        .into_iter()
                        .map(|(path, _)| path)
                        .collect();
                    let prompt = entry_dir
                        .file_name()
                        .map(|name| format!("({}) ", name.to_string_lossy()));
                    seal_entry(&entry_dir, &entry_dir, &files, &key, Vec::new(), prompt)
                });
            forget_failed(&entry_dir, &filled);
            filled?
        };
        drop(filling);
        fs_err::create_dir(dir).map_err(io("create", dir))?;
        entry.link_into(dir, &mut HashSet::new())?;
        Ok(entry)
    }

    /// Installs `pins` into the virtualenv `dir` (created, not yet sealed) from the store,
    /// filling it first with what it lacks; the names of the entries linked, for the
    /// virtualenv's completion record. `work` is a scratch folder inside `dir`; the files
    /// hard-linked go into `linked`.
    pub(super) fn install_from_store(
        &self,
        dir: &Path,
        python: &str,
        pins: &[Pin],
        work: &Path,
        linked_files: &mut HashSet<PathBuf>,
        lines: Lines<'_>,
    ) -> Result<Vec<String>, EnvError> {
        let entries = self.store_entries(python, pins, lines)?;
        let mut by_installer = Vec::new();
        let mut linked = Vec::new();
        for (pin, entry) in pins.iter().zip(&entries) {
            if entry.relocatable_to(dir) {
                entry.link_into(dir, linked_files)?;
                linked.push(entry.name());
            } else {
                by_installer.push(pin.clone());
            }
        }
        if !by_installer.is_empty() {
            tracing::debug!(env = %dir.display(), pins = by_installer.len(), "installing what the store cannot link here");
            self.install_pins_with(
                &by_installer,
                &dir.join("bin/python"),
                work,
                InstallerRun::into_env(Bytecode::ByInstaller, lines),
            )?;
        }
        Ok(linked)
    }

    /// The entries of `pins`, in their order; the missing ones filled first.
    fn store_entries(
        &self,
        python: &str,
        pins: &[Pin],
        lines: Lines<'_>,
    ) -> Result<Vec<Entry>, EnvError> {
        let keys: Vec<(Digest, PathBuf)> = pins
            .iter()
            .map(|pin| self.dists.dist_entry(python, &self.installer, pin))
            .collect();
        // Every entry's lock, in one order (no two builds wait for each other's), so that
        // two virtualenvs needing a distribution at once fill it once.
        let mut ordered: Vec<&Digest> = keys.iter().map(|(key, _)| key).collect();
        ordered.sort();
        ordered.dedup();
        let locks: Vec<Arc<Mutex<()>>> = ordered
            .iter()
            .map(|key| self.dists.filling.of(key))
            .collect();
        let _filling: Vec<_> = locks
            .iter()
            .map(|lock| lock.lock().unwrap_or_else(PoisonError::into_inner))
            .collect();

        let mut entries = Vec::with_capacity(pins.len());
        let mut missing = Vec::new();
        for ((key, dir), pin) in keys.iter().zip(pins) {
            let entry = finished(dir, key)?;
            if entry.is_none() && !missing.iter().any(|other: &Missing| other.pin == pin) {
                missing.push(Missing {
                    key: key.clone(),
                    dir: dir.clone(),
                    pin,
                });
            }
            entries.push(entry);
        }
        let filled = if missing.is_empty() {
            HashMap::new()
        } else {
            self.fill(python, &missing, lines)?
        };
        keys.iter()
            .zip(entries)
            .map(|((key, dir), entry)| {
                entry.or_else(|| filled.get(key).cloned()).ok_or_else(|| {
                    io("read the store entry", dir)(io::Error::new(
                        io::ErrorKind::NotFound,
                        "filled, but not finished",
                    ))
                })
            })
            .collect()
    }

    /// Fills the entries of `missing`: one installer run per core, each installing its share
    /// (balanced by the Python source each file holds: compiling it is most of the time) into
    /// one batch virtualenv, which is then split into an entry per distribution. The entries,
    /// by key.
    fn fill(
        &self,
        python: &str,
        missing: &[Missing],
        lines: Lines<'_>,
    ) -> Result<HashMap<Digest, Entry>, EnvError> {
        let weighed = missing
            .iter()
            .map(|entry| (compile_weight(&self.mirror.join(&entry.pin.file)), entry))
            .collect();
        let batches = per_core(weighed);
        std::thread::scope(|scope| {
            let workers: Vec<_> = batches
                .iter()
                .map(|batch| scope.spawn(|| self.fill_batch(python, batch, lines)))
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("a fill does not panic"))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .try_fold(HashMap::new(), |mut all, filled| {
            all.extend(filled?);
            Ok(all)
        })
    }

    /// Installs `batch` into one new virtualenv and moves each distribution's files into its
    /// entry. Where the files cannot be told apart (two distributions writing one file, a
    /// file no `RECORD` names), each is installed on its own instead. The entries, with their
    /// keys.
    fn fill_batch(
        &self,
        python: &str,
        batch: &[&Missing],
        lines: Lines<'_>,
    ) -> Result<Vec<(Digest, Entry)>, EnvError> {
        let pins: Vec<Pin> = batch.iter().map(|missing| missing.pin.clone()).collect();
        let keys: Vec<&str> = batch.iter().map(|missing| missing.key.as_str()).collect();
        let (_, staging) = self.dists.entry(&[&["batch"], keys.as_slice()].concat());
        tracing::info!(
            files = %pins.iter().map(|pin| pin.file.as_str()).collect::<Vec<_>>().join(" "),
            "installing into the distribution store"
        );
        let filled = self.install_batch(python, &staging, batch, &pins, lines);
        if let Err(err) = fsx::remove_tree_aside(&staging) {
            tracing::warn!(dir = %staging.display(), error = %err, "failed to remove a store batch");
        }
        if let Some(entries) = filled? {
            return Ok(entries);
        }
        let mut entries = Vec::with_capacity(batch.len());
        for missing in batch {
            entries.extend(self.fill_batch(python, &[missing], lines)?);
        }
        Ok(entries)
    }

    /// [`Self::fill_batch`] in the folder `staging`; `None` when the files could not be told
    /// apart.
    fn install_batch(
        &self,
        python: &str,
        staging: &Path,
        batch: &[&Missing],
        pins: &[Pin],
        lines: Lines<'_>,
    ) -> Result<Option<Vec<(Digest, Entry)>>, EnvError> {
        clear(staging)?;
        let skeleton: BTreeSet<PathBuf> = self
            .create_venv(staging, python, false)?
            .manifest
            .paths
            .into_iter()
            .map(|added| added.path)
            .collect();
        let work = staging.join(BUILD_FILES);
        fs_err::create_dir(&work).map_err(io("create", &work))?;
        let site = site_packages(staging)?;
        // pip compiles in its one process, the largest distribution alone taking most of the
        // time: compiled here instead, one process per core.
        let python = staging.join("bin/python");
        if self.installer == Installer::Pip {
            let run = InstallerRun::into_env(Bytecode::Later, lines);
            self.install_pins_with(pins, &python, &work, run)?;
            self.compile_bytecode(staging, &site, pins, &work)?;
        } else {
            let run = InstallerRun::into_env(Bytecode::ByInstaller, lines);
            self.install_pins_with(pins, &python, &work, run)?;
        }
        fsx::remove_tree(&work).map_err(io("remove", &work))?;
        let verified = verify_installed(&site, staging, pins)?;
        let added: BTreeSet<PathBuf> = walk(staging)
            .map_err(io("list", staging))?
            .into_iter()
            .filter(|(path, file_type)| {
                !file_type.is_dir() && !skeleton.contains(path) && path != Path::new(UV_LOCK)
            })
            .map(|(path, _)| path)
            .collect();
        let shares = match split(staging, &site, pins, added).map_err(io("read", staging))? {
            Ok(shares) => shares,
            Err(why) => {
                tracing::debug!(dir = %staging.display(), why, "the batch cannot be split; one by one");
                return Ok(None);
            }
        };
        let mut entries = Vec::with_capacity(batch.len());
        for ((Missing { key, dir, pin }, files), dist) in batch
            .iter()
            .zip(shares)
            .zip(verified_in_order(verified, pins))
        {
            clear(dir)?;
            fs_err::create_dir(dir).map_err(io("create", dir))?;
            let sealed = seal_entry(staging, dir, &files, key, vec![dist], None);
            forget_failed(dir, &sealed);
            entries.push((key.clone(), sealed?));
            tracing::debug!(dist = %pin.file, entry = %dir.display(), "store entry filled");
        }
        Ok(Some(entries))
    }
}

impl EnvBuilder {
    /// Compiles the Python sources that `pins` installed into the virtualenv `root` (what
    /// their `RECORD`s name, as pip compiles them), one `compileall` per core, and adds each
    /// `.pyc` to its `RECORD` as pip does (no hash, the rows sorted). `work` holds the lists.
    fn compile_bytecode(
        &self,
        root: &Path,
        site: &Path,
        pins: &[Pin],
        work: &Path,
    ) -> Result<(), EnvError> {
        let (installed, _) = verify::installed(site).map_err(io("read", site))?;
        let mut records = Vec::new();
        let mut sources: Vec<(u64, PathBuf)> = Vec::new();
        for pin in pins {
            let Some((_, _, dist_info)) = installed.get(&verify::canonical(&pin.name)) else {
                continue;
            };
            let record = dist_info.join("RECORD");
            let text = fs_err::read_to_string(&record).map_err(io("read", &record))?;
            let rows: Vec<Vec<String>> = text
                .lines()
                .filter(|line| !line.is_empty())
                .map(verify::csv_fields)
                .collect();
            let mine: Vec<PathBuf> = rows
                .iter()
                .filter_map(|row| row.first())
                .filter_map(|path| verify::normalize(&site.join(path)))
                .filter(|path| {
                    path.starts_with(root) && path.extension().is_some_and(|ext| ext == "py")
                })
                .collect();
            for source in &mine {
                if let Ok(meta) = fs_err::metadata(source)
                    && meta.is_file()
                {
                    sources.push((meta.len(), source.clone()));
                }
            }
            records.push((record, rows, mine));
        }

        let lists: Vec<String> = per_core(sources)
            .into_iter()
            .map(|list| {
                list.iter().fold(String::new(), |mut text, source| {
                    let _ = writeln!(text, "{}", source.display());
                    text
                })
            })
            .collect();
        std::thread::scope(|scope| {
            let compiling: Vec<_> = lists
                .iter()
                .enumerate()
                .map(|(index, list)| {
                    scope.spawn(move || -> Result<(), EnvError> {
                        let file = work.join(format!("compile-{index}.txt"));
                        fs_err::write(&file, list).map_err(io("write", &file))?;
                        let mut command = self.command();
                        command.args(["-m", "compileall", "-q", "-f", "-i"]).arg(&file);
                        let output = self.output(&mut command)?;
                        // A source that does not compile (Python 2 syntax) is left without
                        // bytecode, as pip leaves it.
                        if !output.status.success() {
                            tracing::debug!(list = %file.display(), output = %output_tail(&output), "compileall left files uncompiled");
                        }
                        Ok(())
                    })
                })
                .collect();
            compiling
                .into_iter()
                .try_for_each(|worker| worker.join().expect("a compile does not panic"))
        })?;

        let compiled = walk(root).map_err(io("list", root))?;
        let bytecode = bytecode_by_source(compiled.iter().map(|(path, _)| path));
        let depth = site
            .strip_prefix(root)
            .map_or(0, |site| site.components().count());
        for (record, mut rows, mine) in records {
            for source in mine {
                let relative = source.strip_prefix(root).unwrap_or(&source);
                let stem = relative
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let key = (fsx::parent(relative).to_path_buf(), stem);
                for pyc in bytecode.get(&key).into_iter().flatten() {
                    let path = match root.join(pyc).strip_prefix(site) {
                        Ok(inside) => inside.display().to_string(),
                        Err(_) => format!("{}{}", "../".repeat(depth), pyc.display()),
                    };
                    rows.push(vec![path, String::new(), String::new()]);
                }
            }
            rows.sort();
            rows.dedup();
            let text: String = rows.iter().map(|row| record_line(row)).collect();
            fs_err::write(&record, text).map_err(io("write", &record))?;
        }
        Ok(())
    }
}

/// `items` (weight, item) in one group per core (fewer when there are fewer items) of about
/// equal weight: the heaviest first, each into the lightest group so far.
fn per_core<T>(mut items: Vec<(u64, T)>) -> Vec<Vec<T>> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut groups: Vec<(u64, Vec<T>)> = (0..cores.clamp(1, items.len().max(1)))
        .map(|_| (0, Vec::new()))
        .collect();
    items.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    for (weight, item) in items {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(total, _)| *total)
            .expect("at least one group");
        lightest.0 += weight;
        lightest.1.push(item);
    }
    groups
        .into_iter()
        .map(|(_, group)| group)
        .filter(|group| !group.is_empty())
        .collect()
}

/// What installing the mirror file `path` costs, roughly: the bytes of Python source a wheel
/// holds (compiled at install), or an sdist's size.
fn compile_weight(path: &Path) -> u64 {
    let file_size = || fs_err::metadata(path).map_or(0, |meta| meta.len());
    if path.extension().is_none_or(|ext| ext != "whl") {
        return file_size();
    }
    let Ok(mut wheel) = fs_err::File::open(path)
        .map_err(|err| err.to_string())
        .and_then(|file| zip::ZipArchive::new(file).map_err(|err| err.to_string()))
    else {
        return file_size();
    };
    let mut weight = 0;
    for index in 0..wheel.len() {
        if let Ok(member) = wheel.by_index_raw(index)
            && Path::new(member.name())
                .extension()
                .is_some_and(|ext| ext == "py")
        {
            weight += member.size();
        }
    }
    weight
}

/// An entry to fill: its key and folder, and the file it holds.
struct Missing<'a> {
    key: Digest,
    dir: PathBuf,
    pin: &'a Pin,
}

/// Every `dir/__pycache__/<stem>.<tag>.pyc` of `paths`, by (dir, stem): the bytecode of
/// `dir/<stem>.py`.
fn bytecode_by_source<'a>(
    paths: impl Iterator<Item = &'a PathBuf>,
) -> HashMap<(PathBuf, String), Vec<PathBuf>> {
    let mut bytecode: HashMap<(PathBuf, String), Vec<PathBuf>> = HashMap::new();
    for path in paths {
        let (Some(cache), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy();
        let Some(tagged) = name.strip_suffix(".pyc") else {
            continue;
        };
        let tagged = tagged
            .rsplit_once(".opt-")
            .map_or(tagged, |(tagged, _)| tagged);
        if let Some((stem, _tag)) = tagged.rsplit_once('.')
            && cache.file_name().is_some_and(|dir| dir == "__pycache__")
        {
            bytecode
                .entry((fsx::parent(cache).to_path_buf(), stem.to_string()))
                .or_default()
                .push(path.clone());
        }
    }
    bytecode
}

/// A `RECORD` line as Python's `csv` writes it (pip's): a field holding a comma, a quote or
/// a line break quoted, `\r\n` at the end.
fn record_line(fields: &[String]) -> String {
    let mut line = String::new();
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            let _ = write!(line, "\"{}\"", field.replace('"', "\"\""));
        } else {
            line.push_str(field);
        }
    }
    line.push_str("\r\n");
    line
}

/// `verified` (sorted by name) in the order of `pins`.
fn verified_in_order(verified: Vec<VerifiedDist>, pins: &[Pin]) -> Vec<VerifiedDist> {
    let mut by_name: HashMap<String, VerifiedDist> = verified
        .into_iter()
        .map(|dist| (dist.name.clone(), dist))
        .collect();
    pins.iter()
        .filter_map(|pin| by_name.remove(&pin.name))
        .collect()
}

/// Removes the folder of a failed fill (without a record it is garbage anyway).
fn forget_failed<T>(dir: &Path, filled: &Result<T, EnvError>) {
    if filled.is_err()
        && let Err(err) = fsx::remove_tree_aside(dir)
    {
        tracing::warn!(entry = %dir.display(), error = %err, "failed to remove a failed store entry");
    }
}

/// The files of `added` (relative to `root`) each of `pins` installed, in their order: what
/// its `RECORD` names, its `.dist-info` folder, and the bytecode of its sources. Why not, when
/// a file belongs to two distributions or to none. One pin has every file.
pub(super) fn split(
    root: &Path,
    site_packages: &Path,
    pins: &[Pin],
    added: BTreeSet<PathBuf>,
) -> io::Result<Result<Vec<BTreeSet<PathBuf>>, String>> {
    if let [_] = pins {
        return Ok(Ok(vec![added]));
    }
    let (installed, _) = verify::installed(site_packages)?;
    let bytecode = bytecode_by_source(added.iter());
    let mut shares = Vec::with_capacity(pins.len());
    let mut owned: HashSet<&PathBuf> = HashSet::new();
    for pin in pins {
        let Some((_, _, dist_info)) = installed.get(&verify::canonical(&pin.name)) else {
            return Ok(Err(format!("{} has no .dist-info", pin.name)));
        };
        let mut share = BTreeSet::new();
        let dist_info = dist_info.strip_prefix(root).unwrap_or(dist_info);
        share.extend(
            added
                .range(dist_info.to_path_buf()..)
                .take_while(|path| path.starts_with(dist_info))
                .cloned(),
        );
        let record =
            fs_err::read_to_string(root.join(dist_info).join("RECORD")).unwrap_or_default();
        for line in record.lines() {
            let Some(relative) = verify::csv_fields(line).into_iter().next() else {
                continue;
            };
            let Some(path) = verify::normalize(&site_packages.join(relative)) else {
                continue;
            };
            let Ok(path) = path.strip_prefix(root) else {
                continue;
            };
            if let Some(path) = added.get(path) {
                share.insert(path.clone());
            }
        }
        let sources: Vec<PathBuf> = share
            .iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
            .cloned()
            .collect();
        for source in sources {
            let stem = source
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned());
            let key = (fsx::parent(&source).to_path_buf(), stem.unwrap_or_default());
            share.extend(bytecode.get(&key).into_iter().flatten().cloned());
        }
        for path in &share {
            if !owned.insert(added.get(path).expect("a share holds added files")) {
                return Ok(Err(format!(
                    "`{}` belongs to two distributions",
                    path.display()
                )));
            }
        }
        shares.push(share);
    }
    Ok(match added.iter().find(|path| !owned.contains(path)) {
        Some(path) => Err(format!("no RECORD names `{}`", path.display())),
        None => Ok(shares),
    })
}

/// Moves `files` (relative to `from`) into the new entry folder `dir`, with the folders they
/// are in; writes its manifest (the files holding `from` found) and seals it with its
/// completion record (`key`, the distributions verified).
fn seal_entry(
    from: &Path,
    dir: &Path,
    files: &BTreeSet<PathBuf>,
    key: &Digest,
    dists: Vec<VerifiedDist>,
    prompt: Option<String>,
) -> Result<Entry, EnvError> {
    let manifest = Manifest::of(from, dir, files, prompt).map_err(io("move into", dir))?;
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

impl Manifest {
    /// Moves `files` (and folders, kept even when empty) from `from` into `dir` (nothing moves
    /// where they are the same), creating the folders they are in; each file read once to find the ones holding `from`, the path they were
    /// installed at, or the `prompt`.
    fn of(
        from: &Path,
        dir: &Path,
        files: &BTreeSet<PathBuf>,
        prompt: Option<String>,
    ) -> io::Result<Self> {
        let prefix = from.as_os_str().as_bytes();
        let finder = memchr::memmem::Finder::new(prefix);
        let prompt_finder = prompt
            .as_ref()
            .map(|prompt| memchr::memmem::Finder::new(prompt.as_bytes()).into_owned());
        let site_packages = site_packages(from)
            .ok()
            .and_then(|site| site.strip_prefix(from).ok().map(Path::to_path_buf))
            .unwrap_or_default();
        let mut paths = Vec::new();
        let mut folders = HashSet::new();
        for path in files {
            let mut ancestors: Vec<&Path> = path
                .ancestors()
                .skip(1)
                .take_while(|folder| !folder.as_os_str().is_empty())
                .collect();
            ancestors.reverse();
            for folder in ancestors {
                if folders.insert(folder.to_path_buf()) {
                    if from != dir {
                        match fs_err::create_dir(dir.join(folder)) {
                            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                                return Err(err);
                            }
                            _ => {}
                        }
                    }
                    paths.push(Added {
                        path: folder.to_path_buf(),
                        kind: Kind::Folder,
                    });
                }
            }
            if from != dir {
                fs_err::rename(from.join(path), dir.join(path))?;
            }
            let file_type = fs_err::symlink_metadata(dir.join(path))?.file_type();
            let kind = if file_type.is_dir() {
                if !folders.insert(path.clone()) {
                    continue;
                }
                Kind::Folder
            } else if file_type.is_symlink() {
                Kind::Symlink
            } else if path.extension().is_some_and(|ext| ext == "pyc") {
                Kind::File
            } else {
                let bytes = fs_err::read(dir.join(path))?;
                let holds_prompt = prompt_finder
                    .as_ref()
                    .is_some_and(|prompt| prompt.find(&bytes).is_some());
                match finder.find(&bytes) {
                    None if holds_prompt => Kind::Relocate,
                    None => Kind::File,
                    Some(_) if memchr::memchr(0, &bytes).is_some() => Kind::RelocateBinary,
                    Some(_) => Kind::Relocate,
                }
            };
            paths.push(Added {
                path: path.clone(),
                kind,
            });
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
            prefix: from.to_path_buf(),
            record,
            site_packages,
            prompt,
            paths,
        })
    }
}

impl Entry {
    /// The entry's folder name, as a virtualenv's completion record lists it.
    pub(super) fn name(&self) -> String {
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

    /// Links (or writes, where they hold the entry's path) the entry's paths into `env`; the
    /// files hard-linked (not copied) go into `linked`.
    fn link_into(&self, env: &Path, linked: &mut HashSet<PathBuf>) -> Result<(), EnvError> {
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
                Kind::File => {
                    if link_file(&source, &target).map_err(io("link", &target))? {
                        linked.insert(target);
                    }
                }
                Kind::Symlink => {
                    let points_to = fs_err::read_link(&source).map_err(io("read", &source))?;
                    fsx::remove_if_exists(&target).map_err(io("replace", &target))?;
                    fs_err::os::unix::fs::symlink(&points_to, &target)
                        .map_err(io("link", &target))?;
                }
                Kind::Relocate | Kind::RelocateBinary => {
                    let bytes = fs_err::read(&source).map_err(io("read", &source))?;
                    let mut rewritten = replace_all(&bytes, from, to);
                    if let Some(prompt) = &self.manifest.prompt {
                        let name = env.file_name().unwrap_or_default().to_string_lossy();
                        rewritten = replace_all(
                            &rewritten,
                            prompt.as_bytes(),
                            format!("({name}) ").as_bytes(),
                        );
                    }
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
/// Whether it is a link.
fn link_file(source: &Path, target: &Path) -> io::Result<bool> {
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
                .set_modified(modified)?;
            Ok(false)
        }
        linked => linked.map(|()| true),
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
