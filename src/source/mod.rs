//! Git access through git2, local repos only: where a repo is, which commit a ref or version
//! range selects, and the files of a pack folder at that commit.
//!
//! Only committed content counts: pack files are read from Git objects, never from a work
//! tree, so what is deployed is exactly what a commit holds. The path from a `source` string
//! to three files of a pack (open, resolve, read) does no revwalk and no status scan, since a
//! plan reads hundreds of packs; [`Repo::uncommitted_changes`] is the one costly call, for
//! `check` only.
//!
//! ```no_run
//! # fn main() -> Result<(), packsync::source::SourceError> {
//! use std::path::Path;
//! use packsync::source::{local_path, RefSelector, Repo};
//!
//! let path = local_path("file:///srv/git/clush", Path::new("/etc/packsync"))?;
//! let repo = Repo::open(&path)?;
//! let resolved = repo.resolve(&RefSelector::Version(">=1.8, <2".parse().expect("a valid range")))?;
//! let pack = repo.pack_tree(&resolved.commit, Some(Path::new("packs/clush")))?;
//! let pack_yaml = pack.read_file("pack.yaml")?;
//! # Ok(()) }
//! ```

mod files;
mod location;
mod repo;
mod signature;
mod stamps;
mod tree;

use std::fmt;
use std::path::{Path, PathBuf};

pub use files::{FileChanges, FileId, HashedDir, hash_dir};
pub use location::local_path;
pub use repo::{FileChange, RefSelector, Repo, Resolved};
pub use signature::{AllowedSigners, SignatureMode, SignaturePolicy, SignersLineError};
pub use stamps::{GitDirs, RefStamps};
pub use tree::PackTree;

use crate::diagnostics::Diagnose;

/// How many version tags an error lists before it only counts the older ones.
const LISTED_VERSION_TAGS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Source is empty")]
    EmptySource,

    #[error("Source `{given}` is a remote URL")]
    Remote { given: String },

    #[error("Source `{given}` is not a local `file://` URL")]
    FileUrl { given: String },

    #[error("Repo `{}` does not exist", path.display())]
    RepoMissing { path: PathBuf },

    #[error("Path `{}` is not a Git repo", path.display())]
    NotARepo {
        path: PathBuf,
        /// The repo the path is a folder of, when there is one.
        enclosing: Option<EnclosingRepo>,
    },

    #[error("Cannot open the Git repo `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },

    #[error("Repo `{}` has no commits on `HEAD`", repo.display())]
    NoCommits { repo: PathBuf },

    #[error(
        "Ref `{git_ref}` matches no branch, tag or commit of `{}`; {}",
        repo.display(),
        version_tag_list(version_tags)
    )]
    RefNotFound {
        repo: PathBuf,
        git_ref: String,
        /// Names of the version tags, newest first.
        version_tags: Vec<String>,
    },

    #[error(
        "No version tag of `{}` matches `{requirement}`; {}",
        repo.display(),
        version_tag_list(version_tags)
    )]
    NoMatchingVersion {
        repo: PathBuf,
        requirement: semver::VersionReq,
        /// Names of the version tags, newest first.
        version_tags: Vec<String>,
    },

    #[error("Commit id prefix `{prefix}` is ambiguous in `{}`", repo.display())]
    AmbiguousCommit { repo: PathBuf, prefix: String },

    #[error("Ref `{git_ref}` of `{}` does not point to a commit", repo.display())]
    NotACommit {
        repo: PathBuf,
        git_ref: String,
        #[source]
        source: git2::Error,
    },

    #[error("Commit `{commit}` not found in `{}`", repo.display())]
    CommitMissing {
        repo: PathBuf,
        commit: String,
        #[source]
        source: git2::Error,
    },

    #[error("Cannot compare the trees {from} and {to} in the repo `{}`", repo.display())]
    Compare {
        repo: PathBuf,
        from: String,
        to: String,
        #[source]
        source: git2::Error,
    },

    #[error("Subdir `{}` is not a relative path inside the repo", subdir.display())]
    SubdirInvalid { subdir: PathBuf },

    #[error(
        "Subdir `{}` does not exist in `{}` at commit `{commit}`",
        subdir.display(),
        repo.display()
    )]
    SubdirMissing {
        repo: PathBuf,
        commit: String,
        subdir: PathBuf,
    },

    #[error(
        "Subdir `{}` of `{}` at commit `{commit}` is a {kind}, not a folder",
        subdir.display(),
        repo.display()
    )]
    SubdirNotFolder {
        repo: PathBuf,
        commit: String,
        subdir: PathBuf,
        kind: EntryKind,
    },

    #[error("Pack file path `{path}` is not a relative path inside the pack folder")]
    FilePathInvalid { path: String },

    #[error("Pack file `{file}` is a {kind}, not a regular file")]
    NotAFile { file: String, kind: EntryKind },

    #[error("Pack symlink `{file}` points at `{}`, outside the pack folder", target.display())]
    LinkOutside { file: String, target: PathBuf },

    #[error("Pack entry `{file}` is a submodule, which packsync cannot deploy")]
    ExportSubmodule { file: String },

    #[error("Pack folder `{tree}` {what}")]
    TreeTooLarge { tree: String, what: String },

    #[error("Pack file `{file}` is {size} bytes, more than the {limit} bytes packsync reads")]
    FileTooLarge { file: String, size: u64, limit: u64 },

    #[error("Pack entry `{file}` has the Git file mode `{mode:o}`, which packsync cannot deploy")]
    ExportMode { file: String, mode: i32 },

    #[error("Pack entry `{file}` has a name that is not a single path component")]
    ExportName { file: String },

    #[error("Failed to {action} `{}`", path.display())]
    Export {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("The source of `{}` is not signed as `mode = \"{mode}\"` asks: {found}", repo.display())]
    NotSigned {
        repo: PathBuf,
        mode: &'static str,
        found: String,
        signers: PathBuf,
    },

    #[error("Cannot read {what} of `{}`", repo.display())]
    Git {
        repo: PathBuf,
        what: &'static str,
        #[source]
        source: git2::Error,
    },
}

/// The repo that holds a folder which is not a repo itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclosingRepo {
    /// Its root: the work tree, or the folder of a bare repo.
    pub root: PathBuf,
    /// The folder relative to `root`, ready for `subdir`.
    pub subdir: PathBuf,
}

/// What a tree entry is, for errors about entries that are not what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Folder,
    Symlink,
    Submodule,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "file",
            EntryKind::Folder => "folder",
            EntryKind::Symlink => "symlink",
            EntryKind::Submodule => "submodule",
        })
    }
}

impl Diagnose for SourceError {
    fn hint(&self) -> Option<String> {
        let hint = match self {
            SourceError::EmptySource => {
                "set `source` to the path of a Git repo on this host".into()
            }
            SourceError::Remote { .. } => "packsync works offline from local repos: clone the \
                repo onto this host (e.g. `git clone --mirror <url> /srv/git/<pack>`) and point \
                `source` at it"
                .into(),
            SourceError::FileUrl { .. } => {
                "write `file:///absolute/path` (three slashes) or a plain path".into()
            }
            SourceError::RepoMissing { .. } => "clone the repo to this path, or fix `source` (a \
                relative path starts at the site config's folder)"
                .into(),
            SourceError::NotARepo {
                path,
                enclosing: Some(enclosing),
            } => format!(
                "`{}` is a folder of the repo `{}`: set `source` to the repo root and \
                 `subdir = \"{}\"`",
                path.display(),
                enclosing.root.display(),
                enclosing.subdir.display()
            ),
            SourceError::NotARepo {
                enclosing: None, ..
            } => "point `source` at the root of a Git repo (with a work tree or bare)".into(),
            SourceError::Open { path, source } if source.code() == git2::ErrorCode::Owner => {
                format!(
                    "the repo belongs to another user; if you trust it, run `git config --global \
                     --add safe.directory {}` as the user running packsync",
                    path.display()
                )
            }
            SourceError::NoCommits { .. } => {
                "commit the pack, or set `ref` to a branch that has commits".into()
            }
            SourceError::RefNotFound { .. } => "set `ref` to a branch, a tag or a commit id of at \
                least 7 hex digits, or `version` to a range that a version tag matches"
                .into(),
            SourceError::NoMatchingVersion { .. } => "widen `version`, or tag the release \
                `vX.Y.Z`; a pre-release matches only a range that names a pre-release of the \
                same version, e.g. `>=1.9.0-rc.1`"
                .into(),
            SourceError::AmbiguousCommit { .. } => "give more hex digits of the commit id".into(),
            SourceError::SubdirInvalid { .. } => {
                "`subdir` is relative to the repo root, e.g. `packs/clush`".into()
            }
            SourceError::SubdirMissing { .. } => "`subdir` is relative to the repo root and read \
                from the commit, not the work tree: check its spelling and that it is committed"
                .into(),
            SourceError::NotAFile {
                kind: EntryKind::Symlink,
                ..
            } => "packsync reads pack files from Git and does not follow symlinks: commit the \
                file itself"
                .into(),
            SourceError::NotAFile {
                kind: EntryKind::Submodule,
                ..
            } => "packsync does not read submodules: commit the files into the pack repo".into(),
            SourceError::LinkOutside { .. } => "a release holds the pack folder only: commit the \
                file itself, or a relative symlink to a file inside the pack folder"
                .into(),
            SourceError::NotSigned { signers, .. } => format!(
                "sign the commit (`git -c gpg.format=ssh commit -S`) or the tag (`git -c \
                 gpg.format=ssh tag -s`) with a key listed in `{}`, or add the signer's key \
                 there; the live release stays until then",
                signers.display()
            ),
            SourceError::ExportSubmodule { .. } => {
                "packsync does not deploy submodules: commit the files into the pack repo".into()
            }
            SourceError::TreeTooLarge { .. } | SourceError::FileTooLarge { .. } => {
                "the limits (in the README, \"Limits on what packsync reads\") are far above any \
                 StackStorm pack: check that `source` and `subdir` name the pack, not a larger repo"
                    .into()
            }
            SourceError::ExportMode { .. } | SourceError::ExportName { .. } => {
                "the commit holds a tree entry plain Git does not create: rewrite it with `git` \
                 and commit again"
                    .into()
            }
            _ => return None,
        };
        Some(hint)
    }
}

/// The tail of an error about a missing ref or version: what the repo offers instead.
fn version_tag_list(names: &[String]) -> String {
    if names.is_empty() {
        return "the repo has no version tags".into();
    }
    let listed = names[..names.len().min(LISTED_VERSION_TAGS)].join(", ");
    match names.len().checked_sub(LISTED_VERSION_TAGS) {
        Some(older @ 1..) => format!("version tags: {listed} and {older} older"),
        _ => format!("version tags: {listed}"),
    }
}

/// `path` as the components of a path inside a tree: `None` when it is absolute or climbs out
/// with `..`. `.` components are dropped, so `./` and the empty path give an empty path: the tree itself.
fn inner_path(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    path.components()
        .filter(|component| *component != Component::CurDir)
        .map(|component| match component {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_paths_stay_inside() {
        assert_eq!(
            inner_path(Path::new("./packs//clush/")),
            Some(PathBuf::from("packs/clush"))
        );
        assert_eq!(inner_path(Path::new(".")), Some(PathBuf::new()));
        assert_eq!(inner_path(Path::new("")), Some(PathBuf::new()));
        assert_eq!(inner_path(Path::new("../clush")), None);
        assert_eq!(inner_path(Path::new("packs/../../clush")), None);
        assert_eq!(inner_path(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn version_tag_lists_are_capped() {
        assert_eq!(version_tag_list(&[]), "the repo has no version tags");
        let few: Vec<String> = vec!["v1.1.0".into(), "1.0.0".into()];
        assert_eq!(version_tag_list(&few), "version tags: v1.1.0, 1.0.0");
        let many: Vec<String> = (0..13).rev().map(|minor| format!("v1.{minor}.0")).collect();
        assert_eq!(
            version_tag_list(&many),
            "version tags: v1.12.0, v1.11.0, v1.10.0, v1.9.0, v1.8.0, v1.7.0, v1.6.0, v1.5.0, \
             v1.4.0, v1.3.0 and 3 older"
        );
        assert_eq!(version_tag_list(&many[3..]).matches(", ").count(), 9);
        assert!(!version_tag_list(&many[3..]).contains("older"));
    }

    #[test]
    fn hints_name_the_enclosing_repo() {
        let err = SourceError::NotARepo {
            path: "/srv/git/mono/packs/clush".into(),
            enclosing: Some(EnclosingRepo {
                root: "/srv/git/mono".into(),
                subdir: "packs/clush".into(),
            }),
        };
        assert_eq!(
            err.hint().unwrap(),
            "`/srv/git/mono/packs/clush` is a folder of the repo `/srv/git/mono`: set `source` \
             to the repo root and `subdir = \"packs/clush\"`"
        );
    }
}
