//! The wheel mirror seen through `check`, `plan` and `apply`: sdists built offline with a build
//! backend from the mirror, `SHA256SUMS`, dependency chains, and bad files that leave what is
//! installed alone.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use crate::common::site::{
    PackEntry, TestSite, assert_exit, output_snapshot, packsync, packsync_snapshot, run,
};
use crate::common::wheels::{make_backend_wheel, make_dist, make_sdist};

/// `<venv>/bin/python -c <code>`, its stdout trimmed.
fn python_in(venv: &Path, code: &str) -> String {
    let output = Command::new(venv.join("bin/python"))
        .args(["-c", code])
        .output()
        .expect("the virtualenv's python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The sdist `fxsrc 1.0`, built with the backend `fxbuild`, requiring `fxdep`.
fn fxsrc_sdist(mirror: &Path) -> PathBuf {
    make_dist(
        mirror,
        &[
            "--sdist",
            "fxsrc",
            "1.0",
            "--backend",
            "fxbuild:fxbuild",
            "--requires",
            "fxdep",
        ],
    )
}

/// A pack `name` at 1.0.0 whose `requirements.txt` is `requirements`, added to the site.
fn add_pack_requiring(site: &mut TestSite, name: &str, requirements: &str) {
    let repo = site.pack_repo(name, "1.0.0");
    repo.write("requirements.txt", requirements);
    repo.commit(&format!("{name} needs {}", requirements.trim()));
    site.add_pack(PackEntry::new(name, repo.path()));
}

fn sha256_of(path: &Path) -> String {
    packsync::model::hex(&Sha256::digest(
        fs_err::read(path).expect("the file is readable"),
    ))
}

/// Writes the mirror's `SHA256SUMS` in `sha256sum` format, one line per `(hash, file name)`.
fn write_sha256sums(site: &TestSite, lines: &[(&str, &str)]) {
    let mut text = String::new();
    for (hash, file_name) in lines {
        writeln!(text, "{hash}  {file_name}").expect("writing to a String cannot fail");
    }
    fs_err::write(site.mirror().join("SHA256SUMS"), text).expect("SHA256SUMS is written");
}

/// The link `state_dir/current/<pack>` to the live release, as it points now.
fn live_release(site: &TestSite, pack: &str) -> PathBuf {
    fs_err::read_link(site.state_dir().join("current").join(pack))
        .expect("the pack has a live release")
}

#[test]
fn an_sdist_builds_offline_when_its_build_backend_is_a_wheel_of_the_mirror() {
    let mut site = TestSite::new();
    make_backend_wheel(&site.mirror(), "fxbuild", "1.0");
    site.wheel("fxdep", "1.0", &[]);
    fxsrc_sdist(&site.mirror());
    add_pack_requiring(&mut site, "clush", "fxsrc\n");
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 0
    ----- stdout -----
    [TEMP]/packsync.toml: valid: 1 pack, 0 errors, 0 warnings

    ----- stderr -----
    ");
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 2
    ----- stdout -----
    installed    clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    ");
    let venv = site.venvs_dir().join("clush");
    assert!(
        venv.is_symlink(),
        "the pack's virtualenv is a link to its env"
    );
    assert_eq!(
        python_in(
            &venv,
            "import fxsrc, fxdep; print(fxsrc.__version__, fxdep.__version__)"
        ),
        "1.0 1.0"
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
}

#[test]
fn an_sdist_builds_offline_with_the_uv_installer_too() {
    let uv = std::env::var("PACKSYNC_TEST_UV").expect(
        "PACKSYNC_TEST_UV is not set: run the tests with `scripts/with-mongodb cargo test`",
    );
    let mut site = TestSite::new();
    make_backend_wheel(&site.mirror(), "fxbuild", "1.0");
    site.wheel("fxdep", "1.0", &[]);
    fxsrc_sdist(&site.mirror());
    add_pack_requiring(&mut site, "clush", "fxsrc\n");
    // `TestSite` writes no `[mirror]` keys but `path`: a config of its own, with uv.
    let config = site.path().join("packsync-uv.toml");
    let text = site.config_text().replacen(
        "[mirror]\n",
        &format!("[mirror]\ninstaller = \"uv\"\nuv = '{uv}'\n"),
        1,
    );
    fs_err::write(&config, text).unwrap();
    let apply = packsync([
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("apply"),
    ]);
    packsync_snapshot!(site, apply, @"
    exit_code: 0
    ----- stdout -----
    installed    clush  1.0.0 (HEAD @ [SHORT])  release 1.0.0-[SHORT]-[INPUTS]  ([DURATION])
    Apply: 1 applied in [DURATION]

    ----- stderr -----
    ");
    assert!(
        site.state_dir().join("cache/uv").is_dir(),
        "uv installed the env"
    );
    assert_eq!(
        python_in(
            &site.venvs_dir().join("clush"),
            "import fxsrc, fxdep; print(fxsrc.__version__, fxdep.__version__)"
        ),
        "1.0 1.0"
    );
}

/// A site whose packs need sdists that the mirror has no build backend for: `clush` needs
/// `fxsrc` (built with `fxbuild`), `slurm` needs `fxold` (built with setuptools); `fine` needs
/// nothing.
fn site_with_sdists_that_cannot_be_built() -> TestSite {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[]);
    fxsrc_sdist(&site.mirror());
    make_sdist(&site.mirror(), "fxold", "1.0", &[]);
    add_pack_requiring(&mut site, "clush", "fxsrc\n");
    add_pack_requiring(&mut site, "slurm", "fxold\n");
    let fine = site.pack_repo("fine", "1.0.0");
    site.add_pack(PackEntry::new("fine", fine.path()));
    site
}

#[test]
fn an_sdist_whose_build_backend_is_not_in_the_mirror_is_an_error_naming_the_backend() {
    let site = site_with_sdists_that_cannot_be_built();
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 3 packs, 2 errors, 0 warnings

    ----- stderr -----
    error: [clush] The sdist `fxsrc-1.0.tar.gz` cannot be built offline: fxsrc-1.0.tar.gz builds with fxbuild : mirror has no distribution named `fxbuild`

    hint: add a wheel of what it builds with to the mirror, or a wheel of fxsrc 1.0 itself (`pip wheel --no-deps` on a machine that can build it)
    error: [slurm] The sdist `fxold-1.0.tar.gz` cannot be built offline: fxold-1.0.tar.gz builds with setuptools : mirror has no distribution named `setuptools`

    hint: add a wheel of what it builds with to the mirror, or a wheel of fxold 1.0 itself (`pip wheel --no-deps` on a machine that can build it)
    ");
}

#[test]
fn a_sha256sums_listing_every_file_with_its_hash_is_valid() {
    let mut site = TestSite::new();
    let backend = make_backend_wheel(&site.mirror(), "fxbuild", "1.0");
    site.wheel("fxdep", "1.0", &[]);
    let sdist = fxsrc_sdist(&site.mirror());
    let fxdep = site.mirror().join("fxdep-1.0-py3-none-any.whl");
    add_pack_requiring(&mut site, "clush", "fxsrc\n");
    write_sha256sums(
        &site,
        &[
            (&sha256_of(&backend), "fxbuild-1.0-py3-none-any.whl"),
            (&sha256_of(&fxdep), "fxdep-1.0-py3-none-any.whl"),
            (&sha256_of(&sdist), "fxsrc-1.0.tar.gz"),
        ],
    );
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 0
    ----- stdout -----
    [TEMP]/packsync.toml: valid: 1 pack, 0 errors, 0 warnings

    ----- stderr -----
    ");
}

#[test]
fn a_used_file_missing_from_sha256sums_is_an_error() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[])
        .wheel("fxtwo", "1.0", &["fxdep"]);
    let fxtwo = site.mirror().join("fxtwo-1.0-py3-none-any.whl");
    add_pack_requiring(&mut site, "clush", "fxtwo\n");
    write_sha256sums(&site, &[(&sha256_of(&fxtwo), "fxtwo-1.0-py3-none-any.whl")]);
    packsync_snapshot!(site, site.cmd(["check"]), @"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 1 pack, 1 error, 0 warnings

    ----- stderr -----
    error: [clush] The mirror file `fxdep-1.0-py3-none-any.whl` is not listed in `[TEMP]/mirror/SHA256SUMS`

    hint: check the file, then add its line to SHA256SUMS (`sha256sum FILE >> SHA256SUMS`); every file used must be listed there
    ");
}

#[test]
fn a_wrong_hash_in_sha256sums_is_an_error_that_names_its_line() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[])
        .wheel("fxtwo", "1.0", &["fxdep"]);
    let fxdep = site.mirror().join("fxdep-1.0-py3-none-any.whl");
    let fxtwo = site.mirror().join("fxtwo-1.0-py3-none-any.whl");
    add_pack_requiring(&mut site, "clush", "fxtwo\n");
    let wrong = "0".repeat(64);
    write_sha256sums(
        &site,
        &[
            (&sha256_of(&fxtwo), "fxtwo-1.0-py3-none-any.whl"),
            (&wrong, "fxdep-1.0-py3-none-any.whl"),
        ],
    );
    let output = run(site.cmd(["check"])).replace(&sha256_of(&fxdep), "[FXDEP SHA256]");
    assert!(
        output.contains(&format!(
            "has sha256 [FXDEP SHA256], but `{}` line 2 says {wrong}",
            site.mirror().join("SHA256SUMS").display()
        )),
        "{output}"
    );
    output_snapshot!(site, output, @"
    exit_code: 1
    ----- stdout -----
    [TEMP]/packsync.toml: invalid: 1 pack, 1 error, 0 warnings

    ----- stderr -----
    error: [clush] The mirror file `fxdep-1.0-py3-none-any.whl` has sha256 [FXDEP SHA256], but `[TEMP]/mirror/SHA256SUMS` line 2 says 0000000000000000000000000000000000000000000000000000000000000000

    hint: `fxdep-1.0-py3-none-any.whl` is not the file SHA256SUMS was written for: restore it, or check it and update SHA256SUMS
    ");
}

#[test]
fn plan_reports_a_deep_dependency_chain_and_still_plans_the_other_packs() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[])
        .wheel("fxdep", "1.1", &[])
        .wheel("fxtwo", "1.0", &["fxdep>=2"])
        .wheel("fxa", "1.0", &["fxtwo"]);
    add_pack_requiring(&mut site, "diskless", "fxa\n");
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    packsync_snapshot!(site, site.cmd(["plan"]), @"
    exit_code: 1
    ----- stdout -----
    install     clush  1.0.0 (HEAD @ [SHORT])
        not installed
    Plan: 1 to install, 1 not planned (errors)

    ----- stderr -----
    error: [diskless] requirements.txt:1 fxa -> fxtwo -> fxdep>=2 : mirror has fxdep 1.0, 1.1

    hint: add the missing versions to the mirror folder `[TEMP]/mirror`, or change the requirement
    ");
}

/// Issue 21: a wheel that unpacks to a thousand times its size (a zip bomb: 96 MiB of zeros in
/// 100 kB) is refused at `check`, naming the file and the limit, before anything unpacks it.
#[test]
fn issue_21_a_zip_bomb_in_the_mirror_is_refused_at_check_with_its_limit() {
    let mut site = TestSite::new();
    let bomb = site.mirror().join("fxbomb-1.0-py3-none-any.whl");
    let written = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   z.writestr('fxbomb-1.0.dist-info/METADATA', 'Name: fxbomb\\nVersion: 1.0\\n')\n\
             \x20   z.writestr('fxbomb-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nTag: py3-none-any\\n')\n\
             \x20   z.writestr('fxbomb/zeros.bin', bytes(96 << 20))\n",
        ])
        .arg(&bomb)
        .output()
        .unwrap();
    assert!(written.status.success(), "{written:?}");
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "fxbomb\n");
    clush.commit("Needs fxbomb");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let output = assert_exit(site.cmd(["check"]), 1);
    let error = format!(
        "Cannot read the metadata of the mirror file `{}`",
        bomb.display()
    );
    assert!(output.contains(&error), "{error:?} not in:\n{output}");
    assert!(
        output.contains("more than 100 times its size (the limit, against archive bombs)"),
        "{output}"
    );
    assert!(!site.venvs_dir().join("clush").exists());
}

#[test]
fn a_corrupt_wheel_needed_by_a_new_revision_leaves_the_live_release_alone() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[]).wheel("fxnew", "1.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "fxdep\n");
    clush.commit("Needs fxdep");
    site.add_pack(PackEntry::new("clush", clush.path()));
    assert_exit(site.cmd(["apply"]), 0);
    let live = live_release(&site, "clush");
    let pack_link = fs_err::read_link(site.packs_dir().join("clush")).unwrap();
    let venv_link = fs_err::read_link(site.venvs_dir().join("clush")).unwrap();

    fs_err::write(
        site.mirror().join("fxnew-1.0-py3-none-any.whl"),
        "not a zip",
    )
    .unwrap();
    clush.write("requirements.txt", "fxdep\nfxnew\n");
    clush.commit("Needs fxnew too");
    // Not a snapshot: the error's hint (replace the file...) is lost today, with the one of
    // `an_sdist_whose_build_backend_is_not_in_the_mirror_comes_with_a_hint_to_add_a_wheel`.
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 4);
    let error = format!(
        "error: [clush] Cannot read the metadata of the mirror file `{}`",
        site.mirror().join("fxnew-1.0-py3-none-any.whl").display()
    );
    assert!(output.contains(&error), "{error:?} not in:\n{output}");
    assert!(output.contains("Apply: 1 failed"), "{output}");
    assert_eq!(live_release(&site, "clush"), live);
    assert_eq!(
        fs_err::read_link(site.packs_dir().join("clush")).unwrap(),
        pack_link
    );
    assert_eq!(
        fs_err::read_link(site.venvs_dir().join("clush")).unwrap(),
        venv_link
    );
    assert_eq!(
        python_in(
            &site.venvs_dir().join("clush"),
            "import fxdep; print(fxdep.__version__)"
        ),
        "1.0"
    );
}

#[test]
fn a_hash_in_the_requirements_file_pins_the_mirror_file() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[]);
    let fxdep = sha256_of(&site.mirror().join("fxdep-1.0-py3-none-any.whl"));
    add_pack_requiring(
        &mut site,
        "clush",
        &format!("fxdep==1.0 --hash=sha256:{fxdep}\n"),
    );
    add_pack_requiring(
        &mut site,
        "slurm",
        &format!("fxdep==1.0 --hash=sha256:{}\n", "0".repeat(64)),
    );
    let output = assert_exit(site.cmd(["check"]), 1);
    assert!(
        output.contains(&format!(
            "error: [slurm] requirements.txt:1: the mirror's `fxdep-1.0-py3-none-any.whl` has \
             sha256 {fxdep}, which no `--hash` of the line allows"
        )),
        "{output}"
    );
    assert!(!output.contains("[clush]"), "{output}");
}

/// Issue 16: an sdist that declares its dependencies in no file (dynamic in `pyproject.toml`,
/// PKG-INFO 2.1, as six's and http-parser's) is built offline, once, to learn them, as pip does.
#[test]
fn issue_16_an_sdist_with_dynamic_dependencies_is_built_to_learn_them() {
    let mut site = TestSite::new();
    let mirror = site.mirror();
    make_backend_wheel(&mirror, "fxbuild", "1.0");
    site.wheel("fxdep", "1.0", &[]);
    make_dist(
        &mirror,
        &[
            "--sdist",
            "fxdyn",
            "1.0",
            "--requires=fxdep>=1",
            "--backend",
            "fxbuild:fxbuild",
            "--dynamic",
        ],
    );
    add_pack_requiring(&mut site, "clush", "fxdyn\n");
    assert_exit(site.cmd(["check"]), 0);
    // Learnt from a build, and kept by the sdist's content.
    let cache = fs_err::read_to_string(site.state_dir().join("mirror-metadata.json")).unwrap();
    assert!(cache.contains("fxdep>=1"), "{cache}");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert_eq!(
        python_in(
            &site.venvs_dir().join("clush"),
            "import fxdyn, fxdep; print(fxdyn.__version__, fxdep.__version__)"
        ),
        "1.0 1.0"
    );
}

/// Issue 16: when a base requirement's own file is what cannot be read, the error says it comes
/// from `[stackstorm] base_requirements`, not from the pack.
#[test]
fn issue_16_a_base_requirement_that_cannot_be_read_is_named_as_such() {
    let mut site = TestSite::new();
    // six's sdist that only a build could tell about, and no backend to build it with.
    make_dist(
        &site.mirror(),
        &[
            "--sdist",
            "six",
            "1.16.0",
            "--backend",
            "fxbuild:fxbuild",
            "--dynamic",
        ],
    );
    site.stackstorm_line("base_requirements = ['six']");
    add_pack_requiring(&mut site, "clush", "");
    let output = assert_exit(site.cmd(["check"]), 1);
    assert!(
        output.contains("(brought in by `[stackstorm] base_requirements` `six`, not by the pack)"),
        "{output}"
    );
}
