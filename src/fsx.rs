//! Filesystem steps that must survive a crash at any instant: atomic writes, atomic link
//! switches, read-only trees and their removal. Built on `fs_err`, so every error names its path.

use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that a reader sees the old content or the new, never a mix:
/// a temp file beside it (named for this process, so that runs without the lock, such as two
/// `plan`s writing a cache, never share one), fsync, rename over, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = sibling(path, &format!("{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&tmp, path)
    })();
    if written.is_err() {
        // Best effort: the temp file may not even exist.
        let _ = fs_err::remove_file(&tmp);
    }
    written?;
    fsync_dir(parent(path))
}

/// Points the symlink `link` at `target` in one `rename(2)`: at every instant `link` is the
/// old link or the new one. Replaces a file or a symlink at `link`, never a folder.
pub fn replace_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let tmp = sibling(link, "link");
    remove_if_exists(&tmp)?;
    fs_err::os::unix::fs::symlink(target, &tmp)?;
    fs_err::rename(&tmp, link)?;
    fsync_dir(parent(link))
}

/// Makes the file system entry `path` durable in its folder (after a create or a rename).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

/// Removes a file or a symlink; a missing one is not an error (steps are re-run after a crash).
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs_err::remove_file(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Where a link points, `None` when `path` does not exist or is not a symlink.
pub fn link_target(path: &Path) -> io::Result<Option<PathBuf>> {
    // One `readlink`, which says what is there: EINVAL (`InvalidInput`) for anything but a
    // symlink.
    match fs_err::read_link(path) {
        Ok(target) => Ok(Some(target)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Takes the write bits off every file and folder under `root` (and `root` itself): a built
/// release or virtualenv is never changed again.
pub fn make_read_only(root: &Path) -> io::Result<()> {
    take_write(root)
}

/// Removes the tree at `root`, read-only parts included; a missing tree is not an error.
///
/// Only its folders are made writable, which is all an unlink needs: a file may be a hard link
/// of a sealed file elsewhere (a virtualenv's files are links into the distribution store),
/// which must stay read-only.
pub fn remove_tree(root: &Path) -> io::Result<()> {
    match fs_err::symlink_metadata(root) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
        Ok(meta) if !meta.is_dir() => return fs_err::remove_file(root),
        Ok(_) => {}
    }
    open_folders(root)?;
    fs_err::remove_dir_all(root)
}

/// Removes the tree at `root` after moving it to a hidden sibling in one rename: from that
/// instant `root` is gone, whatever a crash leaves of the removal (a hidden sibling, which the
/// owner of the folder collects as garbage since it has no completion record).
pub fn remove_tree_aside(root: &Path) -> io::Result<()> {
    if !exists(root)? {
        return Ok(());
    }
    let trash = sibling(root, &format!("garbage-{}", std::process::id()));
    remove_tree(&trash)?;
    // Moving a folder rewrites its `..` entry: the folder must be writable.
    if fs_err::symlink_metadata(root)?.is_dir() {
        let mode = fs_err::metadata(root)?.permissions().mode();
        fs_err::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o200))?;
    }
    fs_err::rename(root, &trash)?;
    fsync_dir(parent(root))?;
    remove_tree(&trash)
}

/// What a file looks like from outside, to tell whether anything wrote to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
    pub mode: u32,
}

/// Every entry under `root` (not following symlinks) with its [`Stamp`], by path relative to
/// `root`; empty when `root` does not exist.
pub fn stamps(root: &Path) -> io::Result<std::collections::BTreeMap<PathBuf, Stamp>> {
    let mut stamps = std::collections::BTreeMap::new();
    if !exists(root)? {
        return Ok(stamps);
    }
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs_err::read_dir(&folder)? {
            let path = entry?.path();
            let meta = fs_err::symlink_metadata(&path)?;
            if meta.is_dir() {
                folders.push(path.clone());
            }
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            stamps.insert(
                relative,
                Stamp {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                    mode: meta.permissions().mode(),
                },
            );
        }
    }
    Ok(stamps)
}

/// The paths that differ between two [`stamps`] of one tree: added, removed or changed.
pub fn changed_paths(
    before: &std::collections::BTreeMap<PathBuf, Stamp>,
    after: &std::collections::BTreeMap<PathBuf, Stamp>,
) -> Vec<PathBuf> {
    let mut changed: Vec<PathBuf> = before
        .iter()
        .filter(|(path, stamp)| after.get(*path) != Some(stamp))
        .map(|(path, _)| path.clone())
        .chain(
            after
                .keys()
                .filter(|path| !before.contains_key(*path))
                .cloned(),
        )
        .collect();
    changed.sort();
    changed
}

/// Whether anything (a dangling symlink too) is at `path`.
pub fn exists(path: &Path) -> io::Result<bool> {
    match fs_err::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn take_write(path: &Path) -> io::Result<()> {
    let meta = fs_err::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        for entry in fs_err::read_dir(path)? {
            take_write(&entry?.path())?;
        }
    }
    let mode = meta.permissions().mode();
    if mode & 0o222 != 0 {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222))?;
    }
    Ok(())
}

/// Gives the owner write permission on every folder under `root` (and `root`), leaving files
/// as they are.
fn open_folders(path: &Path) -> io::Result<()> {
    let meta = fs_err::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o200 == 0 {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o200))?;
    }
    for entry in fs_err::read_dir(path)? {
        open_folders(&entry?.path())?;
    }
    Ok(())
}

/// `dir/.name.<suffix>`: a temp name in the same folder, so a rename onto `path` is atomic.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "entry".into(), |n| n.to_string_lossy());
    parent(path).join(format!(".{name}.{suffix}"))
}

/// The folder of `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"two");
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn symlinks_are_switched_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        replace_symlink(Path::new("a"), &link).unwrap();
        replace_symlink(Path::new("b"), &link).unwrap();
        assert_eq!(link_target(&link).unwrap(), Some(PathBuf::from("b")));
        assert_eq!(link_target(&dir.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn read_only_trees_can_still_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("release");
        fs_err::create_dir_all(root.join("pack/actions")).unwrap();
        fs_err::write(root.join("pack/actions/run.py"), "print()").unwrap();
        make_read_only(&root).unwrap();
        let mode = fs_err::metadata(root.join("pack/actions/run.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0);
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        remove_tree(&root).unwrap();
    }
}
