//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for PlanError {}
