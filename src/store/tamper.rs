//! What the last `packsync verify` found (`state_dir/verify.json`), and the tampered releases
//! moved aside for inspection (`state_dir/tampered/`).
//!
//! `status` and `/metrics` show the last result; the plan builds a tampered live release again
//! from Git, and the run moves the tampered one aside before it does.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Layout, StoreError, io_error, set_owner_write};
use crate::fsx;
use crate::model::{PackName, ReleaseId};
use crate::source::FileChanges;

/// `state_dir/verify.json`.
const VERIFY_FILE: &str = "verify.json";
/// `state_dir/tampered/`.
const TAMPERED_DIR: &str = "tampered";

/// What one `packsync verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub at: jiff::Timestamp,
    /// Every live release checked, in the plan's order.
    pub packs: Vec<PackVerification>,
}

impl Verification {
    /// The releases found tampered.
    pub fn tampered(&self) -> impl Iterator<Item = &PackVerification> {
        self.packs.iter().filter(|pack| pack.tampered)
    }
}

/// What `packsync verify` found of one live release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackVerification {
    pub pack: PackName,
    pub release: ReleaseId,
    /// Something of it is not what it was built from.
    pub tampered: bool,
    /// Its pack tree's files that are not what Git has.
    #[serde(default)]
    pub files: FileChanges,
    /// What is wrong with its virtualenv.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// What kept it from being checked fully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PackVerification {
    /// One line: `2 files changed, 1 added, its virtualenv: ...`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (count, what) in [
            (self.files.changed.len(), "changed"),
            (self.files.added.len(), "added"),
            (self.files.removed.len(), "removed"),
        ] {
            if count > 0 {
                let files = if count == 1 { "file" } else { "files" };
                parts.push(format!("{count} {files} {what}"));
            }
        }
        if let Some(first) = self.env.first() {
            parts.push(format!("its virtualenv: {first}"));
        }
        if let Some(error) = &self.error {
            parts.push(error.clone());
        }
        parts.join(", ")
    }
}

/// The last verification, if one was recorded and can be read.
pub fn last_verification(state_dir: &Path) -> Option<Verification> {
    let bytes = fs_err::read(state_dir.join(VERIFY_FILE)).ok()?;
    serde_json::from_slice(&bytes)
        .inspect_err(|err| tracing::warn!(error = %err, "`verify.json` cannot be read; ignored"))
        .ok()
}

/// Records `verification` as the last one.
pub fn record_verification(state_dir: &Path, verification: &Verification) -> io::Result<()> {
    let mut json =
        serde_json::to_vec_pretty(verification).expect("a verification serialises to JSON");
    json.push(b'\n');
    fsx::write_atomic(&state_dir.join(VERIFY_FILE), &json)
}

/// The tampered live release `id` of `pack`, when the last verification found it so.
pub fn tampered(
    verification: Option<&Verification>,
    pack: &PackName,
    id: &ReleaseId,
) -> Option<PackVerification> {
    verification?
        .tampered()
        .find(|found| found.pack == *pack && found.release == *id)
        .cloned()
}

/// Moves the tampered release `id` of `pack` (and, when `env` is given, the virtualenv it
/// uses) into `state_dir/tampered/<time>-<pack>-<id>/` for inspection, and takes it out of
/// the last verification: what is built in its place is clean. Where it went.
pub fn set_aside(
    layout: &Layout,
    pack: &PackName,
    id: &ReleaseId,
    env: Option<&Path>,
) -> Result<PathBuf, StoreError> {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ");
    let aside = layout
        .state_dir
        .join(TAMPERED_DIR)
        .join(format!("{stamp}-{pack}-{id}"));
    fs_err::create_dir_all(&aside).map_err(io_error("create", &aside))?;
    let release = layout.release(pack, id).dir;
    if fsx::exists(&release).map_err(io_error("inspect", &release))? {
        // Moving a folder rewrites its `..`: the sealed folder is opened for that.
        set_owner_write(&release, true)?;
        let to = aside.join("release");
        fs_err::rename(&release, &to).map_err(io_error("move aside", &release))?;
    }
    if let Some(env) = env.filter(|env| env.exists()) {
        set_owner_write(env, true)?;
        let to = aside.join("env");
        fs_err::rename(env, &to).map_err(io_error("move aside", env))?;
    }
    if let Some(mut verification) = last_verification(&layout.state_dir) {
        verification
            .packs
            .retain(|found| !(found.pack == *pack && found.release == *id));
        record_verification(&layout.state_dir, &verification)
            .map_err(io_error("write", &layout.state_dir.join(VERIFY_FILE)))?;
    }
    Ok(aside)
}
