//! Runners: a fake StackStorm virtualenv, real runner wheels with their entry point, real pip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::git::GitRepo;
use crate::common::site::{PackEntry, TestSite, assert_exit, python, run, run_json};
use crate::common::wheels::make_backend_wheel;

const MAKE_RUNNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/make_runner.py");
const MAKE_ST2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/make_st2.py");

fn fixture(script: &str, args: &[&str]) -> PathBuf {
    let output = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs the fixture");
    assert!(output.status.success(), "{script} {args:?}: {output:?}");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Builds a wheel of the runner distribution `name` into `dir`, with `make_runner.py`'s `options`;
/// its path.
fn runner_wheel(dir: &Path, name: &str, version: &str, options: &[&str]) -> PathBuf {
    let dir = dir.to_str().expect("a UTF-8 temp path");
    let args: Vec<&str> = ["--wheel", name, version, dir]
        .into_iter()
        .chain(options.iter().copied())
        .collect();
    fixture(MAKE_RUNNER, &args)
}

/// A site whose StackStorm (a fake st2 virtualenv providing six) wants `clush_runner==1.2.*`.
fn runner_site() -> (TestSite, PathBuf) {
    let mut site = TestSite::new();
    let mirror = site.mirror();
    let st2 = site.path().join("st2");
    let st2_python = fixture(
        MAKE_ST2,
        &[
            st2.to_str().expect("a UTF-8 temp path"),
            "--provide",
            "six==1.16.0",
        ],
    );
    site.wheel("six", "1.17.0", &[])
        .wheel("clustershell", "1.9.2", &[]);
    runner_wheel(
        &mirror,
        "clush_runner",
        "1.2.0",
        &["--requires", "ClusterShell>=1.9", "--requires", "six"],
    );
    let register = site.engine_script("register-runners", "echo register_runners >> \"$LOG\"");
    let restart = site.engine_script("restart", "echo restart >> \"$LOG\"");
    site.stackstorm_line(&format!("st2_python = '{}'", st2_python.display()))
        .stackstorm_line(&format!("register_runners = ['{}']", register.display()))
        .stackstorm_line(&format!("restart = ['{}']", restart.display()))
        .add_runner("clush_runner", "==1.2.*");
    (site, st2_python)
}

/// The version of `dist` StackStorm's interpreter finds.
fn installed_version(st2_python: &Path, dist: &str) -> String {
    st2_runs(
        st2_python,
        &format!("import importlib.metadata as md; print(md.version('{dist}'))"),
    )
}

fn st2_runs(st2_python: &Path, code: &str) -> String {
    let output = Command::new(st2_python)
        .args(["-c", code])
        .output()
        .expect("the st2 python runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn runners_go_live_as_a_runner_set_stackstorm_sees() {
    let (site, st2_python) = runner_site();
    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    assert!(plan.contains("switch      runners  set none -> "), "{plan}");
    assert!(
        plan.contains("requirement added: clush-runner==1.2.*"),
        "{plan}"
    );

    let json = run_json(site.cmd(["plan", "--json"]));
    assert_eq!(json["runners"]["from"], serde_json::Value::Null);
    assert_eq!(
        json["runners"]["to"]["requirements"][0],
        "clush-runner==1.2.*"
    );
    assert_eq!(json["runners"]["to"]["settings"][0], "provided six==1.16.0");
    assert_eq!(json["summary"]["changes"], 1);

    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("installed    runners  set "), "{output}");
    assert_eq!(site.engine_log(), "register_runners\nrestart\n");

    // StackStorm's interpreter finds the runner through the hook, its dependency from the set,
    // and `six` from its own site-packages (provided: not installed again).
    let found = st2_runs(
        &st2_python,
        "import importlib.metadata as md, clustershell, six; \
         eps = [e.name for e in md.entry_points(group='st2common.runners.runner')]; \
         print(eps, md.version('clush_runner'), six.__file__.count('runners'))",
    );
    assert_eq!(found, "['clush-runner'] 1.2.0 0");
    let current = site.state_dir().join("runners/current");
    let set = fs_err::read_link(&current).unwrap();
    assert!(
        set.starts_with(site.state_dir().join("runners/sets")),
        "{set:?}"
    );
    let installed: Vec<String> = fs_err::read_dir(set.join("site-packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".dist-info"))
        .collect();
    assert_eq!(
        installed.len(),
        2,
        "the runner and clustershell only: {installed:?}"
    );
    // Compiled at build time: StackStorm's user cannot write into the sealed set.
    let bytecode = set.join("site-packages/clush_runner/__pycache__");
    assert!(fs_err::read_dir(&bytecode).unwrap().count() > 0);
    // st2's site-packages got one file, the hook, and nothing else of packsync.
    let hook = fs_err::read_to_string(
        site.path()
            .join("st2/lib/python3.11/site-packages/packsync-runners.pth"),
    )
    .unwrap();
    assert!(
        hook.contains(&current.join("site-packages").display().to_string()),
        "{hook}"
    );

    // Converged: nothing to do, no hook runs.
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    assert_eq!(site.engine_log(), "register_runners\nrestart\n");

    // StackStorm's virtualenv rebuilt (an upgrade): the hook is gone, and put back.
    let hook_path = site
        .path()
        .join("st2/lib/python3.11/site-packages/packsync-runners.pth");
    fs_err::remove_file(&hook_path).unwrap();
    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(status.contains("Runners: drifted, set "), "{status}");
    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    assert!(
        plan.contains("StackStorm's Python no longer loads the runner set"),
        "{plan}"
    );
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("repaired     runners  set "), "{output}");
    assert_eq!(fs_err::read_to_string(&hook_path).unwrap(), hook);
    assert_eq!(site.engine_log(), "register_runners\nrestart\n".repeat(2));

    // A new runner version in the mirror: a new set, the old one kept.
    let mirror = site.mirror();
    runner_wheel(&mirror, "clush_runner", "1.2.1", &[]);
    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(
        plan.contains("clush-runner 1.2.0 -> 1.2.1 (mirror)"),
        "{plan}"
    );
    assert!(plan.contains("clustershell 1.9.2 dropped"), "{plan}");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.2.1");
    assert!(set.is_dir(), "the previous set stays for rollback");
}

#[test]
fn runner_sets_are_kept_for_status_history_rollback_and_gc() {
    let (site, st2_python) = runner_site();
    assert_exit(site.cmd(["apply"]), 0);
    let current = site.state_dir().join("runners/current");
    let set = fs_err::read_link(&current).unwrap();
    let mirror = site.mirror();
    runner_wheel(&mirror, "clush_runner", "1.2.1", &[]);
    assert_exit(site.cmd(["apply"]), 0);

    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(
        status.contains("Runners: ok, set ") && status.contains("(clush-runner 1.2.1)"),
        "{status}"
    );
    let history = assert_exit(site.cmd(["history", "--runners"]), 0);
    let lines: Vec<&str> = history
        .lines()
        .filter(|line| line.contains("  runners  "))
        .collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].contains("runners  upgrade     applied      set "),
        "{history}"
    );
    assert!(lines[0].ends_with(": clush-runner 1.2.1"), "{history}");
    assert!(
        lines[1].contains("runners  install     applied      set none -> "),
        "{history}"
    );

    // Back to the set before, through the same check and hooks.
    let output = assert_exit(site.cmd(["rollback", "--runners"]), 0);
    assert!(output.contains("rolled back  runners  set "), "{output}");
    assert!(output.contains(": clush-runner 1.2.0"), "{output}");
    assert_eq!(fs_err::read_link(&current).unwrap(), set);
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.2.0");
    assert_eq!(
        site.engine_log(),
        "register_runners\nrestart\n".repeat(3),
        "install, upgrade, rollback"
    );
    let history = assert_exit(site.cmd(["history", "--runners", "--limit", "1"]), 0);
    assert!(
        history.contains("runners  rollback    applied"),
        "{history}"
    );
    let output = assert_exit(
        site.cmd(["rollback", "--runners", "--to", "0123456789ab"]),
        1,
    );
    assert!(
        output.contains("No runner set `0123456789ab` is kept in"),
        "{output}"
    );
}

#[test]
fn a_runner_that_fails_the_health_check_never_goes_live() {
    let (site, st2_python) = runner_site();
    assert_exit(site.cmd(["apply"]), 0);
    let current = site.state_dir().join("runners/current");
    let good = fs_err::read_link(&current).unwrap();

    let mirror = site.mirror();
    runner_wheel(&mirror, "clush_runner", "1.2.2", &["--bad-yaml"]);
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4)
        .replace(&site.path().display().to_string(), "[TEMP]");
    assert!(
        output.contains(
            "error: runners: The runner health check failed, so the set did not go live: \
             clush-runner: runner `clush-runner`: get_metadata() returned runner `clush-runner` \
             with no `runner_module`"
        ),
        "{output}"
    );
    assert!(output.contains("failed       runners  set "), "{output}");
    assert_eq!(fs_err::read_link(&current).unwrap(), good);
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.2.0");
    assert_eq!(
        site.engine_log(),
        "register_runners\nrestart\n",
        "no hook for a failed set"
    );
}

#[test]
fn a_runner_stackstorm_cannot_get_is_reported_by_check() {
    let (mut site, _) = runner_site();
    site.add_runner("milkcheck_runner", ">=2");
    let output = assert_exit(site.cmd(["check"]), 1);
    assert!(output.contains("runners: [[runner]] at "), "{output}");
    assert!(
        output
            .contains(" milkcheck-runner>=2 : mirror has no distribution named `milkcheck-runner`"),
        "{output}"
    );
}

#[test]
fn a_runner_builds_offline_from_its_git_repo() {
    let (mut site, st2_python) = runner_site();
    let mirror = site.mirror();
    make_backend_wheel(&mirror, "fxbuild", "1.0");
    let project = fixture(
        MAKE_RUNNER,
        &[
            "--project",
            "milkcheck_runner",
            "2.0.0",
            site.path().join("src").to_str().expect("a UTF-8 temp path"),
            "--backend",
            "fxbuild:fxbuild",
            "--requires",
            "six",
        ],
    );
    let repo = GitRepo::init(&project);
    repo.commit("milkcheck_runner 2.0.0");
    site.add_runner_from("milkcheck_runner", &project);

    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(
        plan.contains("requirement added: milkcheck-runner"),
        "{plan}"
    );
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(
        output.contains(": clush-runner 1.2.0, milkcheck-runner 2.0.0"),
        "{output}"
    );
    let found = st2_runs(
        &st2_python,
        "import importlib.metadata as md; \
         print(sorted(e.name for e in md.entry_points(group='st2common.runners.runner')))",
    );
    assert_eq!(found, "['clush-runner', 'milkcheck-runner']");

    // Uncommitted edits do not count; a commit does.
    let pyproject = fs_err::read_to_string(project.join("pyproject.toml")).unwrap();
    repo.write("pyproject.toml", pyproject.replace("2.0.0", "2.0.1"));
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    repo.commit("milkcheck_runner 2.0.1");
    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(
        plan.contains("milkcheck-runner 2.0.0 -> 2.0.1 (built from "),
        "{plan}"
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert_eq!(installed_version(&st2_python, "milkcheck_runner"), "2.0.1");
    // Built wheels go with the last set that installs from them.
    let wheels = site.state_dir().join("runners/wheels");
    assert_eq!(fs_err::read_dir(&wheels).unwrap().count(), 2);
    assert_exit(site.cmd(["gc", "--keep", "1"]), 0);
    assert_eq!(fs_err::read_dir(&wheels).unwrap().count(), 1);
}

/// `runner_site` whose `register_runners` is StackStorm's registrar (the fake st2common's: it
/// calls every runner's `get_metadata()`), failing while `$ROOT/st2-down` exists as a
/// registration does when StackStorm's database is away.
fn registering_site() -> (TestSite, PathBuf) {
    let (mut site, st2_python) = runner_site();
    let register = site.engine_script(
        "register-runners",
        &format!(
            "echo register_runners >> \"$LOG\"\n\
             if [ -e \"$ROOT/st2-down\" ]; then\n\
               echo 'pymongo.errors.ServerSelectionTimeoutError: st2-mongodb:27017: [Errno 111] Connection refused' >&2\n\
               exit 1\n\
             fi\n\
             exec '{}' -m st2common.bootstrap.runnersregistrar \"$ROOT/runner-types.json\"\n",
            st2_python.display()
        ),
    );
    site.stackstorm_line(&format!("register_runners = ['{}']", register.display()));
    (site, st2_python)
}

/// The runner types StackStorm's registrar recorded, by name.
fn registered_runners(site: &TestSite) -> serde_json::Value {
    let recorded = fs_err::read(site.path().join("runner-types.json")).expect("a registration");
    serde_json::from_slice(&recorded).expect("the registrar writes JSON")
}

/// Issue 23: the health check calls what StackStorm's registrar calls, before the switch.
#[test]
fn issue_23_a_runner_stackstorm_cannot_register_never_goes_live() {
    let (site, _) = registering_site();
    assert_exit(site.cmd(["apply"]), 0);
    assert_eq!(
        registered_runners(&site)["clush-runner"]["runner_module"],
        "clush_runner.clush_runner"
    );
    let current = site.state_dir().join("runners/current");
    let good = fs_err::read_link(&current).unwrap();
    let mirror = site.mirror();
    for (version, flag, problem) in [
        (
            "1.2.5",
            "--no-get-metadata",
            "AttributeError: module 'clush_runner.clush_runner' has no attribute 'get_metadata'",
        ),
        (
            "1.2.6",
            "--metadata-raises",
            "RuntimeError: cannot read my runner.yaml",
        ),
    ] {
        runner_wheel(&mirror, "clush_runner", version, &[flag]);
        let output = assert_exit(
            site.cmd(["apply", "--detailed-exitcodes", "--retry-failed"]),
            4,
        );
        assert!(
            output.contains("The runner health check failed, so the set did not go live"),
            "{output}"
        );
        assert!(output.contains(problem), "{problem}\n{output}");
        assert_eq!(fs_err::read_link(&current).unwrap(), good, "{version}");
        assert_eq!(
            site.engine_log(),
            "register_runners\nrestart\n",
            "nothing registered for {version}"
        );
        let status = assert_exit(site.cmd(["status"]), 0);
        assert!(status.contains("Runners: failed"), "{status}");
    }
}

/// Issue 23: the check never leaves a set live that fails it, not even while it runs.
#[test]
fn issue_23_the_link_never_points_at_a_set_being_checked() {
    let (site, _) = registering_site();
    assert_exit(site.cmd(["apply"]), 0);
    let current = site.state_dir().join("runners/current");
    let good = fs_err::read_link(&current).unwrap();
    let gate = site.path().join("checked");
    runner_wheel(
        &site.mirror(),
        "clush_runner",
        "1.2.7",
        &["--metadata-raises", "--wait-for", gate.to_str().unwrap()],
    );
    let mut apply = site.cmd(["apply"]);
    let apply = apply
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checking = site.path().join("checked.checking");
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while !checking.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(checking.exists(), "the check reached get_metadata()");
    assert_eq!(
        fs_err::read_link(&current).unwrap(),
        good,
        "while the check runs"
    );
    fs_err::write(&gate, "").unwrap();
    let status = apply.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(1));
    assert_eq!(fs_err::read_link(&current).unwrap(), good);
}

/// Issue 23: a `register_runners` that fails switches the set back and registers the previous
/// one again; status says so with the command's output; the next run waits for the retry time.
#[test]
fn issue_23_a_failed_runner_registration_switches_back_and_is_retried() {
    let (site, st2_python) = registering_site();
    assert_exit(site.cmd(["apply"]), 0);
    let current = site.state_dir().join("runners/current");
    let good = fs_err::read_link(&current).unwrap();
    runner_wheel(&site.mirror(), "clush_runner", "1.2.1", &[]);
    fs_err::write(site.path().join("st2-down"), "").unwrap();
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    assert!(output.contains("reverted     runners  set "), "{output}");
    assert!(
        output.contains(&format!(
            "Registering the runners failed, so the runner set `{}` is live again; registering \
             it again failed too",
            good.file_name().unwrap().to_string_lossy()
        )),
        "{output}"
    );
    assert!(
        output.contains("    | pymongo.errors.ServerSelectionTimeoutError"),
        "{output}"
    );
    assert_eq!(fs_err::read_link(&current).unwrap(), good);
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.2.0");
    // Registered twice more: the failed set, then the previous one again.
    assert_eq!(
        site.engine_log(),
        "register_runners\nrestart\nregister_runners\nregister_runners\n"
    );
    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(status.contains("Runners: failed"), "{status}");
    assert!(status.contains("ServerSelectionTimeoutError"), "{status}");

    // Not again before its retry time; now with --retry-failed.
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    assert!(output.contains("retry after"), "{output}");
    fs_err::remove_file(site.path().join("st2-down")).unwrap();
    let output = assert_exit(
        site.cmd(["apply", "--detailed-exitcodes", "--retry-failed"]),
        2,
    );
    assert!(output.contains("upgraded     runners  set "), "{output}");
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.2.1");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
}

/// Issue 23: a runner once `pip install`ed into StackStorm's own virtualenv (the site's old
/// procedure) does not win over the set's; `check` names the command that removes it.
#[test]
fn issue_23_a_stale_copy_in_stackstorms_venv_does_not_win() {
    let (site, st2_python) = registering_site();
    let stale = tempfile::tempdir().unwrap();
    let wheel = runner_wheel(
        stale.path(),
        "clush_runner",
        "1.0",
        &["--runner", "clush-stale"],
    );
    let output = Command::new(python())
        .args(["-m", "pip", "--python"])
        .arg(&st2_python)
        .args(["install", "--quiet", "--no-deps", "--no-index"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.0");

    let output = assert_exit(site.cmd(["check"]), 0);
    assert!(
        output.contains("has clush-runner 1.0 installed: the runner set's copy is loaded ahead"),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "`{}/pip uninstall -y clush-runner`",
            st2_python.parent().unwrap().display()
        )),
        "{output}"
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert_eq!(installed_version(&st2_python, "clush_runner"), "1.2.0");
    let found = st2_runs(
        &st2_python,
        "import importlib.metadata as md; \
         print(sorted(e.name for e in md.entry_points(group='st2common.runners.runner')))",
    );
    assert_eq!(
        found, "['clush-runner']",
        "the stale copy's runner is shadowed"
    );
    assert!(registered_runners(&site).get("clush-stale").is_none());
}

/// Issue 23: a runner built from its Git repo stands in for the mirror's wheel of the same
/// version, and the plan says where it comes from.
#[test]
fn issue_23_a_git_built_runner_wins_over_the_mirrors_wheel_of_its_version() {
    let (mut site, st2_python) = registering_site();
    let mirror = site.mirror();
    make_backend_wheel(&mirror, "fxbuild", "1.0");
    // The mirror's milkcheck_runner 2.0.0 names its runner differently.
    runner_wheel(
        &mirror,
        "milkcheck_runner",
        "2.0.0",
        &["--runner", "milkcheck-from-mirror"],
    );
    let project = fixture(
        MAKE_RUNNER,
        &[
            "--project",
            "milkcheck_runner",
            "2.0.0",
            site.path().join("src").to_str().unwrap(),
            "--backend",
            "fxbuild:fxbuild",
        ],
    );
    let repo = GitRepo::init(&project);
    let commit = repo.commit("milkcheck_runner 2.0.0");
    site.add_runner_from("milkcheck_runner", &project);
    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(
        plan.contains(&format!(
            "    milkcheck-runner 2.0.0 added (built from {}@{})",
            project.display(),
            &commit[..7]
        )),
        "{plan}"
    );
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("milkcheck-runner 2.0.0"), "{output}");
    let found = st2_runs(
        &st2_python,
        "import importlib.metadata as md; \
         print(sorted(e.name for e in md.entry_points(group='st2common.runners.runner')))",
    );
    assert_eq!(found, "['clush-runner', 'milkcheck-runner']");
}

/// Issue 23: going to an older runner version is a downgrade.
#[test]
fn issue_23_an_older_runner_is_a_downgrade() {
    let (mut site, _) = registering_site();
    runner_wheel(&site.mirror(), "clush_runner", "1.2.1", &[]);
    assert_exit(site.cmd(["apply"]), 0);
    site.add_runner("clush_runner", "==1.2.0");
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("downgraded   runners  set "), "{output}");
    let history = assert_exit(site.cmd(["history", "--runners", "--limit", "1"]), 0);
    assert!(history.contains("runners  downgrade"), "{history}");
}

#[test]
fn issue_23_check_warns_when_runners_have_no_restart() {
    let (mut site, _) = runner_site();
    let output = assert_exit(site.cmd(["check"]), 0);
    assert!(
        !output.contains("without `[stackstorm] restart`"),
        "{output}"
    );
    site.remove_stackstorm_line("restart");
    let output = assert_exit(site.cmd(["check"]), 0);
    assert!(
        output.contains("`[[runner]]` is set without `[stackstorm] restart`"),
        "{output}"
    );
}

/// Issue 16: a runner the site config does not declare is looked up in StackStorm's
/// interpreter, once an action names it: one the live runner set brings under another name is
/// taken, and one the interpreter does not have is an error, not the warning of a site whose
/// interpreter cannot be asked.
#[test]
fn issue_16_a_runner_not_declared_is_looked_up_in_stackstorms_interpreter() {
    let (mut site, _) = runner_site();
    runner_wheel(
        &site.mirror(),
        "clush_runner",
        "1.2.1",
        &["--runner", "clush-extra"],
    );
    assert_exit(site.cmd(["apply"]), 0);
    let repo = site.pack_repo("clush", "1.0.0");
    repo.write(
        "actions/run.yaml",
        "name: run\nrunner_type: clush-extra\nentry_point: run.sh\n",
    )
    .write("actions/run.sh", "#!/bin/sh\n");
    repo.commit("an action on the runner the set brings");
    site.add_pack(PackEntry::new("clush", repo.path()));
    let output = assert_exit(site.cmd(["check"]), 0);
    assert!(
        !output.contains("which StackStorm does not have"),
        "{output}"
    );

    repo.write(
        "actions/run.yaml",
        "name: run\nrunner_type: no-such-runner\nentry_point: run.sh\n",
    );
    repo.commit("an action on a runner StackStorm does not have");
    let output = assert_exit(site.cmd(["check"]), 1);
    assert!(
        output.contains("error: [clush] `")
            && output.contains("uses the runner `no-such-runner`, which StackStorm does not have"),
        "{output}"
    );
}

/// Issue 21: a runner's `source` must carry the signatures `verify` asks for, as a pack's.
#[test]
fn issue_21_an_unsigned_runner_source_is_refused() {
    let (mut site, _) = registering_site();
    let project = site.path().join("src/milkcheck");
    let repo = GitRepo::init(&project);
    repo.write("README", "milkcheck\n");
    repo.commit("Unsigned");
    let signers = site.path().join("allowed_signers");
    fs_err::write(
        &signers,
        "alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfmbJ6o5j6cVcrjnPvdC8uUZ1pCtUwVz3Bp1XcKyq5C\n",
    )
    .unwrap();
    site.add_runner_from("milkcheck_runner", &project);
    site.agent_line(&format!(
        "verify = {{ mode = \"commit\", allowed_signers = \"{}\" }}",
        signers.display()
    ));
    let plan = run(site.cmd(["plan"]));
    assert!(
        plan.contains(&format!(
            "The source of `{}` is not signed as `mode = \"commit\"` asks",
            project.display()
        )),
        "{plan}"
    );
    assert!(plan.contains(": unsigned"), "{plan}");
}
