//! Files as Git names them: each by its mode and object id, a folder by the id of the tree
//! object it would be. How `packsync verify` tells whether a release's pack tree is still the
//! Git tree it was exported from, and which files are not.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid};

/// A file as a Git tree entry names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    /// `0o100644`, `0o100755` (executable) or `0o120000` (symlink).
    pub mode: u32,
    /// The blob's id (hex).
    pub id: String,
}

pub(super) const FILE: u32 = 0o100_644;
pub(super) const EXECUTABLE: u32 = 0o100_755;
pub(super) const SYMLINK: u32 = 0o120_000;
const TREE: u32 = 0o40_000;

/// A folder on disk as Git would store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedDir {
    /// The id of its tree object (hex): the Git tree id, when it holds what Git gave.
    pub tree: String,
    /// Every file and symlink under it, by its path relative to it.
    pub files: BTreeMap<PathBuf, FileId>,
}

/// Hashes the folder `dir` as `git add` would: files by content and executable bit, symlinks by
/// their target, empty folders left out (Git has none).
pub fn hash_dir(dir: &Path) -> io::Result<HashedDir> {
    let mut files = BTreeMap::new();
    let tree = hash_tree(dir, Path::new(""), &mut files)?;
    Ok(HashedDir {
        tree: tree.map_or_else(empty_tree, |oid| oid.to_string()),
        files,
    })
}

/// The id of the empty tree, for a folder that holds nothing.
fn empty_tree() -> String {
    Oid::hash_object(ObjectType::Tree, b"").map_or_else(|_| String::new(), |oid| oid.to_string())
}

/// The tree object id of `dir` (`rel` inside the hashed folder); `None` when it holds no file.
fn hash_tree(
    dir: &Path,
    rel: &Path,
    files: &mut BTreeMap<PathBuf, FileId>,
) -> io::Result<Option<Oid>> {
    // Git orders a tree's entries by name, a folder's name as if it ended with `/`.
    let mut entries: Vec<(Vec<u8>, u32, Oid)> = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = entry.path();
        let entry_rel = rel.join(&name);
        let file_type = entry.file_type()?;
        let (mode, oid) = if file_type.is_dir() {
            match hash_tree(&path, &entry_rel, files)? {
                Some(oid) => (TREE, oid),
                None => continue,
            }
        } else if file_type.is_symlink() {
            let target = fs_err::read_link(&path)?;
            (SYMLINK, blob_id(target.as_os_str().as_bytes())?)
        } else {
            let executable = entry.metadata()?.permissions().mode() & 0o111 != 0;
            let mode = if executable { EXECUTABLE } else { FILE };
            (
                mode,
                Oid::hash_file(ObjectType::Blob, &path).map_err(git_io)?,
            )
        };
        if mode != TREE {
            files.insert(
                entry_rel,
                FileId {
                    mode,
                    id: oid.to_string(),
                },
            );
        }
        entries.push((name.as_bytes().to_vec(), mode, oid));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_by(|(a, a_mode, _), (b, b_mode, _)| {
        let key = |name: &[u8], mode: u32| {
            let mut key = name.to_vec();
            if mode == TREE {
                key.push(b'/');
            }
            key
        };
        key(a, *a_mode).cmp(&key(b, *b_mode))
    });
    let mut object = Vec::new();
    for (name, mode, oid) in &entries {
        object.extend_from_slice(format!("{mode:o} ").as_bytes());
        object.extend_from_slice(name);
        object.push(0);
        object.extend_from_slice(oid.as_bytes());
    }
    Oid::hash_object(ObjectType::Tree, &object)
        .map(Some)
        .map_err(git_io)
}

fn blob_id(bytes: &[u8]) -> io::Result<Oid> {
    Oid::hash_object(ObjectType::Blob, bytes).map_err(git_io)
}

fn git_io(err: git2::Error) -> io::Error {
    io::Error::other(err)
}

/// What differs between the files Git has and those on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileChanges {
    /// On disk, not in Git.
    pub added: Vec<PathBuf>,
    /// In Git, not on disk.
    pub removed: Vec<PathBuf>,
    /// In both, with another content, mode or kind.
    pub changed: Vec<PathBuf>,
}

impl FileChanges {
    /// Compares `disk` with `git`.
    pub fn between(git: &BTreeMap<PathBuf, FileId>, disk: &BTreeMap<PathBuf, FileId>) -> Self {
        let mut changes = Self::default();
        for (path, in_git) in git {
            match disk.get(path) {
                None => changes.removed.push(path.clone()),
                Some(on_disk) if on_disk != in_git => changes.changed.push(path.clone()),
                Some(_) => {}
            }
        }
        changes.added = disk
            .keys()
            .filter(|path| !git.contains_key(*path))
            .cloned()
            .collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}
