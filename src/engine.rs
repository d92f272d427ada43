//! StackStorm hooks: the `[stackstorm]` commands (`test`, `register`, `unregister`,
//! `registered`, `purge`, and for runners `register_runners` and `restart`), run as argv lists
//! without a shell, with `{placeholder}`s filled in per pack. The contract is the argv, the
//! exit code, and for `registered` the JSON it prints.
//!
//! Every command runs with a defined environment: `PATH`, `HOME` and `LANG` from packsync's,
//! the names `[stackstorm] env` lists, and [`PACK_ENV`] and [`HOOK_ENV`]; nothing else of
//! packsync's environment (no proxies, `PIP_*`, `PYTHONPATH`, tokens) reaches it.

use std::collections::BTreeSet;
use std::fmt;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::config::{CommandTemplate, StackStormConfig};
use crate::diagnostics::{Diagnose, output_tail};
use crate::model::PackName;
use crate::pack::content::Resource;

/// Which hook runs; names the step in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Test,
    Register,
    Unregister,
    Registered,
    Purge,
    RegisterRunners,
    Restart,
    Health,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Test => "test",
            Hook::Register => "register",
            Hook::Unregister => "unregister",
            Hook::Registered => "registered",
            Hook::Purge => "purge",
            Hook::RegisterRunners => "register_runners",
            Hook::Restart => "restart",
            Hook::Health => "health",
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
    /// `registered` printed something else than a JSON list of `{"kind", "ref"}`.
    #[error(
        "The `{hook}` command for {subject} printed no list of resources ({problem}): {command}"
    )]
    BadOutput {
        hook: Hook,
        subject: String,
        command: String,
        problem: String,
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
            EngineError::BadOutput { .. } => Some(
                "`[stackstorm] registered` must print on stdout a JSON list like \
                 `[{\"kind\": \"action\", \"ref\": \"clush.run\"}]` (kinds: action, rule, sensor, \
                 trigger, action-alias, policy), and its messages on stderr"
                    .into(),
            ),
            EngineError::Failed { .. } | EngineError::Spawn { .. } => Some(
                "commands get only PATH, HOME, LANG and PACKSYNC_* of packsync's environment: \
                 if it needs more (credentials, ST2_* variables), list their names in \
                 `[stackstorm] env`"
                    .into(),
            ),
        }
    }

    fn output(&self) -> Option<&str> {
        match self {
            EngineError::Failed { output, .. }
            | EngineError::TimedOut { output, .. }
            | EngineError::BadOutput { output, .. } => Some(output),
            EngineError::Spawn { .. } => None,
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
/// fails, kept in the error (its last lines).
///
/// stdin is null, so a command that prompts fails instead of hanging. A command still running
/// after `[stackstorm] command_timeout` is killed with every process it started (it runs in a
/// process group of its own) and the hook fails.
pub fn run(
    hook: Hook,
    template: &CommandTemplate,
    values: &Placeholders,
    stackstorm: &StackStormConfig,
) -> Result<(), EngineError> {
    let argv: Vec<String> = template
        .0
        .iter()
        .map(|arg| fill(arg, values, &[]))
        .collect();
    run_argv(
        hook,
        &pack_subject(&values.pack),
        Some(&values.pack),
        &argv,
        stackstorm,
    )
    .map(drop)
}

/// Runs a hook for the runner set (`register_runners`, `restart`): no placeholders.
pub fn run_for_runners(
    hook: Hook,
    template: &CommandTemplate,
    stackstorm: &StackStormConfig,
) -> Result<(), EngineError> {
    run_argv(hook, "the runners", None, &template.0, stackstorm).map(drop)
}

/// `[stackstorm] restart` on a fleet host after a release of `pack` went live, so that no node
/// keeps the old sensor code.
pub fn restart_for(
    pack: &PackName,
    template: &CommandTemplate,
    stackstorm: &StackStormConfig,
) -> Result<(), EngineError> {
    run_argv(
        Hook::Restart,
        &pack_subject(pack),
        Some(pack),
        &template.0,
        stackstorm,
    )
    .map(drop)
}

/// What StackStorm holds for the pack in `values`: `[stackstorm] registered`'s JSON list.
pub fn registered(
    template: &CommandTemplate,
    values: &Placeholders,
    stackstorm: &StackStormConfig,
) -> Result<BTreeSet<Resource>, EngineError> {
    let argv: Vec<String> = template
        .0
        .iter()
        .map(|arg| fill(arg, values, &[]))
        .collect();
    let subject = pack_subject(&values.pack);
    let output = run_argv(
        Hook::Registered,
        &subject,
        Some(&values.pack),
        &argv,
        stackstorm,
    )?;
    serde_json::from_slice::<Vec<Resource>>(&output.stdout)
        .map(|resources| resources.into_iter().collect())
        .map_err(|err| EngineError::BadOutput {
            hook: Hook::Registered,
            subject,
            command: display_command(&argv),
            problem: err.to_string(),
            output: output_tail(&output),
        })
}

/// Removes `resource` of the pack in `values` from StackStorm: `[stackstorm] purge`.
pub fn purge(
    template: &CommandTemplate,
    values: &Placeholders,
    resource: &Resource,
    stackstorm: &StackStormConfig,
) -> Result<(), EngineError> {
    let extra = [
        ("kind", resource.kind.as_str()),
        ("ref", resource.reference.as_str()),
    ];
    let argv: Vec<String> = template
        .0
        .iter()
        .map(|arg| fill(arg, values, &extra))
        .collect();
    let subject = format!("{} of pack `{}`", resource, values.pack);
    run_argv(Hook::Purge, &subject, Some(&values.pack), &argv, stackstorm).map(drop)
}

fn pack_subject(pack: &PackName) -> String {
    format!("pack `{pack}`")
}

/// The variables of packsync's environment every command gets.
const PASSED_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// Runs `argv`; its output when it succeeded.
fn run_argv(
    hook: Hook,
    subject: &str,
    pack: Option<&PackName>,
    argv: &[String],
    stackstorm: &StackStormConfig,
) -> Result<Output, EngineError> {
    let timeout = stackstorm.command_timeout;
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
    child.env_clear();
    let passed = PASSED_ENV
        .iter()
        .copied()
        .chain(stackstorm.env.iter().map(String::as_str));
    for name in passed {
        if let Some(value) = std::env::var_os(name) {
            child.env(name, value);
        }
    }
    if hook == Hook::Test {
        // The release and its virtualenv are read-only: Python's bytecode stays in memory.
        child.env("PYTHONDONTWRITEBYTECODE", "1");
    }
    child
        .args(arguments)
        .env(HOOK_ENV, hook.to_string())
        .stdin(Stdio::null());
    if let Some(pack) = pack {
        child.env(PACK_ENV, pack.as_str());
    }
    child
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A script just written (by a package upgrade, a test) can be open for writing in a
    // process forked meanwhile, until that process execs: `ETXTBSY` for a moment only.
    let mut attempts = 0;
    let child = loop {
        match child.spawn() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            spawned => break spawned.map_err(|source| spawn_error(program, source))?,
        }
    };
    let (output, timed_out) = crate::children::wait_with_timeout(child, timeout);
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
        return Ok(output);
    }
    Err(EngineError::Failed {
        hook,
        subject: subject.to_string(),
        command,
        status: output.status,
        output: output_tail(&output),
    })
}

/// `arg` with every known `{placeholder}` replaced, in one pass (a value that happens to
/// contain `{pack}` is not expanded again); anything else is kept as written.
fn fill(arg: &str, values: &Placeholders, extra: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let value = after
            .find('}')
            .and_then(|close| Some((value_of(&after[1..close], values, extra)?, close)));
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

fn value_of(name: &str, values: &Placeholders, extra: &[(&str, &str)]) -> Option<String> {
    if let Some((_, value)) = extra.iter().find(|(key, _)| *key == name) {
        return Some((*value).to_string());
    }
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

    /// The `[stackstorm]` of a site whose commands time out after `timeout` and get the
    /// variables named in `env`.
    fn stackstorm(timeout: Duration, env: &[&str]) -> StackStormConfig {
        StackStormConfig {
            packs_dir: PathBuf::from("/packs"),
            virtualenvs_dir: PathBuf::from("/virtualenvs"),
            configs_dir: PathBuf::from("/configs"),
            python: PathBuf::from("python3"),
            virtualenv: crate::config::VirtualenvConfig {
                system_site_packages: false,
                base_requirements: Vec::new(),
                st2_pth: false,
            },
            register: None,
            unregister: None,
            test: None,
            st2_python: None,
            register_runners: None,
            restart: None,
            health: None,
            command_timeout: timeout,
            registered: None,
            purge: None,
            repair_engine_drift: true,
            env: env.iter().map(ToString::to_string).collect(),
        }
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
            &stackstorm(Duration::from_mins(1), &[]),
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
            &stackstorm(Duration::from_mins(1), &[]),
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
            &stackstorm(Duration::from_millis(500), &[]),
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

    /// Issue 15: nothing of packsync's environment reaches a command but `PATH`, `HOME`,
    /// `LANG`, `PACKSYNC_*` and the names `[stackstorm] env` lists.
    #[test]
    fn commands_get_a_defined_environment() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("env");
        let program = script(
            dir.path(),
            "env",
            &format!("env | sort > '{}'\n", record.display()),
        );
        // Set for this test process only: the variables exist in packsync's environment.
        let names = [
            "HTTPS_PROXY",
            "PIP_INDEX_URL",
            "PYTHONPATH",
            "ST2_AUTH_TOKEN",
        ];
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "engine::tests::env_child", "--nocapture"])
            .env("PACKSYNC_ENV_TEST_PROGRAM", &program)
            .env("PACKSYNC_ENV_TEST_DIR", dir.path());
        for name in names {
            command.env(name, format!("{name}-value"));
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let env = fs_err::read_to_string(&record).unwrap();
        let keys: Vec<&str> = env
            .lines()
            .filter_map(|line| line.split_once('=').map(|(key, _)| key))
            .filter(|key| *key != "PWD" && *key != "SHLVL" && *key != "_")
            .collect();
        let mut expected = vec!["PACKSYNC_HOOK", "PACKSYNC_PACK", "PATH", "ST2_AUTH_TOKEN"];
        if std::env::var_os("HOME").is_some() {
            expected.push("HOME");
        }
        if std::env::var_os("LANG").is_some() {
            expected.push("LANG");
        }
        expected.sort_unstable();
        assert_eq!(keys, expected, "{env}");
        assert!(
            env.contains("ST2_AUTH_TOKEN=ST2_AUTH_TOKEN-value\n"),
            "{env}"
        );
    }

    /// Runs in a child test process (see above), whose environment the parent set.
    #[test]
    fn env_child() {
        let (Some(program), Some(dir)) = (
            std::env::var_os("PACKSYNC_ENV_TEST_PROGRAM"),
            std::env::var_os("PACKSYNC_ENV_TEST_DIR"),
        ) else {
            return; // Not run by `commands_get_a_defined_environment`.
        };
        run(
            Hook::Register,
            &template(&[program.to_str().unwrap()]),
            &values(Path::new(&dir)),
            &stackstorm(Duration::from_mins(1), &["ST2_AUTH_TOKEN"]),
        )
        .unwrap();
    }

    #[test]
    fn a_missing_program_cannot_be_spawned() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("st2-missing");
        let err = run(
            Hook::Unregister,
            &template(&[missing.to_str().unwrap()]),
            &values(dir.path()),
            &stackstorm(Duration::from_mins(1), &[]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, EngineError::Spawn { hook: Hook::Unregister, program, .. } if Path::new(program) == missing),
            "{err:?}"
        );
    }
}
