//! End-to-end tests of the `packsync` binary: a [`TestSite`](crate::common::site::TestSite)
//! with real Git repos and wheels, the binary run against it, its output snapshotted.

mod apply;
mod check;
mod plan;

use std::io::Read as _;
use std::process::Stdio;

use crate::common::site::{PackEntry, TestSite, packsync, packsync_snapshot};

#[test]
fn help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["--help"]), @"
    exit_code: 0
    ----- stdout -----
    Deploys StackStorm packs from local Git repos the GitOps way: immutable releases, offline
    virtualenvs, one atomic switch per pack

    Usage: packsync [OPTIONS] <COMMAND>

    Commands:
      check  Validate the site config, pack sources, pack.yaml files, pack configs and requirements
             against the mirror; print every problem. Exit 0 when valid, 1 when not
      plan   Show what `apply` would change, and why, without changing anything
      help   Print this message or the help of the given subcommand(s)

    Options:
          --config <FILE>  The site config file [env: PACKSYNC_CONFIG=] [default:
                           /etc/packsync/packsync.toml]
          --json           Print one JSON document on stdout instead of text
      -v, --verbose...     Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet          Print only errors on stderr
      -h, --help           Print help
      -V, --version        Print version

    ----- stderr -----
    ");
}

#[test]
fn check_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["check", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Validate the site config, pack sources, pack.yaml files, pack configs and requirements against the
    mirror; print every problem. Exit 0 when valid, 1 when not

    Usage: packsync check [OPTIONS]

    Options:
          --config <FILE>  The site config file [env: PACKSYNC_CONFIG=] [default:
                           /etc/packsync/packsync.toml]
          --json           Print one JSON document on stdout instead of text
      -v, --verbose...     Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet          Print only errors on stderr
      -h, --help           Print help
      -V, --version        Print version

    ----- stderr -----
    ");
}

#[test]
fn plan_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["plan", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Show what `apply` would change, and why, without changing anything

    Usage: packsync plan [OPTIONS]

    Options:
          --config <FILE>       The site config file [env: PACKSYNC_CONFIG=] [default:
                                /etc/packsync/packsync.toml]
          --pack <NAME>         Plan only this pack (repeat for more)
          --detailed-exitcodes  Exit 2 when anything would change, 0 when nothing would (1 stays an
                                error)
          --json                Print one JSON document on stdout instead of text
      -v, --verbose...          Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet               Print only errors on stderr
      -h, --help                Print help
      -V, --version             Print version

    ----- stderr -----
    ");
}

/// `packsync plan --json | head -c 10`: a reader that goes away is not an error, and nothing
/// panics.
#[test]
fn plan_to_a_closed_stdout_does_not_panic() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let mut child = site
        .cmd(["plan", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before packsync writes anything: its first write meets a broken pipe.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
}
