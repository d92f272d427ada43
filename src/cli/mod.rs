//! The command line: parse, run one command, print, choose the exit code.
//!
//! Commands are thin: they call the library and hand its results to the [`Printer`].

mod args;
mod commands;
mod exit;
mod printer;

pub use args::{
    ApplyArgs, Cli, Command, GcArgs, GlobalArgs, HistoryArgs, ImportArgs, LockArgs, LogFormat,
    PlanArgs, ResumeArgs, RollbackArgs, StateCommand, StatusArgs, SuspendArgs,
};
pub use exit::ExitStatus;
pub use printer::Printer;

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
        Command::State(StateCommand::Import(args)) => {
            commands::import_state(&cli.global, args, printer)
        }
    }
}
