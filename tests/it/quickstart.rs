//! Issue 22: the README's quickstart, run as written: `scripts/quickstart`, then every line of
//! the block under "The quickstart, step by step", in a copy of the repository's `examples/`
//! and `scripts/quickstart`, with the test's `packsync` binary. Each command must succeed, and
//! print what the README's comment after it shows (its first two words).

#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use std::path::Path;
use std::process::Command;

use crate::common::{copy_tree, repo_path};

/// The lines of the first `sh` block after the heading `### The quickstart, step by step`.
fn story() -> Vec<String> {
    let readme = fs_err::read_to_string(repo_path("README.md")).unwrap();
    let section = &readme[readme
        .find("### The quickstart, step by step")
        .expect("the README has the quickstart's steps")..];
    let block = &section[section.find("```sh\n").unwrap() + "```sh\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    block.lines().map(str::to_string).collect()
}

/// Runs `line` with `sh` in `root`: exit status and output (stdout then stderr).
fn shell(root: &Path, line: &str) -> (bool, String) {
    let output = Command::new("bash")
        .args(["-c", line])
        .current_dir(root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("USER", "you")
        .env("PACKSYNC", env!("CARGO_BIN_EXE_packsync"))
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn issue_22_the_readme_quickstart_runs_as_written() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    copy_tree(&repo_path("examples"), &root.join("examples"));
    fs_err::create_dir_all(root.join("scripts")).unwrap();
    fs_err::copy(
        repo_path("scripts/quickstart"),
        root.join("scripts/quickstart"),
    )
    .unwrap();

    let (ok, output) = shell(root, "scripts/quickstart");
    assert!(ok && output.contains("Apply: 3 applied"), "{output}");
    let (ok, output) = shell(root, "scripts/quickstart");
    assert!(ok && output.contains("nothing to change"), "{output}");

    let mut last = String::new();
    let mut commands = 0;
    for line in story() {
        if let Some(expected) = line.strip_prefix("# ") {
            // What the previous command printed: its first two words, where the README shows
            // a line of output (not an elided one, nor the `ls` listing's).
            let key: Vec<&str> = expected.split_whitespace().take(2).collect();
            if !expected.starts_with("...") && !expected.contains(" -> <repo>") {
                assert!(
                    words(&last).contains(&key.join(" ")),
                    "`{line}` not in:\n{last}"
                );
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (ok, output) = shell(root, &line);
        assert!(ok, "`{line}` failed:\n{output}");
        last = output;
        commands += 1;
    }
    assert!(commands >= 8, "the story ran {commands} commands");
    let live = fs_err::read_to_string(root.join(".quickstart/packs/clush/pack.yaml")).unwrap();
    assert!(live.contains("version: 1.8.2"), "{live}");
}
