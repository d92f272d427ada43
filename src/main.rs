//! The `packsync` binary: parse the arguments, set up logging, run one command.

use std::io::IsTerminal as _;
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

/// The crates whose `info` logs stay off unless `RUST_LOG` names them.
const NOISY_CRATES: [&str; 6] = ["pubgrub", "mongodb", "lapin", "notify", "git2", "tokio"];

/// Logs go to stderr: `quiet_default` by default, `-v` debug, `-vv` trace; `RUST_LOG`
/// overrides.
fn init_logging(verbose: u8, quiet_default: &str, format: LogFormat) {
    let default = match verbose {
        0 => quiet_default,
        1 => "packsync=debug",
        _ => "packsync=trace",
    };
    let asked = std::env::var("RUST_LOG").ok();
    let mut filter = EnvFilter::new(asked.as_deref().unwrap_or(default));
    // The crates packsync uses log at `info` what only their authors need (pubgrub's solver
    // steps flood `RUST_LOG=info`): `warn`, unless `RUST_LOG` names them.
    for noisy in NOISY_CRATES {
        if !asked.as_deref().is_some_and(|asked| asked.contains(noisy)) {
            filter = filter.add_directive(
                format!("{noisy}=warn")
                    .parse()
                    .expect("a valid log directive"),
            );
        }
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours on a terminal only: never escape codes in a log file or journald.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}
