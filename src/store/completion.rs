//! The completion record of a built folder (a virtualenv, a runner set, a runner wheel):
//! `.complete`, written last, after everything else in the folder is on disk and verified.
//!
//! A folder is finished when, and only when, its record is there and names the inputs the
//! folder is for. Never the absence of something: a process that outlived a crashed run can
//! write into a folder without leaving a marker, but it cannot write this record.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsx;
use crate::model::Digest;

/// The record's file name inside the folder it completes.
pub const COMPLETE_RECORD: &str = ".complete";

/// What a finished folder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The digest of the inputs the folder was built from (for a virtualenv, its env digest).
    pub digest: Digest,
    /// Every distribution installed in it, as verified against its `RECORD`.
    #[serde(default)]
    pub dists: Vec<VerifiedDist>,
    /// The entries of the compiled-distribution store (`dist/`) whose files the folder links
    /// to; `gc` keeps those.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_entries: Vec<String>,
}

/// One distribution found installed and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedDist {
    pub name: String,
    pub version: String,
    /// Files whose sha256 its `RECORD` gives and that were found with it.
    pub files: usize,
}

/// The record of `dir`; `None` when it has none (unfinished) or one that cannot be read.
pub fn read_completion(dir: &Path) -> Option<Completion> {
    let bytes = fs_err::read(dir.join(COMPLETE_RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `dir` is finished and built from the inputs `digest`.
pub fn is_complete(dir: &Path, digest: &Digest) -> bool {
    read_completion(dir).is_some_and(|completion| &completion.digest == digest)
}

/// Writes the record into `dir` (which must still be writable) durably, in one rename.
pub fn write_completion(dir: &Path, completion: &Completion) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(completion).expect("a completion record serialises");
    json.push(b'\n');
    let path = dir.join(COMPLETE_RECORD);
    fsx::write_atomic(&path, &json)?;
    fsx::make_read_only(&path)
}
