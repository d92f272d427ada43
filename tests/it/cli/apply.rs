//! `packsync apply` (and `rollback`, `status`, `history`, `gc`) against real Git repos, real
//! virtualenvs and real pip on a wheel folder the tests build, with engine commands that are
//! small shell scripts recording their argv.

// Helpers panic on failure like the tests they serve.
#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::site::{
    Backend, PackEntry, TestSite, assert_exit, pack_yaml, packsync_snapshot, python, run, run_json,
    three_packs,
};

/// Generates the tests of every scenario on both state backends: `file::<scenario>` on the
/// embedded store, `mongodb::<scenario>` on MongoDB. Both print the same.
macro_rules! on_both_backends {
    ($($scenario:ident,)*) => {
        mod file {
            $(#[test]
            fn $scenario() {
                super::$scenario(super::Backend::File);
            })*
        }
        mod mongodb {
            $(#[test]
            fn $scenario() {
                super::$scenario(super::Backend::MongoDb);
            })*
        }
    };
}

on_both_backends! {
    apply_installs_every_pack_and_a_second_run_changes_nothing,
    upgrade_then_downgrade_keeps_the_previous_release,
    a_new_wheel_rebuilds_the_virtualenv_offline_and_the_old_one_stays_intact,
    a_config_change_is_a_new_release_with_the_new_config,
    a_failing_test_gate_keeps_the_release_from_going_live_and_spares_other_packs,
    a_failing_registration_switches_back_and_registers_the_previous_release,
    rollback_goes_back_to_a_kept_release,
    a_pack_installed_by_st2_is_moved_aside_not_deleted,
    a_pack_copied_over_its_link_is_linked_and_registered_again,
    prune_removes_packs_that_left_the_config_but_never_all_of_them_by_surprise,
    a_second_run_exits_75_while_the_lock_is_held_or_waits_for_it,
    a_run_killed_at_any_step_converges_on_the_next,
    old_releases_beyond_keep_releases_go_and_gc_keeps_the_newest,
}

/// `<dir>/bin/python -c <code>`, its stdout trimmed.
fn python_in(venv: &Path, code: &str) -> String {
    let output = Command::new(venv.join("bin/python"))
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn apply_installs_every_pack_and_a_second_run_changes_nothing(backend: Backend) {
    let mut site = three_packs(backend);
    let alpha = site.path().join("repos/alpha");
    site.add_pack(PackEntry::new("alpha", &alpha).config("fanout", "16"));
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @r#"
    exit_code: 2
    ----- stdout -----
    installed    mid    2.0.0 (HEAD @ [SHORT])  release 2.0.0-[SHORT]-[INPUTS]  ([DURATION])
    installed    zulu   0.3.0 (HEAD @ [SHORT])  release 0.3.0-[SHORT]-[INPUTS]  ([DURATION])
    installed    alpha  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 3 applied in [DURATION]

    ----- stderr -----
    warning: [alpha] Pack has no `config.schema.yaml`: its config values are not checked
      --> [TEMP]/packsync.toml:16:8
       |
    16 | name = "alpha"
       |        ^^^^^^^
    "#);
    for pack in ["alpha", "mid", "zulu"] {
        let live = site.packs_dir().join(pack);
        assert!(live.is_symlink(), "{pack} is a link");
        assert!(live.join("pack.yaml").is_file());
        assert!(site.venvs_dir().join(pack).join("bin/python").exists());
        // The pack folder is named after the pack, as StackStorm requires.
        assert_eq!(
            fs_err::canonicalize(&live).unwrap().file_name().unwrap(),
            pack
        );
    }
    assert_eq!(
        fs_err::read_to_string(site.configs_dir().join("alpha.yaml")).unwrap(),
        "fanout: 16\n"
    );
    assert!(!site.configs_dir().join("mid.yaml").exists());
    // No requirements anywhere: the three packs share one virtualenv.
    assert_eq!(
        fs_err::read_dir(site.state_dir().join("envs"))
            .unwrap()
            .count(),
        1
    );
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @r#"
    exit_code: 0
    ----- stdout -----
    Apply: nothing to change (3 unchanged) in [DURATION]

    ----- stderr -----
    warning: [alpha] Pack has no `config.schema.yaml`: its config values are not checked
      --> [TEMP]/packsync.toml:16:8
       |
    16 | name = "alpha"
       |        ^^^^^^^
    "#);
    packsync_snapshot!(site, site.cmd(["status"]), @"
    exit_code: 0
    ----- stdout -----
    PACK   STATE  DESIRED  LIVE                                            LAST CHANGE
    mid    ok     HEAD     2.0.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC install applied
    zulu   ok     HEAD     0.3.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC install applied
    alpha  ok     HEAD     1.0.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC install applied

    ----- stderr -----
    ");
}

fn upgrade_then_downgrade_keeps_the_previous_release(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    repo.tag("v1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    assert_exit(site.cmd(["apply"]), 0);
    let v1 = fs_err::canonicalize(site.packs_dir().join("clush")).unwrap();
    repo.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    repo.commit("clush 1.1.0");
    packsync_snapshot!(site, site.cmd(["apply"]), @"
    exit_code: 0
    ----- stdout -----
    upgraded     clush  1.1.0 (HEAD @ [SHORT])  release 1.1.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    ");
    let v2 = fs_err::canonicalize(site.packs_dir().join("clush")).unwrap();
    assert_ne!(v1, v2);
    assert!(
        v1.join("pack.yaml").is_file(),
        "the previous release is kept"
    );
    site.add_pack(PackEntry::new("clush", repo.path()).key("ref", "\"v1.0.0\""));
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    downgraded   clush  1.0.0 (v1.0.0 @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    ");
    assert_eq!(
        fs_err::canonicalize(site.packs_dir().join("clush")).unwrap(),
        v1,
        "going back to the same inputs reuses the release"
    );
}

fn a_new_wheel_rebuilds_the_virtualenv_offline_and_the_old_one_stays_intact(backend: Backend) {
    let mut site = TestSite::on(backend);
    site.wheel("fxdep", "1.0", &[]);
    let repo = site.pack_repo("clush", "1.0.0");
    repo.write("requirements.txt", "fxdep\n");
    repo.commit("needs fxdep");
    let twin = site.pack_repo("twin", "1.0.0");
    twin.write("requirements.txt", "fxdep\n");
    twin.commit("needs fxdep too");
    site.add_pack(PackEntry::new("clush", repo.path()))
        .add_pack(PackEntry::new("twin", twin.path()));
    let first = run_json(site.cmd(["apply", "--json"]));
    let mut envs: Vec<&str> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["env"].as_str().unwrap())
        .collect();
    envs.sort_unstable();
    assert_eq!(envs, ["built", "reused"], "the second pack runs no pip");
    let venv = site.venvs_dir().join("clush");
    let import = "import fxdep; print(fxdep.__version__)";
    assert_eq!(python_in(&venv, import), "1.0");
    let old_env = fs_err::canonicalize(&venv).unwrap();
    let before = tree_listing(&old_env);

    site.wheel("fxdep", "1.1", &[]);
    packsync_snapshot!(site, site.cmd(["plan", "--pack", "clush"]), @"
    exit_code: 0
    ----- stdout -----
    rebuild     clush  1.0.0 (HEAD @ [SHORT]) -> 1.0.0 (HEAD @ [SHORT])
        fxdep 1.0 -> 1.1 (mirror)
    Plan: 1 to rebuild

    ----- stderr -----
    ");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert_eq!(python_in(&venv, import), "1.1");
    assert_ne!(fs_err::canonicalize(&venv).unwrap(), old_env);
    assert_eq!(
        tree_listing(&old_env),
        before,
        "a built virtualenv never changes"
    );
}

fn a_config_change_is_a_new_release_with_the_new_config(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()).config("fanout", "16"));
    assert_exit(site.cmd(["apply"]), 0);
    let old = fs_err::canonicalize(site.configs_dir().join("clush.yaml")).unwrap();
    site.add_pack(PackEntry::new("clush", repo.path()).config("fanout", "64"));
    packsync_snapshot!(site, site.cmd(["apply"]), @r#"
    exit_code: 0
    ----- stdout -----
    reconfigured clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    warning: [clush] Pack has no `config.schema.yaml`: its config values are not checked
      --> [TEMP]/packsync.toml:16:8
       |
    16 | name = "clush"
       |        ^^^^^^^
    "#);
    assert_eq!(
        fs_err::read_to_string(site.configs_dir().join("clush.yaml")).unwrap(),
        "fanout: 64\n"
    );
    assert_eq!(fs_err::read_to_string(old).unwrap(), "fanout: 16\n");
}

fn a_failing_test_gate_keeps_the_release_from_going_live_and_spares_other_packs(backend: Backend) {
    let mut site = TestSite::on(backend);
    let good = site.pack_repo("good", "1.0.0");
    let bad = site.pack_repo("bad", "1.0.0");
    let gate = site.engine_script(
        "gate",
        "echo \"$@\" >> \"$LOG\"\nif grep -q 'version: 2' \"$1/pack.yaml\"; then echo 'tests failed' >&2; exit 1; fi\n",
    );
    site.stackstorm_line(&format!("test = ['{}', '{{release_dir}}']", gate.display()));
    site.add_pack(PackEntry::new("good", good.path()))
        .add_pack(PackEntry::new("bad", bad.path()));
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    let live_bad = fs_err::canonicalize(site.packs_dir().join("bad")).unwrap();

    bad.write("pack.yaml", pack_yaml("bad", "2.0.0", ""));
    bad.commit("bad 2.0.0 breaks its tests");
    good.write("pack.yaml", pack_yaml("good", "1.1.0", ""));
    good.commit("good 1.1.0");
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 6
    ----- stdout -----
    failed       bad   2.0.0 (HEAD @ [SHORT])  ([DURATION])
    upgraded     good  1.1.0 (HEAD @ [SHORT])  release 1.1.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied, 1 failed in [DURATION]

    ----- stderr -----
    error: [bad] The `test` command for pack `bad` failed (exit status: 1): [TEMP]/bin/gate [TEMP]/state/releases/bad/2.0.0-[SHORT]-[INPUTS]/pack/bad
      Output (last lines):
        | tests failed

    hint: commands get only PATH, HOME, LANG and PACKSYNC_* of packsync's environment: if it needs more (credentials, ST2_* variables), list their names in `[stackstorm] env`
    ");
    assert_eq!(
        fs_err::canonicalize(site.packs_dir().join("bad")).unwrap(),
        live_bad
    );
    assert!(
        fs_err::read_to_string(site.packs_dir().join("good/pack.yaml"))
            .unwrap()
            .contains("1.1.0")
    );
    assert_eq!(
        fs_err::read_dir(site.state_dir().join("staging"))
            .unwrap()
            .count(),
        0
    );
    packsync_snapshot!(site, site.cmd(["history", "--pack", "bad"]), @"
    exit_code: 0
    ----- stdout -----
    [TIME]  bad  upgrade     failed       1.0.0 (HEAD @ [SHORT]) -> 2.0.0 (HEAD @ [SHORT])
        The `test` command for pack `bad` failed (exit status: 1): [TEMP]/bin/gate [TEMP]/state/releases/bad/2.0.0-[SHORT]-[INPUTS]/pack/bad (output: tests failed)
    [TIME]  bad  install     applied      1.0.0 (HEAD @ [SHORT])

    ----- stderr -----
    ");
}

fn a_failing_registration_switches_back_and_registers_the_previous_release(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    let register = site.engine_script(
        "register",
        "echo \"register $(grep version: \"$1/pack.yaml\")\" >> \"$LOG\"\n\
         if grep -q 'version: 2' \"$1/pack.yaml\"; then echo 'st2 says no' >&2; exit 3; fi\n",
    );
    site.stackstorm_line(&format!(
        "register = ['{}', '{{pack_dir}}']",
        register.display()
    ));
    site.add_pack(PackEntry::new("clush", repo.path()));
    assert_exit(site.cmd(["apply"]), 0);
    repo.write("pack.yaml", pack_yaml("clush", "2.0.0", ""));
    repo.commit("clush 2.0.0");
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 4
    ----- stdout -----
    reverted     clush  2.0.0 (HEAD @ [SHORT])  ([DURATION])
    Apply: 1 failed in [DURATION]

    ----- stderr -----
    error: [clush] Registration failed, so release `1.0.0-[SHORT]-[INPUTS]` is live again
      Caused by: The `register` command for pack `clush` failed (exit status: 3): [TEMP]/bin/register [TEMP]/stackstorm/packs/clush
      Output (last lines):
        | st2 says no

    hint: commands get only PATH, HOME, LANG and PACKSYNC_* of packsync's environment: if it needs more (credentials, ST2_* variables), list their names in `[stackstorm] env`
    ");
    assert!(
        fs_err::read_to_string(site.packs_dir().join("clush/pack.yaml"))
            .unwrap()
            .contains("1.0.0")
    );
    assert_eq!(
        site.engine_log(),
        "register version: 1.0.0\nregister version: 2.0.0\nregister version: 1.0.0\n"
    );
}

fn rollback_goes_back_to_a_kept_release(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    assert_exit(site.cmd(["apply"]), 0);
    repo.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    repo.commit("clush 1.1.0");
    assert_exit(site.cmd(["apply"]), 0);
    let mut rollback = site.cmd(["rollback", "clush"]);
    rollback.env("SUDO_USER", "alice");
    packsync_snapshot!(site, rollback, @"
    exit_code: 0
    ----- stdout -----
    rolled back  clush  1.0.0 (HEAD @ [SHORT])

    ----- stderr -----
    note: `clush` is held here (`packsync status` shows it): `apply` and the agent leave it until `packsync resume clush`
    ");
    let live = || fs_err::read_to_string(site.packs_dir().join("clush/pack.yaml")).unwrap();
    assert!(live().contains("1.0.0"));
    // Issue 20: held there, as `suspend` holds, until `resume`.
    let status = run_json(site.cmd(["status", "--json"]));
    let clush = &status["packs"][0];
    let older = clush["active"]["release"].as_str().unwrap().to_string();
    assert_eq!(clush["state"], "suspended", "{status}");
    assert_eq!(
        clush["suspended"],
        format!("rolled back to {older} by alice"),
        "{status}"
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    assert!(live().contains("1.0.0"), "the hold keeps it");
    assert_exit(site.cmd(["resume", "clush"]), 0);
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(live().contains("1.1.0"));

    // `--no-hold`: the next apply goes forward again.
    assert_exit(site.cmd(["rollback", "clush", "--no-hold"]), 0);
    let status = run_json(site.cmd(["status", "--json"]));
    let clush = &status["packs"][0];
    assert_eq!(clush["state"], "pending");
    let newest = clush["releases"][1].as_str().unwrap().to_string();
    assert_exit(
        site.cmd(["rollback", "clush", "--to", &newest, "--no-hold"]),
        0,
    );
    assert_exit(site.cmd(["rollback", "clush", "--to", "9.9.9-nope"]), 1);
}

fn a_pack_installed_by_st2_is_moved_aside_not_deleted(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    let old_pack = site.packs_dir().join("clush");
    fs_err::create_dir_all(&old_pack).unwrap();
    fs_err::write(old_pack.join("pack.yaml"), pack_yaml("clush", "0.9.0", "")).unwrap();
    let old_venv = site.venvs_dir().join("clush");
    fs_err::create_dir_all(old_venv.join("bin")).unwrap();
    fs_err::write(old_venv.join("bin/marker"), "st2's venv").unwrap();
    packsync_snapshot!(site, site.cmd(["apply"]), @"
    exit_code: 0
    ----- stdout -----
    installed    clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    note: [clush] moved `[TEMP]/stackstorm/virtualenvs/clush` aside to `[TEMP]/state/adopted/clush-[TIME]/venv`: it was installed outside packsync
    note: [clush] moved `[TEMP]/stackstorm/packs/clush` aside to `[TEMP]/state/adopted/clush-[TIME]/pack`: it was installed outside packsync
    ");
    assert!(old_pack.is_symlink() && old_venv.is_symlink());
    let adopted: Vec<_> = fs_err::read_dir(site.state_dir().join("adopted"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(adopted.len(), 1);
    assert!(
        fs_err::read_to_string(adopted[0].join("pack/pack.yaml"))
            .unwrap()
            .contains("0.9.0")
    );
    assert_eq!(
        fs_err::read_to_string(adopted[0].join("venv/bin/marker")).unwrap(),
        "st2's venv"
    );
}

/// What stackstorm-k8s's packs images do at every pod start (`cp -aR` of the image's packs over
/// the shared volume) or a hand copy: the live release is unchanged, its link is not.
fn a_pack_copied_over_its_link_is_linked_and_registered_again(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    let register = site.engine_script(
        "register",
        "echo \"register $(grep version: \"$1/pack.yaml\")\" >> \"$LOG\"\n",
    );
    site.stackstorm_line(&format!(
        "register = ['{}', '{{pack_dir}}']",
        register.display()
    ));
    site.add_pack(PackEntry::new("clush", repo.path()));
    assert_exit(site.cmd(["apply"]), 0);
    let link = site.packs_dir().join("clush");
    fs_err::remove_file(&link).unwrap();
    fs_err::create_dir_all(&link).unwrap();
    fs_err::write(link.join("pack.yaml"), pack_yaml("clush", "0.9.0", "")).unwrap();

    packsync_snapshot!(site, site.cmd(["plan", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    repair      clush  1.0.0 (HEAD @ [SHORT])
        no longer linked to the live release: `[TEMP]/stackstorm/packs/clush`
    Plan: 1 to repair

    ----- stderr -----
    ");
    let status = run_json(site.cmd(["status", "--json"]));
    assert_eq!(status["packs"][0]["state"], "drifted", "{status}");
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    repaired     clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    note: [clush] moved `[TEMP]/stackstorm/packs/clush` aside to `[TEMP]/state/adopted/clush-[TIME]/pack`: it was installed outside packsync
    ");
    assert!(link.is_symlink());
    assert_eq!(
        site.engine_log(),
        "register version: 1.0.0\nregister version: 1.0.0\n",
        "registered again: StackStorm may have loaded the copy"
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
}

fn prune_removes_packs_that_left_the_config_but_never_all_of_them_by_surprise(backend: Backend) {
    let mut site = three_packs(backend);
    site.agent_line("prune = true");
    let unregister = site.engine_script("unregister", "echo \"unregister $1\" >> \"$LOG\"\n");
    site.stackstorm_line(&format!(
        "unregister = ['{}', '{{pack}}']",
        unregister.display()
    ));
    assert_exit(site.cmd(["apply"]), 0);
    site.remove_pack("mid");
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    removed      mid  2.0.0 (HEAD @ [SHORT])  ([DURATION])
    Apply: 1 applied, 2 unchanged in [DURATION]

    ----- stderr -----
    ");
    assert!(!site.packs_dir().join("mid").exists());
    assert!(!site.venvs_dir().join("mid").exists());
    assert_eq!(site.engine_log(), "unregister mid\n");
    site.remove_pack("alpha").remove_pack("zulu");
    packsync_snapshot!(site, site.cmd(["apply"]), @"
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: The plan removes every pack of this host (2)

    hint: check that the site config lists the packs (a config emptied by mistake looks the same); pass `--allow-empty` if removing them all is intended
    ");
    assert!(site.packs_dir().join("alpha").exists());
    assert_exit(site.cmd(["apply", "--allow-empty"]), 0);
    assert!(!site.packs_dir().join("alpha").exists());
}

fn a_second_run_exits_75_while_the_lock_is_held_or_waits_for_it(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    let lock = packsync::lock::acquire(&site.state_dir(), None).unwrap();
    packsync_snapshot!(site, site.cmd(["apply"]), @"
    exit_code: 75
    ----- stdout -----

    ----- stderr -----
    error: Another packsync run holds `[TEMP]/state/lock` (PID [PID])

    hint: wait for it to finish, or pass `--wait-for-lock SECONDS` to wait
    ");
    let command = site.cmd(["apply", "--wait-for-lock", "10"]);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(lock);
    });
    assert_exit(command, 0);
    release.join().unwrap();
}

fn a_run_killed_at_any_step_converges_on_the_next(backend: Backend) {
    for (step, hook) in [
        ("virtualenv build", "python"),
        ("test gate", "test"),
        ("registration", "register"),
    ] {
        let mut site = TestSite::on(backend);
        let repo = site.pack_repo("clush", "1.0.0");
        site.add_pack(PackEntry::new("clush", repo.path()));
        // Kills packsync (its parent) the first time it runs, then behaves.
        let crash = "if [ ! -e \"$ROOT/crashed\" ]; then touch \"$ROOT/crashed\"; kill -9 $PPID; sleep 5; fi\n";
        match hook {
            "python" => {
                let python = site.engine_script(
                    "python",
                    &format!(
                        "case \"$*\" in *venv*) {crash} ;; esac\nexec '{}' \"$@\"\n",
                        python().display()
                    ),
                );
                site.stackstorm_line(&format!("python = '{}'", python.display()));
            }
            hook => {
                let script =
                    site.engine_script(hook, &format!("{crash}echo \"{hook}\" >> \"$LOG\"\n"));
                site.stackstorm_line(&format!("{hook} = ['{}', '{{pack}}']", script.display()));
            }
        }
        let output = run(site.cmd(["apply"]));
        assert!(output.starts_with("exit_code: killed"), "{step}: {output}");
        let second = run(site.cmd(["apply", "--detailed-exitcodes"]));
        assert!(second.starts_with("exit_code: 2"), "{step}: {second}");
        assert!(site.packs_dir().join("clush/pack.yaml").is_file(), "{step}");
        assert!(site.venvs_dir().join("clush/bin/python").exists(), "{step}");
        assert_eq!(
            fs_err::read_dir(site.state_dir().join("staging"))
                .unwrap()
                .count(),
            0,
            "{step}"
        );
        let third = run(site.cmd(["apply", "--detailed-exitcodes"]));
        assert!(third.starts_with("exit_code: 0"), "{step}: {third}");
        if hook == "register" {
            // Killed after the switch: the next run found the release live but unrecorded,
            // repaired the record and registered it.
            assert_eq!(site.engine_log(), "register\n", "{step}");
            let history = run(site.cmd(["history"]));
            assert!(history.contains("repair"), "{history}");
        }
    }
}

/// Every path under `root` with its size, sorted: equal listings mean an untouched tree.
fn tree_listing(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = fs_err::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.push((
                entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string(),
                meta.len(),
            ));
        }
    }
    out.sort();
    out
}

fn old_releases_beyond_keep_releases_go_and_gc_keeps_the_newest(backend: Backend) {
    let mut site = TestSite::on(backend);
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    site.agent_line("keep_releases = 2");
    assert_exit(site.cmd(["apply"]), 0);
    for version in ["1.1.0", "1.2.0"] {
        repo.write("pack.yaml", pack_yaml("clush", version, ""));
        repo.commit(version);
        assert_exit(site.cmd(["apply"]), 0);
    }
    let releases = |site: &TestSite| {
        fs_err::read_dir(site.state_dir().join("releases/clush"))
            .unwrap()
            .count()
    };
    assert_eq!(releases(&site), 2, "apply keeps `keep_releases`");
    let gc = run_json(site.cmd(["gc", "--keep", "1", "--json"]));
    assert_eq!(gc["releases"].as_array().unwrap().len(), 1);
    assert_eq!(releases(&site), 1);
    assert!(
        fs_err::read_to_string(site.packs_dir().join("clush/pack.yaml"))
            .unwrap()
            .contains("1.2.0"),
        "the live release stays"
    );
    // Every release shares the one empty virtualenv, which stays in use.
    assert_eq!(gc["envs"].as_array().unwrap().len(), 0);

    // Issue 20: after a rollback the live release is the older one, and the one the site
    // config asks for is kept too, whatever `--keep` says; `--dry-run` removes nothing.
    repo.write("pack.yaml", pack_yaml("clush", "1.3.0", ""));
    repo.commit("1.3.0");
    assert_exit(site.cmd(["apply"]), 0);
    assert_exit(site.cmd(["rollback", "clush"]), 0);
    assert_eq!(releases(&site), 2);
    let listed = run_json(site.cmd(["gc", "--keep", "1", "--dry-run", "--json"]));
    assert_eq!(listed["dry_run"], true);
    assert_eq!(listed["releases"].as_array().unwrap().len(), 0, "{listed}");
    let gc = run_json(site.cmd(["gc", "--keep", "1", "--json"]));
    assert_eq!(gc["releases"].as_array().unwrap().len(), 0, "{gc}");
    assert_eq!(releases(&site), 2, "the live and the desired release stay");
    // Once the config asks for the live one, the other can go: `--dry-run` lists it and leaves
    // it.
    site.add_pack(PackEntry::new("clush", repo.path()).key(
        "ref",
        &format!(
            "\"{live}\"",
            live = {
                let git = git2::Repository::open(repo.path()).unwrap();
                let head = git.head().unwrap().peel_to_commit().unwrap();
                head.parent_id(0).unwrap().to_string()
            }
        ),
    ));
    let listed = run_json(site.cmd(["gc", "--keep", "1", "--dry-run", "--json"]));
    assert_eq!(listed["releases"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(releases(&site), 2, "a dry run removes nothing");
    let gc = run_json(site.cmd(["gc", "--keep", "1", "--json"]));
    assert_eq!(gc["releases"], listed["releases"]);
    assert_eq!(releases(&site), 1);
}
