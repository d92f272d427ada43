//! StackStorm hooks: the `[stackstorm]` commands (`test`, `register`, `unregister`), run as
//! argv lists without a shell, with `{placeholder}`s filled in per pack. The contract is the
//! argv and the exit code.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::config::CommandTemplate;
use crate::diagnostics::Diagnose;
use crate::model::PackName;

/// Which hook runs; names the step in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Test,
    Register,
    Unregister,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Test => "test",
            Hook::Register => "register",
            Hook::Unregister => "unregister",
        })
    }
}

/// The values of the placeholders for one pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    pub pack: PackName,
    /// `packs_dir/<pack>`.
    pub pack_dir: PathBuf,
    /// The release's own pack tree (staged before the switch).
    pub release_dir: PathBuf,
    pub venv_dir: PathBuf,
    pub config_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Cannot run the `{hook}` command `{program}` for pack `{pack}`")]
    Spawn {
        hook: Hook,
        pack: PackName,
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// `output` is the end of what the command printed (stdout and stderr).
    #[error("The `{hook}` command for pack `{pack}` failed ({status}): {command}")]
    Failed {
        hook: Hook,
        pack: PackName,
        command: String,
        status: ExitStatus,
        output: String,
    },
}

impl Diagnose for EngineError {}

/// Runs `template` for the pack in `values`; its output is logged at debug level and, when it
/// fails, kept in the error.
pub fn run(
    hook: Hook,
    template: &CommandTemplate,
    values: &Placeholders,
) -> Result<(), EngineError> {
    let _ = (hook, template, values);
    todo!()
}
