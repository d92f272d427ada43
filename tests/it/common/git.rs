//! Real Git repos for tests, built with git2: no `git` binary, no global Git config or identity
//! needed, no network.
//!
//! Commits are deterministic: a fixed author and committer, and a clock that starts at the same
//! time in every repo and moves one minute per commit or annotated tag. The same steps give the
//! same commit ids on every machine, so snapshots can show them.
//!
//! ```ignore
//! let dir = tempfile::tempdir().unwrap();
//! let repo = GitRepo::init(&dir.path().join("clush"));
//! repo.write("pack.yaml", "name: clush\nversion: 1.8.1\n");
//! let commit = repo.commit("Release 1.8.1");
//! repo.tag("v1.8.1").branch("stable");
//! let bare = repo.bare_clone(&dir.path().join("clush.git"));
//! ```

// A fixture that cannot be built fails its test at once; `fs_err` and git2 name what failed.
#![allow(clippy::unwrap_used, reason = "fixture builders panic on failure")]

use std::cell::Cell;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature, Time};

/// The branch `init` starts on.
pub(crate) const DEFAULT_BRANCH: &str = "main";

/// When the first commit of every repo is made (2023-11-14T22:13:20Z).
const EPOCH: i64 = 1_700_000_000;

/// A repo with a work tree. Methods panic on failure: they build fixtures, they are not tested.
pub(crate) struct GitRepo {
    git: Repository,
    dir: PathBuf,
    /// Seconds after [`EPOCH`] of the next commit or annotated tag.
    clock: Cell<i64>,
}

impl GitRepo {
    /// Creates `dir` (and its parents) and an empty repo in it, on branch [`DEFAULT_BRANCH`].
    pub(crate) fn init(dir: &Path) -> Self {
        fs_err::create_dir_all(dir).unwrap();
        let mut options = git2::RepositoryInitOptions::new();
        options.initial_head(DEFAULT_BRANCH);
        let git = Repository::init_opts(dir, &options).unwrap();
        Self {
            git,
            dir: dir.to_path_buf(),
            clock: Cell::new(0),
        }
    }

    /// The work tree root.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes a file of the work tree, creating its folders. Not staged until [`commit`](Self::commit).
    pub(crate) fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let path = self.dir.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, content).unwrap();
        self
    }

    /// Deletes a file of the work tree.
    pub(crate) fn remove(&self, rel: &str) -> &Self {
        fs_err::remove_file(self.dir.join(rel)).unwrap();
        self
    }

    /// Makes `rel` a symlink to `target` in the work tree (committed as a Git symlink).
    pub(crate) fn symlink(&self, rel: &str, target: &str) -> &Self {
        let path = self.dir.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::os::unix::fs::symlink(target, path).unwrap();
        self
    }

    /// Stages every change of the work tree (like `git add --all`) and commits it on `HEAD`.
    /// Returns the full commit id.
    pub(crate) fn commit(&self, message: &str) -> String {
        let mut index = self.git.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.git.find_tree(index.write_tree().unwrap()).unwrap();
        let parent = self
            .git
            .head()
            .ok()
            .map(|head| head.peel_to_commit().unwrap());
        let signature = self.next_signature();
        let oid = self
            .git
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                parent.as_slice().iter().collect::<Vec<_>>().as_slice(),
            )
            .unwrap();
        oid.to_string()
    }

    /// The full id of the commit `HEAD` is on.
    pub(crate) fn head(&self) -> String {
        self.git
            .head()
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .id()
            .to_string()
    }

    /// The commit `HEAD` points at, as an object to tag.
    fn head_commit(&self) -> git2::Object<'_> {
        self.git
            .head()
            .unwrap()
            .peel(git2::ObjectType::Commit)
            .unwrap()
    }

    /// Creates the lightweight tag `name` on `HEAD`.
    pub(crate) fn tag(&self, name: &str) -> &Self {
        let head = self.head_commit();
        self.git.tag_lightweight(name, &head, false).unwrap();
        self
    }

    /// Creates the annotated tag `name` on `HEAD` (a tag object, as `git tag -a`).
    pub(crate) fn annotated_tag(&self, name: &str) -> &Self {
        let head = self.head_commit();
        let tagger = self.next_signature();
        self.git
            .tag(name, &head, &tagger, &format!("Release {name}"), false)
            .unwrap();
        self
    }

    /// Creates the branch `name` at `HEAD`, without switching to it.
    pub(crate) fn branch(&self, name: &str) -> &Self {
        let head = self.git.head().unwrap().peel_to_commit().unwrap();
        self.git.branch(name, &head, false).unwrap();
        self
    }

    /// Switches `HEAD` and the work tree to the branch `name`.
    pub(crate) fn switch(&self, name: &str) -> &Self {
        self.git.set_head(&format!("refs/heads/{name}")).unwrap();
        self.checkout_head();
        self
    }

    /// Detaches `HEAD` at `commit` (a full id) and checks it out.
    pub(crate) fn detach(&self, commit: &str) -> &Self {
        self.git
            .set_head_detached(Oid::from_str(commit).unwrap())
            .unwrap();
        self.checkout_head();
        self
    }

    /// Clones the repo into `to` with a work tree: its branches become `refs/remotes/origin/*`
    /// and only the default branch is local, as with `git clone`.
    pub(crate) fn clone_to(&self, to: &Path) -> GitRepo {
        let git = git2::build::RepoBuilder::new()
            .clone(self.dir.to_str().unwrap(), to)
            .unwrap();
        GitRepo {
            git,
            dir: to.to_path_buf(),
            clock: Cell::new(self.clock.get()),
        }
    }

    /// Copies every ref of the repo into a new bare repo at `to`, as `git clone --mirror`, the
    /// way a host keeps repos for packsync; `HEAD` names the same branch (or commit). Returns `to`.
    pub(crate) fn bare_clone(&self, to: &Path) -> PathBuf {
        let bare =
            Repository::init_opts(to, git2::RepositoryInitOptions::new().bare(true)).unwrap();
        bare.remote_anonymous(self.dir.to_str().unwrap())
            .unwrap()
            .fetch(&["+refs/*:refs/*"], None, None)
            .unwrap();
        let head = self.git.head().unwrap();
        if head.is_branch() {
            bare.set_head(head.name().unwrap()).unwrap();
        } else {
            bare.set_head_detached(head.target().unwrap()).unwrap();
        }
        to.to_path_buf()
    }

    fn checkout_head(&self) {
        self.git
            .checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
            .unwrap();
    }

    fn next_signature(&self) -> Signature<'static> {
        let seconds = self.clock.get();
        self.clock.set(seconds + 60);
        Signature::new(
            "Packsync Tests",
            "tests@packsync.invalid",
            &Time::new(EPOCH + seconds, 0),
        )
        .unwrap()
    }
}
