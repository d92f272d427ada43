//! Issue 21: `packsync verify` finds what was changed in a live release since it was built,
//! `status` shows it, and `apply` moves the tampered release aside and builds it again from Git.

use std::path::{Path, PathBuf};

use super::agent::{Agent, free_address, http_get, live_version};
use crate::common::site::{PackEntry, TestSite, assert_exit, packsync_snapshot, run_json};

/// The site-packages of the virtualenv `env`.
fn site_packages(env: &Path) -> PathBuf {
    let lib = env.join("lib");
    fs_err::read_dir(&lib)
        .expect("the env has lib/")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("python"))
        })
        .expect("lib/python3.x")
        .join("site-packages")
}

#[test]
fn issue_21_verify_finds_tampering_and_apply_builds_the_release_again_from_git() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "six\n");
    clush.write("actions/run.py", "print('hello')\n");
    clush.write("README.md", "clush\n");
    clush.commit("An action that needs six");
    site.add_pack(PackEntry::new("clush", clush.path()));
    assert_exit(site.cmd(["apply"]), 0);
    packsync_snapshot!(site, site.cmd(["verify"]), @"
    exit_code: 0
    ----- stdout -----
    ok        clush  1.0.0-[SHORT]-[INPUTS]
    Verify: 1 live release(s), 0 tampered

    ----- stderr -----
    ");

    // A hand edit, a file dropped in, a file taken out, and a `.pth` in the virtualenv.
    let release = fs_err::canonicalize(site.state_dir().join("current/clush")).unwrap();
    let pack = release.join("pack/clush");
    fs_err::write(pack.join("actions/run.py"), "import os; os.system('id')\n").unwrap();
    fs_err::write(pack.join("actions/extra.py"), "print('extra')\n").unwrap();
    fs_err::remove_file(pack.join("README.md")).unwrap();
    fs_err::write(
        site_packages(&release.join("venv")).join("zz.pth"),
        "import os\n",
    )
    .unwrap();
    packsync_snapshot!(site, site.cmd(["verify"]), @"
    exit_code: 1
    ----- stdout -----
    tampered  clush  1.0.0-[SHORT]-[INPUTS]
        changed  actions/run.py
        added    actions/extra.py
        removed  README.md
        env      `zz.pth` is in site-packages but in no RECORD
    Verify: 1 live release(s), 1 tampered (`packsync apply` moves each aside under `state_dir/tampered/` and builds it again from Git)

    ----- stderr -----
    ");
    let status = run_json(site.cmd(["status", "--json"]));
    assert_eq!(status["packs"][0]["state"], "drifted", "{status}");
    assert_eq!(
        status["packs"][0]["tampered"]["files"]["changed"][0],
        "actions/run.py"
    );
    assert!(status["verified_at"].is_string(), "{status}");
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    rebuild     clush  1.0.0 (HEAD @ [SHORT])
        `packsync verify` found it changed on disk (1 file changed, 1 file added, 1 file removed, its virtualenv: `zz.pth` is in site-packages but in no RECORD): built again from Git, the tampered release moved aside
    Plan: 1 to rebuild

    ----- stderr -----
    ");

    packsync_snapshot!(site, site.cmd(["apply"]), @"
    exit_code: 0
    ----- stdout -----
    rebuilt      clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    ");
    let run_py = fs_err::read_to_string(
        site.state_dir()
            .join("current/clush")
            .join("pack/clush/actions/run.py"),
    )
    .unwrap();
    assert_eq!(run_py, "print('hello')\n");
    // The tampered release, for inspection, with its virtualenv.
    let aside: Vec<PathBuf> = fs_err::read_dir(site.state_dir().join("tampered"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0]
            .join("release/pack/clush/actions/extra.py")
            .is_file()
    );
    assert!(
        site_packages(&aside[0].join("env"))
            .join("zz.pth")
            .is_file()
    );
    assert!(!site_packages(&release.join("venv")).join("zz.pth").exists());
    assert_exit(site.cmd(["verify"]), 0);
    assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 0);
}

/// The agent verifies on `[agent] verify_every`, and builds a release it finds tampered again from
/// Git at once; `/metrics` says when it last verified.
#[test]
fn issue_21_the_agent_verifies_on_its_schedule_and_builds_a_tampered_release_again() {
    let address = free_address();
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .agent_line("verify_every = \"1s\"")
        .agent_line(&format!("metrics_listen = \"{address}\""));
    let agent = Agent::start(&site);
    agent.wait_for("clush live", || {
        live_version(&site, "clush").as_deref() == Some("1.0.0")
    });
    let pack_yaml = site.state_dir().join("current/clush/pack/clush/pack.yaml");
    let original = fs_err::read_to_string(&pack_yaml).unwrap();
    fs_err::write(&pack_yaml, "name: intruder\n").unwrap();
    agent.wait_for("pack.yaml as Git has it again", || {
        fs_err::read_to_string(&pack_yaml).is_ok_and(|text| text == original)
    });
    assert!(
        agent.log().contains("tampered: built again from Git"),
        "{}",
        agent.log()
    );
    agent.wait_for("a verification that finds nothing", || {
        http_get(&address, "/metrics").is_ok_and(|(_, metrics)| {
            metrics.contains("packsync_tampered_packs 0")
                && metrics.contains("packsync_verify_timestamp_seconds ")
        })
    });
}
