//! A pack folder at a commit, read from Git objects.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use git2::{ErrorCode, FileMode};

use super::files::{self, FileId};
use super::{EntryKind, Repo, SourceError, inner_path};
use crate::model::short_commit;

/// Bounds on a pack folder, checked at `check` and on export, before anything is written:
/// far above any StackStorm pack (the Exchange's largest hold a few hundred files and a few
/// MiB), far below what fills a disk.
#[derive(Debug, Clone, Copy)]
struct TreeLimits {
    /// Regular files and symlinks.
    files: u64,
    /// Bytes, every file together.
    bytes: u64,
}

/// The limits of every pack folder.
const TREE_LIMITS: TreeLimits = TreeLimits {
    files: 50_000,
    bytes: 1 << 30,
};

/// The most a pack file read into memory to be parsed (`pack.yaml`, `requirements.txt`, a
/// config schema, an action's metadata) may hold; the YAML reader's own limit.
const MAX_READ_BYTES: u64 = crate::yaml::MAX_BYTES as u64;

/// What an export has met so far, against [`TreeLimits`].
struct Tally {
    limits: TreeLimits,
    files: u64,
    bytes: u64,
}

impl Tally {
    fn new(limits: TreeLimits) -> Self {
        Self {
            limits,
            files: 0,
            bytes: 0,
        }
    }

    /// Counts one more file of `size` bytes; over a limit, the error names the pack folder
    /// (`tree`).
    fn add(&mut self, size: u64, tree: impl Fn() -> String) -> Result<(), SourceError> {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(size);
        let what = if self.files > self.limits.files {
            format!("has more than {} files (the limit)", self.limits.files)
        } else if self.bytes > self.limits.bytes {
            format!("holds more than {} bytes (the limit)", self.limits.bytes)
        } else {
            return Ok(());
        };
        Err(SourceError::TreeTooLarge {
            tree: tree().trim_end_matches(['/', ':']).to_string(),
            what,
        })
    }
}

/// The pack folder (the repo root or a `subdir`) at one commit.
pub struct PackTree<'repo> {
    repo: &'repo Repo,
    commit: String,
    /// Relative to the repo root; empty for the root.
    subdir: PathBuf,
    tree: git2::Tree<'repo>,
}

impl fmt::Debug for PackTree<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackTree")
            .field("repo", &self.repo.path())
            .field("commit", &self.commit)
            .field("subdir", &self.subdir)
            .field("id", &self.tree.id())
            .finish()
    }
}

impl<'repo> PackTree<'repo> {
    pub(super) fn new(
        repo: &'repo Repo,
        commit: &str,
        subdir: PathBuf,
        tree: git2::Tree<'repo>,
    ) -> Self {
        Self {
            repo,
            commit: commit.to_owned(),
            subdir,
            tree,
        }
    }

    /// The Git tree id (hex) of the pack folder: equal ids mean equal pack content.
    pub fn id(&self) -> String {
        self.tree.id().to_string()
    }

    /// The content of the file at `rel` in the pack folder (e.g. `actions/requirements.txt`),
    /// `None` when there is none. Refuses paths that leave the pack folder, and entries that are
    /// not regular files (symlinks, folders, submodules).
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let path = inner_path(Path::new(rel))
            .filter(|path| !path.as_os_str().is_empty())
            .ok_or_else(|| SourceError::FilePathInvalid {
                path: rel.to_owned(),
            })?;
        let entry = match self.tree.get_path(&path) {
            Ok(entry) => entry,
            Err(err) if err.code() == ErrorCode::NotFound => return Ok(None),
            Err(source) => return Err(self.repo.git_error("a tree entry", source)),
        };
        let kind = EntryKind::of(&entry);
        if kind != EntryKind::File {
            return Err(SourceError::NotAFile {
                file: self.file_label(rel),
                kind,
            });
        }
        let size = self.blob_size(entry.id())?;
        if size > MAX_READ_BYTES {
            return Err(SourceError::FileTooLarge {
                file: self.file_label(rel),
                size,
                limit: MAX_READ_BYTES,
            });
        }
        let blob = self
            .repo
            .git()
            .find_blob(entry.id())
            .map_err(|source| self.repo.git_error("a file", source))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// The size of the blob `id`, from its header: the content is not read.
    fn blob_size(&self, id: git2::Oid) -> Result<u64, SourceError> {
        let odb = self
            .repo
            .git()
            .odb()
            .map_err(|source| self.repo.git_error("the object database", source))?;
        let (size, _) = odb
            .read_header(id)
            .map_err(|source| self.repo.git_error("a file", source))?;
        Ok(size as u64)
    }

    /// The names and contents of the regular files directly in the folder `dir` of the pack
    /// (none when there is no such folder), sorted by name.
    pub fn files_in(&self, dir: &str) -> Result<Vec<(String, Vec<u8>)>, SourceError> {
        let entry = match self.tree.get_path(Path::new(dir)) {
            Ok(entry) => entry,
            Err(err) if err.code() == ErrorCode::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.repo.git_error("a tree entry", source)),
        };
        if EntryKind::of(&entry) != EntryKind::Folder {
            return Ok(Vec::new());
        }
        let git = self.repo.git();
        let tree = git
            .find_tree(entry.id())
            .map_err(|source| self.repo.git_error("a tree", source))?;
        let mut files = Vec::new();
        for entry in &tree {
            if EntryKind::of(&entry) != EntryKind::File {
                continue;
            }
            let blob = git
                .find_blob(entry.id())
                .map_err(|source| self.repo.git_error("a file", source))?;
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            files.push((name, blob.content().to_vec()));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Writes the pack folder into `dest`, which must not exist yet or be an empty folder.
    ///
    /// Files get mode `0o755` when Git records them executable and `0o644` otherwise, folders
    /// `0o755`, whatever the umask. Symlinks are kept only when they resolve inside the pack
    /// folder (relative, following the pack's own links on the way as the kernel would): the
    /// release is all StackStorm may read, so a link out of it would reach files packsync does
    /// not deploy. Submodules and entries of any other kind are refused.
    pub fn export(&self, dest: &Path) -> Result<(), SourceError> {
        let io_error = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| SourceError::Export {
                action,
                path,
                source,
            }
        };
        fs_err::create_dir_all(dest).map_err(io_error("create", dest))?;
        let mut entries = fs_err::read_dir(dest).map_err(io_error("read", dest))?;
        if entries.next().is_some() {
            return Err(io_error("export into", dest)(io::Error::from(
                io::ErrorKind::DirectoryNotEmpty,
            )));
        }
        set_mode(dest, DIR_MODE).map_err(io_error("set the mode of", dest))?;
        self.export_tree(
            &self.tree,
            Path::new(""),
            Some(dest),
            &mut Tally::new(TREE_LIMITS),
        )
    }

    /// Refuses what [`Self::export`] would refuse (a name that is not plain, a symlink leading
    /// out of the pack, a submodule, an entry of another kind), without writing anything: the
    /// same answer at `check` and `plan` as at `apply`.
    pub fn check_exportable(&self) -> Result<(), SourceError> {
        self.check_within(TREE_LIMITS)
    }

    /// [`Self::check_exportable`] with `limits`.
    fn check_within(&self, limits: TreeLimits) -> Result<(), SourceError> {
        self.export_tree(&self.tree, Path::new(""), None, &mut Tally::new(limits))
    }

    /// Writes the entries of `tree` (at `rel` in the pack folder) into the folder `dir`; with
    /// no `dir`, only checks that they can be.
    fn export_tree(
        &self,
        tree: &git2::Tree<'repo>,
        rel: &Path,
        dir: Option<&Path>,
        tally: &mut Tally,
    ) -> Result<(), SourceError> {
        for entry in tree {
            let name = OsStr::from_bytes(entry.name_bytes());
            let entry_rel = rel.join(name);
            let label = || self.file_label(&entry_rel.to_string_lossy());
            if !is_plain_name(name) {
                return Err(SourceError::ExportName { file: label() });
            }
            let path = dir.map(|dir| dir.join(name));
            let io_error = |action| {
                let path = path.clone().unwrap_or_default();
                move |source| SourceError::Export {
                    action,
                    path,
                    source,
                }
            };
            match entry.filemode() {
                mode if mode == i32::from(FileMode::Tree) => {
                    let subtree = self
                        .repo
                        .git()
                        .find_tree(entry.id())
                        .map_err(|source| self.repo.git_error("a tree", source))?;
                    if let Some(path) = &path {
                        fs_err::create_dir(path).map_err(io_error("create"))?;
                        set_mode(path, DIR_MODE).map_err(io_error("set the mode of"))?;
                    }
                    self.export_tree(&subtree, &entry_rel, path.as_deref(), tally)?;
                }
                mode if mode == i32::from(FileMode::Blob)
                    || mode == i32::from(FileMode::BlobGroupWritable)
                    || mode == i32::from(FileMode::BlobExecutable) =>
                {
                    tally.add(self.blob_size(entry.id())?, || self.file_label(""))?;
                    let Some(path) = &path else { continue };
                    let blob = self
                        .repo
                        .git()
                        .find_blob(entry.id())
                        .map_err(|source| self.repo.git_error("a file", source))?;
                    let file_mode = if mode == i32::from(FileMode::BlobExecutable) {
                        EXEC_MODE
                    } else {
                        FILE_MODE
                    };
                    write_new(path, blob.content(), file_mode).map_err(io_error("write"))?;
                }
                mode if mode == i32::from(FileMode::Link) => {
                    tally.add(0, || self.file_label(""))?;
                    let target =
                        PathBuf::from(OsStr::from_bytes(self.link_target(&entry)?.as_slice()));
                    if !self.resolves_inside(&entry_rel, &target)? {
                        return Err(SourceError::LinkOutside {
                            file: label(),
                            target,
                        });
                    }
                    if let Some(path) = &path {
                        fs_err::os::unix::fs::symlink(&target, path).map_err(io_error("create"))?;
                    }
                }
                mode if mode == i32::from(FileMode::Commit) => {
                    return Err(SourceError::ExportSubmodule { file: label() });
                }
                mode => {
                    return Err(SourceError::ExportMode {
                        file: label(),
                        mode,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every file and symlink of the pack folder, by its path in it, as Git names it (a
    /// group-writable file as a plain one: the export writes it as one).
    pub fn files(&self) -> Result<BTreeMap<PathBuf, FileId>, SourceError> {
        let mut files = BTreeMap::new();
        self.collect_files(&self.tree, Path::new(""), &mut files)?;
        Ok(files)
    }

    fn collect_files(
        &self,
        tree: &git2::Tree<'repo>,
        rel: &Path,
        files: &mut BTreeMap<PathBuf, FileId>,
    ) -> Result<(), SourceError> {
        for entry in tree {
            let path = rel.join(OsStr::from_bytes(entry.name_bytes()));
            let mode = match entry.filemode() {
                mode if mode == i32::from(FileMode::Tree) => {
                    let subtree = self
                        .repo
                        .git()
                        .find_tree(entry.id())
                        .map_err(|source| self.repo.git_error("a tree", source))?;
                    self.collect_files(&subtree, &path, files)?;
                    continue;
                }
                mode if mode == i32::from(FileMode::BlobExecutable) => files::EXECUTABLE,
                mode if mode == i32::from(FileMode::Link) => files::SYMLINK,
                _ => files::FILE,
            };
            let id = entry.id().to_string();
            files.insert(path, FileId { mode, id });
        }
        Ok(())
    }

    /// The target a Git symlink entry holds (its blob's content).
    fn link_target(&self, entry: &git2::TreeEntry<'_>) -> Result<Vec<u8>, SourceError> {
        let blob = self
            .repo
            .git()
            .find_blob(entry.id())
            .map_err(|source| self.repo.git_error("a symlink", source))?;
        Ok(blob.content().to_vec())
    }

    /// Whether the symlink at `link` (relative to the pack folder) pointing at `target` resolves
    /// inside the pack folder. Resolution is lexical from the link's folder, except that a
    /// component which is itself a symlink of the pack is replaced by its target, as the kernel
    /// does: `a -> b/../..` is outside when `b -> ..`, though it looks inside. Absolute targets,
    /// and chains longer than the kernel follows, are outside.
    fn resolves_inside(&self, link: &Path, target: &Path) -> Result<bool, SourceError> {
        /// One step of a path still to resolve.
        enum Step {
            Up,
            Name(PathBuf),
        }
        /// Pushes `target`'s steps so that its first is popped next; `false` when absolute.
        fn push_target(pending: &mut Vec<Step>, target: &Path) -> bool {
            let mut steps = Vec::new();
            for component in target.components() {
                match component {
                    Component::CurDir => {}
                    Component::ParentDir => steps.push(Step::Up),
                    Component::Normal(name) => steps.push(Step::Name(PathBuf::from(name))),
                    Component::RootDir | Component::Prefix(_) => return false,
                }
            }
            pending.extend(steps.into_iter().rev());
            true
        }

        let mut at = link.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut pending = Vec::new();
        if !push_target(&mut pending, target) {
            return Ok(false);
        }
        let mut hops = 1;
        while let Some(step) = pending.pop() {
            match step {
                Step::Up => {
                    if !at.pop() {
                        return Ok(false);
                    }
                }
                Step::Name(name) => {
                    at.push(name);
                    let entry = match self.tree.get_path(&at) {
                        Ok(entry) => entry,
                        // A missing path can still be climbed out of lexically; keep checking.
                        Err(err) if err.code() == ErrorCode::NotFound => continue,
                        Err(source) => return Err(self.repo.git_error("a tree entry", source)),
                    };
                    if entry.filemode() != i32::from(FileMode::Link) {
                        continue;
                    }
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Ok(false);
                    }
                    let inner = PathBuf::from(OsStr::from_bytes(&self.link_target(&entry)?));
                    at.pop();
                    if !push_target(&mut pending, &inner) {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// How messages name the file at `rel`: `<repo>@<short commit>:<path in the repo>`, e.g.
    /// `/srv/git/clush@3f2a9c1:packs/clush/pack.yaml`.
    pub fn file_label(&self, rel: &str) -> String {
        let rel = rel.trim_start_matches("./");
        let in_repo = if self.subdir.as_os_str().is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.subdir.display())
        };
        format!(
            "{}@{}:{in_repo}",
            self.repo.path().display(),
            short_commit(&self.commit)
        )
    }
}

/// Modes of exported entries, as Git checks them out with the usual umask.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
const EXEC_MODE: u32 = 0o755;

/// How many symlinks one path may go through, as Linux's `MAXSYMLINKS`.
const MAX_LINK_HOPS: usize = 40;

/// A tree entry name that is one path component: Git refuses others, but a crafted tree object
/// may still hold `..` or a slash.
fn is_plain_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

/// Creates the file `path` (which must not exist) with `content` and exactly `mode`.
fn write_new(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(content)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use git2::{Oid, Repository, Signature};

    use super::*;
    use crate::diagnostics::Diagnose as _;

    /// A repo whose one commit holds `entries` (`path`, mode, content); a submodule's content
    /// is ignored. Built from tree objects, so entries a work tree cannot hold are possible.
    fn repo_with(dir: &Path, entries: &[(&str, FileMode, &str)]) -> (Repo, String) {
        let git = Repository::init_bare(dir).unwrap();
        let owned: Vec<Entry> = entries
            .iter()
            .map(|(path, mode, content)| ((*path).to_owned(), *mode, content.as_bytes().to_vec()))
            .collect();
        let tree = write_tree(&git, &owned);
        let tree = git.find_tree(tree).unwrap();
        let signature = Signature::now("Test", "test@example.com").unwrap();
        let commit = git
            .commit(Some("HEAD"), &signature, &signature, "pack", &tree, &[])
            .unwrap();
        (Repo::open(dir).unwrap(), commit.to_string())
    }

    /// A path, its mode and its content.
    type Entry = (String, FileMode, Vec<u8>);

    fn write_tree(git: &Repository, entries: &[Entry]) -> Oid {
        let mut builder = git.treebuilder(None).unwrap();
        let mut folders: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
        for (path, mode, content) in entries {
            if let Some((folder, rest)) = path.split_once('/') {
                folders
                    .entry(folder)
                    .or_default()
                    .push((rest.to_owned(), *mode, content.clone()));
            } else {
                let id = if *mode == FileMode::Commit {
                    Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap()
                } else {
                    git.blob(content).unwrap()
                };
                builder.insert(path, id, i32::from(*mode)).unwrap();
            }
        }
        for (folder, entries) in folders {
            let id = write_tree(git, &entries);
            builder
                .insert(folder, id, i32::from(FileMode::Tree))
                .unwrap();
        }
        builder.write().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs_err::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn export_error(entries: &[(&str, FileMode, &str)]) -> SourceError {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(&dir.path().join("repo"), entries);
        let tree = repo.pack_tree(&commit, None).unwrap();
        tree.export(&dir.path().join("out")).unwrap_err()
    }

    /// Issue 21: a pack folder with more files or bytes than its limits is refused, naming
    /// the folder and the limit; a file to parse larger than the reader's limit too.
    #[test]
    fn a_pack_folder_over_its_limits_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            &dir.path().join("repo"),
            &[
                ("pack.yaml", FileMode::Blob, "name: clush\n"),
                ("actions/a.py", FileMode::Blob, "A = 1\n"),
                ("actions/b.py", FileMode::Blob, &"B = 2\n".repeat(40)),
                ("actions/link.py", FileMode::Link, "a.py"),
            ],
        );
        let tree = repo.pack_tree(&commit, None).unwrap();
        let label = format!(
            "{}@{}",
            dir.path().join("repo").display(),
            short_commit(&commit)
        );
        tree.check_within(TreeLimits {
            files: 4,
            bytes: 1000,
        })
        .unwrap();
        let err = tree
            .check_within(TreeLimits {
                files: 3,
                bytes: 1000,
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Pack folder `{label}` has more than 3 files (the limit)")
        );
        assert!(
            err.hint()
                .unwrap()
                .contains("check that `source` and `subdir`")
        );
        let err = tree
            .check_within(TreeLimits {
                files: 4,
                bytes: 200,
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Pack folder `{label}` holds more than 200 bytes (the limit)")
        );

        let big = "x".repeat(usize::try_from(MAX_READ_BYTES).unwrap() + 1);
        let (repo, commit) = repo_with(
            &dir.path().join("big"),
            &[("requirements.txt", FileMode::Blob, &big)],
        );
        let tree = repo.pack_tree(&commit, None).unwrap();
        let err = tree.read_file("requirements.txt").unwrap_err();
        assert!(
            err.to_string()
                .ends_with(&format!("requirements.txt` is {} bytes, more than the {MAX_READ_BYTES} bytes packsync reads", big.len())),
            "{err}"
        );
    }

    #[test]
    fn export_keeps_the_exec_bit_and_nested_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            &dir.path().join("repo"),
            &[
                ("pack.yaml", FileMode::Blob, "name: clush\n"),
                ("actions/run.sh", FileMode::BlobExecutable, "#!/bin/sh\n"),
                ("actions/lib/util.py", FileMode::Blob, "X = 1\n"),
            ],
        );
        let out = dir.path().join("release/pack/clush");
        repo.pack_tree(&commit, None).unwrap().export(&out).unwrap();

        assert_eq!(
            fs_err::read_to_string(out.join("pack.yaml")).unwrap(),
            "name: clush\n"
        );
        assert_eq!(
            fs_err::read_to_string(out.join("actions/lib/util.py")).unwrap(),
            "X = 1\n"
        );
        assert_eq!(mode(&out), 0o755);
        assert_eq!(mode(&out.join("actions")), 0o755);
        assert_eq!(mode(&out.join("actions/lib")), 0o755);
        assert_eq!(mode(&out.join("pack.yaml")), 0o644);
        assert_eq!(mode(&out.join("actions/run.sh")), 0o755);
        assert_eq!(mode(&out.join("actions/lib/util.py")), 0o644);
    }

    #[test]
    fn export_fills_an_empty_folder_but_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            &dir.path().join("repo"),
            &[("pack.yaml", FileMode::Blob, "name: clush\n")],
        );
        let tree = repo.pack_tree(&commit, None).unwrap();
        let out = dir.path().join("out");
        fs_err::create_dir(&out).unwrap();
        tree.export(&out).unwrap();
        assert!(out.join("pack.yaml").is_file());

        let err = tree.export(&out).unwrap_err();
        assert!(
            matches!(&err, SourceError::Export { action: "export into", path, .. } if *path == out),
            "{err:?}"
        );
    }

    #[test]
    fn export_keeps_symlinks_inside_the_pack() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            &dir.path().join("repo"),
            &[
                ("pack.yaml", FileMode::Blob, "name: clush\n"),
                ("actions/lib/util.py", FileMode::Blob, "X = 1\n"),
                ("actions/shared", FileMode::Link, "lib"),
                ("actions/meta.yaml", FileMode::Link, "../pack.yaml"),
                ("top", FileMode::Link, "./actions/../actions/shared/util.py"),
                ("root", FileMode::Link, "."),
                ("dangling", FileMode::Link, "not/there"),
            ],
        );
        let out = dir.path().join("out");
        repo.pack_tree(&commit, None).unwrap().export(&out).unwrap();

        assert_eq!(
            fs_err::read_link(out.join("actions/shared")).unwrap(),
            Path::new("lib")
        );
        assert_eq!(
            fs_err::read_to_string(out.join("actions/meta.yaml")).unwrap(),
            "name: clush\n"
        );
        assert_eq!(fs_err::read_to_string(out.join("top")).unwrap(), "X = 1\n");
        assert!(out.join("root/pack.yaml").is_file());
        assert_eq!(
            fs_err::read_link(out.join("dangling")).unwrap(),
            Path::new("not/there")
        );
    }

    /// `packsync verify`: an exported pack folder hashes to the Git tree id it came from
    /// (Git's order puts `a.b` before the folder `a`, and `a0` after it), with the files Git
    /// lists; an edit shows in both.
    #[test]
    fn an_exported_pack_folder_hashes_to_its_git_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            &dir.path().join("repo"),
            &[
                ("pack.yaml", FileMode::Blob, "name: clush\n"),
                ("a.b", FileMode::Blob, "dot\n"),
                ("a/x.py", FileMode::Blob, "X = 1\n"),
                ("a/bin/run", FileMode::BlobExecutable, "#!/bin/sh\n"),
                ("a0", FileMode::Blob, "zero\n"),
                ("shared", FileMode::Link, "a"),
            ],
        );
        let tree = repo.pack_tree(&commit, None).unwrap();
        let out = dir.path().join("out");
        tree.export(&out).unwrap();

        let hashed = super::super::hash_dir(&out).unwrap();
        assert_eq!(hashed.tree, tree.tree.id().to_string());
        let files = tree.files().unwrap();
        assert_eq!(hashed.files, files);
        assert_eq!(files[Path::new("a/bin/run")].mode, 0o100_755);
        assert_eq!(files[Path::new("shared")].mode, 0o120_000);

        fs_err::write(out.join("a/x.py"), "X = 2\n").unwrap();
        let edited = super::super::hash_dir(&out).unwrap();
        assert_ne!(edited.tree, hashed.tree);
        let changes = super::super::FileChanges::between(&files, &edited.files);
        assert_eq!(changes.changed, [PathBuf::from("a/x.py")]);
        assert!(changes.added.is_empty() && changes.removed.is_empty());
    }

    #[test]
    fn export_refuses_symlinks_out_of_the_pack() {
        for (link, target) in [
            ("up", "../outside"),
            ("actions/up", "../../outside"),
            ("abs", "/etc/passwd"),
            ("missing", "nothing/../../outside"),
        ] {
            let err = export_error(&[
                ("pack.yaml", FileMode::Blob, "name: clush\n"),
                (link, FileMode::Link, target),
            ]);
            match &err {
                SourceError::LinkOutside { file, target: got } => {
                    assert!(file.ends_with(&format!(":{link}")), "{file}");
                    assert_eq!(got, Path::new(target));
                }
                other => panic!("{link} -> {target}: {other:?}"),
            }
            assert!(err.hint().unwrap().contains("relative symlink"));
        }
    }

    #[test]
    fn export_follows_pack_symlinks_when_checking_a_target() {
        // `sub/back -> ..` is the pack folder, so `sub/back/..` is its parent, though
        // `sub/back/..` reads as `sub`.
        let err = export_error(&[
            ("sub/back", FileMode::Link, ".."),
            ("escape", FileMode::Link, "sub/back/.."),
        ]);
        assert!(
            matches!(&err, SourceError::LinkOutside { file, .. } if file.ends_with(":escape")),
            "{err:?}"
        );

        let err = export_error(&[("a", FileMode::Link, "b"), ("b", FileMode::Link, "a")]);
        assert!(matches!(err, SourceError::LinkOutside { .. }), "{err:?}");
    }

    #[test]
    fn export_of_a_subdir_writes_only_the_subdir() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, commit) = repo_with(
            &dir.path().join("repo"),
            &[
                ("README.md", FileMode::Blob, "mono repo\n"),
                ("lib/common.py", FileMode::Blob, "Y = 2\n"),
                ("packs/clush/pack.yaml", FileMode::Blob, "name: clush\n"),
                (
                    "packs/clush/actions/run.sh",
                    FileMode::BlobExecutable,
                    "#!/bin/sh\n",
                ),
                ("packs/other/pack.yaml", FileMode::Blob, "name: other\n"),
            ],
        );
        let out = dir.path().join("out");
        let tree = repo
            .pack_tree(&commit, Some(Path::new("packs/clush")))
            .unwrap();
        tree.export(&out).unwrap();
        let mut names: Vec<String> = fs_err::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["actions", "pack.yaml"]);
        assert_eq!(mode(&out.join("actions/run.sh")), 0o755);

        // A link to the rest of the repo leaves the pack folder.
        let (repo, commit) = repo_with(
            &dir.path().join("repo2"),
            &[
                ("lib/common.py", FileMode::Blob, "Y = 2\n"),
                (
                    "packs/clush/common.py",
                    FileMode::Link,
                    "../../lib/common.py",
                ),
            ],
        );
        let tree = repo
            .pack_tree(&commit, Some(Path::new("packs/clush")))
            .unwrap();
        let err = tree.export(&dir.path().join("out2")).unwrap_err();
        match err {
            SourceError::LinkOutside { file, .. } => {
                assert!(file.ends_with(":packs/clush/common.py"), "{file}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn export_refuses_submodules() {
        let err = export_error(&[
            ("pack.yaml", FileMode::Blob, "name: clush\n"),
            ("vendor/lib", FileMode::Commit, ""),
        ]);
        match &err {
            SourceError::ExportSubmodule { file } => assert!(file.ends_with(":vendor/lib")),
            other => panic!("{other:?}"),
        }
        assert!(err.hint().unwrap().contains("submodules"));
    }

    #[test]
    fn export_refuses_entry_names_that_climb() {
        let dir = tempfile::tempdir().unwrap();
        let git = Repository::init_bare(dir.path().join("repo")).unwrap();
        let blob = git.blob(b"x").unwrap();
        // A tree object as `git mktree` would refuse to write it.
        let mut raw = b"100644 ..\0".to_vec();
        raw.extend_from_slice(blob.as_bytes());
        let tree = git
            .odb()
            .unwrap()
            .write(git2::ObjectType::Tree, &raw)
            .unwrap();
        let tree = git.find_tree(tree).unwrap();
        let signature = Signature::now("Test", "test@example.com").unwrap();
        let commit = git
            .commit(None, &signature, &signature, "crafted", &tree, &[])
            .unwrap();
        let repo = Repo::open(&dir.path().join("repo")).unwrap();
        let err = repo
            .pack_tree(&commit.to_string(), None)
            .unwrap()
            .export(&dir.path().join("out/pack"))
            .unwrap_err();
        assert!(matches!(err, SourceError::ExportName { .. }), "{err:?}");
    }
}
