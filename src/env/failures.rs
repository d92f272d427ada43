//! The memo of failed virtualenv builds, `state_dir/failed-builds.json`: a build that failed
//! (an sdist that does not compile, an installer that refuses the files) is not tried again
//! with the same inputs and installer before its retry time, so a timer or the agent does not
//! spend minutes compiling the same failure on every run.
//!
//! Keyed by env digest and installer, so identical inputs in another pack share the memo. The
//! wait starts at `[agent] build_retry` and doubles with each failure in a row, up to
//! `build_retry_max`; new inputs are a new key, and `--retry-failed` ignores the memo.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::EnvError;
use crate::config::{Installer, SiteConfig};
use crate::diagnostics::Report;
use crate::fsx;
use crate::model::{Digest, EnvInputs, FailedBuild};

const MEMO_FILE: &str = "failed-builds.json";
/// Lines of the error kept as the cause.
const CAUSE_LINES: usize = 3;

/// The memo of one host's failed builds.
#[derive(Debug)]
pub struct FailedBuilds {
    path: PathBuf,
    installer: &'static str,
    first_wait: Duration,
    longest_wait: Duration,
    /// Steps of one run record their outcomes from several threads; the keys that failed in
    /// this run (since the memo was opened) are kept apart.
    entries: Mutex<(BTreeMap<String, FailedBuild>, BTreeSet<String>)>,
}

impl FailedBuilds {
    /// The memo of the site's `state_dir`, as it is on disk now.
    pub fn open(config: &SiteConfig) -> Self {
        Self::at(
            &config.agent.state_dir,
            &config.mirror.installer,
            config.agent.build_retry,
            config.agent.build_retry_max,
        )
    }

    /// The memo in `state_dir` for builds with `installer`, waiting `first_wait` after a first
    /// failure, doubling up to `longest_wait` (empty when unreadable: a lost memo only costs
    /// one more build).
    pub(super) fn at(
        state_dir: &std::path::Path,
        installer: &Installer,
        first_wait: Duration,
        longest_wait: Duration,
    ) -> Self {
        let path = state_dir.join(MEMO_FILE);
        let entries = fs_err::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path,
            installer: match installer {
                Installer::Pip => "pip",
                Installer::Uv(_) => "uv",
            },
            first_wait,
            longest_wait,
            entries: Mutex::new((entries, BTreeSet::new())),
        }
    }

    /// The failure of a build of `digest` in this run (since the memo was opened): another
    /// pack with the same inputs fails with it rather than building again.
    pub(super) fn failed_in_this_run(&self, digest: &Digest) -> Option<FailedBuild> {
        let key = self.key(digest);
        let entries = self.lock();
        entries
            .1
            .contains(&key)
            .then(|| entries.0.get(&key).cloned())
            .flatten()
    }

    /// The failed build of `digest` whose retry time is after `now`.
    pub fn holding(&self, digest: &Digest, now: jiff::Timestamp) -> Option<FailedBuild> {
        self.lock()
            .0
            .get(&self.key(digest))
            .filter(|failed| failed.retry_after > now)
            .cloned()
    }

    /// Remembers how a build of `inputs` ended: a failure of the build itself is kept with its
    /// next retry time, a success forgets earlier failures. Errors that are not the build's
    /// (a file swapped in the mirror, a disk error) are not remembered.
    pub(super) fn remember(&self, inputs: &EnvInputs, error: Option<&EnvError>) {
        let digest = inputs.digest();
        match error {
            None => self.forget(&digest),
            Some(
                error @ (EnvError::Venv { .. }
                | EnvError::Install { .. }
                | EnvError::Unverified { .. }),
            ) => self.failed(&digest, &Report::new(error)),
            Some(_) => {}
        }
    }

    /// Remembers that what `digest` names (a virtualenv, a runner set) failed with `report`:
    /// it waits for its retry time, one step longer with each failure in a row.
    pub fn failed(&self, digest: &Digest, report: &Report) {
        let key = self.key(digest);
        let mut guard = self.lock();
        let (entries, failed_here) = &mut *guard;
        let now = crate::model::now();
        let failures = entries.get(&key).map_or(0, |f| f.failures) + 1;
        let wait = self
            .first_wait
            .saturating_mul(2_u32.saturating_pow(failures - 1))
            .min(self.longest_wait);
        let retry_after = jiff::SignedDuration::try_from(wait)
            .ok()
            .and_then(|wait| now.checked_add(wait).ok())
            .unwrap_or(jiff::Timestamp::MAX);
        failed_here.insert(key.clone());
        entries.insert(
            key,
            FailedBuild {
                failures,
                failed_at: now,
                retry_after,
                cause: cause(report),
            },
        );
        self.save(entries);
    }

    /// Forgets the failures of `digest` (it succeeded).
    pub fn forget(&self, digest: &Digest) {
        let key = self.key(digest);
        let mut guard = self.lock();
        let (entries, failed_here) = &mut *guard;
        failed_here.remove(&key);
        if entries.remove(&key).is_some() {
            self.save(entries);
        }
    }

    fn save(&self, entries: &BTreeMap<String, FailedBuild>) {
        let json = serde_json::to_vec_pretty(entries).expect("the memo serialises");
        if let Err(err) = fsx::write_atomic(&self.path, &json) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot write the memo of failed builds");
        }
    }

    fn key(&self, digest: &Digest) -> String {
        format!("{digest} {}", self.installer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (BTreeMap<String, FailedBuild>, BTreeSet<String>)> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The first lines of the error and its causes, one line.
fn cause(report: &Report) -> String {
    let text = report.one_line();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(CAUSE_LINES)
        .collect();
    lines.join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> EnvError {
        EnvError::Unverified {
            dir: PathBuf::from("/state/envs/0123"),
            problems: vec!["lxml==4.6.5 is missing".into()],
        }
    }

    fn inputs(requirement: &str) -> EnvInputs {
        EnvInputs {
            python: "cpython-3.11".into(),
            settings: Vec::new(),
            requirements: vec![requirement.into()],
            pins: Vec::new(),
        }
    }

    #[test]
    fn the_wait_doubles_up_to_the_longest_and_a_success_forgets() {
        let state = tempfile::tempdir().unwrap();
        let memo = FailedBuilds::at(
            state.path(),
            &Installer::Pip,
            Duration::from_mins(5),
            Duration::from_mins(12),
        );
        let lxml = inputs("lxml==4.6.5");
        let now = crate::model::now();
        let mut waits = Vec::new();
        for _ in 0..3 {
            memo.remember(&lxml, Some(&failure()));
            let held = memo.holding(&lxml.digest(), now).unwrap();
            waits.push(held.failed_at.duration_until(held.retry_after).as_mins());
            assert!(
                held.cause.contains("lxml==4.6.5 is missing"),
                "{}",
                held.cause
            );
        }
        assert_eq!(waits, [5, 10, 12]);
        assert_eq!(memo.holding(&inputs("lxml==5").digest(), now), None);
        let later = now + jiff::SignedDuration::from_mins(13);
        assert_eq!(
            memo.holding(&lxml.digest(), later),
            None,
            "its time has come"
        );

        assert!(memo.failed_in_this_run(&lxml.digest()).is_some());
        // Read back from disk by the next run; with uv, the same inputs are another build.
        let next_run = FailedBuilds::at(
            state.path(),
            &Installer::Pip,
            Duration::ZERO,
            Duration::ZERO,
        );
        assert_eq!(next_run.holding(&lxml.digest(), now).unwrap().failures, 3);
        assert_eq!(next_run.failed_in_this_run(&lxml.digest()), None);
        let uv = Installer::Uv(PathBuf::from("uv"));
        let with_uv = FailedBuilds::at(state.path(), &uv, Duration::ZERO, Duration::ZERO);
        assert_eq!(with_uv.holding(&lxml.digest(), now), None);

        memo.remember(&lxml, None);
        assert_eq!(memo.holding(&lxml.digest(), now), None);
        // A swapped mirror file is not the build's failure.
        let swapped = EnvError::Swapped {
            path: PathBuf::from("/mirror/x.whl"),
            expected: "0".into(),
            actual: "1".into(),
        };
        memo.remember(&lxml, Some(&swapped));
        assert_eq!(memo.holding(&lxml.digest(), now), None);
    }
}
