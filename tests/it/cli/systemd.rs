//! `packaging/systemd/`: the units verify with systemd's own checker, and their command lines
//! are ones packsync accepts.

use std::path::Path;
use std::process::Command;

use crate::common::site::{PackEntry, TestSite, assert_exit};

const UNITS: [&str; 3] = [
    "packsync.service",
    "packsync-apply.service",
    "packsync-apply.timer",
];

fn unit(name: &str) -> String {
    fs_err::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/systemd")
            .join(name),
    )
    .expect("the unit file is readable")
}

#[test]
fn the_units_verify_with_systemd_analyze() {
    let dir = tempfile::tempdir().unwrap();
    for name in UNITS {
        // This build's binary where the units expect the installed one.
        let text = unit(name).replace("/usr/local/bin/packsync", env!("CARGO_BIN_EXE_packsync"));
        fs_err::write(dir.path().join(name), text).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS.map(|name| dir.path().join(name)))
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "no warnings");

    let agent = unit("packsync.service");
    for line in [
        "ExecStart=/usr/local/bin/packsync --config /etc/packsync/packsync.toml run",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "KillMode=mixed",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            agent.lines().any(|l| l == line),
            "{line} not in packsync.service"
        );
    }
    assert!(unit("packsync-apply.service").contains("SuccessExitStatus=2 75"));
    assert!(unit("packsync-apply.timer").contains("RandomizedDelaySec=5min"));
}

#[test]
fn the_apply_unit_command_line_is_one_packsync_accepts() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let exec = unit("packsync-apply.service");
    let args: Vec<&str> = exec
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart line")
        .split_whitespace()
        .skip(3) // the binary and its --config
        .collect();
    assert_eq!(args[0], "apply");
    assert_exit(site.cmd(&args), 2);
    assert_exit(site.cmd(&args), 0);
}

/// Issue 21: both services run as their own user with no capabilities and a system call
/// allow list; `systemd-analyze security` rates each 2.0 or less.
#[test]
fn issue_21_the_services_run_with_least_privilege() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["packsync.service", "packsync-apply.service"] {
        let text = unit(name);
        for line in [
            "User=packsync",
            "CapabilityBoundingSet=",
            "SystemCallFilter=@system-service",
            "SystemCallArchitectures=native",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "ProtectProc=invisible",
            "UMask=0022",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {name}");
        }
        let path = dir.path().join(name);
        fs_err::write(&path, text).unwrap();
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .expect("systemd-analyze runs (Debian's systemd package)");
        let report = String::from_utf8_lossy(&output.stdout);
        let exposure: f64 = report
            .lines()
            .find_map(|line| line.split_once(&format!("Overall exposure level for {name}: ")))
            .and_then(|(_, level)| level.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{report}\n{output:?}"));
        assert!(exposure <= 2.0, "{name} rates {exposure}:\n{report}");
    }
    let agent = unit("packsync.service");
    for line in ["Type=notify", "NotifyAccess=main", "WatchdogSec=2min"] {
        assert!(
            agent.lines().any(|l| l == line),
            "{line} not in packsync.service"
        );
    }
}
