//! `packsync plan`: what would change and why, against a fresh site or an installed state.

use git2::Repository;

use crate::common::git::GitRepo;
use crate::common::site::{
    Backend, PackEntry, TestSite, assert_exit, pack_yaml, packsync_snapshot, three_packs,
    write_pack,
};

/// Moves (or creates) the lightweight tag `name` to `commit`, as `git tag -f`.
fn force_tag(repo: &GitRepo, name: &str, commit: &str) {
    let git = Repository::open(repo.path()).expect("the fixture repo opens");
    let commit = commit.parse().expect("a full commit id");
    let target = git
        .find_object(commit, None)
        .expect("the commit is in the repo");
    git.tag_lightweight(name, &target, true)
        .expect("the tag can be moved");
}

#[test]
fn a_fresh_site_installs_every_pack_after_its_dependencies() {
    let site = three_packs(Backend::File);
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    install     mid    2.0.0 (HEAD @ [SHORT])
        not installed
    install     zulu   0.3.0 (HEAD @ [SHORT])
        not installed
    install     alpha  1.0.0 (HEAD @ [SHORT])
        not installed
    Plan: 3 to install

    ----- stderr -----
    ");
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    install     mid    2.0.0 (HEAD @ [SHORT])
        not installed
    install     zulu   0.3.0 (HEAD @ [SHORT])
        not installed
    install     alpha  1.0.0 (HEAD @ [SHORT])
        not installed
    Plan: 3 to install

    ----- stderr -----
    ");
}

#[test]
fn json_output_has_changes_and_a_summary() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "six\n");
    clush.commit("Needs six");
    site.add_pack(PackEntry::new("clush", clush.path()).key("ref", "\"main\""));
    packsync_snapshot!(site, site.cmd(["plan", "--json"]), @r#"
    exit_code: 0
    ----- stdout -----
    {
      "changes": [
        {
          "pack": "clush",
          "action": "install",
          "from": null,
          "to": {
            "commit": "[COMMIT]",
            "version": "1.0.0",
            "ref": "main",
            "tree": "[DIGEST]",
            "env": "[DIGEST]",
            "config": "[DIGEST]"
          },
          "reasons": [
            "not installed"
          ]
        }
      ],
      "summary": {
        "downgrade": 0,
        "install": 1,
        "orphan": 0,
        "rebuild": 0,
        "reconfigure": 0,
        "remove": 0,
        "repair": 0,
        "unchanged": 0,
        "upgrade": 0,
        "changes": 1,
        "errors": 0
      },
      "problems": []
    }

    ----- stderr -----
    "#);
}

#[test]
fn nothing_changes_when_the_installed_state_is_the_desired_one() {
    let site = three_packs(Backend::File);
    site.record_installed();
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 0
    ----- stdout -----
    unchanged   mid    2.0.0 (HEAD @ [SHORT])
    unchanged   zulu   0.3.0 (HEAD @ [SHORT])
    unchanged   alpha  1.0.0 (HEAD @ [SHORT])
    Plan: 3 unchanged

    ----- stderr -----
    ");
}

#[test]
fn a_commit_outside_the_pack_subdir_changes_nothing() {
    let mut site = TestSite::new();
    let mono = GitRepo::init(&site.path().join("repos/mono"));
    write_pack(&mono, "packs/clush", "clush", "1.0.0");
    write_pack(&mono, "packs/slurm", "slurm", "1.0.0");
    mono.commit("Two packs");
    site.add_pack(PackEntry::new("clush", mono.path()).key("subdir", "\"packs/clush\""));
    site.record_installed();
    mono.write("packs/slurm/actions/run.py", "print('slurm')\n")
        .write("README.md", "Our packs\n");
    mono.commit("slurm prints");
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 0
    ----- stdout -----
    unchanged   clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        commit [SHORT] -> [SHORT] leaves the pack tree, env and config unchanged
    Plan: 1 unchanged

    ----- stderr -----
    ");
}

#[test]
fn a_version_bump_is_an_upgrade() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    site.record_installed();
    write_pack(&clush, "", "clush", "1.1.0");
    clush.commit("clush 1.1.0");
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    upgrade     clush  1.0.0 (HEAD @ [SHORT]) -> 1.1.0 (HEAD @ [SHORT])
        version 1.0.0 -> 1.1.0
    Plan: 1 to upgrade

    ----- stderr -----
    ");
}

#[test]
fn a_tag_moved_back_is_a_downgrade() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    let first = clush.head();
    write_pack(&clush, "", "clush", "2.0.0");
    clush.commit("clush 2.0.0");
    clush.tag("release");
    site.add_pack(PackEntry::new("clush", clush.path()).key("ref", "\"release\""));
    site.record_installed();
    force_tag(&clush, "release", &first);
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    downgrade   clush  2.0.0 (release @ [SHORT]) -> 1.0.0 (release @ [SHORT])
        version 2.0.0 -> 1.0.0
    Plan: 1 to downgrade

    ----- stderr -----
    ");
}

/// `clush` needs `six`; it is recorded installed with six 1.16.0, then 1.17.0 lands in the mirror.
fn six_installed_then_a_newer_wheel() -> TestSite {
    let mut site = TestSite::new();
    site.wheel("six", "1.16.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "six>=1.9\n");
    clush.commit("Needs six");
    site.add_pack(PackEntry::new("clush", clush.path()));
    site.record_installed();
    site.wheel("six", "1.17.0", &[]);
    site
}

#[test]
fn a_new_wheel_in_the_mirror_is_a_rebuild() {
    let site = six_installed_then_a_newer_wheel();
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    rebuild     clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        six 1.16.0 -> 1.17.0 (mirror)
    Plan: 1 to rebuild

    ----- stderr -----
    ");
}

/// A new wheel of a dependency's dependency rebuilds exactly the envs that resolve to it.
#[test]
fn a_new_wheel_deep_in_one_env_rebuilds_only_that_env() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[])
        .wheel("fxtwo", "1.0", &["fxdep>=1"])
        .wheel("fxdep", "1.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "fxtwo\n");
    clush.commit("Needs fxtwo");
    let slurm = site.pack_repo("slurm", "2.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .add_pack(PackEntry::new("slurm", slurm.path()));
    site.record_installed();
    site.wheel("fxdep", "1.1", &[])
        .wheel("unrelated", "9.0", &[]);
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    rebuild     clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        fxdep 1.0 -> 1.1 (mirror)
    unchanged   slurm  2.0.0 (HEAD @ [SHORT])
    Plan: 1 to rebuild, 1 unchanged

    ----- stderr -----
    ");
}

/// The virtualenv settings of `[stackstorm]` are inputs of every pack's virtualenv.
#[test]
fn new_virtualenv_settings_rebuild_the_packs() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    site.record_installed();
    site.stackstorm_line("system_site_packages = true")
        .stackstorm_line(r#"base_requirements = ["six>=1.9.0,<2.0"]"#);
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    rebuild     clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        virtualenv settings [] -> [system-site-packages]
        requirement added: six>=1.9.0,<2.0
        six 1.17.0 added (mirror)
    Plan: 1 to rebuild

    ----- stderr -----
    ");
}

/// `requirements.txt` is a pack file: editing it changes the pack tree as well as the env.
#[test]
fn a_new_requirement_upgrades_the_pack_and_says_why() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[])
        .wheel("attrs", "25.1.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "six>=1.9\n");
    clush.commit("Needs six");
    site.add_pack(PackEntry::new("clush", clush.path()));
    site.record_installed();
    clush.write("requirements.txt", "six>=1.9\nattrs\n");
    clush.commit("Needs attrs");
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    upgrade     clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        pack files changed, pack.yaml still says 1.0.0
        requirement added: attrs
        attrs 25.1.0 added (mirror)
    Plan: 1 to upgrade

    ----- stderr -----
    ");
}

/// Issue 20: `plan --diff` lists, under each change, the pack files it adds, modifies and
/// deletes (against the live tree) and the distributions its virtualenv gains, loses or
/// changes; `--json` carries them per pack.
#[test]
fn issue_20_plan_diff_lists_the_files_and_distributions_a_change_touches() {
    let mut site = TestSite::new();
    site.wheel("six", "1.16.0", &[])
        .wheel("six", "1.17.0", &[])
        .wheel("attrs", "25.1.0", &[])
        .wheel("idna", "3.10", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "six==1.16.0\nidna\n");
    clush.write("actions/old.py", "print('old')\n");
    clush.write("actions/run.py", "print('run')\n");
    clush.commit("clush with six, idna");
    site.add_pack(PackEntry::new("clush", clush.path()));
    site.record_installed();
    clush.write("requirements.txt", "six==1.17.0\nattrs\n");
    clush.remove("actions/old.py");
    clush.write("actions/new.py", "print('new')\n");
    clush.write("actions/run.py", "print('run', 2)\n");
    clush.commit("clush: new action, six 1.17, attrs");
    packsync_snapshot!(site, site.cmd(["plan", "--diff"]), @"
    exit_code: 0
    ----- stdout -----
    upgrade     clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        pack files changed, pack.yaml still says 1.0.0
        requirement added: attrs
        requirement added: six==1.17.0
        requirement removed: idna
        requirement removed: six==1.16.0
        attrs 25.1.0 added (mirror)
        six 1.16.0 -> 1.17.0 (mirror)
        idna 3.10 dropped
        file A actions/new.py
        file D actions/old.py
        file M actions/run.py
        file M requirements.txt
    Plan: 1 to upgrade

    ----- stderr -----
    ");
    let output = site.cmd(["plan", "--diff", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["diffs"]["clush"]["files"][0],
        serde_json::json!({"status": "A", "path": "actions/new.py"})
    );
    assert_eq!(
        json["diffs"]["clush"]["dists"],
        serde_json::json!([
            {"name": "attrs", "to": "25.1.0"},
            {"name": "idna", "from": "3.10"},
            {"name": "six", "from": "1.16.0", "to": "1.17.0"},
        ])
    );
}

#[test]
fn a_config_value_change_is_a_reconfigure() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()).config("fanout", "16"));
    site.record_installed();
    site.add_pack(PackEntry::new("clush", clush.path()).config("fanout", "32"));
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @r#"
    exit_code: 2
    ----- stdout -----
    reconfigure clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        pack config changed
    Plan: 1 to reconfigure

    ----- stderr -----
    warning: [clush] Pack has no `config.schema.yaml`: its config values are not checked
      --> [TEMP]/packsync.toml:16:8
       |
    16 | name = "clush"
       |        ^^^^^^^
    "#);
}

#[test]
fn a_pack_that_left_the_config_is_an_orphan_unless_prune_is_on() {
    let mut site = three_packs(Backend::File);
    site.record_installed();
    site.remove_pack("mid");
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 0
    ----- stdout -----
    unchanged   zulu   0.3.0 (HEAD @ [SHORT])
    unchanged   alpha  1.0.0 (HEAD @ [SHORT])
    orphan      mid    2.0.0 (HEAD @ [SHORT])
        no longer in the site config; kept because prune is off
    Plan: 1 orphaned, 2 unchanged

    ----- stderr -----
    ");
    site.agent_line("prune = true");
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    unchanged   zulu   0.3.0 (HEAD @ [SHORT])
    unchanged   alpha  1.0.0 (HEAD @ [SHORT])
    remove      mid    2.0.0 (HEAD @ [SHORT])
        no longer in the site config (prune is on)
    Plan: 1 to remove, 2 unchanged

    ----- stderr -----
    ");
}

#[test]
fn a_disabled_pack_is_left_as_installed() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    site.record_installed();
    write_pack(&clush, "", "clush", "1.1.0");
    clush.commit("clush 1.1.0");
    site.add_pack(PackEntry::new("clush", clush.path()).key("enabled", "false"));
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 0
    ----- stdout -----
    unchanged   clush  1.0.0 (HEAD @ [SHORT])
        disabled in the site config: left as installed
    Plan: 1 unchanged

    ----- stderr -----
    ");
}

#[test]
fn pack_limits_the_plan() {
    let site = three_packs(Backend::File);
    packsync_snapshot!(site, site.cmd(["plan", "--pack", "mid", "--pack", "alpha"]), @"
    exit_code: 0
    ----- stdout -----
    install     alpha  1.0.0 (HEAD @ [SHORT])
        not installed
    install     mid    2.0.0 (HEAD @ [SHORT])
        not installed
    Plan: 2 to install

    ----- stderr -----
    ");
}

#[test]
fn an_unknown_pack_is_an_error() {
    let site = three_packs(Backend::File);
    packsync_snapshot!(site, site.cmd(["plan", "--pack", "nope"]), @"
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: No pack `nope` in the site config `[TEMP]/packsync.toml` nor installed
    ");
}

#[test]
fn ref_and_version_select_tags() {
    let mut site = TestSite::new();
    for name in ["clush", "slurm"] {
        let repo = site.pack_repo(name, "1.0.0");
        repo.tag("v1.0.0");
        for version in ["1.2.0", "2.0.0"] {
            write_pack(&repo, "", name, version);
            repo.commit(&format!("{name} {version}"));
            repo.tag(&format!("v{version}"));
        }
    }
    let repos = site.path().join("repos");
    site.add_pack(PackEntry::new("clush", &repos.join("clush")).key("ref", "\"v1.0.0\""))
        .add_pack(PackEntry::new("slurm", &repos.join("slurm")).key("version", "\">=1, <2\""));
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    install     clush  1.0.0 (v1.0.0 @ [SHORT])
        not installed
    install     slurm  1.2.0 (v1.2.0 @ [SHORT])
        not installed
    Plan: 2 to install

    ----- stderr -----
    ");
}

#[test]
fn a_bare_repo_is_a_source() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    let bare = clush.bare_clone(&site.path().join("git/clush.git"));
    site.add_pack(PackEntry::new("clush", &bare));
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    install     clush  1.0.0 (HEAD @ [SHORT])
        not installed
    Plan: 1 to install

    ----- stderr -----
    ");
}

#[test]
fn a_pack_installed_outside_packsync_is_taken_over() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.1.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let installed = site.packs_dir().join("clush");
    fs_err::create_dir_all(&installed).unwrap();
    fs_err::write(installed.join("pack.yaml"), pack_yaml("clush", "1.0.0", "")).unwrap();
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 0
    ----- stdout -----
    install     clush  1.1.0 (HEAD @ [SHORT])
        takes over `[TEMP]/stackstorm/packs/clush` (version 1.0.0), installed outside packsync; it is moved aside, not deleted
    Plan: 1 to install

    ----- stderr -----
    ");
}

#[test]
fn a_broken_pack_does_not_stop_the_others() {
    let mut site = three_packs(Backend::File);
    let broken = site.pack_repo("broken", "1.0.0");
    broken.remove("pack.yaml");
    broken.commit("Lose pack.yaml");
    site.add_pack(PackEntry::new("broken", broken.path()));
    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 1
    ----- stdout -----
    install     mid    2.0.0 (HEAD @ [SHORT])
        not installed
    install     zulu   0.3.0 (HEAD @ [SHORT])
        not installed
    install     alpha  1.0.0 (HEAD @ [SHORT])
        not installed
    Plan: 3 to install, 1 not planned (errors)

    ----- stderr -----
    error: [broken] `[TEMP]/repos/broken@[SHORT]:pack.yaml` does not exist

    hint: a StackStorm pack has `pack.yaml` at its root: check `source`, `subdir` and `ref` for this pack
    ");
}

#[test]
fn packs_that_depend_on_each_other_are_not_planned() {
    let site = three_packs(Backend::File);
    let zulu = GitRepo::init(&site.path().join("repos/zulu"));
    zulu.write(
        "pack.yaml",
        pack_yaml("zulu", "0.4.0", "dependencies:\n  - alpha\n"),
    );
    zulu.commit("zulu depends on alpha");
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: Packs depend on each other in a cycle: alpha -> zulu -> alpha

    hint: remove one of the `dependencies` in these packs' `pack.yaml` to break the cycle
    ");
}

#[test]
fn an_invalid_site_config_plans_nothing() {
    let mut site = three_packs(Backend::File);
    site.add_pack(PackEntry::new("mid", &site.path().join("repos/mid")).key("ref", "\"\""));
    packsync_snapshot!(site, site.cmd(["plan"]), @r#"
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: `ref` is empty
      --> [TEMP]/packsync.toml:22:7
       |
    22 | ref = ""
       |       ^^

    hint: remove `ref` to follow the repo's HEAD
    "#);
}

/// Issue 19: once a pack was read, a run reads it again only when a file its ref lookup reads
/// changed (or the site config, the interpreter, the mirror): with the repo's objects gone, an
/// unchanged pack still plans from what was read; a commit, a moved tag, a new version tag or
/// a switched `HEAD` is seen.
#[test]
fn issue_19_an_unchanged_repo_is_not_read_again_and_every_ref_move_is_seen() {
    let mut site = TestSite::new();
    let head = site.pack_repo("head", "1.0.0");
    let branch = site.pack_repo("branch", "1.0.0");
    let ranged = site.pack_repo("ranged", "1.0.0");
    let tagged = site.pack_repo("tagged", "1.0.0");
    ranged.tag("v1.0.0");
    tagged.tag("stable");
    site.add_pack(PackEntry::new("head", head.path()))
        .add_pack(PackEntry::new("branch", branch.path()).key("ref", r#""main""#))
        .add_pack(PackEntry::new("ranged", ranged.path()).key("version", r#"">=1, <2""#))
        .add_pack(PackEntry::new("tagged", tagged.path()).key("ref", r#""stable""#));
    assert_exit(site.cmd(["apply"]), 0);

    // Without their objects the repos cannot be read: the plan comes from what was read.
    let repos = [&head, &branch, &ranged, &tagged];
    let hide = |hidden: bool| {
        for repo in repos {
            let (from, to) = (
                repo.path().join(".git/objects"),
                repo.path().join(".git/hidden"),
            );
            if hidden {
                fs_err::rename(from, to).unwrap();
            } else {
                fs_err::rename(to, from).unwrap();
            }
        }
    };
    hide(true);
    assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 0);
    hide(false);

    head.write("pack.yaml", pack_yaml("head", "1.1.0", ""));
    head.commit("head 1.1.0");
    branch.write("pack.yaml", pack_yaml("branch", "1.1.0", ""));
    branch.commit("branch 1.1.0");
    ranged.write("pack.yaml", pack_yaml("ranged", "1.1.0", ""));
    ranged.commit("ranged 1.1.0");
    ranged.tag("v1.1.0");
    tagged.write("pack.yaml", pack_yaml("tagged", "1.1.0", ""));
    let moved = tagged.commit("tagged 1.1.0");
    force_tag(&tagged, "stable", &moved);
    let output = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    for pack in ["head", "branch", "ranged", "tagged"] {
        assert!(
            output
                .lines()
                .any(|l| l.contains(pack) && l.contains("1.1.0")),
            "{pack}: {output}"
        );
    }
    assert_exit(site.cmd(["apply"]), 0);

    // `HEAD` switched to another branch.
    head.branch("old");
    head.write("pack.yaml", pack_yaml("head", "2.0.0", ""));
    head.commit("head 2.0.0");
    assert_exit(site.cmd(["apply"]), 0);
    head.switch("old");
    let output = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 2);
    assert!(
        output
            .lines()
            .any(|l| l.contains("downgrade") && l.contains("head") && l.contains("1.1.0")),
        "{output}"
    );
}

/// Issue 20: `RUST_LOG=info` shows packsync's own steps, not the dependency solver's: the crates
/// packsync uses stay at `warn` unless `RUST_LOG` names them.
#[test]
fn issue_20_rust_log_info_is_not_flooded_by_the_solver() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "fxdep\n");
    clush.commit("requirements");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let stderr = |filter: &str| {
        // Resolved again each time, not taken from the desired-state cache.
        let _ = fs_err::remove_dir_all(site.state_dir().join("cache"));
        let output = site
            .cmd(["plan", "--log-format", "json"])
            .env("RUST_LOG", filter)
            .output()
            .unwrap();
        String::from_utf8(output.stderr).unwrap()
    };
    let logs = stderr("info");
    assert!(!logs.contains("\"target\":\"pubgrub"), "{logs}");
    let logs = stderr("info,pubgrub=info");
    assert!(logs.contains("\"target\":\"pubgrub"), "asked for: {logs}");
}
