//! Going live: the per-pack `current` link switched by one `rename(2)`, and the stable links
//! StackStorm reads through it.
//!
//! ```text
//! packs_dir/<pack>        -> state_dir/current/<pack>/pack/<pack>
//! virtualenvs_dir/<pack>  -> state_dir/current/<pack>/venv
//! configs_dir/<pack>.yaml -> state_dir/current/<pack>/config.yaml   (when the release has one)
//! ```
//! The stable links are created once and never change; switching `current/<pack>` changes the
//! pack tree, its virtualenv and its config together. A real folder that `st2 pack install`
//! left at a stable path is moved under `state_dir/adopted/` (never deleted) and replaced by
//! the link in one `renameat2(RENAME_EXCHANGE)` where the filesystem supports it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diagnostics::Diagnose;
use crate::model::{PackName, ReleaseId};
use crate::store::Layout;

/// A folder or file moved aside to make room for a stable link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// Where it was (`packs_dir/<pack>`, ...).
    pub from: PathBuf,
    /// Where it is now, under `state_dir/adopted/`.
    pub to: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("Failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` points at `{}`, which is not a release of pack `{pack}`", link.display(), target.display())]
    Foreign {
        pack: PackName,
        link: PathBuf,
        target: PathBuf,
    },
}

impl Diagnose for ActivateError {
    fn hint(&self) -> Option<String> {
        match self {
            ActivateError::Io { .. } => None,
            ActivateError::Foreign { link, .. } => Some(format!(
                "packsync manages this link; remove `{}` and run apply again",
                link.display()
            )),
        }
    }
}

/// The release `current/<pack>` points at, `None` when the pack is not live.
pub fn active(layout: &Layout, pack: &PackName) -> Result<Option<ReleaseId>, ActivateError> {
    let _ = (layout, pack);
    todo!()
}

/// Makes release `id` (sealed) the live one of `pack`: `current/<pack>` is replaced in one
/// rename and the folder fsynced.
pub fn switch(layout: &Layout, pack: &PackName, id: &ReleaseId) -> Result<(), ActivateError> {
    let _ = (layout, pack, id);
    todo!()
}

/// Makes sure the stable links of `pack` exist and go through `current/<pack>`; the config
/// link only when `has_config` (otherwise an existing one of packsync's is removed). Real
/// folders or files in the way are moved to `state_dir/adopted/<pack>-<time>/`; the moves are
/// returned. Idempotent.
pub fn link(
    layout: &Layout,
    pack: &PackName,
    has_config: bool,
) -> Result<Vec<Adoption>, ActivateError> {
    let _ = (layout, pack, has_config);
    todo!()
}

/// Takes `pack` offline: removes its stable links (only those that are packsync's), then
/// `current/<pack>`. Releases stay. Idempotent.
pub fn unlink(layout: &Layout, pack: &PackName) -> Result<(), ActivateError> {
    let _ = (layout, pack);
    todo!()
}

/// Puts adopted folders back where they were, replacing the links (the rollback of a first
/// install that took over a pack).
pub fn restore(adoptions: &[Adoption]) -> Result<(), ActivateError> {
    let _ = adoptions;
    todo!()
}
