//! The command line: parse, run one command, print, choose the exit code.
//!
//! Commands are thin: they call the library and hand its results to the [`Printer`].

mod args;
mod commands;
mod exit;
mod printer;
mod progress;

pub use args::{
    ApplyArgs, Cli, Command, GcArgs, GlobalArgs, HistoryArgs, ImportArgs, LockArgs, LogFormat,
    PlanArgs, ProgressMode, ResumeArgs, RollbackArgs, StateCommand, StatusArgs, SuspendArgs,
    VerifyArgs,
};
pub use exit::ExitStatus;
pub use printer::Printer;
pub(crate) use progress::ProgressView;

use crate::diagnostics::{Diagnose, Report};

/// The report of an error a command ended with. This is the top of the crate, which may know
/// every module's error type: the first of them in the chain says what it knows beyond its
/// message (the chain above it is context the command added).
pub fn report(err: &anyhow::Error) -> Report {
    let report = Report::plain(err.as_ref());
    match err.chain().find_map(as_diagnose) {
        Some(diagnose) => report.diagnosed(diagnose),
        None => report,
    }
}

fn as_diagnose<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn Diagnose> {
    macro_rules! known {
        ($($ty:ty),* $(,)?) => {
            $(if let Some(err) = err.downcast_ref::<$ty>() {
                return Some(err);
            })*
        };
    }
    known!(
        crate::execute::ExecuteError,
        crate::execute::StepError,
        crate::state::StateError,
        crate::lock::LockError,
        crate::agent::AgentError,
        crate::config::ConfigError,
        crate::store::StoreError,
        crate::runners::RunnerError,
        crate::fleet::FleetError,
        crate::env::EnvError,
        crate::engine::EngineError,
        crate::source::SourceError,
        crate::python::PythonError,
        crate::mirror::MirrorError,
        crate::activate::ActivateError,
        crate::pack::PackError,
    );
    None
}

/// Runs the command `cli` names.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    let printer = Printer::new(cli.global.quiet);
    match &cli.command {
        Command::Check => Ok(commands::check(&cli.global, printer)),
        Command::Plan(args) => commands::plan(&cli.global, args, printer),
        Command::Apply(args) => commands::apply(&cli.global, args, printer),
        Command::Run => commands::run(&cli.global, printer),
        Command::Suspend(args) => commands::suspend(&cli.global, args, printer),
        Command::Resume(args) => commands::resume(&cli.global, args, printer),
        Command::Status(args) => commands::status(&cli.global, args, printer),
        Command::History(args) => commands::history(&cli.global, args, printer),
        Command::Rollback(args) => commands::rollback(&cli.global, args, printer),
        Command::Gc(args) => commands::gc(&cli.global, args, printer),
        Command::Verify(args) => commands::verify(&cli.global, args, printer),
        Command::State(StateCommand::Import(args)) => {
            commands::import_state(&cli.global, args, printer)
        }
        Command::Completions(args) => Ok(commands::completions(args.shell)),
        Command::Man(args) => commands::man(args.command.as_deref()),
    }
}
