//! The `packsync` binary: parse the arguments, set up logging, run one command.

use std::process::ExitCode;

use clap::Parser as _;
use packsync::cli::{self, Cli, ExitStatus, Printer};
use packsync::diagnostics::{Problem, Report, Severity};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    match cli::run(&cli) {
        Ok(status) => status.into(),
        Err(err) => {
            let report = Report::new(err.as_ref());
            Printer::new(false).problem(&Problem {
                severity: Severity::Error,
                report,
            });
            ExitStatus::Failure.into()
        }
    }
}

/// Logs go to stderr: `warn` by default, `-v` debug, `-vv` trace; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "packsync=debug",
        _ => "packsync=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
