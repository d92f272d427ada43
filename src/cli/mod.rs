//! The command line: parse, run one command, print, choose the exit code.
//!
//! Commands are thin: they call the library and hand its results to the [`Printer`].

mod args;
mod commands;
mod exit;
mod printer;

pub use args::{Cli, Command, GlobalArgs, PlanArgs};
pub use exit::ExitStatus;
pub use printer::Printer;

/// Runs the command `cli` names.
pub fn run(cli: &Cli) -> anyhow::Result<ExitStatus> {
    let printer = Printer::new(cli.global.quiet);
    match &cli.command {
        Command::Check => Ok(commands::check(&cli.global, printer)),
        Command::Plan(args) => commands::plan(&cli.global, args, printer),
    }
}
