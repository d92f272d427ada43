//! Checks of what a pack carries, done the way StackStorm does them, before anything is installed:
//! `pack.yaml` ([`parse_metadata`]), `config.schema.yaml` and the pack config values
//! ([`parse_config_schema`], [`ConfigSchema::check`]) and `requirements.txt`
//! ([`parse_requirements`]); and what StackStorm registers from its files ([`content`]).
//!
//! Nothing here does I/O: the caller reads the files (from a Git tree) and hands over their text
//! with a label (`repo@commit:path`) that errors and locations name.

mod config_schema;
pub mod content;
mod metadata;
mod requirements;

pub use config_schema::{ConfigProblem, ConfigSchema, SchemaProblem, parse_config_schema};
pub use metadata::{MetadataProblem, PackDependency, PackMetadata, parse_metadata};
pub use requirements::{RequirementLine, RequirementProblem, Requirements, parse_requirements};

use crate::diagnostics::{Diagnose, Location};

/// Why a pack file is refused. The `problem` types say what is wrong and how to fix it.

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("Invalid YAML in `{file}`")]
    Yaml {
        file: String,
        #[source]
        source: crate::yaml::YamlError,
        location: Option<Box<Location>>,
    },
    #[error("Invalid pack metadata in `{file}`: {problem}")]
    Metadata {
        file: String,
        problem: MetadataProblem,
        location: Box<Location>,
    },
    #[error("Invalid config schema in `{file}`: {problem}")]
    ConfigSchema {
        file: String,
        problem: SchemaProblem,
        location: Box<Location>,
    },
    #[error("Cannot use line {line} of `{file}`: {problem}")]
    Requirements {
        file: String,
        line: usize,
        problem: RequirementProblem,
        location: Box<Location>,
    },
    #[error("Failed to read `{file}`")]
    Read {
        file: String,
        #[source]
        source: crate::diagnostics::Cause,
    },
}

impl Diagnose for PackError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Yaml { .. } | Self::Read { .. } => None,
            Self::Metadata { problem, .. } => problem.hint(),
            Self::ConfigSchema { problem, .. } => problem.hint(),
            Self::Requirements { problem, .. } => Some(problem.hint()),
        }
    }

    fn location(&self) -> Option<&Location> {
        match self {
            Self::Yaml { location, .. } => location.as_deref(),
            Self::Metadata { location, .. }
            | Self::ConfigSchema { location, .. }
            | Self::Requirements { location, .. } => Some(&**location),
            Self::Read { .. } => None,
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The text of a YAML file as StackStorm opens it: UTF-8 (anything else fails with
/// `UnicodeDecodeError` in st2), refused at the first byte that is not.
pub fn yaml_text(bytes: Vec<u8>, file: &str) -> Result<String, PackError> {
    String::from_utf8(bytes).map_err(|err| {
        let bytes = err.into_bytes();
        let source = crate::yaml::load(&bytes).expect_err("not UTF-8");
        // The text before the offending byte is the same in the lossy copy.
        let text = String::from_utf8_lossy(&bytes);
        let offset = source.offset;
        PackError::Yaml {
            file: file.to_owned(),
            location: Some(Box::new(Location::at(file, &text, offset..offset))),
            source,
        }
    })
}

/// Parses YAML text as StackStorm does (PyYAML, YAML 1.1), with the error pointing at the
/// offending position.
fn parse_yaml(text: &str, file: &str) -> Result<serde_json::Value, PackError> {
    crate::yaml::load_str(text).map_err(|source| PackError::Yaml {
        file: file.to_owned(),
        location: Some(Box::new(Location::at(
            file,
            text,
            source.offset..source.offset + 1,
        ))),
        source,
    })
}
