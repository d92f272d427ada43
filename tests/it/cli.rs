//! End-to-end tests of the `packsync` binary: a [`TestSite`](crate::common::site::TestSite)
//! with real Git repos and wheels, the binary run against it, its output snapshotted.

mod agent;
mod apply;
mod check;
mod deb;
mod engine;
mod envs;
mod events;
mod fleet;
mod mirror;
mod mongodb;
mod page;
mod plan;
mod progress;
mod puppet;
mod runners;
mod signatures;
mod suspend;
mod systemd;
mod verify;

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
      check        Validate the site config, pack sources, pack.yaml files, pack configs and
                   requirements against the mirror; print every problem. Exit 0 when valid, 1 when not
      plan         Show what `apply` would change, and why, without changing anything
      apply        Build, test, switch and register every change of the plan, one atomic switch per pack
      suspend      Hold back the changes of a pack, or with no pack of the whole host, until `resume`
      resume       Let a suspended pack, or with no pack the host, change again
      run          Run as the agent: reconcile at start, on every commit, mirror or config change
                   (`[watch]`) and on the `[schedule]`, until SIGTERM; SIGHUP re-reads the config
      status       Show per pack the desired ref, the live release and its state (ok, failed, drifted,
                   pending)
      history      Show what packsync changed on this host, newest first
      rollback     Make an earlier kept release of a pack live again
      gc           Remove releases beyond the newest N per pack, and virtualenvs no kept release uses
      verify       Check every live release against what it was built from: its pack tree against its
                   Git tree, its virtualenv against its pins, every file hashed again. Exit 1 when
                   anything was changed
      state        Manage the state store
      completions  Print the shell completion script for SHELL on stdout
      man          Print the manual page (roff) of packsync, or of one of its commands, on stdout
      help         Print this message or the help of the given subcommand(s)

    Options:
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --json                     Print one JSON document on stdout instead of text
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

    ----- stderr -----
    ");
}

#[test]
fn apply_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["apply", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Build, test, switch and register every change of the plan, one atomic switch per pack

    Usage: packsync apply [OPTIONS]

    Options:
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --noop                     Plan and report, change nothing; exits 2 when changes are pending
                                     (with `--detailed-exitcodes`)
          --json                     Print one JSON document on stdout instead of text
          --pack <NAME>              Apply only this pack (repeat for more)
          --detailed-exitcodes       Puppet's exit codes: 0 nothing changed, 2 changes applied, 4
                                     failures, 6 changes and failures (1 stays a fatal error, 75 a held
                                     lock)
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --wait-for-lock <SECONDS>  Wait up to this many seconds for another run to finish instead of
                                     exiting 75 at once
          --allow-empty              Allow a plan that removes every pack of this host
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
          --retry-failed             Build again now the virtualenvs that failed to build with the same
                                     inputs, instead of waiting for their retry time (`[agent]
                                     build_retry`)
      -h, --help                     Print help
      -V, --version                  Print version

    Examples:
      packsync apply                        every change of the plan
      packsync apply --pack clush           only clush
      packsync apply --noop                 plan and report, change nothing
      packsync apply --detailed-exitcodes   as Puppet's exec expects: 0, 2, 4 or 6

    ----- stderr -----
    ");
}

#[test]
fn status_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["status", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Show per pack the desired ref, the live release and its state (ok, failed, drifted, pending)

    Usage: packsync status [OPTIONS]

    Options:
          --all-hosts                Also show what the other hosts sharing the MongoDB state store have
                                     recorded
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --fleet                    Show the fleet of `[fleet]`: per pack, the live release on each
                                     host, and the latest rollouts with their phase
          --json                     Print one JSON document on stdout instead of text
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

    ----- stderr -----
    ");
}

#[test]
fn history_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["history", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Show what packsync changed on this host, newest first

    Usage: packsync history [OPTIONS]

    Options:
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --pack <NAME>              Only this pack
          --json                     Print one JSON document on stdout instead of text
          --runners                  The switches of the runner set instead of the packs' history
          --fleet                    The rollouts of the fleet of `[fleet]`, each with every host's
                                     steps, instead of this host's history
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
          --limit <N>                At most this many entries [default: 20]
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

    ----- stderr -----
    ");
}

#[test]
fn rollback_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["rollback", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Make an earlier kept release of a pack live again

    Usage: packsync rollback [OPTIONS] [PACK]

    Arguments:
      [PACK]  The pack to roll back

    Options:
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --runners                  Roll the runner set back instead of a pack
          --json                     Print one JSON document on stdout instead of text
          --to <RELEASE>             The kept release (or, with `--runners`, runner set) to go to
                                     (default: the one before the live one)
          --no-hold                  Let the next `apply` go back to what the site config asks for,
                                     instead of holding the pack here until `packsync resume`
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --wait-for-lock <SECONDS>  Wait up to this many seconds for another run to finish instead of
                                     exiting 75 at once
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

    Examples:
      packsync rollback clush               the release before the live one, held there
      packsync rollback clush --to RELEASE  a kept release (see `packsync history --pack clush`)
      packsync rollback clush --no-hold     the next apply goes back to the site config's
      packsync resume clush                 end the hold: the next apply follows the config

    ----- stderr -----
    ");
}

#[test]
fn verify_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["verify", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Check every live release against what it was built from: its pack tree against its Git tree, its
    virtualenv against its pins, every file hashed again. Exit 1 when anything was changed

    Usage: packsync verify [OPTIONS]

    Options:
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --pack <NAME>              Verify only this pack (repeat for more)
          --json                     Print one JSON document on stdout instead of text
          --wait-for-lock <SECONDS>  Wait up to this many seconds for another run to finish instead of
                                     exiting 75 at once
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

    Examples:
      packsync verify                       every live release
      packsync verify --pack clush --json   one pack, every file that differs, as JSON
      packsync apply                        builds a tampered release again from Git

    ----- stderr -----
    ");
}

#[test]
fn gc_help() {
    let site = TestSite::new();
    packsync_snapshot!(site, packsync(["gc", "--help"]), @"
    exit_code: 0
    ----- stdout -----
    Remove releases beyond the newest N per pack, and virtualenvs no kept release uses

    Usage: packsync gc [OPTIONS]

    Options:
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --keep <N>                 Releases to keep per live pack, the live one included (default:
                                     `[agent] keep_releases`)
          --dry-run                  List what would be removed, remove nothing
          --json                     Print one JSON document on stdout instead of text
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
          --wait-for-lock <SECONDS>  Wait up to this many seconds for another run to finish instead of
                                     exiting 75 at once
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

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
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --json                     Print one JSON document on stdout instead of text
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

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
          --config <FILE>            The site config file [env: PACKSYNC_CONFIG=] [default:
                                     /etc/packsync/packsync.toml]
          --pack <NAME>              Plan only this pack (repeat for more)
          --detailed-exitcodes       Exit 2 when anything would change, 0 when nothing would (1 stays an
                                     error)
          --json                     Print one JSON document on stdout instead of text
          --diff                     Also list, per change, the files of the pack it adds, modifies and
                                     deletes, and the Python distributions its virtualenv gains, loses
                                     or changes
      -v, --verbose...               Log more (repeat for even more); `RUST_LOG` overrides
      -q, --quiet                    Print only errors on stderr
          --log-format <LOG_FORMAT>  How logs are written on stderr: `text` for a terminal, `json` (one
                                     object per line) for journald or ELK [default: text] [possible
                                     values: text, json]
          --progress <PROGRESS>      How `apply` and `rollback` show their progress on stderr: `live`
                                     lines per pack (on a terminal), `plain` lines as each phase begins
                                     (CI, Puppet, systemd), `none`; `auto` picks `live` on a terminal
                                     and `plain` elsewhere [env: PACKSYNC_PROGRESS] [default: auto]
                                     [possible values: auto, live, plain, none]
      -h, --help                     Print help
      -V, --version                  Print version

    Examples:
      packsync plan                         every pack of the site config
      packsync plan --pack clush --json     one pack, as JSON
      packsync plan --diff                  with the files and distributions each change touches
      packsync plan --detailed-exitcodes    exit 2 when anything would change

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

/// Issue 20: a wrong command line exits 64 (`EX_USAGE`), never 2, which `--detailed-exitcodes`
/// callers read as "changes applied"; `--help` and `--version` succeed.
#[test]
fn issue_20_usage_errors_exit_64_everywhere() {
    let site = TestSite::new();
    for args in [
        &["apply", "--detailed-exitcodes", "--bogus"][..],
        &["plan", "--detailed-exitcodes", "--pack"],
        &["rollback"],
        &["no-such-command"],
        &["--log-format", "yaml", "status"],
        &["history", "--limit", "many"],
        &["completions", "tcsh"],
        &["man", "no-such-command"],
        &[],
    ] {
        let output = crate::common::site::run(site.cmd(args));
        assert!(output.starts_with("exit_code: 64\n"), "{args:?}: {output}");
    }
    for args in [&["--help"][..], &["--version"], &["apply", "--help"]] {
        let output = crate::common::site::run(packsync(args));
        assert!(output.starts_with("exit_code: 0\n"), "{args:?}: {output}");
    }
}

/// Issue 20: completion scripts come from the command-line definition, for every shell clap
/// knows; bash takes its script and registers the completion.
#[test]
fn issue_20_completions_name_every_command_and_load_in_bash() {
    let site = TestSite::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = packsync(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = String::from_utf8(output.stdout).unwrap();
        for command in [
            "apply",
            "rollback",
            "completions",
            "man",
            "--detailed-exitcodes",
        ] {
            assert!(
                script.contains(command),
                "{shell}: no `{command}` in {script}"
            );
        }
    }
    let mut bash = std::process::Command::new("bash")
        .args([
            "-c",
            "source <(\"$0\" completions bash) && complete -p packsync",
        ])
        .arg(env!("CARGO_BIN_EXE_packsync"))
        .current_dir(site.path())
        .output()
        .unwrap();
    assert!(bash.status.success(), "{bash:?}");
    bash.stdout.retain(|byte| *byte != b'\n');
    assert_eq!(
        String::from_utf8_lossy(&bash.stdout),
        "complete -o bashdefault -o default -o nosort -F _packsync packsync"
    );
}

/// Issue 20: `packsync man` prints packsync(1), `packsync man COMMAND` packsync-COMMAND(1),
/// each a page `man` renders, with what `--help` says.
#[test]
fn issue_20_man_pages_render_with_man() {
    let site = TestSite::new();
    for (args, name, says) in [
        (
            &["man"][..],
            "packsync",
            "Make an earlier kept release of a pack live again",
        ),
        (&["man", "rollback"], "packsync-rollback", "--no-hold"),
        (&["man", "apply"], "packsync-apply", "--detailed-exitcodes"),
    ] {
        let output = packsync(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        let roff = String::from_utf8(output.stdout).unwrap();
        assert!(roff.contains(&format!(".TH {name} 1")), "{args:?}: {roff}");
        let page = site.path().join(format!("{name}.1"));
        fs_err::write(&page, &roff).unwrap();
        let rendered = std::process::Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(rendered.status.success(), "{args:?}: {rendered:?}");
        let text = String::from_utf8_lossy(&rendered.stdout).replace('\u{2010}', "-");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}
