//! The file system watches of the agent: per pack source its Git directory (`HEAD`,
//! `packed-refs`, `refs/`, bare or not), the mirror folder and the site config file. An event
//! becomes a [`Trigger`]: a commit reconciles the packs of that repo, a mirror change every pack
//! (and the runners), a config change a reload.
//!
//! Places on a network file system, whose changes made on other hosts the kernel never sees,
//! are polled every `[watch] poll` (`[watch] mode` can also choose polling or the kernel for
//! all); where the kernel cannot watch (too many inotify watches), the rest falls back to
//! polling too, and the log says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use notify::event::{MetadataKind, ModifyKind};
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

use super::{Scope, Trigger};
use crate::config::{SiteConfig, WatchMode};
use crate::model::PackName;

/// The watches in place; dropping them stops them.
pub(super) struct Watches {
    _watchers: Vec<Box<dyn notify::Watcher + Send>>,
}

/// What a path under a watched place means.
#[derive(Debug, Clone)]
struct Targets {
    /// Git directory -> the packs from that repo.
    repos: BTreeMap<PathBuf, BTreeSet<PackName>>,
    mirror: PathBuf,
    config: PathBuf,
}

impl Targets {
    fn of(path: &Path, config: &SiteConfig) -> Self {
        let mut repos: BTreeMap<PathBuf, BTreeSet<PackName>> = BTreeMap::new();
        for pack in &config.packs {
            match git2::Repository::open(&pack.repo) {
                Ok(repo) => {
                    repos
                        .entry(repo.path().to_path_buf())
                        .or_default()
                        .insert(pack.name.clone());
                }
                Err(error) => {
                    tracing::warn!(pack = %pack.name, repo = %pack.repo.display(), %error, "not watched: not a Git repo");
                }
            }
        }
        Self {
            repos,
            mirror: config.mirror.path.clone(),
            config: path.to_path_buf(),
        }
    }

    /// The places to watch, each with its mode.
    fn places(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut places = Vec::new();
        for git_dir in self.repos.keys() {
            places.push((git_dir.clone(), RecursiveMode::NonRecursive));
            places.push((git_dir.join("refs"), RecursiveMode::Recursive));
        }
        places.push((self.mirror.clone(), RecursiveMode::NonRecursive));
        if let Some(folder) = self.config.parent() {
            places.push((folder.to_path_buf(), RecursiveMode::NonRecursive));
        }
        places
    }

    /// What a change of `path` means, if anything.
    fn trigger(&self, path: &Path) -> Option<Trigger> {
        if path == self.config {
            return Some(Trigger::Reload);
        }
        if path.parent() == Some(self.mirror.as_path()) {
            return Some(Trigger::Reconcile(Scope::Everything));
        }
        self.repos.iter().find_map(|(git_dir, packs)| {
            let rest = path.strip_prefix(git_dir).ok()?;
            // The refs and HEAD, not the index or objects: only commits count; and not a ref's
            // lock file, which becomes the ref by a rename once it is written.
            let counts = (rest.starts_with("refs")
                || rest == Path::new("HEAD")
                || rest == Path::new("packed-refs"))
                && rest.extension().is_none_or(|extension| extension != "lock");
            counts.then(|| Trigger::Commit(Scope::Packs(packs.clone())))
        })
    }
}

fn changes_content(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(
                ModifyKind::Data(_)
                    | ModifyKind::Name(_)
                    | ModifyKind::Any
                    // The poll watcher's word for a file rewritten in place (a ref a commit
                    // moved); the kernel's attribute changes are `Metadata(Any)`.
                    | ModifyKind::Metadata(MetadataKind::WriteTime)
            )
            | EventKind::Any
    )
}

impl Watches {
    /// Watches what `config` (read from `path`) reconciles, sending triggers to `sender`.
    pub(super) fn start(
        path: &Path,
        config: &SiteConfig,
        sender: UnboundedSender<Trigger>,
    ) -> Self {
        let targets = Targets::of(path, config);
        let handler = {
            let targets = targets.clone();
            move |event: notify::Result<Event>| match event {
                // Reads (packsync's own, of refs and the mirror) and metadata changes are no
                // changes of content.
                Ok(event) if !changes_content(event.kind) => {}
                Ok(event) => {
                    for path in &event.paths {
                        if let Some(trigger) = targets.trigger(path) {
                            tracing::debug!(path = %path.display(), ?trigger, "change seen");
                            // A closed channel: the agent is stopping.
                            let _ = sender.send(trigger);
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "file watch error"),
            }
        };
        let interval = config.watch.poll;
        let (mut polled, notified): (Vec<_>, Vec<_>) =
            targets
                .places()
                .into_iter()
                .partition(|(place, _)| match config.watch.mode {
                    WatchMode::Poll => true,
                    WatchMode::Notify => false,
                    WatchMode::Auto => network_file_system(place).is_some_and(|kind| {
                        tracing::info!(place = %place.display(), kind, ?interval, "polled: on a network file system");
                        true
                    }),
                });
        let mut watchers: Vec<Box<dyn notify::Watcher + Send>> = Vec::new();
        if !notified.is_empty() {
            match kernel_watcher(handler.clone(), &notified) {
                Ok(watcher) => {
                    tracing::info!(places = notified.len(), "watching for changes");
                    watchers.push(Box::new(watcher));
                }
                Err(error) => {
                    tracing::warn!(%error, ?interval, "cannot watch through the kernel; polling instead");
                    polled.extend(notified);
                }
            }
        }
        // Poll times are whole seconds, and two commits can come within one: the refs and the
        // config, small files, are compared by content too. The mirror's wheels are too big to
        // be read at every poll, and new wheels are new files.
        let (mirror, small): (Vec<_>, Vec<_>) = polled
            .into_iter()
            .partition(|(place, _)| *place == targets.mirror);
        for (places, compare_contents) in [(small, true), (mirror, false)] {
            if places.is_empty() {
                continue;
            }
            let polling = notify::Config::default()
                .with_poll_interval(interval)
                .with_compare_contents(compare_contents);
            match PollWatcher::new(handler.clone(), polling) {
                Ok(mut watcher) => {
                    for (place, mode) in &places {
                        if let Err(error) = watcher.watch(place, *mode) {
                            tracing::warn!(place = %place.display(), %error, "not watched");
                        }
                    }
                    tracing::info!(places = places.len(), ?interval, "polling for changes");
                    watchers.push(Box::new(watcher));
                }
                Err(error) => {
                    tracing::error!(%error, "cannot poll: only the schedule reconciles what is not watched");
                }
            }
        }
        Self {
            _watchers: watchers,
        }
    }
}

/// One kernel watcher for all `places`, or why it cannot be had (the inotify limits).
fn kernel_watcher(
    handler: impl notify::EventHandler,
    places: &[(PathBuf, RecursiveMode)],
) -> Result<RecommendedWatcher, String> {
    let mut watcher = RecommendedWatcher::new(handler, notify::Config::default())
        .map_err(|error| error.to_string())?;
    for (place, mode) in places {
        watcher
            .watch(place, *mode)
            .map_err(|error| format!("`{}`: {error}", place.display()))?;
    }
    Ok(watcher)
}

/// The file systems whose changes made on another host the kernel of this one never notifies:
/// `statfs(2)`'s `f_type`, as in `linux/magic.h` and the file systems' own headers.
const NETWORK_FILE_SYSTEMS: [(u32, &str); 14] = [
    (0x0000_6969, "nfs"),
    (0x0000_517b, "smb"),
    (0xff53_4d42, "cifs"),
    (0xfe53_4d42, "smb2"),
    (0x00c3_6400, "ceph"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x5346_414f, "afs"),
    (0x7461_636f, "ocfs2"),
    (0x0116_1970, "gfs2"),
    (0x0bd0_0bd0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0xaad7_aaea, "panfs"),
    (0x1983_0326, "beegfs"),
];

/// The kind of network file system `place` is on, if it is on one.
fn network_file_system(place: &Path) -> Option<&'static str> {
    let stat = rustix::fs::statfs(place).ok()?;
    // `f_type` is a signed or unsigned word depending on the architecture; the magic numbers
    // are its low 32 bits.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let magic = stat.f_type as u32;
    NETWORK_FILE_SYSTEMS
        .iter()
        .find(|(known, _)| *known == magic)
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_file_systems_are_not_polled() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(network_file_system(dir.path()), None);
        assert_eq!(network_file_system(Path::new("/proc")), None);
        assert_eq!(network_file_system(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_moved_ref_is_a_commit_its_lock_file_and_the_objects_are_not() {
        let pack = PackName::new("clush".to_string()).unwrap();
        let targets = Targets {
            repos: BTreeMap::from([(
                PathBuf::from("/git/clush/.git"),
                BTreeSet::from([pack.clone()]),
            )]),
            mirror: PathBuf::from("/srv/wheels"),
            config: PathBuf::from("/etc/packsync/packsync.toml"),
        };
        let commit = Some(Trigger::Commit(Scope::Packs(BTreeSet::from([pack]))));
        for path in ["refs/heads/main", "HEAD", "packed-refs", "refs/tags/v1.0.0"] {
            assert_eq!(
                targets.trigger(&Path::new("/git/clush/.git").join(path)),
                commit,
                "{path}"
            );
        }
        for path in [
            "refs/heads/main.lock",
            "HEAD.lock",
            "index",
            "objects/ab/cdef",
        ] {
            assert_eq!(
                targets.trigger(&Path::new("/git/clush/.git").join(path)),
                None,
                "{path}"
            );
        }
        assert_eq!(
            targets.trigger(Path::new("/srv/wheels/six-1.17.0-py2.py3-none-any.whl")),
            Some(Trigger::Reconcile(Scope::Everything))
        );
    }

    #[test]
    fn a_rewritten_file_is_a_change_an_attribute_or_a_read_is_not() {
        assert!(changes_content(EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::WriteTime
        ))));
        assert!(!changes_content(EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
        assert!(!changes_content(EventKind::Access(
            notify::event::AccessKind::Any
        )));
    }
}
