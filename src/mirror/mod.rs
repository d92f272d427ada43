//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for MirrorError {}
