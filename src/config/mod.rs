//! Stub: replaced by the real module.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("stub")]
    Stub,
}

impl crate::diagnostics::Diagnose for ConfigError {}
