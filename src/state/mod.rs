//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for StateError {}
