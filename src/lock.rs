//! One run at a time per `state_dir`: an exclusive `flock` on `state_dir/lock`, which holds the
//! holder's PID for messages. The kernel drops the lock when its holder dies (even `kill -9`),
//! so a stale lock file is simply taken over.

use std::path::PathBuf;
use std::time::Duration;

use crate::diagnostics::Diagnose;

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
pub fn acquire(state_dir: &std::path::Path, wait: Option<Duration>) -> Result<RunLock, LockError> {
    let _ = (state_dir, wait);
    todo!()
}
