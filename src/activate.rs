//! Going live: the per-pack `current` link switched by one `rename(2)`, and the stable links
//! StackStorm reads through it.
//!
//! ```text
//! packs_dir/<pack>        -> state_dir/current/<pack>/pack/<pack>
//! virtualenvs_dir/<pack>  -> state_dir/current/<pack>/venv
//! configs_dir/<pack>.yaml -> state_dir/current/<pack>/config.yaml   (when the release has one)
//! ```
//! The stable links are created once and never change; switching `current/<pack>` changes the
//! pack tree, its virtualenv and its config together. A real folder that `st2 pack install`
//! left at a stable path is moved under `state_dir/adopted/` (never deleted) and replaced by
//! the link in one `renameat2(RENAME_EXCHANGE)` where the filesystem supports it.

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::diagnostics::Diagnose;
use crate::fsx;
use crate::model::{PackName, ReleaseId};
use crate::store::Layout;

/// A folder or file moved aside to make room for a stable link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// Where it was (`packs_dir/<pack>`, ...).
    pub from: PathBuf,
    /// Where it is now, under `state_dir/adopted/`.
    pub to: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("Failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` points at `{}`, which is not a release of pack `{pack}`", link.display(), target.display())]
    Foreign {
        pack: PackName,
        link: PathBuf,
        target: PathBuf,
    },
    #[error("`{}` is not a symlink, so it names no release of pack `{pack}`", path.display())]
    NotALink { pack: PackName, path: PathBuf },
    #[error("Cannot put `{}` back at `{}`: something else is there now", adopted.display(), path.display())]
    Occupied { path: PathBuf, adopted: PathBuf },
}

impl Diagnose for ActivateError {
    fn hint(&self) -> Option<String> {
        match self {
            ActivateError::Io { .. } => None,
            ActivateError::Foreign { link: path, .. } | ActivateError::NotALink { path, .. } => {
                Some(format!(
                    "packsync manages this link; remove `{}` and run apply again",
                    path.display()
                ))
            }
            ActivateError::Occupied { path, adopted } => Some(format!(
                "move `{}` away, then move `{}` back to it",
                path.display(),
                adopted.display()
            )),
        }
    }
}

/// The release `current/<pack>` points at, `None` when the pack is not live.
pub fn active(layout: &Layout, pack: &PackName) -> Result<Option<ReleaseId>, ActivateError> {
    let link = layout.current(pack);
    // One `readlink`: it fails with EINVAL on anything but a symlink.
    let target = match fs_err::read_link(&link) {
        Ok(target) => target,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::InvalidInput => {
            return Err(ActivateError::NotALink {
                pack: pack.clone(),
                path: link,
            });
        }
        Err(err) => return Err(io_error("read", &link)(err)),
    };
    match release_of(pack, &target) {
        Some(id) => Ok(Some(id)),
        None => Err(ActivateError::Foreign {
            pack: pack.clone(),
            link,
            target,
        }),
    }
}

/// Makes release `id` (sealed) the live one of `pack`: `current/<pack>` is replaced in one
/// rename and the folder fsynced.
pub fn switch(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Result<(), ActivateError> {
    let link = layout.current(pack);
    let dir = fsx::parent(&link);
    fs_err::create_dir_all(dir).map_err(io_error("create", dir))?;
    let target = Path::new("..")
        .join("releases")
        .join(pack.as_str())
        .join(id.as_str());
    fsx::replace_symlink(&target, &link).map_err(io_error("switch", &link))
}

/// One stable link of a pack: where StackStorm reads it, and what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableLink {
    pub path: PathBuf,
    pub target: PathBuf,
}

/// The stable links of a pack, each through `current/<pack>`, so that one switch of that link
/// moves them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableLinks {
    /// `virtualenvs_dir/<pack>`.
    pub venv: StableLink,
    /// `configs_dir/<pack>.yaml`, for a release with a config.
    pub config: StableLink,
    /// `packs_dir/<pack>`.
    pub pack: StableLink,
}

impl StableLinks {
    pub fn of(layout: &Layout, pack: &PackName) -> Self {
        let current = layout.current(pack);
        Self {
            venv: StableLink {
                path: layout.venv_link(pack),
                target: current.join("venv"),
            },
            config: StableLink {
                path: layout.config_link(pack),
                target: current.join("config.yaml"),
            },
            pack: StableLink {
                path: layout.pack_link(pack),
                target: current.join("pack").join(pack.as_str()),
            },
        }
    }
}

/// Makes sure the stable links of `pack` exist and go through `current/<pack>`; the config
/// link only when `has_config` (otherwise an existing one of packsync's is removed). Real
/// folders or files in the way are moved to `state_dir/adopted/<pack>-<time>/`; the moves are
/// returned. Idempotent.
///
/// The pack link comes last: StackStorm finds a pack through it, and its virtualenv and config
/// must be in place by then. A stable path is never missing while a folder is adopted: the link
/// is created beside it and the two are exchanged in one `renameat2(RENAME_EXCHANGE)`; only
/// filesystems without that (e.g. NFS) get two renames, with an instant in between.
pub fn link(
    layout: &Layout,
    pack: &PackName,
    has_config: bool,
) -> Result<Vec<Adoption>, ActivateError> {
    let links = StableLinks::of(layout, pack);
    let mut adopter = Adopter::new(layout, pack);
    ensure_link(&links.venv, "venv", &mut adopter)?;
    let config = &links.config;
    if has_config {
        ensure_link(config, "config.yaml", &mut adopter)?;
    } else {
        match fsx::link_target(&config.path).map_err(io_error("read", &config.path))? {
            Some(target) if target == config.target => remove_link(&config.path)?,
            Some(_) => {}
            None => {
                if exists(&config.path)? {
                    tracing::warn!(
                        path = %config.path.display(),
                        "the release has no config but a config file is in place; leaving it"
                    );
                }
            }
        }
    }
    ensure_link(&links.pack, "pack", &mut adopter)?;
    Ok(adopter.adoptions)
}

/// Takes `pack` offline: removes its stable links (only those that are packsync's), then
/// `current/<pack>`. Releases stay. Idempotent.
pub fn unlink(layout: &Layout, pack: &PackName) -> Result<(), ActivateError> {
    let current = layout.current(pack);
    let links = StableLinks::of(layout, pack);
    for StableLink { path, target } in [links.pack, links.config, links.venv] {
        match fsx::link_target(&path).map_err(io_error("read", &path))? {
            Some(found) if found == target => remove_link(&path)?,
            Some(found) => tracing::warn!(
                path = %path.display(),
                target = %found.display(),
                "not packsync's link; leaving it"
            ),
            None => {
                if exists(&path)? {
                    tracing::warn!(path = %path.display(), "not a link of packsync's; leaving it");
                }
            }
        }
    }
    match fs_err::symlink_metadata(&current) {
        Ok(meta) if meta.file_type().is_symlink() => remove_link(&current),
        Ok(_) => {
            tracing::warn!(path = %current.display(), "not a link of packsync's; leaving it");
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error("inspect", &current)(err)),
    }
}

/// Puts adopted folders back where they were, replacing the links (the rollback of a first
/// install that took over a pack).
///
/// Each is first moved beside its old place, then exchanged with the link there in one step,
/// so the path is never missing. An adoption already restored is skipped.
pub fn restore(adoptions: &[Adoption]) -> Result<(), ActivateError> {
    for Adoption { from, to } in adoptions.iter().rev() {
        if !exists(to)? {
            tracing::debug!(path = %to.display(), "nothing to restore");
            continue;
        }
        let is_link = match fs_err::symlink_metadata(from) {
            Ok(meta) if meta.file_type().is_symlink() => true,
            Ok(_) => {
                return Err(ActivateError::Occupied {
                    path: from.clone(),
                    adopted: to.clone(),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => return Err(io_error("inspect", from)(err)),
        };
        let dir = fsx::parent(from);
        fs_err::create_dir_all(dir).map_err(io_error("create", dir))?;
        let swap = fsx::sibling(from, "swap");
        fsx::remove_if_exists(&swap).map_err(io_error("remove", &swap))?;
        move_across(to, &swap)?;
        if is_link && exchange(&swap, from)? {
            fsx::remove_if_exists(&swap).map_err(io_error("remove", &swap))?;
        } else {
            if is_link {
                tracing::warn!(path = %from.display(), "the filesystem cannot exchange two paths; replacing the link in two steps");
                fsx::remove_if_exists(from).map_err(io_error("remove", from))?;
            }
            fs_err::rename(&swap, from).map_err(io_error("rename", &swap))?;
        }
        fsx::fsync_dir(dir).map_err(io_error("sync", dir))?;
        tracing::warn!(from = %to.display(), to = %from.display(), "restored an adopted folder");
        // The adoption folder goes once its last entry is back.
        let folder = fsx::parent(to);
        match fs_err::remove_dir(folder) {
            Err(err)
                if !matches!(
                    err.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound
                ) =>
            {
                return Err(io_error("remove", folder)(err));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The release a `current/<pack>` link target names: exactly `../releases/<pack>/<id>`.
fn release_of(pack: &PackName, target: &Path) -> Option<ReleaseId> {
    let mut parts = target.components();
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (
            Some(Component::ParentDir),
            Some(Component::Normal(releases)),
            Some(Component::Normal(name)),
            Some(Component::Normal(id)),
            None,
        ) if releases == "releases" && name == pack.as_str() => ReleaseId::from_name(id.to_str()?),
        _ => None,
    }
}

/// Where the folders moved aside by one [`link`] call go: `adopted/<pack>-<time>/`, created on
/// first use.
struct Adopter<'a> {
    root: PathBuf,
    pack: &'a PackName,
    dir: Option<PathBuf>,
    adoptions: Vec<Adoption>,
}

impl<'a> Adopter<'a> {
    fn new(layout: &Layout, pack: &'a PackName) -> Self {
        Self {
            root: layout.adopted(),
            pack,
            dir: None,
            adoptions: Vec::new(),
        }
    }

    /// Moves `old` (what was at `from`) to `<slot>` of the adoption folder and records it.
    fn take(&mut self, from: &Path, old: &Path, slot: &str) -> Result<(), ActivateError> {
        let dir = self.dir()?;
        let mut to = dir.join(slot);
        let mut n = 1;
        while exists(&to)? {
            to = dir.join(format!("{slot}.{n}"));
            n += 1;
        }
        move_across(old, &to)?;
        tracing::info!(
            from = %from.display(),
            to = %to.display(),
            "moved what was in the way of a packsync link aside"
        );
        self.adoptions.push(Adoption {
            from: from.to_path_buf(),
            to,
        });
        Ok(())
    }

    fn dir(&mut self) -> Result<PathBuf, ActivateError> {
        if let Some(dir) = &self.dir {
            return Ok(dir.clone());
        }
        fs_err::create_dir_all(&self.root).map_err(io_error("create", &self.root))?;
        let time = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let mut name = format!("{}-{time}", self.pack);
        let mut n = 1;
        let dir = loop {
            let dir = self.root.join(&name);
            match fs_err::create_dir(&dir) {
                Ok(()) => break dir,
                // Two calls in the same second.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    n += 1;
                    name = format!("{}-{time}-{n}", self.pack);
                }
                Err(err) => return Err(io_error("create", &dir)(err)),
            }
        };
        fsx::fsync_dir(&self.root).map_err(io_error("sync", &self.root))?;
        self.dir = Some(dir.clone());
        Ok(dir)
    }
}

/// Makes `link` exist, adopting a real folder or file in the way.
fn ensure_link(
    link: &StableLink,
    slot: &str,
    adopter: &mut Adopter<'_>,
) -> Result<(), ActivateError> {
    let (path, target) = (link.path.as_path(), link.target.as_path());
    let dir = fsx::parent(path);
    fs_err::create_dir_all(dir).map_err(io_error("create", dir))?;
    // An adoption cut short by a crash left the old folder at a temp name: finish it.
    for suffix in ["swap", "old"] {
        let leftover = fsx::sibling(path, suffix);
        match fs_err::symlink_metadata(&leftover) {
            Ok(meta) if meta.file_type().is_symlink() => remove_link(&leftover)?,
            Ok(_) => adopter.take(path, &leftover, slot)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error("inspect", &leftover)(err)),
        }
    }
    match fs_err::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fsx::replace_symlink(target, path).map_err(io_error("create", path))
        }
        Err(err) => Err(io_error("inspect", path)(err)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let found = fs_err::read_link(path).map_err(io_error("read", path))?;
            if found != target {
                tracing::warn!(
                    path = %path.display(),
                    was = %found.display(),
                    "replacing a link that did not point through packsync's `current`"
                );
                fsx::replace_symlink(target, path).map_err(io_error("replace", path))?;
            }
            Ok(())
        }
        Ok(_) => {
            let swap = fsx::sibling(path, "swap");
            fs_err::os::unix::fs::symlink(target, &swap).map_err(io_error("create", &swap))?;
            let old = if exchange(&swap, path)? {
                fsx::fsync_dir(dir).map_err(io_error("sync", dir))?;
                swap
            } else {
                tracing::warn!(
                    path = %path.display(),
                    "the filesystem cannot exchange two paths; moving the folder away and the link in, with an instant in between"
                );
                move_then_link(path, &swap)?
            };
            adopter.take(path, &old, slot)
        }
    }
}

/// Moves `path` to a temp name, then the link `swap` to `path`; returns the temp name. The
/// fallback of an exchange: `path` is missing for an instant.
fn move_then_link(path: &Path, swap: &Path) -> Result<PathBuf, ActivateError> {
    let old = fsx::sibling(path, "old");
    fs_err::rename(path, &old).map_err(io_error("rename", path))?;
    fs_err::rename(swap, path).map_err(io_error("rename", swap))?;
    let dir = fsx::parent(path);
    fsx::fsync_dir(dir).map_err(io_error("sync", dir))?;
    Ok(old)
}

/// Swaps the entries `a` and `b` in one `renameat2(RENAME_EXCHANGE)`; `false` when the
/// filesystem or kernel cannot.
fn exchange(a: &Path, b: &Path) -> Result<bool, ActivateError> {
    match rustix::fs::renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(errno) if [Errno::INVAL, Errno::NOSYS, Errno::NOTSUP].contains(&errno) => Ok(false),
        Err(errno) => Err(io_error("exchange", b)(errno.into())),
    }
}

/// Moves `from` to `to`. Across filesystems (`state_dir` elsewhere than the stable paths) it
/// copies then removes, which is safe because neither path is live.
fn move_across(from: &Path, to: &Path) -> Result<(), ActivateError> {
    match fs_err::rename(from, to) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::CrossesDevices => {
            copy_then_remove(from, to)?;
        }
        Err(err) => return Err(io_error("move", from)(err)),
    }
    for dir in [fsx::parent(from), fsx::parent(to)] {
        fsx::fsync_dir(dir).map_err(io_error("sync", dir))?;
    }
    Ok(())
}

fn copy_then_remove(from: &Path, to: &Path) -> Result<(), ActivateError> {
    // A copy cut short is removed first, so `to` is whole or absent.
    fsx::remove_tree(to).map_err(io_error("remove", to))?;
    copy_tree(from, to).map_err(io_error("copy", from))?;
    fsx::remove_tree(from).map_err(io_error("remove", from))
}

/// Copies the tree `from` to `to` (which must not exist): files with their modes, folders,
/// symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs_err::symlink_metadata(from)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        fs_err::os::unix::fs::symlink(fs_err::read_link(from)?, to)
    } else if kind.is_file() {
        fs_err::copy(from, to).map(drop)
    } else if kind.is_dir() {
        fs_err::create_dir(to)?;
        for entry in fs_err::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        // Set last: a read-only folder could not have been filled.
        fs_err::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "`{}` is neither a file, a folder nor a symlink",
                from.display()
            ),
        ))
    }
}

/// Removes the symlink `path` and makes that durable.
fn remove_link(path: &Path) -> Result<(), ActivateError> {
    fsx::remove_if_exists(path).map_err(io_error("remove", path))?;
    let dir = fsx::parent(path);
    fsx::fsync_dir(dir).map_err(io_error("sync", dir))
}

fn exists(path: &Path) -> Result<bool, ActivateError> {
    match fs_err::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("inspect", path)(err)),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ActivateError + use<> {
    let path = path.to_path_buf();
    move |source| ActivateError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn layout(root: &Path) -> Layout {
        Layout {
            state_dir: root.join("state"),
            packs_dir: root.join("st2/packs"),
            virtualenvs_dir: root.join("st2/virtualenvs"),
            configs_dir: root.join("st2/configs"),
        }
    }

    fn clush() -> PackName {
        PackName::new("clush").unwrap()
    }

    fn id(name: &str) -> ReleaseId {
        ReleaseId::from_name(name).unwrap()
    }

    /// A release folder as `store::seal` leaves it, with its virtualenv.
    fn fake_release(layout: &Layout, release: &str, content: &str) {
        let paths = layout.release(&clush(), &id(release));
        fs_err::create_dir_all(&paths.pack).unwrap();
        fs_err::write(paths.pack.join("pack.yaml"), content).unwrap();
        fs_err::write(&paths.config, format!("release: {release}\n")).unwrap();
        let env = layout.state_dir.join("envs").join(release);
        fs_err::create_dir_all(env.join("bin")).unwrap();
        fs_err::write(env.join("bin/python"), release).unwrap();
        fs_err::os::unix::fs::symlink(&env, &paths.venv).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn link_of(path: &Path) -> Option<PathBuf> {
        fsx::link_target(path).unwrap()
    }

    #[test]
    fn switch_points_current_at_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        assert_eq!(active(&layout, &clush()).unwrap(), None);

        switch(&layout, &clush(), &id("1.0.0-aaaaaaa-11111111")).unwrap();
        assert_eq!(
            link_of(&layout.current(&clush())),
            Some(PathBuf::from("../releases/clush/1.0.0-aaaaaaa-11111111"))
        );
        assert_eq!(
            active(&layout, &clush()).unwrap(),
            Some(id("1.0.0-aaaaaaa-11111111"))
        );
        switch(&layout, &clush(), &id("1.1.0-bbbbbbb-22222222")).unwrap();
        assert_eq!(
            active(&layout, &clush()).unwrap(),
            Some(id("1.1.0-bbbbbbb-22222222"))
        );
        assert_eq!(names(&layout.state_dir.join("current")), ["clush"]);
    }

    #[test]
    fn readers_see_the_old_release_or_the_new_never_none() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        fake_release(&layout, "1", "one");
        fake_release(&layout, "2", "two");
        switch(&layout, &clush(), &id("1")).unwrap();
        link(&layout, &clush(), true).unwrap();

        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let done = Arc::clone(&done);
            let pack_yaml = layout.pack_link(&clush()).join("pack.yaml");
            std::thread::spawn(move || {
                let mut reads = 0_u32;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    // Through the stable link, as StackStorm reads it.
                    let content = fs_err::read_to_string(&pack_yaml).unwrap();
                    assert!(content == "one" || content == "two", "{content}");
                    reads += 1;
                }
                reads
            })
        };
        for round in 0..300 {
            let next = if round % 2 == 0 { "2" } else { "1" };
            switch(&layout, &clush(), &id(next)).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }

    #[test]
    fn foreign_current_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let current = layout.current(&clush());
        fs_err::create_dir_all(current.parent().unwrap()).unwrap();
        for target in [
            "../releases/other/1",
            "/srv/releases/clush/1",
            "../../releases/clush/1",
            "../releases/clush/1/pack",
            "../releases/clush/.1",
            "releases/clush/1",
        ] {
            fsx::replace_symlink(Path::new(target), &current).unwrap();
            let err = active(&layout, &clush()).unwrap_err();
            assert!(
                matches!(&err, ActivateError::Foreign { target: got, .. } if got == Path::new(target)),
                "{target}: {err:?}"
            );
            assert!(err.hint().unwrap().contains("remove"));
        }
        fsx::remove_if_exists(&current).unwrap();
        fs_err::create_dir(&current).unwrap();
        let err = active(&layout, &clush()).unwrap_err();
        assert!(matches!(err, ActivateError::NotALink { .. }), "{err:?}");
    }

    #[test]
    fn link_creates_absolute_links_through_current_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        fake_release(&layout, "1", "one");
        switch(&layout, &clush(), &id("1")).unwrap();

        assert_eq!(link(&layout, &clush(), true).unwrap(), []);
        let current = layout.current(&clush());
        assert_eq!(
            link_of(&layout.pack_link(&clush())),
            Some(current.join("pack/clush"))
        );
        assert_eq!(
            link_of(&layout.venv_link(&clush())),
            Some(current.join("venv"))
        );
        assert_eq!(
            link_of(&layout.config_link(&clush())),
            Some(current.join("config.yaml"))
        );
        assert!(layout.pack_link(&clush()).is_absolute());
        assert_eq!(
            fs_err::read_to_string(layout.pack_link(&clush()).join("pack.yaml")).unwrap(),
            "one"
        );
        assert_eq!(
            fs_err::read_to_string(layout.venv_link(&clush()).join("bin/python")).unwrap(),
            "1"
        );
        assert_eq!(
            fs_err::read_to_string(layout.config_link(&clush())).unwrap(),
            "release: 1\n"
        );

        // Idempotent, and a switch changes what every link shows.
        assert_eq!(link(&layout, &clush(), true).unwrap(), []);
        fake_release(&layout, "2", "two");
        switch(&layout, &clush(), &id("2")).unwrap();
        assert_eq!(
            fs_err::read_to_string(layout.pack_link(&clush()).join("pack.yaml")).unwrap(),
            "two"
        );
        assert_eq!(
            fs_err::read_to_string(layout.venv_link(&clush()).join("bin/python")).unwrap(),
            "2"
        );
        for dir in [
            &layout.packs_dir,
            &layout.virtualenvs_dir,
            &layout.configs_dir,
        ] {
            assert_eq!(names(dir).len(), 1, "{}", dir.display());
        }
    }

    #[test]
    fn link_without_config_removes_only_its_own_config_link() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        link(&layout, &clush(), true).unwrap();
        assert_eq!(link(&layout, &clush(), false).unwrap(), []);
        assert!(!exists(&layout.config_link(&clush())).unwrap());

        // A config file StackStorm users wrote by hand stays.
        fs_err::write(layout.config_link(&clush()), "hosts: []\n").unwrap();
        assert_eq!(link(&layout, &clush(), false).unwrap(), []);
        assert_eq!(
            fs_err::read_to_string(layout.config_link(&clush())).unwrap(),
            "hosts: []\n"
        );
    }

    #[test]
    fn link_replaces_links_that_point_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let checkout = dir.path().join("checkout");
        fs_err::create_dir_all(&checkout).unwrap();
        fs_err::create_dir_all(&layout.packs_dir).unwrap();
        fs_err::os::unix::fs::symlink(&checkout, layout.pack_link(&clush())).unwrap();

        assert_eq!(link(&layout, &clush(), false).unwrap(), []);
        assert_eq!(
            link_of(&layout.pack_link(&clush())),
            Some(layout.current(&clush()).join("pack/clush"))
        );
        assert!(checkout.is_dir());
        assert_eq!(names(&layout.packs_dir), ["clush"]);
    }

    #[test]
    fn folders_in_the_way_are_adopted_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let pack_dir = layout.pack_link(&clush());
        let venv_dir = layout.venv_link(&clush());
        let config = layout.config_link(&clush());
        fs_err::create_dir_all(pack_dir.join("actions")).unwrap();
        fs_err::write(pack_dir.join("pack.yaml"), "st2 installed").unwrap();
        fs_err::create_dir_all(venv_dir.join("bin")).unwrap();
        fs_err::write(venv_dir.join("bin/python"), "st2 venv").unwrap();
        fs_err::create_dir_all(&layout.configs_dir).unwrap();
        fs_err::write(&config, "hosts: [a]\n").unwrap();
        fake_release(&layout, "1", "packsync");
        switch(&layout, &clush(), &id("1")).unwrap();

        let adoptions = link(&layout, &clush(), true).unwrap();
        let froms: Vec<&Path> = adoptions.iter().map(|a| a.from.as_path()).collect();
        assert_eq!(froms, [&venv_dir, &config, &pack_dir]);
        let folder = adoptions[0].to.parent().unwrap().to_path_buf();
        assert_eq!(folder.parent().unwrap(), layout.adopted());
        let folder_name = folder.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            folder_name.starts_with("clush-") && folder_name.ends_with('Z'),
            "{folder_name}"
        );
        assert_eq!(names(&folder), ["config.yaml", "pack", "venv"]);
        assert_eq!(
            fs_err::read_to_string(folder.join("pack/pack.yaml")).unwrap(),
            "st2 installed"
        );
        assert!(folder.join("pack/actions").is_dir());
        assert_eq!(
            fs_err::read_to_string(folder.join("venv/bin/python")).unwrap(),
            "st2 venv"
        );
        assert_eq!(
            fs_err::read_to_string(folder.join("config.yaml")).unwrap(),
            "hosts: [a]\n"
        );
        assert_eq!(
            fs_err::read_to_string(pack_dir.join("pack.yaml")).unwrap(),
            "packsync"
        );
        for dir in [
            &layout.packs_dir,
            &layout.virtualenvs_dir,
            &layout.configs_dir,
        ] {
            assert_eq!(names(dir).len(), 1, "temp names left in {}", dir.display());
        }
        assert_eq!(link(&layout, &clush(), true).unwrap(), []);

        restore(&adoptions).unwrap();
        assert_eq!(link_of(&pack_dir), None);
        assert_eq!(
            fs_err::read_to_string(pack_dir.join("pack.yaml")).unwrap(),
            "st2 installed"
        );
        assert_eq!(
            fs_err::read_to_string(venv_dir.join("bin/python")).unwrap(),
            "st2 venv"
        );
        assert_eq!(fs_err::read_to_string(&config).unwrap(), "hosts: [a]\n");
        assert!(names(&layout.adopted()).is_empty());
        for dir in [
            &layout.packs_dir,
            &layout.virtualenvs_dir,
            &layout.configs_dir,
        ] {
            assert_eq!(names(dir).len(), 1, "temp names left in {}", dir.display());
        }
        restore(&adoptions).unwrap();
    }

    #[test]
    fn restore_after_unlink_puts_folders_back_too() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let pack_dir = layout.pack_link(&clush());
        fs_err::create_dir_all(&pack_dir).unwrap();
        fs_err::write(pack_dir.join("pack.yaml"), "st2 installed").unwrap();
        let adoptions = link(&layout, &clush(), false).unwrap();
        assert_eq!(adoptions.len(), 1);
        unlink(&layout, &clush()).unwrap();
        assert!(!exists(&pack_dir).unwrap());
        restore(&adoptions).unwrap();
        assert_eq!(
            fs_err::read_to_string(pack_dir.join("pack.yaml")).unwrap(),
            "st2 installed"
        );
    }

    #[test]
    fn restore_never_overwrites_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        let pack_dir = layout.pack_link(&clush());
        fs_err::create_dir_all(&pack_dir).unwrap();
        let adoptions = link(&layout, &clush(), false).unwrap();
        fsx::remove_if_exists(&pack_dir).unwrap();
        fs_err::create_dir(&pack_dir).unwrap();
        let err = restore(&adoptions).unwrap_err();
        assert!(
            matches!(&err, ActivateError::Occupied { path, .. } if *path == pack_dir),
            "{err:?}"
        );
        assert!(adoptions[0].to.is_dir());
    }

    #[test]
    fn an_adoption_cut_short_is_finished_by_the_next_link() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        fs_err::create_dir_all(&layout.packs_dir).unwrap();
        // Killed after the exchange: the link is in place, the old folder at the temp name.
        let swap = fsx::sibling(&layout.pack_link(&clush()), "swap");
        fs_err::create_dir(&swap).unwrap();
        fs_err::write(swap.join("pack.yaml"), "st2 installed").unwrap();
        fs_err::os::unix::fs::symlink(
            layout.current(&clush()).join("pack/clush"),
            layout.pack_link(&clush()),
        )
        .unwrap();
        // Killed before the exchange of the venv: only the new link exists.
        fs_err::create_dir_all(&layout.virtualenvs_dir).unwrap();
        let venv_swap = fsx::sibling(&layout.venv_link(&clush()), "swap");
        fs_err::os::unix::fs::symlink("/nowhere", &venv_swap).unwrap();

        let adoptions = link(&layout, &clush(), false).unwrap();
        assert_eq!(adoptions.len(), 1);
        assert_eq!(adoptions[0].from, layout.pack_link(&clush()));
        assert_eq!(
            fs_err::read_to_string(adoptions[0].to.join("pack.yaml")).unwrap(),
            "st2 installed"
        );
        assert_eq!(names(&layout.packs_dir), ["clush"]);
        assert_eq!(names(&layout.virtualenvs_dir), ["clush"]);
    }

    #[test]
    fn unlink_removes_only_packsync_links() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(dir.path());
        fake_release(&layout, "1", "one");
        switch(&layout, &clush(), &id("1")).unwrap();
        link(&layout, &clush(), true).unwrap();
        // Someone pointed the venv elsewhere: not packsync's any more.
        fsx::replace_symlink(Path::new("/opt/other"), &layout.venv_link(&clush())).unwrap();

        unlink(&layout, &clush()).unwrap();
        assert!(!exists(&layout.pack_link(&clush())).unwrap());
        assert!(!exists(&layout.config_link(&clush())).unwrap());
        assert_eq!(
            link_of(&layout.venv_link(&clush())),
            Some(PathBuf::from("/opt/other"))
        );
        assert_eq!(active(&layout, &clush()).unwrap(), None);
        assert!(layout.release(&clush(), &id("1")).pack.is_dir());
        unlink(&layout, &clush()).unwrap();
    }

    #[test]
    fn adoption_works_with_state_dir_on_another_filesystem() {
        // `/dev/shm` is a tmpfs on Linux, the default temp folder usually is not: the move
        // into `adopted/` then crosses filesystems and copies.
        let state = tempfile::tempdir_in("/dev/shm").unwrap();
        let st2 = tempfile::tempdir().unwrap();
        let layout = Layout {
            state_dir: state.path().join("state"),
            ..layout(st2.path())
        };
        let pack_dir = layout.pack_link(&clush());
        fs_err::create_dir_all(pack_dir.join("actions")).unwrap();
        fs_err::write(pack_dir.join("actions/run.sh"), "st2 installed").unwrap();

        let adoptions = link(&layout, &clush(), false).unwrap();
        assert_eq!(
            fs_err::read_to_string(adoptions[0].to.join("actions/run.sh")).unwrap(),
            "st2 installed"
        );
        assert_eq!(names(&layout.packs_dir), ["clush"]);
        restore(&adoptions).unwrap();
        assert_eq!(
            fs_err::read_to_string(pack_dir.join("actions/run.sh")).unwrap(),
            "st2 installed"
        );
        assert_eq!(names(&layout.packs_dir), ["clush"]);
    }

    #[test]
    fn without_exchange_the_folder_moves_away_and_the_link_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clush");
        fs_err::create_dir(&path).unwrap();
        fs_err::write(path.join("pack.yaml"), "st2 installed").unwrap();
        let swap = fsx::sibling(&path, "swap");
        fs_err::os::unix::fs::symlink("/state/current/clush/pack/clush", &swap).unwrap();

        let old = move_then_link(&path, &swap).unwrap();
        assert_eq!(
            link_of(&path),
            Some(PathBuf::from("/state/current/clush/pack/clush"))
        );
        assert_eq!(
            fs_err::read_to_string(old.join("pack.yaml")).unwrap(),
            "st2 installed"
        );
        assert_eq!(names(dir.path()), [".clush.old", "clush"]);
    }

    #[test]
    fn copies_across_filesystems_keep_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("venv");
        fs_err::create_dir_all(from.join("bin")).unwrap();
        fs_err::write(from.join("bin/activate"), "x").unwrap();
        fs_err::set_permissions(
            from.join("bin/activate"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        fs_err::os::unix::fs::symlink("/usr/bin/python3", from.join("bin/python")).unwrap();
        fs_err::set_permissions(from.join("bin"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let to = dir.path().join("adopted/venv");
        fs_err::create_dir_all(to.parent().unwrap()).unwrap();

        copy_then_remove(&from, &to).unwrap();
        assert!(!exists(&from).unwrap());
        assert_eq!(
            fs_err::read_to_string(to.join("bin/activate")).unwrap(),
            "x"
        );
        let mode = |p: &Path| fs_err::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&to.join("bin/activate")), 0o750);
        assert_eq!(mode(&to.join("bin")), 0o555);
        assert_eq!(
            link_of(&to.join("bin/python")),
            Some(PathBuf::from("/usr/bin/python3"))
        );
        fsx::remove_tree(&to).unwrap();
    }
}
