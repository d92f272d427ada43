//! Every flag of the command line. The doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::PackName;

/// Deploys StackStorm packs from local Git repos the GitOps way: immutable releases, offline
/// virtualenvs, one atomic switch per pack.
#[derive(Debug, Parser)]
#[command(
    name = "packsync",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The site config file
    #[arg(
        long,
        global = true,
        env = "PACKSYNC_CONFIG",
        default_value = "/etc/packsync/packsync.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Log more (repeat for even more); `RUST_LOG` overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// How logs are written on stderr: `text` for a terminal, `json` (one object per line) for
    /// journald or ELK
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How `apply` and `rollback` show their progress on stderr: `live` lines per pack (on a
    /// terminal), `plain` lines as each phase begins (CI, Puppet, systemd), `none`; `auto`
    /// picks `live` on a terminal and `plain` elsewhere
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PACKSYNC_PROGRESS",
        hide_env_values = true,
        default_value_t = ProgressMode::Auto
    )]
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Live,
    Plain,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the site config, pack sources, pack.yaml files, pack configs and requirements
    /// against the mirror; print every problem. Exit 0 when valid, 1 when not
    Check,
    /// Show what `apply` would change, and why, without changing anything
    #[command(after_help = "Examples:\n  \
        packsync plan                         every pack of the site config\n  \
        packsync plan --pack clush --json     one pack, as JSON\n  \
        packsync plan --diff                  with the files and distributions each change touches\n  \
        packsync plan --detailed-exitcodes    exit 2 when anything would change")]
    Plan(PlanArgs),
    /// Build, test, switch and register every change of the plan, one atomic switch per pack
    #[command(after_help = "Examples:\n  \
        packsync apply                        every change of the plan\n  \
        packsync apply --pack clush           only clush\n  \
        packsync apply --noop                 plan and report, change nothing\n  \
        packsync apply --detailed-exitcodes   as Puppet's exec expects: 0, 2, 4 or 6")]
    Apply(ApplyArgs),
    /// Hold back the changes of a pack, or with no pack of the whole host, until `resume`
    Suspend(SuspendArgs),
    /// Let a suspended pack, or with no pack the host, change again
    Resume(ResumeArgs),
    /// Run as the agent: reconcile at start, on every commit, mirror or config change
    /// (`[watch]`) and on the `[schedule]`, until SIGTERM; SIGHUP re-reads the config
    Run,
    /// Show per pack the desired ref, the live release and its state (ok, failed, drifted,
    /// pending)
    Status(StatusArgs),
    /// Show what packsync changed on this host, newest first
    History(HistoryArgs),
    /// Make an earlier kept release of a pack live again
    #[command(after_help = "Examples:\n  \
        packsync rollback clush               the release before the live one, held there\n  \
        packsync rollback clush --to RELEASE  a kept release (see `packsync history --pack clush`)\n  \
        packsync rollback clush --no-hold     the next apply goes back to the site config's\n  \
        packsync resume clush                 end the hold: the next apply follows the config")]
    Rollback(RollbackArgs),
    /// Remove releases beyond the newest N per pack, and virtualenvs no kept release uses
    Gc(GcArgs),
    /// Check every live release against what it was built from: its pack tree against its
    /// Git tree, its virtualenv against its pins, every file hashed again. Exit 1 when
    /// anything was changed
    #[command(after_help = "Examples:\n  \
        packsync verify                       every live release\n  \
        packsync verify --pack clush --json   one pack, every file that differs, as JSON\n  \
        packsync apply                        builds a tampered release again from Git")]
    Verify(VerifyArgs),
    /// Manage the state store
    #[command(subcommand)]
    State(StateCommand),
    /// Print the shell completion script for SHELL on stdout
    #[command(after_help = "Examples:\n  \
        packsync completions bash > /etc/bash_completion.d/packsync\n  \
        packsync completions zsh > \"${fpath[1]}/_packsync\"")]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) of packsync, or of one of its commands, on stdout
    #[command(after_help = "Examples:\n  \
        packsync man | gzip > /usr/share/man/man1/packsync.1.gz\n  \
        packsync man apply | gzip > /usr/share/man/man1/packsync-apply.1.gz")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (default: packsync's own)
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also show what the other hosts sharing the MongoDB state store have recorded
    #[arg(long)]
    pub all_hosts: bool,
    /// Show the fleet of `[fleet]`: per pack, the live release on each host, and the latest
    /// rollouts with their phase
    #[arg(long)]
    pub fleet: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy this host's embedded state (`state_dir/state.json`, history and runs) into the
    /// MongoDB store of `[state]`; running it again adds nothing twice
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The `state_dir` to import from (default: `[agent] state_dir`)
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each is a `--flag` of its own
pub struct ApplyArgs {
    /// Plan and report, change nothing; exits 2 when changes are pending (with
    /// `--detailed-exitcodes`)
    #[arg(long)]
    pub noop: bool,
    /// Apply only this pack (repeat for more)
    #[arg(long = "pack", value_name = "NAME", value_parser = parse_pack_name)]
    pub packs: Vec<PackName>,
    /// Puppet's exit codes: 0 nothing changed, 2 changes applied, 4 failures, 6 changes and
    /// failures (1 stays a fatal error, 75 a held lock)
    #[arg(long)]
    pub detailed_exitcodes: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Allow a plan that removes every pack of this host
    #[arg(long)]
    pub allow_empty: bool,
    /// Build again now the virtualenvs that failed to build with the same inputs, instead of
    /// waiting for their retry time (`[agent] build_retry`)
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Wait up to this many seconds for another run to finish instead of exiting 75 at once
    #[arg(long, value_name = "SECONDS")]
    pub wait_for_lock: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SuspendArgs {
    /// The pack to hold back (default: the whole host)
    #[arg(value_name = "PACK", value_parser = parse_pack_name)]
    pub pack: Option<PackName>,
    /// Why, shown by `plan` and `status`
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The pack to let change again (default: the whole host)
    #[arg(value_name = "PACK", value_parser = parse_pack_name)]
    pub pack: Option<PackName>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this pack
    #[arg(long = "pack", value_name = "NAME", value_parser = parse_pack_name)]
    pub pack: Option<PackName>,
    /// The switches of the runner set instead of the packs' history
    #[arg(long, conflicts_with = "pack")]
    pub runners: bool,
    /// The rollouts of the fleet of `[fleet]`, each with every host's steps, instead of this
    /// host's history
    #[arg(long, conflicts_with = "runners")]
    pub fleet: bool,
    /// At most this many entries
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The pack to roll back
    #[arg(value_name = "PACK", value_parser = parse_pack_name, required_unless_present = "runners")]
    pub pack: Option<PackName>,
    /// Roll the runner set back instead of a pack
    #[arg(long, conflicts_with = "pack")]
    pub runners: bool,
    /// The kept release (or, with `--runners`, runner set) to go to (default: the one before
    /// the live one)
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Let the next `apply` go back to what the site config asks for, instead of holding the
    /// pack here until `packsync resume`
    #[arg(long, conflicts_with = "runners")]
    pub no_hold: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify only this pack (repeat for more)
    #[arg(long = "pack", value_name = "NAME", value_parser = parse_pack_name)]
    pub packs: Vec<PackName>,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Releases to keep per live pack, the live one included (default: `[agent]
    /// keep_releases`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
    /// List what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan only this pack (repeat for more)
    #[arg(long = "pack", value_name = "NAME", value_parser = parse_pack_name)]
    pub packs: Vec<PackName>,
    /// Exit 2 when anything would change, 0 when nothing would (1 stays an error)
    #[arg(long)]
    pub detailed_exitcodes: bool,
    /// Also list, per change, the files of the pack it adds, modifies and deletes, and the
    /// Python distributions its virtualenv gains, loses or changes
    #[arg(long)]
    pub diff: bool,
}

fn parse_pack_name(name: &str) -> Result<PackName, String> {
    PackName::new(name).map_err(|err| err.to_string())
}
