//! Stub: replaced by the real module.
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Remote source `{0}`")]
    Remote(String),
}

impl crate::diagnostics::Diagnose for SourceError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefSelector {
    Head,
    Ref(String),
    Version(semver::VersionReq),
}

pub fn local_path(source: &str, base_dir: &Path) -> Result<PathBuf, SourceError> {
    if source.contains("://") && !source.starts_with("file://") {
        return Err(SourceError::Remote(source.into()));
    }
    Ok(base_dir.join(source.trim_start_matches("file://")))
}
