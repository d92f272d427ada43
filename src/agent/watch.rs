//! The file system watches of the agent: per pack source its Git directory (`HEAD`,
//! `packed-refs`, `refs/`, bare or not), the mirror folder and the site config file. An event
//! becomes a [`Trigger`]: a commit reconciles the packs of that repo, a mirror change every pack
//! (and the runners), a config change a reload.
//!
//! Where the kernel cannot watch (too many inotify watches, a network file system), the whole
//! set falls back to polling every `[watch] poll`, and the log says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use notify::event::ModifyKind;
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

use super::{Scope, Trigger};
use crate::config::SiteConfig;
use crate::model::PackName;

/// The watches in place; dropping them stops them.
pub(super) struct Watches {
    _watcher: Option<Box<dyn notify::Watcher + Send>>,
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
            // The refs and HEAD, not the index or objects: only commits count.
            let counts = rest.starts_with("refs")
                || rest == Path::new("HEAD")
                || rest == Path::new("packed-refs");
            counts.then(|| Trigger::Reconcile(Scope::Packs(packs.clone())))
        })
    }
}

fn changes_content(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
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
        let places = targets.places();
        let kernel = RecommendedWatcher::new(handler.clone(), notify::Config::default())
            .map_err(|error| error.to_string())
            .and_then(|mut watcher| {
                for (place, mode) in &places {
                    watcher
                        .watch(place, *mode)
                        .map_err(|error| format!("`{}`: {error}", place.display()))?;
                }
                Ok(watcher)
            });
        let watcher: Box<dyn notify::Watcher + Send> = match kernel {
            Ok(watcher) => {
                tracing::info!(places = places.len(), "watching for changes");
                Box::new(watcher)
            }
            Err(error) => {
                let interval = config.watch.poll;
                tracing::warn!(%error, ?interval, "cannot watch through the kernel; polling instead");
                let polling = notify::Config::default().with_poll_interval(interval);
                match PollWatcher::new(handler, polling) {
                    Ok(mut watcher) => {
                        for (place, mode) in &places {
                            if let Err(error) = watcher.watch(place, *mode) {
                                tracing::warn!(place = %place.display(), %error, "not watched");
                            }
                        }
                        Box::new(watcher)
                    }
                    Err(error) => {
                        tracing::error!(%error, "no watch at all: only the schedule reconciles");
                        return Self { _watcher: None };
                    }
                }
            }
        };
        Self {
            _watcher: Some(watcher),
        }
    }
}
