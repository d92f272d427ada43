//! An opened local repo and the commit a ref or a version range selects in it.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, Repository, RepositoryOpenFlags};

use super::{EnclosingRepo, EntryKind, PackTree, SourceError, inner_path};

/// Which commit of a repo the site config asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefSelector {
    /// The repo's `HEAD` (a branch, or a detached commit).
    Head,
    /// A branch, a tag or a commit id of at least 7 hex digits.
    Ref(String),
    /// The newest `vX.Y.Z` or `X.Y.Z` tag in the range.
    Version(semver::VersionReq),
}

impl fmt::Display for RefSelector {
    /// What the site config asked for: `HEAD`, the ref, or the range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefSelector::Head => f.write_str("HEAD"),
            RefSelector::Ref(name) => f.write_str(name),
            RefSelector::Version(requirement) => write!(f, "{requirement}"),
        }
    }
}

/// The commit a [`RefSelector`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Full hex id.
    pub commit: String,
    /// `HEAD`, the ref as asked, or for a version range the tag it chose.
    pub label: String,
    /// The annotated tag object the ref names, when it names one (full hex id).
    pub tag: Option<String>,
}

/// A local Git repo, with a work tree or bare.
pub struct Repo {
    git: Repository,
    /// As given to [`Repo::open`], for messages.
    path: PathBuf,
}

impl fmt::Debug for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repo")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A file of a pack tree that one tree has and another has not, or has otherwise.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileChange {
    /// `A` added, `M` modified (its content, mode or type), `D` deleted, as `git diff` says.
    pub status: char,
    /// Its path inside the pack.
    pub path: String,
}

/// A tag whose name is a semver version, optionally `v`-prefixed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VersionTag {
    version: semver::Version,
    name: String,
}

impl Repo {
    /// Opens the repo at `path` (its root or its `.git` folder, or a bare repo). Parent
    /// folders are not searched: a folder inside a repo is an error whose hint names the
    /// repo root and the `subdir` to use.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let no_ceiling: [&OsStr; 0] = [];
        match Repository::open_ext(path, RepositoryOpenFlags::NO_SEARCH, no_ceiling) {
            Ok(git) => Ok(Self {
                git,
                path: path.to_path_buf(),
            }),
            Err(err) if err.code() == ErrorCode::NotFound => Err(not_a_repo(path)),
            Err(source) => Err(SourceError::Open {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The path the repo was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files that differ between the pack trees `from` and `to` (Git tree ids, as a
    /// release records them), by path inside the pack, sorted.
    pub fn changed_files(&self, from: &str, to: &str) -> Result<Vec<FileChange>, SourceError> {
        let compare = |source| SourceError::Compare {
            repo: self.path.clone(),
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        };
        let tree = |id: &str| {
            git2::Oid::from_str(id)
                .and_then(|oid| self.git.find_tree(oid))
                .map_err(compare)
        };
        let (old, new) = (tree(from)?, tree(to)?);
        let diff = self
            .git
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(compare)?;
        let mut changes: Vec<FileChange> = diff
            .deltas()
            .map(|delta| {
                let (status, file) = match delta.status() {
                    git2::Delta::Added => ('A', delta.new_file()),
                    git2::Delta::Deleted => ('D', delta.old_file()),
                    _ => ('M', delta.new_file()),
                };
                FileChange {
                    status,
                    path: file
                        .path()
                        .map(|path| path.display().to_string())
                        .unwrap_or_default(),
                }
            })
            .collect();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Its Git folders, for [`RefStamps`](super::RefStamps).
    pub fn git_dirs(&self) -> super::GitDirs {
        super::GitDirs {
            git_dir: self.git.path().to_path_buf(),
            common_dir: self.git.commondir().to_path_buf(),
        }
    }

    /// The commit `selector` selects.
    ///
    /// A [`RefSelector::Ref`] is looked up, first match wins, as the local branch, the tag
    /// (annotated tags peeled to their commit), the tag `v<ref>` when the ref is a semver
    /// version, the remote-tracking branch `origin/<ref>`, then a full or abbreviated commit id.
    pub fn resolve(&self, selector: &RefSelector) -> Result<Resolved, SourceError> {
        match selector {
            RefSelector::Head => self.resolve_head(),
            RefSelector::Ref(name) => self.resolve_ref(name),
            RefSelector::Version(requirement) => self.resolve_version(requirement),
        }
    }

    /// The pack folder at `commit` (a full id, as [`Resolved::commit`]): the repo root, or
    /// `subdir` of it.
    pub fn pack_tree(
        &self,
        commit: &str,
        subdir: Option<&Path>,
    ) -> Result<PackTree<'_>, SourceError> {
        let commit_missing = |source| SourceError::CommitMissing {
            repo: self.path.clone(),
            commit: commit.to_owned(),
            source,
        };
        let oid = git2::Oid::from_str(commit).map_err(commit_missing)?;
        let root = self
            .git
            .find_commit(oid)
            .map_err(commit_missing)?
            .tree()
            .map_err(|source| self.git_error("the tree of a commit", source))?;
        let subdir = match subdir {
            Some(given) => inner_path(given).ok_or_else(|| SourceError::SubdirInvalid {
                subdir: given.to_path_buf(),
            })?,
            None => PathBuf::new(),
        };
        if subdir.as_os_str().is_empty() {
            return Ok(PackTree::new(self, commit, subdir, root));
        }
        let entry = match root.get_path(&subdir) {
            Ok(entry) => entry,
            Err(err) if err.code() == ErrorCode::NotFound => {
                return Err(SourceError::SubdirMissing {
                    repo: self.path.clone(),
                    commit: commit.to_owned(),
                    subdir,
                });
            }
            Err(source) => return Err(self.git_error("a tree entry", source)),
        };
        let kind = EntryKind::of(&entry);
        if kind != EntryKind::Folder {
            return Err(SourceError::SubdirNotFolder {
                repo: self.path.clone(),
                commit: commit.to_owned(),
                subdir,
                kind,
            });
        }
        let tree = self
            .git
            .find_tree(entry.id())
            .map_err(|source| self.git_error("a tree", source))?;
        Ok(PackTree::new(self, commit, subdir, tree))
    }

    /// Paths (relative to the repo root, sorted) under `subdir` that differ from `HEAD` in the
    /// index or the work tree, untracked files included and ignored ones left out. Empty for a
    /// bare repo. Pack content never comes from the work tree; this is for `check` to warn that
    /// these changes are not deployed.
    pub fn uncommitted_changes(&self, subdir: Option<&Path>) -> Result<Vec<PathBuf>, SourceError> {
        if self.git.is_bare() {
            return Ok(Vec::new());
        }
        let mut options = git2::StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .exclude_submodules(true)
            // The subdir is a path, not a glob pattern.
            .disable_pathspec_match(true);
        if let Some(given) = subdir {
            let subdir = inner_path(given).ok_or_else(|| SourceError::SubdirInvalid {
                subdir: given.to_path_buf(),
            })?;
            if !subdir.as_os_str().is_empty() {
                options.pathspec(subdir);
            }
        }
        let statuses = self
            .git
            .statuses(Some(&mut options))
            .map_err(|source| self.git_error("the status of the work tree", source))?;
        let mut paths: Vec<PathBuf> = statuses
            .iter()
            .filter(|entry| entry.status() != git2::Status::CURRENT)
            .filter_map(|entry| entry.path().map(PathBuf::from))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    pub(super) fn git(&self) -> &Repository {
        &self.git
    }

    pub(super) fn git_error(&self, what: &'static str, source: git2::Error) -> SourceError {
        SourceError::Git {
            repo: self.path.clone(),
            what,
            source,
        }
    }

    fn resolve_head(&self) -> Result<Resolved, SourceError> {
        let head = match self.git.head() {
            Ok(head) => head,
            Err(err) if matches!(err.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
                return Err(SourceError::NoCommits {
                    repo: self.path.clone(),
                });
            }
            Err(source) => return Err(self.git_error("`HEAD`", source)),
        };
        self.resolved(&head, "HEAD")
    }

    fn resolve_ref(&self, name: &str) -> Result<Resolved, SourceError> {
        let mut candidates = vec![format!("refs/heads/{name}"), format!("refs/tags/{name}")];
        if semver::Version::parse(name).is_ok() {
            candidates.push(format!("refs/tags/v{name}"));
        }
        candidates.push(format!("refs/remotes/origin/{name}"));
        for full_name in &candidates {
            if let Some(reference) = self.find_reference(full_name)? {
                return self.resolved(&reference, name);
            }
        }
        if is_commit_prefix(name) {
            match self.git.find_commit_by_prefix(name) {
                Ok(commit) => {
                    return Ok(Resolved {
                        commit: commit.id().to_string(),
                        label: name.to_owned(),
                        tag: None,
                    });
                }
                Err(err) if err.code() == ErrorCode::Ambiguous => {
                    return Err(SourceError::AmbiguousCommit {
                        repo: self.path.clone(),
                        prefix: name.to_owned(),
                    });
                }
                // Not found, or the id of something other than a commit.
                Err(_) => {}
            }
        }
        Err(SourceError::RefNotFound {
            repo: self.path.clone(),
            git_ref: name.to_owned(),
            version_tags: tag_names(self.version_tags()?),
        })
    }

    fn resolve_version(&self, requirement: &semver::VersionReq) -> Result<Resolved, SourceError> {
        let tags = self.version_tags()?;
        let Some(chosen) = newest_matching(&tags, requirement) else {
            return Err(SourceError::NoMatchingVersion {
                repo: self.path.clone(),
                requirement: requirement.clone(),
                version_tags: tag_names(tags),
            });
        };
        let reference = self
            .find_reference(&format!("refs/tags/{}", chosen.name))?
            .expect("the tag was just listed");
        self.resolved(&reference, &chosen.name)
    }

    /// The reference named `full_name`; `None` when there is none, or the name is not a valid
    /// ref name (`a..b`), which no ref can have either.
    fn find_reference(&self, full_name: &str) -> Result<Option<git2::Reference<'_>>, SourceError> {
        match self.git.find_reference(full_name) {
            Ok(reference) => Ok(Some(reference)),
            Err(err) if matches!(err.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => {
                Ok(None)
            }
            Err(source) => Err(self.git_error("a ref", source)),
        }
    }

    fn resolved(
        &self,
        reference: &git2::Reference<'_>,
        label: &str,
    ) -> Result<Resolved, SourceError> {
        let commit = reference
            .peel_to_commit()
            .map_err(|source| SourceError::NotACommit {
                repo: self.path.clone(),
                git_ref: label.to_owned(),
                source,
            })?;
        let tag = reference
            .target()
            .and_then(|target| self.git.find_tag(target).ok())
            .map(|tag| tag.id().to_string());
        Ok(Resolved {
            commit: commit.id().to_string(),
            label: label.to_owned(),
            tag,
        })
    }

    /// The repo's version tags, newest first.
    fn version_tags(&self) -> Result<Vec<VersionTag>, SourceError> {
        let list_error = |source| self.git_error("the tags", source);
        let mut references = self
            .git
            .references_glob("refs/tags/*")
            .map_err(list_error)?;
        let mut tags = Vec::new();
        // Names only: loading each ref would read a file per loose tag.
        for full_name in references.names() {
            let full_name = full_name.map_err(list_error)?;
            let Some(name) = full_name.strip_prefix("refs/tags/") else {
                continue;
            };
            if let Some(version) = parse_version_tag(name) {
                tags.push(VersionTag {
                    version,
                    name: name.to_owned(),
                });
            }
        }
        tags.sort_by(|a, b| b.cmp(a));
        Ok(tags)
    }
}

impl EntryKind {
    pub(super) fn of(entry: &git2::TreeEntry<'_>) -> Self {
        match entry.filemode() {
            mode if mode == i32::from(git2::FileMode::Tree) => EntryKind::Folder,
            mode if mode == i32::from(git2::FileMode::Link) => EntryKind::Symlink,
            mode if mode == i32::from(git2::FileMode::Commit) => EntryKind::Submodule,
            _ => EntryKind::File,
        }
    }
}

/// The error for a path that is no repo, with the repo it is a folder of, if any.
fn not_a_repo(path: &Path) -> SourceError {
    if matches!(path.try_exists(), Ok(false)) {
        return SourceError::RepoMissing {
            path: path.to_path_buf(),
        };
    }
    SourceError::NotARepo {
        path: path.to_path_buf(),
        enclosing: enclosing_repo(path),
    }
}

/// The repo that `folder` is inside of. Only called on the error path: it searches parents.
fn enclosing_repo(folder: &Path) -> Option<EnclosingRepo> {
    if !folder.is_dir() {
        return None;
    }
    let git = Repository::discover(folder).ok()?;
    let root = git.workdir().unwrap_or_else(|| git.path());
    let root = fs_err::canonicalize(root).ok()?;
    let subdir = fs_err::canonicalize(folder)
        .ok()?
        .strip_prefix(&root)
        .ok()?
        .to_path_buf();
    Some(EnclosingRepo { root, subdir })
}

/// Whether `name` can be a commit id: at least 7 hex digits, at most a SHA-256 id.
fn is_commit_prefix(name: &str) -> bool {
    (7..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The version a tag names: `vX.Y.Z` or `X.Y.Z`, with optional pre-release and build metadata.
fn parse_version_tag(name: &str) -> Option<semver::Version> {
    semver::Version::parse(name.strip_prefix('v').unwrap_or(name)).ok()
}

/// The newest tag in `tags` (sorted newest first) that `requirement` matches. Pre-releases
/// match only a range that names a pre-release of the same version (Cargo's rule).
fn newest_matching<'t>(
    tags: &'t [VersionTag],
    requirement: &semver::VersionReq,
) -> Option<&'t VersionTag> {
    tags.iter().find(|tag| requirement.matches(&tag.version))
}

fn tag_names(tags: Vec<VersionTag>) -> Vec<String> {
    tags.into_iter().map(|tag| tag.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<VersionTag> {
        let mut tags: Vec<VersionTag> = names
            .iter()
            .map(|name| VersionTag {
                version: parse_version_tag(name).unwrap(),
                name: (*name).to_owned(),
            })
            .collect();
        tags.sort_by(|a, b| b.cmp(a));
        tags
    }

    fn newest(names: &[&str], requirement: &str) -> Option<String> {
        let tags = tags(names);
        newest_matching(&tags, &requirement.parse().unwrap()).map(|tag| tag.name.clone())
    }

    #[test]
    fn version_tags_take_an_optional_v() {
        assert_eq!(
            parse_version_tag("v1.8.1"),
            Some(semver::Version::new(1, 8, 1))
        );
        assert_eq!(
            parse_version_tag("1.8.1"),
            Some(semver::Version::new(1, 8, 1))
        );
        assert!(parse_version_tag("v2.0.0-rc.1").is_some());
        assert_eq!(parse_version_tag("v1.8"), None);
        assert_eq!(parse_version_tag("release-1.8.1"), None);
        assert_eq!(parse_version_tag("V1.8.1"), None);
    }

    #[test]
    fn the_newest_matching_version_wins() {
        let names = [
            "v1.7.0",
            "v1.8.0",
            "1.8.1",
            "v1.10.0",
            "v2.0.0",
            "v2.1.0-rc.1",
        ];
        assert_eq!(newest(&names, ">=1.8, <2").as_deref(), Some("v1.10.0"));
        assert_eq!(newest(&names, "~1.8").as_deref(), Some("1.8.1"));
        assert_eq!(newest(&names, "*").as_deref(), Some("v2.0.0"));
        assert_eq!(
            newest(&names, ">=2.1.0-rc.1").as_deref(),
            Some("v2.1.0-rc.1")
        );
        assert_eq!(newest(&names, ">=3"), None);
    }

    #[test]
    fn equal_versions_prefer_the_v_tag() {
        assert_eq!(
            newest(&["1.8.1", "v1.8.1"], "1.8").as_deref(),
            Some("v1.8.1")
        );
    }

    #[test]
    fn commit_prefixes_have_at_least_seven_hex_digits() {
        assert!(is_commit_prefix("3f2a9c1"));
        assert!(is_commit_prefix("3F2A9C1d"));
        assert!(!is_commit_prefix("3f2a9c"));
        assert!(!is_commit_prefix("v1.8.1a"));
        assert!(!is_commit_prefix(&"a".repeat(65)));
    }

    #[test]
    fn selectors_display_what_was_asked() {
        assert_eq!(RefSelector::Head.to_string(), "HEAD");
        assert_eq!(RefSelector::Ref("v1.8.1".into()).to_string(), "v1.8.1");
        let range = RefSelector::Version(">=1.8, <2".parse().unwrap());
        assert_eq!(range.to_string(), ">=1.8, <2");
    }
}
