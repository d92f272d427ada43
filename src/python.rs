//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for PythonError {}
