//! What a ref lookup reads, as file stamps: while they are unchanged, the lookup finds the same
//! commit, so a run that changes nothing need not open the repo at all.
//!
//! Git moves a ref by writing a lock file and renaming it over the ref (a new inode), and
//! rewrites `packed-refs` the same way; a tag added or removed changes its folder. So the
//! stamps (device, inode, size, modification and change times) of `HEAD`, `packed-refs` and
//! the loose ref files a selector can name, present or not, say whether a lookup could find
//! something else.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use serde::{Deserialize, Serialize};

use super::RefSelector;

/// The Git folders of a repo: its own (`HEAD`) and the common one (refs, `packed-refs`), which
/// differ for a linked work tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitDirs {
    pub git_dir: PathBuf,
    pub common_dir: PathBuf,
}

/// One file's identity and times; `None` in [`RefStamps`] for a file that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i64,
    changed_ns: i64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        Self::at(rustix::fs::CWD, path)
    }

    /// The stamp of `path`, relative to the folder `dir` (not following a symlink).
    fn at(dir: impl AsFd, path: &Path) -> Option<Self> {
        let stat = rustix::fs::statat(dir, path, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let nanos = |seconds: i64, nanos: u64| {
            seconds
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::try_from(nanos).unwrap_or_default())
        };
        Some(Self {
            device: stat.st_dev,
            inode: stat.st_ino,
            size: u64::try_from(stat.st_size).unwrap_or_default(),
            modified_ns: nanos(stat.st_mtime, stat.st_mtime_nsec),
            changed_ns: nanos(stat.st_ctime, stat.st_ctime_nsec),
        })
    }
}

/// The stamps of every file a lookup of one selector reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefStamps(Vec<(PathBuf, Option<Stamp>)>);

impl RefStamps {
    /// The stamps of what looking `selector` up in the repo of `dirs` reads.
    pub fn read(dirs: &GitDirs, selector: &RefSelector) -> Self {
        let common = &dirs.common_dir;
        let head = dirs.git_dir.join("HEAD");
        let mut paths = vec![head.clone(), common.join("packed-refs")];
        match selector {
            RefSelector::Head => {
                // The branch `HEAD` names, when it names one.
                if let Ok(text) = fs_err::read_to_string(&head)
                    && let Some(target) = text.trim_end().strip_prefix("ref: ")
                {
                    paths.push(common.join(target));
                }
            }
            RefSelector::Ref(name) => {
                for candidate in [
                    format!("refs/heads/{name}"),
                    format!("refs/tags/{name}"),
                    format!("refs/tags/v{name}"),
                    format!("refs/remotes/origin/{name}"),
                ] {
                    paths.push(common.join(candidate));
                }
            }
            // Tags come and go in their folder.
            RefSelector::Version(_) => paths.push(common.join("refs/tags")),
        }
        Self(
            paths
                .into_iter()
                .map(|path| {
                    let stamp = Stamp::of(&path);
                    (path, stamp)
                })
                .collect(),
        )
    }

    /// Whether the files are as they were when these stamps were read.
    ///
    /// The first file's folder (the Git folder) is opened once and the others found from
    /// there: the path down to the repo is walked once, not once per file, which is most of
    /// what a no-op run over a thousand repos costs.
    pub fn unchanged(&self) -> bool {
        let Some(base) = self.0.first().and_then(|(path, _)| path.parent()) else {
            return true;
        };
        let open = rustix::fs::open(
            base,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        self.0.iter().all(|(path, stamp)| {
            let now = match (&open, path.strip_prefix(base)) {
                (Ok(dir), Ok(relative)) => Stamp::at(dir, relative),
                _ => Stamp::of(path),
            };
            now == *stamp
        })
    }
}
