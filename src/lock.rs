//! One run at a time per `state_dir`: an exclusive `flock` on `state_dir/lock`, which holds the
//! holder's PID for messages. The kernel drops the lock when its holder dies (even `kill -9`),
//! so a stale lock file is simply taken over.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::diagnostics::Diagnose;

/// The lock file in `state_dir`.
const LOCK_FILE: &str = "lock";

/// How often a waiting run tries again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: fs_err::File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Another packsync run holds `{}`{}", path.display(), holder.map(|pid| format!(" (PID {pid})")).unwrap_or_default())]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("Failed to lock `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for LockError {
    fn hint(&self) -> Option<String> {
        match self {
            LockError::Held { .. } => {
                Some("wait for it to finish, or pass `--wait-for-lock SECONDS` to wait".to_string())
            }
            LockError::Io { .. } => None,
        }
    }
}

/// Takes the lock of `state_dir` (created when missing), waiting up to `wait` for a holder to
/// finish; `None` does not wait.
pub fn acquire(state_dir: &Path, wait: Option<Duration>) -> Result<RunLock, LockError> {
    let path = state_dir.join(LOCK_FILE);
    let io_error = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    fs_err::create_dir_all(state_dir).map_err(io_error)?;
    // Not truncated on open: until the lock is ours, the PID inside is the holder's.
    let mut file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error)?;
    let deadline = wait.map(|wait| Instant::now() + wait);
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(errno) if errno == Errno::WOULDBLOCK => {
                if deadline.is_some_and(|deadline| Instant::now() < deadline) {
                    std::thread::sleep(RETRY_EVERY);
                    continue;
                }
                return Err(LockError::Held {
                    holder: holder(&mut file),
                    path,
                });
            }
            Err(errno) => return Err(io_error(errno.into())),
        }
    }
    write_pid(&mut file).map_err(io_error)?;
    tracing::debug!(path = %path.display(), "run lock taken");
    Ok(RunLock { _file: file })
}

/// The PID the holder wrote, when it is there and readable (it may be between truncating and
/// writing).
fn holder(file: &mut fs_err::File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut fs_err::File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    // Not synced: the PID is for the processes that find the lock taken, which read it from
    // the page cache; after a crash the lock is free whatever the file says.
    writeln!(file, "{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_in(state_dir: &Path) -> String {
        fs_err::read_to_string(state_dir.join(LOCK_FILE)).unwrap()
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let held = acquire(&state_dir, None).unwrap();
        assert_eq!(pid_in(&state_dir), format!("{}\n", std::process::id()));

        // flock locks belong to open file descriptions, so a second open in the same process
        // conflicts like another process would.
        let err = acquire(&state_dir, Some(Duration::from_millis(250))).unwrap_err();
        match &err {
            LockError::Held { path, holder } => {
                assert_eq!(path, &state_dir.join(LOCK_FILE));
                assert_eq!(*holder, Some(std::process::id()));
            }
            LockError::Io { .. } => panic!("unexpected {err:?}"),
        }
        assert!(
            err.to_string()
                .ends_with(&format!("(PID {})", std::process::id())),
            "{err}"
        );
        // The failed attempt left the holder's PID alone.
        assert_eq!(pid_in(&state_dir), format!("{}\n", std::process::id()));

        drop(held);
        acquire(&state_dir, None).unwrap();
    }

    #[test]
    fn a_waiting_run_gets_the_lock_when_the_holder_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path(), None).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let started = Instant::now();
        let lock = acquire(dir.path(), Some(Duration::from_secs(10)));
        releaser.join().unwrap();
        lock.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn a_lock_file_left_by_a_dead_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join(LOCK_FILE), "999999").unwrap();
        let _lock = acquire(dir.path(), None).unwrap();
        assert_eq!(pid_in(dir.path()), format!("{}\n", std::process::id()));
    }
}
