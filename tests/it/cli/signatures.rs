//! Issue 21: only what a trusted key signed deploys. Commits and tags are signed for real, by
//! `git` with SSH keys `ssh-keygen` makes; packsync verifies them in-process.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::agent::live_version;
use crate::common::git::GitRepo;
use crate::common::site::{PackEntry, TestSite, assert_exit, pack_yaml, packsync_snapshot, run};

/// A new ed25519 key pair under `dir`: the private key's path and the public key's line.
fn key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(made.success());
    let public = fs_err::read_to_string(path.with_extension("pub")).expect("the public key");
    (path, public.trim().to_string())
}

/// `git` in `repo`, signing with `key` (SSH) when asked to sign.
fn git(repo: &Path, key: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=Signer",
            "-c",
            "user.email=signer@example.com",
        ])
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("user.signingkey={}", key.display()))
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `clush` at `version`, committed signed by `key` (unsigned with `None`).
fn commit_version(repo: &GitRepo, version: &str, key: Option<&Path>, any_key: &Path) {
    repo.write("pack.yaml", pack_yaml("clush", version, ""));
    git(repo.path(), any_key, &["add", "-A"]);
    let sign = if key.is_some() { "-S" } else { "--no-gpg-sign" };
    git(
        repo.path(),
        key.unwrap_or(any_key),
        &["commit", "-q", sign, "-m", &format!("clush {version}")],
    );
}

struct Signed {
    site: TestSite,
    clush: GitRepo,
    alice: PathBuf,
    mallory: PathBuf,
}

/// A site whose `clush` must be signed as `mode` says, by Alice (listed in the allowed
/// signers; Mallory is not), following `git_ref`.
fn signed_site(mode: &str, git_ref: Option<&str>) -> Signed {
    let mut site = TestSite::new();
    let keys = site.path().join("keys");
    fs_err::create_dir_all(&keys).expect("a folder for the keys");
    let (alice, alice_public) = key(&keys, "alice");
    let (mallory, _) = key(&keys, "mallory");
    let signers = site.path().join("allowed_signers");
    fs_err::write(&signers, format!("alice@example.com {alice_public}\n"))
        .expect("the allowed signers are written");
    let clush = site.pack_repo("clush", "0.1.0");
    let mut entry = PackEntry::new("clush", clush.path()).key(
        "verify",
        &format!(
            "{{ mode = \"{mode}\", allowed_signers = \"{}\" }}",
            signers.display()
        ),
    );
    if let Some(git_ref) = git_ref {
        entry = entry.key("ref", &format!("\"{git_ref}\""));
    }
    site.add_pack(entry);
    Signed {
        site,
        clush,
        alice,
        mallory,
    }
}

#[test]
fn issue_21_a_commit_signed_by_a_trusted_key_deploys_and_no_other_does() {
    let Signed {
        site,
        clush,
        alice,
        mallory,
    } = signed_site("commit", None);
    // The pack repo's first commit is unsigned.
    let unsigned = run(site.cmd(["check"]));
    assert!(unsigned.starts_with("exit_code: 1"), "{unsigned}");
    assert!(unsigned.contains(": unsigned"), "{unsigned}");

    commit_version(&clush, "1.0.0", Some(&alice), &alice);
    assert_exit(site.cmd(["check"]), 0);
    assert_exit(site.cmd(["apply"]), 0);
    assert_eq!(live_version(&site, "clush").as_deref(), Some("1.0.0"));

    // Mallory's commit is refused everywhere, and what is live stays.
    commit_version(&clush, "1.1.0", Some(&mallory), &alice);
    packsync_snapshot!(site, site.cmd(["plan"]), @r#"
    exit_code: 1
    ----- stdout -----
    Plan: 1 not planned (errors)

    ----- stderr -----
    error: [clush] The source of `[TEMP]/repos/clush` is not signed as `mode = "commit"` asks: commit [SHORT]: signed by SHA256:[KEY], a key the allowed signers do not list
      --> [TEMP]/packsync.toml:16:8
       |
    16 | name = "clush"
       |        ^^^^^^^

    hint: sign the commit (`git -c gpg.format=ssh commit -S`) or the tag (`git -c gpg.format=ssh tag -s`) with a key listed in `[TEMP]/allowed_signers`, or add the signer's key there; the live release stays until then
    "#);
    let apply = run(site.cmd(["apply"]));
    assert!(apply.starts_with("exit_code: 1"), "{apply}");
    assert_eq!(live_version(&site, "clush").as_deref(), Some("1.0.0"));

    // Alice's signature copied onto another commit does not verify.
    commit_version(&clush, "1.2.0", Some(&alice), &alice);
    let raw = git(clush.path(), &alice, &["cat-file", "commit", "HEAD"]);
    let forged = raw.replace("clush 1.2.0", "clush 1.2.0, forged");
    let file = site.path().join("forged");
    fs_err::write(&file, format!("{forged}\n")).unwrap();
    let id = git(
        clush.path(),
        &alice,
        &[
            "hash-object",
            "-t",
            "commit",
            "-w",
            &file.display().to_string(),
        ],
    );
    git(clush.path(), &alice, &["update-ref", "HEAD", &id]);
    let check = run(site.cmd(["check"]));
    assert!(check.contains("does not verify"), "{check}");

    // Unsigned: refused.
    commit_version(&clush, "1.3.0", None, &alice);
    let check = run(site.cmd(["check"]));
    assert!(check.contains(": unsigned"), "{check}");
    assert_eq!(live_version(&site, "clush").as_deref(), Some("1.0.0"));
}

/// A tag Alice signed, on a commit nobody signed: what each mode makes of it.
#[test]
fn issue_21_a_signed_tag_on_an_unsigned_commit_under_each_mode() {
    for (mode, deploys) in [("tag", true), ("commit-or-tag", true), ("commit", false)] {
        let Signed {
            site, clush, alice, ..
        } = signed_site(mode, Some("v1.0.0"));
        commit_version(&clush, "1.0.0", None, &alice);
        git(
            clush.path(),
            &alice,
            &["tag", "-s", "v1.0.0", "-m", "clush 1.0.0"],
        );
        let check = run(site.cmd(["check"]));
        assert_eq!(
            check.starts_with("exit_code: 0"),
            deploys,
            "mode {mode}: {check}"
        );
        if !deploys {
            assert!(check.contains(": unsigned"), "{check}");
        }
    }
    // A tag only Mallory signed, or a branch where a tag is asked for, is refused.
    let Signed {
        site,
        clush,
        alice,
        mallory,
    } = signed_site("tag", Some("v1.0.0"));
    commit_version(&clush, "1.0.0", Some(&alice), &alice);
    git(
        clush.path(),
        &mallory,
        &["tag", "-s", "v1.0.0", "-m", "clush 1.0.0"],
    );
    let check = run(site.cmd(["check"]));
    assert!(
        check.contains("a key the allowed signers do not list"),
        "{check}"
    );
    let Signed {
        site, clush, alice, ..
    } = signed_site("tag", None);
    commit_version(&clush, "1.0.0", Some(&alice), &alice);
    let check = run(site.cmd(["check"]));
    assert!(check.contains("`HEAD` is not an annotated tag"), "{check}");
}

#[test]
fn issue_21_a_bad_allowed_signers_file_is_shown_at_check() {
    let Signed { site, .. } = signed_site("commit", None);
    fs_err::write(
        site.path().join("allowed_signers"),
        "# keys\nalice@example.com ssh-ed25519 AAAA-not-a-key\n",
    )
    .unwrap();
    packsync_snapshot!(site, site.cmd(["check"]), @r#"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 0 packs, 1 error, 0 warnings

    ----- stderr -----
    error: `[TEMP]/allowed_signers` line 2: no SSH public key after the principals: Base64 encoding error: invalid Base64 encoding
      --> [TEMP]/packsync.toml:18:47
       |
    18 | verify = { mode = "commit", allowed_signers = "[TEMP]/allowed_signers" }
       |                                               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

    hint: each line is `principals [options] key-type base64-key [comment]`, as ssh-keygen(1) describes ALLOWED SIGNERS
    "#);
}
