//! `puppet/packsync`: the module applied masterless by a real Puppet (Debian's puppet-agent,
//! which scripts/test installs when missing) converges a site, and reports a change only
//! when there is one.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::agent::live_version;
use crate::common::mongo;
use crate::common::site::{TestSite, python, write_pack};

fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("puppet/packsync")
}

/// Whether Puppet's tests run: they do wherever Puppet is installed; scripts/test says loudly
/// when it could install it nowhere (never in CI, where that fails the run).
pub(super) fn puppet_present() -> bool {
    let present = Command::new("puppet").arg("--version").output().is_ok()
        && Command::new("puppet-lint")
            .arg("--version")
            .output()
            .is_ok();
    assert!(
        present || std::env::var_os("PACKSYNC_TEST_SKIP_PUPPET").is_some(),
        "puppet and puppet-lint are not installed: run the tests through scripts/test, which \
         installs Debian's puppet-agent and puppet-lint"
    );
    present
}

/// `puppet apply` of `manifest`, masterless, with every Puppet folder under `dir`; returns the
/// exit code (`--detailed-exitcodes`: 0 no change, 2 changes, 4 and 6 failures) and stdout.
pub(super) fn puppet_apply(dir: &Path, manifest: &str, extra: &[&str]) -> (i32, String) {
    let path = dir.join("site.pp");
    fs_err::write(&path, manifest).expect("the manifest is written");
    let puppet = dir.join("puppet");
    let output = Command::new("puppet")
        .args(["apply", "--detailed-exitcodes", "--color=false"])
        .arg("--modulepath")
        .arg(module_dir().parent().expect("the module is in puppet/"))
        .args(
            ["confdir", "vardir", "logdir", "rundir", "codedir"]
                .iter()
                .flat_map(|name| [format!("--{name}"), puppet.join(name).display().to_string()]),
        )
        .args(extra)
        .arg(&path)
        .output()
        .expect("puppet runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().expect("puppet exits");
    // Facter's complaints about what a sandbox hides (/proc/1/environ) are not failures.
    assert!(
        code == 0 || code == 2,
        "puppet apply exited {code}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (code, stdout)
}

/// The folder standing for the Puppet-managed host's `/`: its `bin/` (`/usr/local/bin`) is
/// there; `etc/` is the module's.
fn puppet_host(site: &TestSite) -> PathBuf {
    let root = site.path().join("puppet-host");
    fs_err::create_dir_all(root.join("bin")).expect("the host's bin folder");
    root
}

/// The class of the module for `site`, its paths as parameters, `packs` from their repos.
fn manifest(site: &TestSite, root: &Path, extra: &str, packs: &[&str]) -> String {
    let packs: Vec<String> = packs
        .iter()
        .map(|name| {
            format!(
                "{{ 'name' => '{name}', 'source' => '{}' }}",
                site.path().join("repos").join(name).display()
            )
        })
        .collect();
    format!(
        "class {{ 'packsync':\n\
         {extra}\
         binary_source => '{binary}',\n\
         binary_path => '{root}/bin/packsync',\n\
         config_dir => '{root}/etc',\n\
         state_dir => '{state}',\n\
         stackstorm => {{\n\
           'packs_dir' => '{packs_dir}',\n\
           'virtualenvs_dir' => '{venvs}',\n\
           'configs_dir' => '{configs}',\n\
           'python' => '{python}',\n\
           'system_site_packages' => false,\n\
           'base_requirements' => [],\n\
         }},\n\
         mirror => {{ 'path' => '{mirror}' }},\n\
         packs => [{packs}],\n\
         }}\n",
        binary = env!("CARGO_BIN_EXE_packsync"),
        root = root.display(),
        state = site.state_dir().display(),
        packs_dir = site.packs_dir().display(),
        venvs = site.venvs_dir().display(),
        configs = site.configs_dir().display(),
        python = python().display(),
        mirror = site.mirror().display(),
        packs = packs.join(", "),
    )
}

/// What `packsync apply` reported through the exec, one line each.
fn apply_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|line| line.split_once("Exec[packsync apply]/returns: "))
        .map(|(_, line)| line)
        .collect()
}

#[test]
fn the_module_is_lint_clean_and_parses() {
    if !puppet_present() {
        return;
    }
    let lint = Command::new("puppet-lint")
        .args(["--fail-on-warnings", "--relative"])
        .arg(module_dir())
        .output()
        .expect("puppet-lint runs");
    assert!(lint.status.success(), "{lint:?}");
    let validate = Command::new("puppet")
        .args(["parser", "validate"])
        .arg(module_dir().join("manifests/init.pp"))
        .arg(module_dir().join("types/path.pp"))
        .output()
        .expect("puppet runs");
    assert!(validate.status.success(), "{validate:?}");
}

#[test]
fn puppet_apply_converges_the_site_and_changes_only_what_a_commit_changed() {
    if !puppet_present() {
        return;
    }
    let site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.pack_repo("slurm", "2.0.0");
    let root = puppet_host(&site);
    // The state in MongoDB, its URL in a file of its own that the config names.
    let database = mongo::unique_database();
    let state = format!(
        "state_url => Sensitive('{}'),\nstate => {{ 'database' => '{database}' }},\n",
        mongo::url()
    );
    let manifest = manifest(&site, &root, &state, &["clush", "slurm"]);

    let (code, stdout) = puppet_apply(site.path(), &manifest, &[]);
    assert_eq!(code, 2, "the first run changes the host:\n{stdout}");
    let lines = apply_lines(&stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("installed    clush  1.0.0")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("installed    slurm  2.0.0")),
        "{stdout}"
    );
    assert_eq!(live_version(&site, "clush").as_deref(), Some("1.0.0"));
    let config = fs_err::read_to_string(root.join("etc/packsync.toml")).expect("the config");
    assert!(
        config.contains(&format!(
            "[state]\ndatabase = \"{database}\"\nurl_file = \"{}\"\n",
            root.join("etc/state-url").display()
        )),
        "{config}"
    );
    assert!(!stdout.contains(&mongo::url()), "the URL is Sensitive");

    let (code, stdout) = puppet_apply(site.path(), &manifest, &[]);
    assert_eq!(code, 0, "a converged host is no change:\n{stdout}");
    assert_eq!(apply_lines(&stdout), Vec::<&str>::new(), "{stdout}");

    write_pack(&clush, "", "clush", "1.1.0");
    clush.commit("clush 1.1.0");
    let (code, stdout) = puppet_apply(site.path(), &manifest, &[]);
    assert_eq!(code, 2, "a commit is a change:\n{stdout}");
    let lines = apply_lines(&stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("upgraded     clush  1.1.0")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Apply: 1 applied, 1 unchanged in ")),
        "{stdout}"
    );
    assert!(!lines.iter().any(|l| l.contains("slurm")), "{stdout}");
    assert_eq!(live_version(&site, "clush").as_deref(), Some("1.1.0"));
    assert_eq!(live_version(&site, "slurm").as_deref(), Some("2.0.0"));
    mongo::drop_database(&mongo::url(), &database);
}

#[test]
fn the_service_mode_points_the_agent_unit_at_the_class_paths() {
    if !puppet_present() {
        return;
    }
    let site = TestSite::new();
    site.pack_repo("clush", "1.0.0");
    let root = puppet_host(&site);
    let units = root.join("units");
    fs_err::create_dir_all(&units).expect("the host's unit folder");
    let manifest = manifest(
        &site,
        &root,
        &format!(
            "mode => 'service',\nunit_dir => '{}',\nstate_url => 'mongodb://st2-db1/st2',\n\
             fleet => {{ 'name' => 'st2-prod', 'hosts' => ['st2-1', 'st2-2'] }},\n",
            units.display()
        ),
        &["clush"],
    );

    // No systemd runs here: Puppet would start the service, and applies the files.
    let (code, stdout) = puppet_apply(site.path(), &manifest, &["--noop"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("Service[packsync]/ensure: current_value 'stopped', should be 'running'"),
        "{stdout}"
    );
    assert!(!stdout.contains("Exec[packsync apply]"), "{stdout}");
    let (code, stdout) = puppet_apply(site.path(), &manifest, &["--tags", "file,user,group"]);
    assert_eq!(code, 2, "{stdout}");
    // Issue 21: the agent runs as `packsync`, which reads the config through its group.
    for path in [
        root.join("etc"),
        root.join("etc/packsync.toml"),
        root.join("etc/state-url"),
    ] {
        let meta = fs_err::metadata(&path).expect("the file Puppet wrote");
        let group = Command::new("stat")
            .args(["-c", "%G %a"])
            .arg(&path)
            .output()
            .expect("stat runs");
        let group = String::from_utf8_lossy(&group.stdout);
        assert!(
            group.starts_with("packsync 7") || group.starts_with("packsync 6"),
            "{}: {group}",
            path.display()
        );
        assert_eq!(
            meta.permissions().mode() & 0o007,
            0,
            "{}: not for others",
            path.display()
        );
    }

    // The unit as packaging/systemd ships it, with the module's drop-in: systemd's checker
    // finds the binary the drop-in names (the unit's own /usr/local/bin/packsync is not here).
    fs_err::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/packsync.service"),
        units.join("packsync.service"),
    )
    .expect("the unit is copied");
    let drop_in =
        fs_err::read_to_string(units.join("packsync.service.d/puppet.conf")).expect("the drop-in");
    let exec_start = format!(
        "ExecStart={root}/bin/packsync --config {root}/etc/packsync.toml run",
        root = root.display()
    );
    assert!(drop_in.lines().any(|l| l == exec_start), "{drop_in}");
    let config = fs_err::read_to_string(root.join("etc/packsync.toml")).expect("the config");
    assert!(
        config.contains("[fleet]\nname = \"st2-prod\"\nhosts = [\"st2-1\", \"st2-2\"]"),
        "{config}"
    );
    assert!(
        drop_in.contains(&format!("ReadWritePaths={}", site.state_dir().display())),
        "{drop_in}"
    );
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("packsync.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .output()
        .expect("systemd-analyze runs");
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(String::from_utf8_lossy(&verify.stderr), "", "no warnings");
}
