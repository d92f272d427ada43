//! Issue 20: what `apply` shows while it works: a live line per pack on a terminal, a plain line
//! per phase elsewhere, nothing but the summary with `--quiet`.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::site::{PackEntry, TestSite, packsync_snapshot};

/// A pack with a requirement (so its virtualenv is built) under a gate hook that waits for the
/// file `GO` in the site's folder (`true` when `GO` is made beforehand).
fn site_with_a_gate() -> TestSite {
    let mut site = TestSite::new();
    site.wheel("six", "1.17.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "six\n");
    clush.commit("Needs six");
    let go = site.path().join("GO");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .stackstorm_line(&format!(
            "test = ['sh', '-c', 'while [ ! -e {} ]; do sleep 0.05; done']",
            go.display()
        ));
    site
}

#[test]
fn issue_20_off_a_terminal_each_phase_is_one_plain_line_as_it_begins() {
    let site = site_with_a_gate();
    fs_err::write(site.path().join("GO"), "").unwrap();
    let mut apply = site.cmd(["apply"]);
    // Its stderr is a pipe: `auto` is `plain`.
    apply.env("PACKSYNC_PROGRESS", "auto");
    packsync_snapshot!(site, apply, @"
    exit_code: 0
    ----- stdout -----
    installed    clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    [ELAPSED] clush: exporting its tree from Git
    [ELAPSED] clush: building its virtualenv
    [ELAPSED] clush: testing the new release
    [ELAPSED] clush: switching it live
    [ELAPSED] clush: applied
    ");
}

#[test]
fn issue_20_quiet_keeps_the_summary_only() {
    let site = site_with_a_gate();
    fs_err::write(site.path().join("GO"), "").unwrap();
    let mut apply = site.cmd(["apply", "--quiet"]);
    apply.env("PACKSYNC_PROGRESS", "plain");
    packsync_snapshot!(site, apply, @"
    exit_code: 0
    ----- stdout -----
    installed    clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    ");
}

/// On a terminal (`script` gives it one), each pack has a live line with its phase: seen while
/// the gate holds the pack in its test, and gone once the summary is printed.
#[test]
fn issue_20_on_a_terminal_each_pack_has_a_live_line() {
    let site = site_with_a_gate();
    let apply = site.cmd(["apply"]);
    let command_line: Vec<String> = std::iter::once(apply.get_program())
        .chain(apply.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let mut script = Command::new("script");
    script
        .args(["-q", "-f", "-e", "-c", &command_line.join(" "), "/dev/null"])
        .env("PACKSYNC_PROGRESS", "auto")
        .env("COLUMNS", "120")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in apply.get_envs() {
        match value {
            Some(value) if name != "PACKSYNC_PROGRESS" => script.env(name, value),
            Some(_) => &mut script,
            None => script.env_remove(name),
        };
    }
    let mut child = script.spawn().expect("script (util-linux) runs");
    let terminal = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let terminal = Arc::clone(&terminal);
        std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(read @ 1..) = stdout.read(&mut chunk) {
                terminal.lock().unwrap().extend_from_slice(&chunk[..read]);
            }
        })
    };
    let shown = || String::from_utf8_lossy(&terminal.lock().unwrap()).into_owned();
    let deadline = Instant::now() + Duration::from_mins(1);
    while !shown().contains("testing the new release") {
        assert!(
            Instant::now() < deadline,
            "no live line for the gate:\n{}",
            shown()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    fs_err::write(site.path().join("GO"), "").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let shown = shown();
    assert!(status.success(), "{shown}");
    assert!(
        shown.contains("\u{1b}["),
        "drawn with the terminal's codes: {shown:?}"
    );
    assert!(shown.contains("clush testing the new release"), "{shown:?}");
    assert!(shown.contains("Apply: 1 applied in "), "{shown:?}");
}
