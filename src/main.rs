//! The `packsync` binary: parse the arguments, set up logging, run one command.

use std::process::ExitCode;

use clap::Parser as _;
use packsync::cli::{self, Cli, Command, ExitStatus, LogFormat, Printer};
use packsync::diagnostics::{Problem, Severity};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print on stdout and succeed; any other is a usage error.
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitStatus::Usage.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The agent says what it does; a one-shot command only what went wrong.
    let quiet_default = if matches!(cli.command, Command::Run) {
        "packsync=info"
    } else {
        "warn"
    };
    init_logging(cli.global.verbose, quiet_default, cli.global.log_format);
    match cli::run(&cli) {
        Ok(status) => status.into(),
        Err(err) => {
            let report = cli::report(&err);
            Printer::new(false).problem(&Problem {
                severity: Severity::Error,
                report,
            });
            ExitStatus::Failure.into()
        }
    }
}

/// Logs go to stderr: `quiet_default` by default, `-v` debug, `-vv` trace; `RUST_LOG`
/// overrides.
fn init_logging(verbose: u8, quiet_default: &str, format: LogFormat) {
    let default = match verbose {
        0 => quiet_default,
        1 => "packsync=debug",
        _ => "packsync=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}
