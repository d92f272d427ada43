//! Issue 14: every live virtualenv holds exactly its pins, and no crash can make it otherwise.
//! Real venvs, real pip and uv, real processes killed with SIGKILL; the timing comes from fake
//! installers that wait for files, never from sleeps.

#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::git::GitRepo;
use crate::common::site::{PackEntry, TestSite, assert_exit, python, run, run_json};

/// A site whose pack `clush` needs `tinydep` (1.0 in the mirror).
fn site_with_a_requirement() -> (TestSite, GitRepo) {
    let mut site = TestSite::new();
    site.wheel("tinydep", "1.0", &[]);
    let repo = site.pack_repo("clush", "1.0.0");
    repo.write("requirements.txt", "tinydep\n");
    repo.commit("clush needs tinydep");
    site.add_pack(PackEntry::new("clush", repo.path()));
    (site, repo)
}

/// The uv binary `scripts/with-mongodb` installs.
fn test_uv() -> PathBuf {
    PathBuf::from(std::env::var_os("PACKSYNC_TEST_UV").expect(
        "PACKSYNC_TEST_UV is not set: run the tests with `scripts/with-mongodb cargo test`",
    ))
}

/// Whether process `pid` runs (a zombie does not).
fn running(pid: u32) -> bool {
    fs_err::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

fn pid_in(path: &Path) -> u32 {
    fs_err::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits (10 s at most) until `done` holds; `false` when it never did.
fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// A stand-in for `real` that, the first time its arguments match `stage`, starts a helper in
/// its own process group (as pip starts a build backend) which waits for `$ROOT/go` and then
/// does the real step, kills packsync (its parent) with SIGKILL once packsync has recorded it
/// in `state_dir/children` (it does right after the spawn; a kill in between leaves only what
/// the child started in that instant), and waits. Every other time it is `real`.
fn killing_installer(site: &TestSite, name: &str, real: &Path, stage: &str) -> PathBuf {
    site.engine_script(
        name,
        &format!(
            "case \"$*\" in {stage})
  if [ ! -e \"$ROOT/crashed\" ]; then
    touch \"$ROOT/crashed\"
    echo $$ > \"$ROOT/child.pid\"
    ( while [ ! -e \"$ROOT/go\" ]; do sleep 0.05; done; exec '{real}' \"$@\" ) &
    echo $! > \"$ROOT/helper.pid\"
    while [ -z \"$(ls '{children}' 2>/dev/null)\" ]; do sleep 0.01; done
    kill -9 $PPID
    sleep 60
  fi ;;
esac
exec '{real}' \"$@\"
",
            real = real.display(),
            children = site.state_dir().join("children").display(),
        ),
    )
}

/// Kills `apply` in the middle of `stage` and checks that nothing it started lives on past the
/// next run, which converges on a virtualenv holding exactly its pins.
fn a_kill_during(stage: &str, installer: &str) {
    let (mut site, _repo) = site_with_a_requirement();
    if installer == "pip" {
        let fake = killing_installer(&site, "python", python(), stage);
        site.stackstorm_line(&format!("python = '{}'", fake.display()));
    } else {
        let fake = killing_installer(&site, "uv", &test_uv(), stage);
        site.mirror_line("installer = \"uv\"")
            .mirror_line(&format!("uv = '{}'", fake.display()));
    }
    let output = run(site.cmd(["apply"]));
    assert!(output.starts_with("exit_code: killed"), "{stage}: {output}");
    let child = pid_in(&site.path().join("child.pid"));
    let helper = pid_in(&site.path().join("helper.pid"));
    assert!(
        eventually(|| !running(child)),
        "{stage}: the installer died with packsync"
    );
    // What the installer started does not get the death signal: the next run ends it.
    assert!(running(helper), "{stage}: the helper outlived packsync");

    let second = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(
        !running(helper),
        "{stage}: ended before the build: {second}"
    );
    // Had it lived, it would now write into the virtualenv.
    fs_err::write(site.path().join("go"), "").unwrap();

    let venv = site.venvs_dir().join("clush");
    let imported = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import tinydep; print(tinydep.__version__)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&imported.stdout).trim(),
        "1.0",
        "{stage}: {imported:?}"
    );
    let env = fs_err::canonicalize(&venv).unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(env.join(".complete")).unwrap()).unwrap();
    assert_eq!(
        record["dists"].as_array().unwrap().len(),
        1,
        "{stage}: {record}"
    );
    assert_eq!(record["dists"][0]["name"], "tinydep", "{stage}");
    assert_eq!(record["dists"][0]["version"], "1.0", "{stage}");
    assert!(
        record["dists"][0]["files"].as_u64().unwrap() >= 3,
        "{stage}: {record}"
    );
    let status = run_json(site.cmd(["status", "--json"]));
    assert_eq!(
        status["packs"][0]["active"]["env_verified"], true,
        "{stage}"
    );
    assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 0);
    assert!(
        fs_err::read_dir(site.state_dir().join("children"))
            .unwrap()
            .next()
            .is_none(),
        "{stage}: no child record left"
    );
}

#[test]
fn issue_14_kill_9_during_python_m_venv_leaves_nothing_running_or_live_broken() {
    a_kill_during("*\"-m venv\"*|*-m\\ venv*", "pip");
}

#[test]
fn issue_14_kill_9_during_pip_leaves_nothing_running_or_live_broken() {
    a_kill_during("*-m\\ pip*install*", "pip");
}

#[test]
fn issue_14_kill_9_during_uv_leaves_nothing_running_or_live_broken() {
    a_kill_during("*pip\\ install*", "uv");
}

/// A live release whose virtualenv lost its completion record (a crash on an older packsync, a
/// hand edit) is `broken`, planned as `rebuild`, and repaired by the next `apply`.
#[test]
fn issue_14_a_live_release_with_an_incomplete_env_is_broken_and_rebuilt() {
    let (site, _repo) = site_with_a_requirement();
    assert_exit(site.cmd(["apply"]), 0);
    let env = fs_err::canonicalize(site.venvs_dir().join("clush")).unwrap();
    let record = env.join(".complete");
    packsync::fsx::remove_tree_aside(&record).unwrap();

    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(status.contains("clush  broken"), "{status}");
    assert!(
        status.contains("clush: broken: its live virtualenv is incomplete"),
        "{status}"
    );
    let json = run_json(site.cmd(["status", "--json"]));
    assert_eq!(json["packs"][0]["state"], "broken");
    assert_eq!(json["packs"][0]["active"]["env_verified"], false);
    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    assert!(plan.contains("rebuild     clush"), "{plan}");
    assert!(
        plan.contains("is incomplete (broken): built again"),
        "{plan}"
    );

    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("rebuilt"), "{output}");
    assert!(record.is_file(), "built again with its record");
    let json = run_json(site.cmd(["status", "--json"]));
    assert_eq!(json["packs"][0]["state"], "ok");
    assert_eq!(json["packs"][0]["active"]["env_verified"], true);
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
}

/// A virtualenv that fails to build is not built again with the same inputs before its retry
/// time, in this pack or another one with the same inputs, unless `--retry-failed`.
#[test]
fn issue_14_a_failed_build_waits_for_its_retry_time() {
    let (mut site, _repo) = site_with_a_requirement();
    let twin = site.pack_repo("twin", "1.0.0");
    twin.write("requirements.txt", "tinydep\n");
    twin.commit("twin needs tinydep too");
    site.add_pack(PackEntry::new("twin", twin.path()));
    // pip fails (as lxml 4.6.5 does on Python 3.11) until `$ROOT/fixed` exists.
    let fake = site.engine_script(
        "python",
        &format!(
            "case \"$*\" in *-m\\ pip*install*)
  if [ ! -e \"$ROOT/fixed\" ]; then
    echo pip >> \"$LOG\"; echo 'error: command gcc failed: lxml' >&2; exit 1
  fi ;;
esac
exec '{}' \"$@\"
",
            python().display()
        ),
    );
    site.stackstorm_line(&format!("python = '{}'", fake.display()));

    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    assert_eq!(
        site.engine_log(),
        "pip\n",
        "built once for both packs: {output}"
    );
    assert!(
        output.contains("error: command gcc failed: lxml"),
        "{output}"
    );

    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 0);
    for pack in ["clush", "twin"] {
        assert!(
            plan.contains(&format!("unchanged   {pack}")),
            "{pack} waits: {plan}"
        );
    }
    assert!(plan.contains("failed build, retry after "), "{plan}");
    assert!(plan.contains("(1 failure): the install waits;"), "{plan}");
    let again = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    assert_eq!(site.engine_log(), "pip\n", "not built again: {again}");
    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(
        status.contains("clush: failed build, retry after ")
            && status.contains("(`apply --retry-failed` tries now)"),
        "{status}"
    );
    let json = run_json(site.cmd(["status", "--json"]));
    assert_eq!(json["packs"][0]["state"], "failed");
    assert_eq!(json["packs"][0]["failed_build"]["failures"], 1);

    assert_exit(
        site.cmd(["apply", "--detailed-exitcodes", "--retry-failed"]),
        4,
    );
    assert_eq!(site.engine_log(), "pip\npip\n");
    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(plan.contains("(2 failures)"), "{plan}");

    fs_err::write(site.path().join("fixed"), "").unwrap();
    assert_exit(
        site.cmd(["apply", "--detailed-exitcodes", "--retry-failed"]),
        2,
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    let memo = fs_err::read_to_string(site.state_dir().join("failed-builds.json")).unwrap();
    assert_eq!(memo.trim(), "{}", "a success forgets the failure");
}
