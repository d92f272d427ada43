//! StackStorm hooks: the `[stackstorm]` commands (`test`, `register`, `unregister`, and for
//! runners `register_runners` and `restart`), run as argv lists without a shell, with
//! `{placeholder}`s filled in per pack. The contract is the argv and the exit code.

use std::fmt;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::config::CommandTemplate;
use crate::diagnostics::{Diagnose, output_tail};
use crate::model::PackName;

/// Which hook runs; names the step in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Test,
    Register,
    Unregister,
    RegisterRunners,
    Restart,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Test => "test",
            Hook::Register => "register",
            Hook::Unregister => "unregister",
            Hook::RegisterRunners => "register_runners",
            Hook::Restart => "restart",
        })
    }
}

/// The values of the placeholders for one pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    pub pack: PackName,
    /// `packs_dir/<pack>`.
    pub pack_dir: PathBuf,
    /// The release's own pack tree (staged before the switch).
    pub release_dir: PathBuf,
    pub venv_dir: PathBuf,
    pub config_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Cannot run the `{hook}` command `{program}` for {subject}")]
    Spawn {
        hook: Hook,
        /// "pack `clush`", "the runners".
        subject: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// `output` is the end of what the command printed (stdout and stderr).
    #[error("The `{hook}` command for {subject} failed ({status}): {command}")]
    Failed {
        hook: Hook,
        subject: String,
        command: String,
        status: ExitStatus,
        output: String,
    },
    /// Killed, with what it had started, after `[stackstorm] command_timeout`.
    #[error(
        "The `{hook}` command for {subject} did not finish within {} and was killed: {command}",
        humantime(*timeout)
    )]
    TimedOut {
        hook: Hook,
        subject: String,
        command: String,
        timeout: Duration,
        output: String,
    },
}

impl Diagnose for EngineError {
    fn hint(&self) -> Option<String> {
        match self {
            EngineError::TimedOut { .. } => Some(
                "find out why it hangs (run it by hand); if it only needs longer, raise \
                 `[stackstorm] command_timeout`"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// `10m`, `1m 30s`: a timeout as the site config writes it.
fn humantime(duration: Duration) -> String {
    jiff::SignedDuration::try_from(duration).map_or_else(
        |_| format!("{duration:?}"),
        |duration| format!("{duration:#}"),
    )
}

/// Set for every hook: the pack it runs for.
pub const PACK_ENV: &str = "PACKSYNC_PACK";
/// Set for every hook: `test`, `register` or `unregister`.
pub const HOOK_ENV: &str = "PACKSYNC_HOOK";

/// Runs `template` for the pack in `values`; its output is logged at debug level and, when it
/// fails, kept in the error.
///
/// The command inherits packsync's environment (these are the site's own commands, which may
/// need its `PATH`, proxies or credentials) plus [`PACK_ENV`] and [`HOOK_ENV`]; stdin is null,
/// so a command that prompts fails instead of hanging.
///
/// A command still running after `timeout` is killed with every process it started (it runs
/// in a process group of its own) and the hook fails.
pub fn run(
    hook: Hook,
    template: &CommandTemplate,
    values: &Placeholders,
    timeout: Duration,
) -> Result<(), EngineError> {
    let argv: Vec<String> = template.0.iter().map(|arg| fill(arg, values)).collect();
    run_argv(
        hook,
        &format!("pack `{}`", values.pack),
        Some(&values.pack),
        &argv,
        timeout,
    )
}

/// Runs a hook for the runner set (`register_runners`, `restart`): no placeholders.
pub fn run_for_runners(
    hook: Hook,
    template: &CommandTemplate,
    timeout: Duration,
) -> Result<(), EngineError> {
    run_argv(hook, "the runners", None, &template.0, timeout)
}

fn run_argv(
    hook: Hook,
    subject: &str,
    pack: Option<&PackName>,
    argv: &[String],
    timeout: Duration,
) -> Result<(), EngineError> {
    let command = display_command(argv);
    let spawn_error = |program: &str, source| EngineError::Spawn {
        hook,
        subject: subject.to_string(),
        program: program.to_string(),
        source,
    };
    let Some((program, arguments)) = argv.split_first() else {
        return Err(spawn_error(
            "",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the command is empty"),
        ));
    };
    tracing::debug!(%hook, subject, %command, "running hook");
    let mut child = Command::new(program);
    child
        .args(arguments)
        .env(HOOK_ENV, hook.to_string())
        .stdin(Stdio::null());
    if let Some(pack) = pack {
        child.env(PACK_ENV, pack.as_str());
    }
    let child = child
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| spawn_error(program, source))?;
    let (output, timed_out) = wait_with_timeout(child, timeout);
    let output = output.map_err(|source| spawn_error(program, source))?;
    tracing::debug!(
        %hook,
        subject,
        status = %output.status,
        stdout = %String::from_utf8_lossy(&output.stdout),
        stderr = %String::from_utf8_lossy(&output.stderr),
        "hook finished"
    );
    if timed_out {
        return Err(EngineError::TimedOut {
            hook,
            subject: subject.to_string(),
            command,
            timeout,
            output: output_tail(&output),
        });
    }
    if output.status.success() {
        return Ok(());
    }
    Err(EngineError::Failed {
        hook,
        subject: subject.to_string(),
        command,
        status: output.status,
        output: output_tail(&output),
    })
}

/// Waits for `child` and its output; after `timeout`, kills its process group first. Returns
/// whether it was killed.
fn wait_with_timeout(child: Child, timeout: Duration) -> (std::io::Result<Output>, bool) {
    let group = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let (finished, done) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = finished.send(());
        output
    });
    let timed_out = matches!(done.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
    if timed_out && let Some(group) = group {
        // Already gone between the timeout and now: nothing to kill.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let output = waiter
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the hook's waiting thread panicked")));
    (output, timed_out)
}

/// `arg` with every known `{placeholder}` replaced, in one pass (a value that happens to
/// contain `{pack}` is not expanded again); anything else is kept as written.
fn fill(arg: &str, values: &Placeholders) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let value = after
            .find('}')
            .and_then(|close| Some((value_of(&after[1..close], values)?, close)));
        if let Some((value, close)) = value {
            out.push_str(&value);
            rest = &after[close + 1..];
        } else {
            out.push('{');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

fn value_of(name: &str, values: &Placeholders) -> Option<String> {
    let path = match name {
        "pack" => return Some(values.pack.to_string()),
        "pack_dir" => &values.pack_dir,
        "release_dir" => &values.release_dir,
        "venv_dir" => &values.venv_dir,
        "config_file" => &values.config_file,
        _ => return None,
    };
    Some(path.to_string_lossy().into_owned())
}

/// The argv as a shell would need it typed, for messages: arguments with spaces or shell
/// characters are single-quoted.
fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+=:,./@%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    use super::*;

    fn values(root: &Path) -> Placeholders {
        Placeholders {
            pack: PackName::new("clush").unwrap(),
            pack_dir: root.join("packs/clush"),
            release_dir: root.join("releases/clush/1.0.0-abc/pack/clush"),
            venv_dir: root.join("envs/0123"),
            config_file: root.join("configs/clush.yaml"),
        }
    }

    fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        fs_err::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn template(argv: &[&str]) -> CommandTemplate {
        CommandTemplate(argv.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn placeholders_are_filled_in_every_argument() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("argv");
        let program = script(
            dir.path(),
            "record",
            &format!(
                "for arg in \"$@\"; do echo \"$arg\"; done > '{}'\n\
                 echo \"$PACKSYNC_PACK $PACKSYNC_HOOK\" >> '{0}'\n\
                 read -r line && echo \"stdin: $line\" >> '{0}'\n\
                 echo done\n",
                record.display()
            ),
        );
        let values = values(dir.path());
        run(
            Hook::Register,
            &template(&[
                &program,
                "--register-pack",
                "{pack_dir}",
                "--config-file={config_file}",
                "{release_dir}:{venv_dir}",
                "{pack}",
                "{unknown} {pack",
                "with space",
            ]),
            &values,
            Duration::from_mins(1),
        )
        .unwrap();
        let root = dir.path().display();
        assert_eq!(
            fs_err::read_to_string(&record).unwrap(),
            format!(
                "--register-pack\n{root}/packs/clush\n--config-file={root}/configs/clush.yaml\n\
                 {root}/releases/clush/1.0.0-abc/pack/clush:{root}/envs/0123\nclush\n\
                 {{unknown}} {{pack\nwith space\nclush register\n"
            )
        );
    }

    #[test]
    fn a_failing_command_keeps_its_status_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(
            dir.path(),
            "fail",
            "for i in $(seq 1 30); do echo \"line $i\"; done\necho 'no such pack' >&2\nexit 3\n",
        );
        let err = run(
            Hook::Test,
            &template(&[&program, "{pack}", "it's"]),
            &values(dir.path()),
            Duration::from_mins(1),
        )
        .unwrap_err();
        let EngineError::Failed {
            hook,
            subject,
            command,
            status,
            output,
        } = &err
        else {
            panic!("unexpected {err:?}");
        };
        assert_eq!((*hook, subject.as_str()), (Hook::Test, "pack `clush`"));
        assert_eq!(status.code(), Some(3));
        assert_eq!(command, &format!("{program} clush 'it'\\''s'"));
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 20, "{output}");
        assert_eq!(lines[0], "line 12");
        assert_eq!(lines[19], "no such pack");
        assert!(
            err.to_string()
                .starts_with("The `test` command for pack `clush` failed"),
            "{err}"
        );
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let program = script(
            dir.path(),
            "hang",
            &format!(
                "sleep 600 &\necho $! > '{}'\necho 'registering...'\nwait\n",
                pid_file.display()
            ),
        );
        let started = std::time::Instant::now();
        let err = run(
            Hook::Register,
            &template(&[&program]),
            &values(dir.path()),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not waited out"
        );
        assert!(
            matches!(&err, EngineError::TimedOut { hook: Hook::Register, output, .. } if output == "registering..."),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "The `register` command for pack `clush` did not finish within 500ms and was killed"
            ),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("command_timeout"));
        let grandchild = fs_err::read_to_string(&pid_file).unwrap();
        let alive = Path::new("/proc").join(grandchild.trim()).join("stat");
        // Killed (SIGKILL is delivered, not waited for): its /proc entry goes, or shows a
        // zombie until init reaps it.
        let gone = || {
            fs_err::read_to_string(&alive).map_or(true, |stat| stat.split(' ').nth(2) == Some("Z"))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            gone(),
            "the command's own child was killed too: {:?}",
            fs_err::read_to_string(&alive)
        );
    }

    #[test]
    fn a_missing_program_cannot_be_spawned() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("st2-missing");
        let err = run(
            Hook::Unregister,
            &template(&[missing.to_str().unwrap()]),
            &values(dir.path()),
            Duration::from_mins(1),
        )
        .unwrap_err();
        assert!(
            matches!(&err, EngineError::Spawn { hook: Hook::Unregister, program, .. } if Path::new(program) == missing),
            "{err:?}"
        );
    }
}
