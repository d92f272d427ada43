//! `completions` and `man`: what the shell and `man` know of packsync, generated from the
//! command-line definition itself, so that they never drift from `--help`.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::{Cli, ExitStatus};

/// Writes the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> ExitStatus {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "packsync", &mut std::io::stdout());
    ExitStatus::Success
}

/// Writes the manual page on stdout: `packsync(1)`, or with a command `packsync-COMMAND(1)`,
/// as git and cargo name theirs.
pub(crate) fn man(command: Option<&str>) -> anyhow::Result<ExitStatus> {
    let cli = Cli::command();
    let page = match command {
        None => cli,
        Some(name) => {
            let Some(sub) = cli.find_subcommand(name) else {
                let names: Vec<&str> = cli.get_subcommands().map(clap::Command::get_name).collect();
                // A usage error, as clap reports (and exits 64 for) the others.
                let message = format!(
                    "packsync has no command `{name}` (one of {})",
                    names.join(", ")
                );
                Cli::command()
                    .error(clap::error::ErrorKind::InvalidValue, message)
                    .print()?;
                return Ok(ExitStatus::Usage);
            };
            // The page's name and its synopsis say `packsync-COMMAND`, `packsync COMMAND`.
            sub.clone()
                .name(format!("packsync-{name}"))
                .bin_name(format!("packsync {name}"))
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    std::io::stdout().write_all(&roff)?;
    Ok(ExitStatus::Success)
}
