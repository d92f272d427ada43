//! Issue 21: the Debian package, built from the repo by `packaging/deb/build` and installed on
//! this machine with `dpkg -i`: the binary, the units (which verify), the service user.

use std::process::Command;

use crate::common::repo_path;

fn succeeds(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn issue_21_the_debian_package_installs_the_binary_the_units_and_the_user() {
    assert!(
        rustix::process::geteuid().is_root(),
        "`dpkg -i` needs root: run the tests as root (CI does)"
    );
    let out = tempfile::tempdir().unwrap();
    let deb = succeeds(
        Command::new(repo_path("packaging/deb/build"))
            .arg(env!("CARGO_BIN_EXE_packsync"))
            .arg(out.path()),
    );
    let deb = deb.trim();
    let info = succeeds(Command::new("dpkg-deb").args(["--field", deb, "Package", "Depends"]));
    assert_eq!(info, "Package: packsync\nDepends: adduser, python3\n");

    succeeds(Command::new("dpkg").args(["-i", deb]));
    let version = succeeds(Command::new("/usr/bin/packsync").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("packsync {}", env!("CARGO_PKG_VERSION"))
    );
    let agent = fs_err::read_to_string("/lib/systemd/system/packsync.service").unwrap();
    assert!(
        agent.contains("ExecStart=/usr/bin/packsync --config /etc/packsync/packsync.toml run"),
        "{agent}"
    );
    assert!(std::path::Path::new("/etc/packsync").is_dir());
    // The package makes the user unless it exists (Puppet's `service` mode makes it too).
    succeeds(Command::new("getent").args(["passwd", "packsync"]));
    let owner = succeeds(Command::new("stat").args(["-c", "%U", "/var/lib/packsync"]));
    assert_eq!(owner.trim(), "packsync");
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args([
            "/lib/systemd/system/packsync.service",
            "/lib/systemd/system/packsync-apply.service",
            "/lib/systemd/system/packsync-apply.timer",
        ])
        .output()
        .expect("systemd-analyze runs");
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(String::from_utf8_lossy(&verified.stderr), "", "no warnings");

    succeeds(Command::new("dpkg").args(["-r", "packsync"]));
    assert!(!std::path::Path::new("/usr/bin/packsync").exists());

    // The Puppet module installs from it (in this test: one dpkg at a time).
    if super::puppet::puppet_present() {
        let etc = out.path().join("etc");
        let manifest = format!(
            "class {{ 'packsync':\n mode => 'none',\n package_source => '{deb}',\n \
             binary_path => '/usr/bin/packsync',\n config_dir => '{}',\n}}\n",
            etc.display()
        );
        let (code, report) = super::puppet::puppet_apply(out.path(), &manifest, &[]);
        assert_eq!(code, 2, "{report}");
        assert!(
            report.contains("Package[packsync]/ensure: created"),
            "{report}"
        );
        let version = succeeds(Command::new("/usr/bin/packsync").arg("--version"));
        assert_eq!(
            version.trim(),
            format!("packsync {}", env!("CARGO_PKG_VERSION"))
        );
        succeeds(Command::new("dpkg").args(["-r", "packsync"]));
    }
}
