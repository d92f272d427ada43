//! A pack folder at a commit, read from Git objects.

use std::fmt;
use std::path::{Path, PathBuf};

use git2::ErrorCode;

use super::{EntryKind, Repo, SourceError, inner_path};
use crate::model::short_commit;

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
        let blob = self
            .repo
            .git()
            .find_blob(entry.id())
            .map_err(|source| self.repo.git_error("a file", source))?;
        Ok(Some(blob.content().to_vec()))
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
