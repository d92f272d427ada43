//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for PackError {}
