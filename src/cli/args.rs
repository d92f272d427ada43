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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the site config, pack sources, pack.yaml files, pack configs and requirements
    /// against the mirror; print every problem. Exit 0 when valid, 1 when not
    Check,
    /// Show what `apply` would change, and why, without changing anything
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan only this pack (repeat for more)
    #[arg(long = "pack", value_name = "NAME", value_parser = parse_pack_name)]
    pub packs: Vec<PackName>,
    /// Exit 2 when anything would change, 0 when nothing would (1 stays an error)
    #[arg(long)]
    pub detailed_exitcodes: bool,
}

fn parse_pack_name(name: &str) -> Result<PackName, String> {
    PackName::new(name).map_err(|err| err.to_string())
}
