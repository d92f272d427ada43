//! Issue 15: StackStorm's database holds exactly the live release after every switch. A fake
//! StackStorm (`tests/fixtures/fake_st2.py`) registers as st2 does (never deletes; a failing file
//! stops the run after the files sorted before it), lists and deletes; real Git, venvs, pip.

#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::git::GitRepo;
use crate::common::site::{
    Backend, PackEntry, TestSite, assert_exit, pack_yaml, python, run, run_json,
};
use crate::common::{copy_tree, mongo};

const FAKE_ST2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_st2.py");
const ADAPTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/st2/packsync-st2");
const PACK_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/st2/packsync-pack-tests"
);
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// The fake StackStorm of one site: its database, and a file that, while it exists, makes
/// `purge` fail as an st2api that is down does.
struct FakeSt2 {
    db: PathBuf,
    down: PathBuf,
}

impl FakeSt2 {
    /// Sets `register`, `registered` and `purge` of `site` to the fake.
    fn on(site: &mut TestSite) -> Self {
        let db = site.path().join("st2.json");
        let down = site.path().join("st2-down");
        let argv = |args: &str| {
            format!(
                "['{}', '{FAKE_ST2}', '--db', '{}', {args}]",
                python().display(),
                db.display()
            )
        };
        site.stackstorm_line(&format!("register = {}", argv("'register', '{pack_dir}'")))
            .stackstorm_line(&format!("registered = {}", argv("'list', '{pack}'")))
            .stackstorm_line(&format!(
                "purge = {}",
                argv(&format!(
                    "'--broken-if', '{}', 'purge', '{{kind}}', '{{ref}}'",
                    down.display()
                ))
            ));
        Self { db, down }
    }

    /// What it holds for `pack`: `kind ref`, sorted.
    fn held(&self, pack: &str) -> Vec<String> {
        let output = Command::new(python())
            .args([FAKE_ST2, "--db"])
            .arg(&self.db)
            .args(["list", pack])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let held: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        held.iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["kind"].as_str().unwrap(),
                    r["ref"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Registers the pack folder `dir` as `st2 pack install` would have.
    fn register(&self, dir: &Path) {
        let output = Command::new(python())
            .args([FAKE_ST2, "--db"])
            .arg(&self.db)
            .arg("register")
            .arg(dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
}

fn action(repo: &GitRepo, name: &str, runner: &str) {
    repo.write(
        &format!("actions/{name}.yaml"),
        format!("name: {name}\nrunner_type: {runner}\nentry_point: {name}.sh\n"),
    )
    .write(&format!("actions/{name}.sh"), "#!/bin/sh\necho ok\n");
}

fn rule(repo: &GitRepo, name: &str) {
    repo.write(
        &format!("rules/{name}.yaml"),
        format!("name: {name}\ntrigger:\n  type: core.st2.webhook\naction:\n  ref: clush.run\n"),
    );
}

/// `clush` 1.0.0 with the actions `run` and `old`, the rules `nightly` and `hourly`, a sensor
/// with a trigger type, and StackStorm's content of it.
fn clush_site(backend: Backend) -> (TestSite, GitRepo, FakeSt2) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    action(&repo, "run", "local-shell-script");
    action(&repo, "old", "local-shell-script");
    rule(&repo, "nightly");
    rule(&repo, "hourly");
    repo.write(
        "sensors/watch.yaml",
        "class_name: NodeWatcher\nentry_point: watch.py\ntrigger_types:\n  - name: node_down\n",
    );
    repo.write("sensors/watch.py", "class NodeWatcher:\n    pass\n");
    repo.commit("clush 1.0.0 content");
    site.add_pack(PackEntry::new("clush", repo.path()));
    let st2 = FakeSt2::on(&mut site);
    (site, repo, st2)
}

const V1: [&str; 6] = [
    "action clush.old",
    "action clush.run",
    "rule clush.hourly",
    "rule clush.nightly",
    "sensor clush.NodeWatcher",
    "trigger clush.node_down",
];

#[test]
fn issue_15_an_upgrade_purges_what_the_new_release_no_longer_carries() {
    let (site, repo, st2) = clush_site(Backend::File);
    assert_exit(site.cmd(["apply"]), 0);
    assert_eq!(st2.held("clush"), V1);

    repo.remove("actions/old.yaml").remove("actions/old.sh");
    repo.remove("rules/hourly.yaml")
        .remove("sensors/watch.yaml");
    repo.write("pack.yaml", pack_yaml("clush", "2.0.0", ""));
    repo.commit("clush 2.0.0 drops old, hourly and the sensor");
    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    for line in [
        "    purge clush.old (action): not in 2.0.0",
        "    purge clush.hourly (rule): not in 2.0.0",
        "    purge clush.NodeWatcher (sensor): not in 2.0.0",
        "    purge clush.node_down (trigger): not in 2.0.0",
    ] {
        assert!(plan.contains(line), "{line}\n{plan}");
    }
    let json = run_json(site.cmd(["plan", "--json"]));
    assert_eq!(
        json["purges"]["clush"].as_array().unwrap().len(),
        4,
        "{json}"
    );

    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("    purged clush.old (action)"), "{output}");
    assert!(
        output.contains("    purged clush.hourly (rule)"),
        "{output}"
    );
    assert_eq!(
        st2.held("clush"),
        ["action clush.run", "rule clush.nightly"]
    );
    // StackStorm has no sensor delete: it is disabled, and no longer listed.
    let db = fs_err::read_to_string(&st2.db).unwrap();
    assert!(
        db.contains("\"ref\": \"clush.NodeWatcher\""),
        "disabled, not deleted"
    );

    let json = run_json(site.cmd(["history", "--json", "--limit", "1"]));
    assert_eq!(json["entries"][0]["outcome"], "applied", "{json}");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
}

#[test]
fn issue_15_a_rollback_purges_what_only_the_newer_release_had() {
    let (site, repo, st2) = clush_site(Backend::File);
    assert_exit(site.cmd(["apply"]), 0);
    action(&repo, "v2only", "local-shell-script");
    repo.write("pack.yaml", pack_yaml("clush", "2.0.0", ""));
    repo.commit("clush 2.0.0 adds v2only");
    assert_exit(site.cmd(["apply"]), 0);
    assert!(
        st2.held("clush")
            .contains(&"action clush.v2only".to_string())
    );

    let output = assert_exit(site.cmd(["rollback", "clush"]), 0);
    assert!(output.contains("purged clush.v2only (action)"), "{output}");
    assert_eq!(st2.held("clush"), V1);
}

#[test]
fn issue_15_a_failed_registration_leaves_no_residue_and_says_what_is_live() {
    let (site, repo, st2) = clush_site(Backend::File);
    assert_exit(site.cmd(["apply"]), 0);
    // Sorted before the broken action: StackStorm registers it, then fails.
    action(&repo, "aaa", "local-shell-script");
    action(&repo, "zzz", "no-such-runner");
    repo.write("pack.yaml", pack_yaml("clush", "2.0.0", ""));
    repo.commit("clush 2.0.0 with an action StackStorm refuses");
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    assert!(output.contains("reverted     clush"), "{output}");
    assert!(
        output.contains("error: [clush] Registration failed, so release `1.0.0-"),
        "{output}"
    );
    assert!(output.contains("` is live again\n"), "{output}");
    assert!(
        output.contains("    | Failed to register action ")
            && output.contains("RunnerType no-such-runner is not found."),
        "the command's output is shown: {output}"
    );
    assert_eq!(
        output.matches("RunnerType no-such-runner").count(),
        1,
        "{output}"
    );
    assert_eq!(st2.held("clush"), V1, "clush.aaa was purged");

    let json = run_json(site.cmd(["status", "--json"]));
    let failure = json["packs"][0]["last_failure"]["error"].as_str().unwrap();
    assert!(
        failure.contains("RunnerType no-such-runner is not found."),
        "{failure}"
    );
    let history = assert_exit(site.cmd(["history", "--pack", "clush", "--limit", "1"]), 0);
    assert!(history.contains("reverted"), "{history}");
    assert!(
        history.contains("RunnerType no-such-runner is not found."),
        "{history}"
    );
}

#[test]
fn issue_15_an_adopted_pack_loses_what_stackstorm_had_that_git_does_not() {
    let (site, _repo, st2) = clush_site(Backend::File);
    // What `st2 pack install` had put in place, and registered.
    let installed = site.packs_dir().join("clush");
    fs_err::create_dir_all(installed.join("actions")).unwrap();
    fs_err::write(installed.join("pack.yaml"), pack_yaml("clush", "0.9.0", "")).unwrap();
    fs_err::write(
        installed.join("actions/legacy.yaml"),
        "name: legacy\nrunner_type: local-shell-cmd\n",
    )
    .unwrap();
    st2.register(&installed);
    assert_eq!(st2.held("clush"), ["action clush.legacy"]);

    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(
        plan.contains("    purge clush.legacy (action): not in 1.0.0"),
        "{plan}"
    );
    let output = assert_exit(site.cmd(["apply"]), 0);
    assert!(output.contains("purged clush.legacy (action)"), "{output}");
    assert_eq!(st2.held("clush"), V1);
}

#[test]
fn issue_15_a_failed_purge_fails_the_step_and_the_next_run_retries() {
    let (site, repo, st2) = clush_site(Backend::File);
    assert_exit(site.cmd(["apply"]), 0);
    repo.remove("actions/old.yaml");
    repo.write("pack.yaml", pack_yaml("clush", "2.0.0", ""));
    repo.commit("clush 2.0.0 drops old");
    fs_err::write(&st2.down, "").unwrap();

    // Live and registered, the purge failed: a change and a failure.
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 6);
    assert!(output.contains("upgraded     clush"), "{output}");
    assert!(
        output.contains("The `purge` command for clush.old (action) of pack `clush` failed"),
        "{output}"
    );
    assert!(
        output.contains("    | ERROR: Connection refused: st2api is down"),
        "{output}"
    );
    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(status.contains("clush  failed"), "{status}");
    assert!(
        status.contains("Connection refused: st2api is down"),
        "{status}"
    );
    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    assert!(plan.contains("repair      clush"), "{plan}");
    assert!(plan.contains("the last purge failed"), "{plan}");
    assert!(
        plan.contains("    purge clush.old (action): not in 2.0.0"),
        "{plan}"
    );

    fs_err::remove_file(&st2.down).unwrap();
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("repaired     clush"), "{output}");
    assert!(output.contains("purged clush.old (action)"), "{output}");
    assert!(!st2.held("clush").contains(&"action clush.old".to_string()));
    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(status.contains("clush  ok"), "{status}");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
}

/// `st2 pack install` run by hand: StackStorm's `pack_d_b` has another version than the live
/// release. `apply` registers the live release again and purges; a setting turns it off.
#[test]
fn issue_15_engine_drift_is_repaired_by_registering_and_purging_again() {
    let (mut site, _repo, st2) = clush_site(Backend::MongoDb);
    assert_exit(site.cmd(["apply"]), 0);
    let (url, database) = site.mongodb_database().cloned().unwrap();
    let client = mongodb::sync::Client::with_uri_str(&url).unwrap();
    let packs = client
        .database(&database)
        .collection::<mongodb::bson::Document>("pack_d_b");
    packs
        .insert_one(mongodb::bson::doc! {"ref": "clush", "version": "0.9.0", "path": "/opt/stackstorm/packs/clush"})
        .run()
        .unwrap();
    // What the hand install registered besides.
    let legacy = site.path().join("legacy/clush");
    fs_err::create_dir_all(legacy.join("actions")).unwrap();
    fs_err::write(
        legacy.join("actions/legacy.yaml"),
        "name: legacy\nrunner_type: noop\n",
    )
    .unwrap();
    st2.register(&legacy);

    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    assert!(plan.contains("repair      clush"), "{plan}");
    assert!(
        plan.contains("StackStorm has version 0.9.0 registered, not the live release"),
        "{plan}"
    );
    site.stackstorm_line("repair_engine_drift = false");
    assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 0);
    site.stackstorm_line("repair_engine_drift = true");

    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("repaired     clush"), "{output}");
    assert!(output.contains("purged clush.legacy (action)"), "{output}");
    assert_eq!(st2.held("clush"), V1);
    // StackStorm records the registration.
    packs
        .update_one(
            mongodb::bson::doc! {"ref": "clush"},
            mongodb::bson::doc! {"$set": {"version": "1.0.0"}},
        )
        .run()
        .unwrap();
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    mongo::drop_database(&url, &database);
}

#[test]
fn issue_15_check_warns_when_registration_never_purges() {
    let mut site = TestSite::new();
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    site.stackstorm_line("register = ['true', '{pack_dir}']");
    let output = run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 0"), "{output}");
    assert!(
        output.contains("`[stackstorm] register` is set without `registered` and `purge`"),
        "{output}"
    );
    FakeSt2::on(&mut site);
    let output = assert_exit(site.cmd(["check"]), 0);
    assert!(!output.contains("without `registered`"), "{output}");
}

/// The adapter of the reference site config turns the `st2` CLI into `registered` and `purge`.
#[test]
fn issue_15_the_st2_cli_adapter_lists_and_deletes_through_st2() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let st2 = dir.path().join("st2");
    fs_err::write(
        &st2,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\ncase \"$1 $2\" in\n\
             'action list') echo '[{{\"ref\": \"clush.run\", \"pack\": \"clush\"}}]' ;;\n\
             'sensor list') echo '[{{\"ref\": \"clush.On\", \"enabled\": true}}, {{\"ref\": \"clush.Off\", \"enabled\": false}}]' ;;\n\
             'rule delete') echo 'Rule \"clush.gone\" is not found.'; exit 1 ;;\n\
             *list) echo 'No matching items found' ;;\n\
             esac\n",
            calls.display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(&st2, std::fs::Permissions::from_mode(0o755)).unwrap();
    let adapter = |args: &[&str]| {
        Command::new(python())
            .arg(ADAPTER)
            .args(args)
            .env("ST2_CLI", &st2)
            .output()
            .unwrap()
    };
    let output = adapter(&["registered", "clush"]);
    assert!(output.status.success(), "{output:?}");
    let held: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        held,
        serde_json::json!([{"kind": "action", "ref": "clush.run"}, {"kind": "sensor", "ref": "clush.On"}])
    );
    assert!(adapter(&["purge", "action", "clush.run"]).status.success());
    assert!(adapter(&["purge", "sensor", "clush.On"]).status.success());
    assert!(
        adapter(&["purge", "rule", "clush.gone"]).status.success(),
        "already gone"
    );
    assert!(!adapter(&["purge", "bogus", "x"]).status.success());
    let calls = fs_err::read_to_string(&calls).unwrap();
    assert!(calls.contains("action list --pack clush -j\n"), "{calls}");
    assert!(
        calls.contains("action-alias list --pack clush -j\n"),
        "{calls}"
    );
    assert!(calls.contains("action delete clush.run\n"), "{calls}");
    assert!(calls.contains("sensor disable clush.On\n"), "{calls}");
    assert!(!calls.contains("remove-files"), "{calls}");
}

/// A site deploying the example packs `packs` from repos of their own, with the examples'
/// mirror, built by the test venv's interpreter (a virtualenv with pytest, as StackStorm's own
/// is once a site installs it), and the documented gate.
fn gated_examples(packs: &[&str]) -> (TestSite, Vec<GitRepo>) {
    let mut site = TestSite::new();
    for wheel in fs_err::read_dir(Path::new(EXAMPLES).join("mirror")).unwrap() {
        let wheel = wheel.unwrap().path();
        if wheel.extension().is_some_and(|ext| ext == "whl") {
            fs_err::copy(&wheel, site.mirror().join(wheel.file_name().unwrap())).unwrap();
        }
    }
    let tools_python = std::env::var("PACKSYNC_TEST_TOOLS_PYTHON")
        .expect("PACKSYNC_TEST_TOOLS_PYTHON is not set: run the tests with `scripts/with-mongodb`");
    site.stackstorm_line(&format!("python = '{tools_python}'"))
        .stackstorm_line("st2_pth = true")
        .stackstorm_line(&format!(
            "test = ['{PACK_TESTS}', '{{venv_dir}}', '{{release_dir}}']"
        ));
    let mut repos = Vec::new();
    for pack in packs {
        let repo = GitRepo::init(&site.path().join("repos").join(pack));
        copy_tree(&Path::new(EXAMPLES).join("packs").join(pack), repo.path());
        repo.commit(&format!("the example pack {pack}"));
        let mut entry = PackEntry::new(pack, repo.path());
        if *pack == "diskless" {
            // What its schema requires, as the quickstart's site config gives it.
            entry = entry
                .config("boot_server", "\"http://boot01.cluster:8080/images\"")
                .config("image_dir", "\"/srv/diskless/images\"")
                .config("ipxe_dir", "\"/srv/tftp/ipxe/nodes\"");
        }
        site.add_pack(entry);
        repos.push(repo);
    }
    (site, repos)
}

#[test]
fn issue_15_the_documented_gate_runs_the_example_packs_tests_in_their_release_venv() {
    let (site, repos) = gated_examples(&["clush", "diskless"]);
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("installed    clush"), "{output}");
    assert!(output.contains("installed    diskless"), "{output}");

    // A broken test keeps its release from going live, and shows why.
    let clush = &repos[0];
    clush.write(
        "tests/test_broken.py",
        "def test_broken():\n    assert 1 + 1 == 3, 'arithmetic'\n",
    );
    clush.commit("a failing test");
    let live = fs_err::canonicalize(site.packs_dir().join("clush")).unwrap();
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    assert!(output.contains("failed       clush"), "{output}");
    assert!(
        output.contains("1 failed"),
        "pytest's summary is shown: {output}"
    );
    assert_eq!(
        fs_err::canonicalize(site.packs_dir().join("clush")).unwrap(),
        live
    );

    // A test that writes into the release it tests fails to: the sealed release is read-only,
    // and where modes stop nothing (root), packsync sees the write and fails the gate.
    clush.write(
        "tests/test_broken.py",
        "import os\n\ndef test_writes():\n    path = os.path.join(os.path.dirname(__file__), 'scratch.txt')\n    with open(path, 'w') as f:\n        f.write('x')\n",
    );
    clush.commit("a test that writes into its pack");
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    let root = rustix::process::geteuid().is_root();
    let refused = if root {
        "wrote into the release it tested: `"
    } else {
        "PermissionError"
    };
    assert!(output.contains(refused), "{output}");
    assert_eq!(
        fs_err::canonicalize(site.packs_dir().join("clush")).unwrap(),
        live
    );
    let releases = fs_err::read_dir(site.state_dir().join("releases/clush"))
        .unwrap()
        .count();
    assert_eq!(releases, 1, "the releases that failed their gate are gone");
}
