//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for SourceError {}
