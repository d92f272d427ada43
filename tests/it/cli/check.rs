//! `packsync check`: every problem of a site in one run, with its file and position.

use crate::common::git::GitRepo;
use crate::common::site::{PackEntry, TestSite, pack_yaml, packsync_snapshot, write_pack};

const SCHEMA: &str = "\
fanout:
  type: integer
  description: Connections at once
  default: 64
  required: false
ssh_user:
  type: string
  description: Who logs in on the nodes
  required: true
";

/// The pack `clush`: a config schema, a requirement on `six`; the site gives it its config.
fn add_clush(site: &mut TestSite) -> GitRepo {
    let repo = GitRepo::init(&site.path().join("repos/clush"));
    write_pack(&repo, "", "clush", "1.8.1");
    repo.write("config.schema.yaml", SCHEMA)
        .write("requirements.txt", "six>=1.9\n");
    repo.commit("clush 1.8.1");
    site.add_pack(
        PackEntry::new("clush", repo.path())
            .config("fanout", "16")
            .config("ssh_user", "\"root\""),
    );
    repo
}

#[test]
fn a_valid_site_is_valid() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    add_clush(&mut site);
    let slurm = site.pack_repo("slurm", "3.2.0");
    site.add_pack(PackEntry::new("slurm", slurm.path()));
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 0
    ----- stdout -----
    [TEMP]/packsync.toml: valid: 2 packs, 0 errors, 0 warnings

    ----- stderr -----
    ");
}

#[test]
fn an_unknown_key_of_the_site_config_is_shown_where_it_is() {
    let mut site = TestSite::new();
    site.agent_line("prnue = true");
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 0 packs, 1 error, 0 warnings

    ----- stderr -----
    error: unknown field `prnue`, expected one of `state_dir`, `host`, `prune`, `keep_releases`, `concurrency`, `metrics_listen`, `build_retry`, `build_retry_max`, `verify_every`, `verify`
      --> [TEMP]/packsync.toml:3:1
      |
    3 | prnue = true
      | ^^^^^
    ");
}

#[test]
fn every_pack_problem_is_reported_in_one_run() {
    let mut site = TestSite::new();
    site.wheel("six", "1.16.0", &[]).wheel("six", "1.17.0", &[]);

    let bad_version = site.pack_repo("bad_version", "1.0.0");
    bad_version.write(
        "pack.yaml",
        "ref: bad_version\nname: bad_version\ndescription: d\nversion: 0.2\nauthor: a\n",
    );
    bad_version.commit("Version 0.2");
    site.add_pack(PackEntry::new("bad_version", bad_version.path()));

    let renamed = site.pack_repo("renamed", "1.0.0");
    renamed.write("pack.yaml", pack_yaml("other_name", "1.0.0", ""));
    renamed.commit("Rename");
    site.add_pack(PackEntry::new("renamed", renamed.path()));

    let no_such_ref = site.pack_repo("no_such_ref", "1.0.0");
    site.add_pack(PackEntry::new("no_such_ref", no_such_ref.path()).key("ref", "\"v9.9.9\""));

    let unsatisfied = site.pack_repo("unsatisfied", "1.0.0");
    unsatisfied.write("requirements.txt", "six>=2\n");
    unsatisfied.commit("Needs six 2");
    site.add_pack(PackEntry::new("unsatisfied", unsatisfied.path()));

    let url = site.pack_repo("url_requirement", "1.0.0");
    url.write(
        "requirements.txt",
        "six\nfoo @ https://example.com/foo-1.0-py3-none-any.whl\n",
    );
    url.commit("Foo from a URL");
    site.add_pack(PackEntry::new("url_requirement", url.path()));

    let clush = add_clush(&mut site);
    site.add_pack(
        PackEntry::new("clush", clush.path())
            .config("fanout", "\"many\"")
            .config("ssh_user", "\"root\""),
    );

    let fine = site.pack_repo("fine", "1.0.0");
    site.add_pack(PackEntry::new("fine", fine.path()));

    packsync_snapshot!(site, site.cmd(["check"]), @r#"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 7 packs, 6 errors, 0 warnings

    ----- stderr -----
    error: [bad_version] Invalid pack metadata in `[TEMP]/repos/bad_version@[SHORT]:pack.yaml`: `version` `0.2` is not strict semver
      --> [TEMP]/repos/bad_version@[SHORT]:pack.yaml:4:1
      |
    4 | version: 0.2
      | ^^^^^^^

    hint: use a three-part version such as `0.2.0`: StackStorm rejects anything else
    error: [renamed] Pack `renamed` in the site config is `other_name` in its `pack.yaml`
      --> [TEMP]/repos/renamed@[SHORT]:pack.yaml:1:1
      |
    1 | ref: other_name
      | ^^^

    hint: StackStorm keys a pack by its ref: set `name = "other_name"` in the site config (at [TEMP]/packsync.toml:20:8)
    error: [no_such_ref] Ref `v9.9.9` matches no branch, tag or commit of `[TEMP]/repos/no_such_ref`; the repo has no version tags
      --> [TEMP]/packsync.toml:24:8
       |
    24 | name = "no_such_ref"
       |        ^^^^^^^^^^^^^

    hint: set `ref` to a branch, a tag or a commit id of at least 7 hex digits, or `version` to a range that a version tag matches
    error: [unsatisfied] requirements.txt:1 six>=2 : mirror has six 1.16.0, 1.17.0

    hint: add the missing versions to the mirror folder `[TEMP]/mirror`, or change the requirement
    error: [url_requirement] Cannot use line 2 of `[TEMP]/repos/url_requirement@[SHORT]:requirements.txt`: `foo @ https://example.com/foo-1.0-py3-none-any.whl` points at a URL
      --> [TEMP]/repos/url_requirement@[SHORT]:requirements.txt:2:1
      |
    2 | foo @ https://example.com/foo-1.0-py3-none-any.whl
      | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

    hint: packsync installs offline from the wheel mirror only: put the distribution in the mirror and require it by name, e.g. `clustershell==1.9.2`
    error: [clush] Pack config `fanout`: must be integer, not a string `"many"`
      --> [TEMP]/packsync.toml:40:1
       |
    40 | fanout = "many"
       | ^^^^^^
    "#);
}

#[test]
fn a_remote_source_is_refused() {
    let mut site = TestSite::new();
    site.add_pack(PackEntry::new(
        "clush",
        "https://github.com/example/clush.git".as_ref(),
    ));
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 0 packs, 1 error, 0 warnings

    ----- stderr -----
    error: Source `https://github.com/example/clush.git` is a remote URL
      --> [TEMP]/packsync.toml:17:10
       |
    17 | source = 'https://github.com/example/clush.git'
       |          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

    hint: packsync works offline from local repos: clone the repo onto this host (e.g. `git clone --mirror <url> /srv/git/<pack>`) and point `source` at it
    ");
}

#[test]
fn uncommitted_changes_are_a_warning_and_do_not_count() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    // Invalid, but not committed: packsync reads the commit, so the pack stays valid.
    clush
        .write("pack.yaml", "version: 0.2\n")
        .write("actions/new.py", "");
    site.add_pack(PackEntry::new("clush", clush.path()));
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 0
    ----- stdout -----
    [TEMP]/packsync.toml: valid: 1 pack, 0 errors, 1 warning

    ----- stderr -----
    warning: [clush] Uncommitted changes in `[TEMP]/repos/clush` are ignored: `actions/new.py`, `pack.yaml`

    hint: packsync deploys committed content only: commit the changes
    ");
}

#[test]
fn json_output_lists_every_problem() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()).config("fanout", "16"));
    let slurm = site.pack_repo("slurm", "1.0.0");
    site.add_pack(PackEntry::new("slurm", slurm.path()).key("ref", "\"v2.0.0\""));
    packsync_snapshot!(site, site.cmd(["--json", "check"]), @r#"
    exit_code: 1
    ----- stdout -----
    {
      "valid": false,
      "config": "[TEMP]/packsync.toml",
      "packs": 2,
      "errors": 1,
      "warnings": 1,
      "problems": [
        {
          "severity": "warning",
          "pack": "clush",
          "message": "Pack has no `config.schema.yaml`: its config values are not checked",
          "location": {
            "file": "[TEMP]/packsync.toml",
            "line": 16,
            "column": 8
          }
        },
        {
          "severity": "error",
          "pack": "slurm",
          "message": "Ref `v2.0.0` matches no branch, tag or commit of `[TEMP]/repos/slurm`; the repo has no version tags",
          "location": {
            "file": "[TEMP]/packsync.toml",
            "line": 22,
            "column": 8
          },
          "hint": "set `ref` to a branch, a tag or a commit id of at least 7 hex digits, or `version` to a range that a version tag matches"
        }
      ]
    }

    ----- stderr -----
    "#);
}

/// An interpreter that says it is Python 3.8: `python3` with its self-description edited.
fn python_3_8(site: &TestSite) -> std::path::PathBuf {
    let path = site.path().join("st2/bin/python");
    fs_err::create_dir_all(site.path().join("st2/bin")).expect("a folder in the temp dir");
    fs_err::write(
        &path,
        format!(
            "#!/bin/sh\n{} \"$@\" | sed -e 's/\"python_version\": \"3.[0-9]*\"/\"python_version\": \"3.8\"/' \
             -e 's/\"python_full_version\": \"3.[0-9.]*\"/\"python_full_version\": \"3.8.20\"/'\n",
            crate::common::site::python().display()
        ),
    )
    .expect("the script is written");
    fs_err::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("the script is made executable");
    path
}

#[test]
fn pack_virtualenvs_must_run_stackstorms_python_minor_version() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    add_clush(&mut site);
    let st2_python = python_3_8(&site);
    site.stackstorm_line(&format!("st2_python = '{}'", st2_python.display()));
    let output = crate::common::site::assert_exit(site.cmd(["check"]), 1)
        .replace(&site.path().display().to_string(), "[TEMP]");
    assert!(
        output.contains(
            "StackStorm runs Python 3.8 (`[TEMP]/st2/bin/python`): actions import st2common \
             from StackStorm's site-packages, built for its own Python"
        ),
        "{output}"
    );
    assert!(
        output.contains("hint: set `[stackstorm] python` to an interpreter of Python 3.8"),
        "{output}"
    );

    // The same interpreter for both: nothing to say.
    site.stackstorm_line(&format!(
        "st2_python = '{}'",
        crate::common::site::python().display()
    ));
    crate::common::site::assert_exit(site.cmd(["check"]), 0);
}

/// Issue 16: an action StackStorm's registrar refuses (an unknown runner, a missing entry
/// point) is found by `check`, `plan` and `apply` before anything is built; the pack stays as
/// installed.
#[test]
fn issue_16_an_action_stackstorm_would_refuse_is_refused_before_the_build() {
    let mut site = TestSite::new();
    let repo = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", repo.path()));
    let applied = crate::common::site::run(site.cmd(["apply"]));
    assert!(applied.starts_with("exit_code: 0"), "{applied}");
    let live = fs_err::canonicalize(site.packs_dir().join("clush")).unwrap();

    repo.write("pack.yaml", pack_yaml("clush", "1.1.0", ""))
        .write(
            "actions/broken.yaml",
            "name: broken\nrunner_type: python-script\nentry_point: missing.py\n",
        );
    repo.commit("clush 1.1.0 with an action whose file is missing");
    for command in [&["check"][..], &["plan"], &["apply"]] {
        let output = crate::common::site::run(site.cmd(command));
        assert!(output.starts_with("exit_code: 1"), "{command:?}: {output}");
        assert!(
            output.contains(
                ":actions/broken.yaml` names the entry point `actions/missing.py`, not in the pack"
            ),
            "{command:?}: {output}"
        );
    }
    assert_eq!(
        fs_err::canonicalize(site.packs_dir().join("clush")).unwrap(),
        live
    );

    // Without StackStorm's interpreter to ask, a runner packsync does not know is a warning.
    repo.write(
        "actions/broken.yaml",
        "name: broken\nrunner_type: no-such-runner\n",
    );
    repo.commit("an unknown runner");
    let output = crate::common::site::run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 0"), "{output}");
    assert!(
        output.contains("warning: [clush] `")
            && output.contains("uses the runner `no-such-runner`, which StackStorm does not have"),
        "{output}"
    );
}

/// Issue 16: what `apply` would refuse is refused by `check`: a symlink out of the pack,
/// packs that depend on each other in a cycle, an interpreter whose pip cannot install.
#[test]
fn issue_16_check_refuses_what_apply_would_refuse() {
    let mut site = TestSite::new();
    let outside = site.pack_repo("outside", "1.0.0");
    outside.symlink("actions/secrets", "/etc");
    outside.commit("a link out of the pack");
    site.add_pack(PackEntry::new("outside", outside.path()));
    let output = crate::common::site::run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 1"), "{output}");
    assert!(output.contains("actions/secrets"), "{output}");
    site.remove_pack("outside");

    let a = site.pack_repo("alpha", "1.0.0");
    a.write(
        "pack.yaml",
        pack_yaml("alpha", "1.0.0", "dependencies:\n  - beta\n"),
    );
    a.commit("alpha needs beta");
    let b = site.pack_repo("beta", "1.0.0");
    b.write(
        "pack.yaml",
        pack_yaml("beta", "1.0.0", "dependencies:\n  - alpha\n"),
    );
    b.commit("beta needs alpha");
    site.add_pack(PackEntry::new("alpha", a.path()))
        .add_pack(PackEntry::new("beta", b.path()));
    let output = crate::common::site::run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 1"), "{output}");
    assert!(
        output.contains("Packs depend on each other in a cycle: alpha -> beta -> alpha"),
        "{output}"
    );
    site.remove_pack("alpha").remove_pack("beta");

    // A virtualenv without pip as the interpreter: `pip --python` cannot run.
    let bare = site.path().join("bare-python");
    let made = std::process::Command::new(crate::common::site::python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .stackstorm_line(&format!("python = '{}'", bare.join("bin/python").display()));
    let output = crate::common::site::run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 1"), "{output}");
    assert!(
        output.contains("has no pip: packsync installs with `pip --python <venv>`"),
        "{output}"
    );
    assert!(output.contains("installer = \"uv\""), "{output}");
}

/// Issue 16: without `[pack.config]` the pack's config is the site's (`st2 pack config` writes
/// `configs_dir/<pack>.yaml`): packsync checks it when it is there (warnings, as StackStorm
/// registers the pack anyway), a missing required key is a warning, and the file is never
/// touched.
#[test]
fn issue_16_a_site_owned_config_is_checked_but_never_touched() {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    let repo = GitRepo::init(&site.path().join("repos/clush"));
    write_pack(&repo, "", "clush", "1.8.1");
    repo.write("config.schema.yaml", SCHEMA);
    repo.commit("clush 1.8.1");
    site.add_pack(PackEntry::new("clush", repo.path()));
    let output = crate::common::site::run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 0"), "{output}");
    assert!(
        output.contains(
            "warning: [clush] Pack config `ssh_user` (no `[pack.config]` and no config file): \
             is required by the schema and has no default"
        ),
        "{output}"
    );

    let file = site.configs_dir().join("clush.yaml");
    fs_err::create_dir_all(site.configs_dir()).unwrap();
    fs_err::write(&file, "ssh_user: root\nfanout: many\n").unwrap();
    let output = crate::common::site::run(site.cmd(["check"]));
    assert!(output.starts_with("exit_code: 0"), "{output}");
    assert!(output.contains("Pack config `fanout` (`"), "{output}");
    assert!(output.contains("must be integer, not a string"), "{output}");
    let applied = crate::common::site::run(site.cmd(["apply"]));
    assert!(applied.starts_with("exit_code: 0"), "{applied}");
    assert_eq!(
        fs_err::read_to_string(&file).unwrap(),
        "ssh_user: root\nfanout: many\n",
        "the site's file is left as it is"
    );
}
