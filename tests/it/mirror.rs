//! Tests of the mirror module against a real wheel folder.
//! Tests of the python module against real interpreters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use packsync::diagnostics::Report;
use packsync::mirror::resolve::{Request, ResolveError, RootRequirement, resolve};
use packsync::mirror::{
    DistKind, FileNameError, MetadataCache, MirrorError, MirrorIndex, Prereleases, SkippedFile,
};
use packsync::python::{PythonError, PythonIdentity};
use pep508_rs::{PackageName, Requirement};
use sha2::{Digest as _, Sha256};

use crate::common::PYTHON3;
use crate::common::wheels::{make_sdist, make_wheel};

fn requirement(line: &str) -> Requirement {
    Requirement::from_str(line).expect("a valid requirement")
}

/// What `line` (as line 1 of `requirements.txt`) resolves to, as `name version file`.
fn resolved(
    index: &MirrorIndex,
    line: &str,
    prereleases: Prereleases,
) -> Result<Vec<String>, ResolveError> {
    let requirements = [RootRequirement {
        requirement: requirement(line),
        origin: "requirements.txt:1".into(),
    }];
    let request = Request {
        requirements: &requirements,
        constraints: &[],
        prereleases,
        python: &PYTHON3,
        provided: &BTreeMap::new(),
    };
    let metadata = MetadataCache::load(None);
    Ok(resolve(index, &metadata, request)?
        .files
        .iter()
        .map(|file| format!("{} {} {}", file.name, file.version, file.file_name))
        .collect())
}

fn name(name: &str) -> PackageName {
    PackageName::from_str(name).expect("a valid name")
}

fn sha256_of(path: &Path) -> String {
    packsync::model::hex(&Sha256::digest(
        fs_err::read(path).expect("the file is readable"),
    ))
}

/// `report` with the temp dir replaced, for stable comparisons.
fn rendered(err: &(dyn packsync::diagnostics::Diagnose + 'static), dir: &Path) -> String {
    Report::new(err)
        .to_string()
        .replace(&dir.display().to_string(), "[DIR]")
}

#[test]
fn scan_indexes_wheels_and_sdists_and_skips_bad_names() {
    let mirror = tempfile::tempdir().unwrap();
    let dir = mirror.path();
    let app = make_wheel(dir, "fx-app", "1.0", &["fxdep>=1.1", "fx-multi-part"]);
    make_wheel(dir, "fxdep", "1.0", &[]);
    make_sdist(dir, "fx-multi-part", "1.2", &[]);
    for junk in ["README", "MD5SUMS", "index.html"] {
        fs_err::write(dir.join(junk), "not a distribution").unwrap();
    }
    fs_err::write(dir.join("fxdep.whl"), "bad name").unwrap();
    fs_err::write(dir.join("no_version_here.tar.gz"), "bad name").unwrap();
    // pip's --find-links does not recurse, and a folder is no file.
    fs_err::create_dir(dir.join("nested")).unwrap();
    make_wheel(&dir.join("nested"), "fxnested", "1.0", &[]);
    fs_err::create_dir(dir.join("folder-1.0-py3-none-any.whl")).unwrap();

    let index = MirrorIndex::scan(dir, None).unwrap();

    let summary: Vec<(String, String, DistKind, String)> = index
        .files()
        .iter()
        .map(|file| {
            (
                file.name.to_string(),
                file.version.to_string(),
                file.kind,
                file.file_name.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "fx-app".into(),
                "1.0".into(),
                DistKind::Wheel,
                "fx_app-1.0-py3-none-any.whl".into()
            ),
            (
                "fx-multi-part".into(),
                "1.2".into(),
                DistKind::Sdist,
                "fx-multi-part-1.2.tar.gz".into()
            ),
            (
                "fxdep".into(),
                "1.0".into(),
                DistKind::Wheel,
                "fxdep-1.0-py3-none-any.whl".into()
            ),
        ]
    );
    let app_file = &index.files()[0];
    assert_eq!(app_file.path, app);
    assert_eq!(app_file.sha256, sha256_of(&app));
    assert_eq!(app_file.size, fs_err::metadata(&app).unwrap().len());
    assert_eq!(app_file.pin().sha256, app_file.sha256);
    assert_eq!(
        index.skipped(),
        [
            SkippedFile {
                file_name: "fxdep.whl".into(),
                reason: FileNameError::WheelParts,
            },
            SkippedFile {
                file_name: "no_version_here.tar.gz".into(),
                reason: FileNameError::SdistVersion,
            },
        ]
    );
}

#[test]
fn names_match_after_normalisation() {
    let mirror = tempfile::tempdir().unwrap();
    make_wheel(mirror.path(), "Foo_Bar", "1.0", &[]);
    make_wheel(mirror.path(), "foo.bar", "1.1", &[]);
    let index = MirrorIndex::scan(mirror.path(), None).unwrap();

    let file_names: Vec<&str> = index
        .files_of(&name("FOO-bar"))
        .iter()
        .map(|file| file.file_name.as_str())
        .collect();
    assert_eq!(
        file_names,
        [
            "Foo_Bar-1.0-py3-none-any.whl",
            "foo_bar-1.1-py3-none-any.whl"
        ]
    );
    for line in ["foo-bar==1.0", "Foo_Bar==1.0", "foo.BAR==1.0"] {
        assert_eq!(
            resolved(&index, line, Prereleases::IfRequested).unwrap(),
            ["foo-bar 1.0 Foo_Bar-1.0-py3-none-any.whl"],
            "{line}"
        );
    }
    let versions: Vec<String> = index
        .versions_of(&name("foo__bar"))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(versions, ["1.0", "1.1"]);
}

/// A mirror where `fxdep` has finals and a pre-release, and `fxpre` only pre-releases.
fn prerelease_mirror() -> tempfile::TempDir {
    let mirror = tempfile::tempdir().expect("a temp dir");
    for version in ["1.0", "1.1", "2.0b1"] {
        make_wheel(mirror.path(), "fxdep", version, &[]);
    }
    make_sdist(mirror.path(), "fxdep", "1.1", &[]);
    for version in ["2.0b1", "2.0rc1"] {
        make_wheel(mirror.path(), "fxpre", version, &[]);
    }
    mirror
}

#[test]
fn resolution_takes_the_newest_version_pip_would_take() {
    let mirror = prerelease_mirror();
    let index = MirrorIndex::scan(mirror.path(), None).unwrap();
    // The expectations are what pip 23.2.1 and 24.2 install from this mirror
    // (`pip install --dry-run --no-index --find-links`, with `--pre` for `Allow`).
    let cases = [
        ("fxdep", Prereleases::IfRequested, Some("1.1")),
        ("fxdep<1.1", Prereleases::IfRequested, Some("1.0")),
        ("fxdep>=2", Prereleases::IfRequested, None),
        ("fxdep>1.1", Prereleases::IfRequested, None),
        ("fxdep>=2.0b1", Prereleases::IfRequested, Some("2.0b1")),
        ("fxdep~=2.0b1", Prereleases::IfRequested, Some("2.0b1")),
        ("fxdep<2.0b2", Prereleases::IfRequested, Some("1.1")),
        ("fxpre", Prereleases::IfRequested, Some("2.0rc1")),
        ("fxpre>=1", Prereleases::IfRequested, None),
        ("fxpre!=2.0rc1", Prereleases::IfRequested, None),
        ("fxpre==2.0b1", Prereleases::IfRequested, Some("2.0b1")),
        ("fxdep", Prereleases::Allow, Some("2.0b1")),
        ("fxdep>=2", Prereleases::Allow, None),
        ("fxdep>1.1", Prereleases::Allow, Some("2.0b1")),
        ("fxdep<2", Prereleases::Allow, Some("1.1")),
        ("fxpre>=1", Prereleases::Allow, Some("2.0rc1")),
    ];
    for (line, prereleases, expected) in cases {
        let selected = resolved(&index, line, prereleases).ok().map(|files| {
            let [file] = files.as_slice() else {
                panic!("{files:?}")
            };
            file.split(' ').nth(1).unwrap().to_string()
        });
        assert_eq!(selected.as_deref(), expected, "{line} with {prereleases:?}");
    }
}

#[test]
fn resolution_prefers_the_wheel_of_a_version_to_its_sdist() {
    let mirror = prerelease_mirror();
    let index = MirrorIndex::scan(mirror.path(), None).unwrap();
    assert_eq!(
        resolved(&index, "fxdep>=1.1", Prereleases::IfRequested).unwrap(),
        ["fxdep 1.1 fxdep-1.1-py3-none-any.whl"]
    );
}

#[test]
fn unsatisfied_requirements_name_what_the_mirror_has() {
    let mirror = prerelease_mirror();
    let dir = mirror.path();
    let index = MirrorIndex::scan(dir, None).unwrap();

    let chains = |line| match resolved(&index, line, Prereleases::IfRequested).unwrap_err() {
        ResolveError::Unsatisfiable { chains } => chains,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        chains("fxdep>=3"),
        ["requirements.txt:1 fxdep>=3 : mirror has fxdep 1.0, 1.1, 2.0b1"]
    );
    assert_eq!(
        chains("fxdep>1.1"),
        [
            "requirements.txt:1 fxdep>1.1 : mirror has fxdep 1.0, 1.1, 2.0b1; pip takes a \
          pre-release (2.0b1) only when the requirement names one, e.g. `fxdep==2.0b1`"
        ]
    );
    assert_eq!(
        chains("Fx_Missing>=1"),
        ["requirements.txt:1 fx-missing>=1 : mirror has no distribution named `fx-missing`"]
    );

    let err = resolved(
        &index,
        "fxdep @ https://example.com/fxdep-1.0-py3-none-any.whl",
        Prereleases::IfRequested,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ResolveError::Mirror(MirrorError::UrlRequirement { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_missing_mirror_folder_is_an_error_with_a_hint() {
    let parent = tempfile::tempdir().unwrap();
    let err = MirrorIndex::scan(&parent.path().join("wheels"), None).unwrap_err();
    let report = rendered(&err, parent.path());
    assert!(
        report.starts_with(
            "error: Cannot read the wheel mirror folder `[DIR]/wheels`\n  Caused by: "
        ),
        "{report}"
    );
    assert!(
        report.ends_with(
            "hint: check `[mirror] path` in the site config: it is the folder of wheels and \
             sdists pip installs from with `--find-links`\n"
        ),
        "{report}"
    );
}

/// Sets the modification time of `path`, leaving its content alone.
fn set_mtime(path: &Path, time: SystemTime) {
    fs_err::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("the file opens for writing")
        .set_modified(time)
        .expect("the mtime can be set");
}

/// Flips every byte of the file, so that its content changes and its size does not.
fn rewrite_same_size(path: &Path) {
    let content = fs_err::read(path).expect("the file is readable");
    let flipped: Vec<u8> = content.iter().map(|b| !b).collect();
    fs_err::write(path, flipped).expect("the file is writable");
}

fn sha256_in_index(dir: &Path, cache: Option<&Path>, file_name: &str) -> String {
    let index = MirrorIndex::scan(dir, cache).expect("the mirror scans");
    let file = index
        .files()
        .iter()
        .find(|file| file.file_name == file_name)
        .expect("the file is indexed");
    file.sha256.clone()
}

#[test]
fn rescans_read_no_file_whose_size_and_mtime_are_unchanged() {
    let mirror = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("mirror-index.json");
    let wheel = make_wheel(mirror.path(), "fxdep", "1.0", &[]);
    let file_name = "fxdep-1.0-py3-none-any.whl";
    let hashed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&wheel, hashed_at);

    let original = sha256_in_index(mirror.path(), Some(&cache), file_name);
    assert_eq!(original, sha256_of(&wheel));
    assert!(cache.exists());

    // Same size, same mtime, other content: the cache answers, so the file was not read.
    rewrite_same_size(&wheel);
    set_mtime(&wheel, hashed_at);
    let rewritten = sha256_of(&wheel);
    assert_ne!(rewritten, original);
    assert_eq!(
        sha256_in_index(mirror.path(), Some(&cache), file_name),
        original
    );
    // Without the cache the file is read.
    assert_eq!(sha256_in_index(mirror.path(), None, file_name), rewritten);

    // A new mtime (even one nanosecond later) means reading the file again.
    set_mtime(&wheel, hashed_at + Duration::from_nanos(1));
    assert_eq!(
        sha256_in_index(mirror.path(), Some(&cache), file_name),
        rewritten
    );
}

#[test]
fn the_cache_is_rewritten_only_when_it_changes() {
    let mirror = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("mirror-index.json");
    make_wheel(mirror.path(), "fxdep", "1.0", &[]);
    let old = make_wheel(mirror.path(), "fxdep", "1.1", &[]);
    MirrorIndex::scan(mirror.path(), Some(&cache)).unwrap();
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    set_mtime(&cache, long_ago);

    MirrorIndex::scan(mirror.path(), Some(&cache)).unwrap();
    let cache_mtime = || fs_err::metadata(&cache).unwrap().modified().unwrap();
    assert_eq!(
        cache_mtime(),
        long_ago,
        "an unchanged cache is not rewritten"
    );

    fs_err::remove_file(&old).unwrap();
    MirrorIndex::scan(mirror.path(), Some(&cache)).unwrap();
    assert_ne!(cache_mtime(), long_ago);
    let json = fs_err::read_to_string(&cache).unwrap();
    assert!(json.contains("fxdep-1.0-py3-none-any.whl"), "{json}");
    assert!(
        !json.contains("fxdep-1.1"),
        "a file that left the mirror leaves the cache: {json}"
    );
}

#[test]
fn a_broken_or_unwritable_cache_only_costs_time() {
    let mirror = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let wheel = make_wheel(mirror.path(), "fxdep", "1.0", &[]);
    let file_name = "fxdep-1.0-py3-none-any.whl";

    let unwritable = state
        .path()
        .join("no-such-state-dir")
        .join("mirror-index.json");
    assert_eq!(
        sha256_in_index(mirror.path(), Some(&unwritable), file_name),
        sha256_of(&wheel)
    );
    assert!(!unwritable.exists());

    let corrupt = state.path().join("mirror-index.json");
    fs_err::write(&corrupt, "{ not json").unwrap();
    assert_eq!(
        sha256_in_index(mirror.path(), Some(&corrupt), file_name),
        sha256_of(&wheel)
    );
    let json = fs_err::read_to_string(&corrupt).unwrap();
    assert!(
        json.contains(&sha256_of(&wheel)),
        "the cache is repaired: {json}"
    );
}

#[test]
fn a_cache_of_another_mirror_folder_is_not_trusted() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("mirror-index.json");
    let file_name = "fxdep-1.0-py3-none-any.whl";
    let hashed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let wheel = make_wheel(first.path(), "fxdep", "1.0", &[]);
    set_mtime(&wheel, hashed_at);
    MirrorIndex::scan(first.path(), Some(&cache)).unwrap();

    // Same name, size and mtime in another folder, other content.
    let other = second.path().join(file_name);
    fs_err::copy(&wheel, &other).unwrap();
    rewrite_same_size(&other);
    set_mtime(&other, hashed_at);
    assert_eq!(
        sha256_in_index(second.path(), Some(&cache), file_name),
        sha256_of(&other)
    );
}

/// The absolute path of `python3` on PATH, and what it says its version is.
fn real_python3() -> (PathBuf, String, String) {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2]); \
             print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .output()
        .expect("python3 is on PATH");
    let stdout = String::from_utf8(output.stdout).expect("python3 prints UTF-8");
    let mut lines = stdout.lines().map(str::to_string);
    let mut next = || lines.next().expect("three lines");
    (PathBuf::from(next()), next(), next())
}

#[test]
fn probe_reads_the_identity_of_the_real_python3() {
    let (python, short_version, full_version) = real_python3();
    let identity = PythonIdentity::probe(&python).unwrap();

    let markers = identity.markers();
    assert_eq!(markers.python_version().string, short_version);
    assert_eq!(markers.python_full_version().string, full_version);
    assert_eq!(identity.version().to_string(), full_version);
    assert_eq!(markers.implementation_name(), "cpython");
    assert_eq!(markers.platform_python_implementation(), "CPython");
    assert_eq!(markers.os_name(), "posix");
    assert_eq!(markers.platform_machine(), std::env::consts::ARCH);
    if cfg!(target_os = "linux") {
        assert_eq!(markers.sys_platform(), "linux");
        assert_eq!(markers.platform_system(), "Linux");
    }
    assert_eq!(
        identity.cache_tag(),
        Some(format!("cpython-{}", short_version.replace('.', "")).as_str())
    );
    assert_eq!(
        identity.label(),
        format!(
            "cpython-{full_version} {}-{} {}",
            std::env::consts::ARCH,
            markers.sys_platform(),
            python.display()
        )
    );
    assert!(requirement("fxdep ; python_version >= '3'").evaluate_markers(markers, &[]));
    assert!(!requirement("fxdep ; python_version < '3'").evaluate_markers(markers, &[]));
}

/// Writes an executable shell script standing in for an interpreter.
fn fake_python(dir: &Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("python3");
    fs_err::write(&path, format!("#!/bin/sh\n{script}\n")).expect("the script is written");
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
    path
}

#[test]
fn probe_ignores_what_a_python_prints_before_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let python = fake_python(
        dir.path(),
        "echo 'sitecustomize says hello'\nexec python3 \"$@\"",
    );
    let identity = PythonIdentity::probe(&python).unwrap();
    assert!(
        identity
            .label()
            .ends_with(&format!(" {}", python.display()))
    );
}

#[test]
fn a_cached_description_is_used_until_the_interpreter_changes() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let script = format!("echo run >> '{}'\nexec python3 \"$@\"", runs.display());
    let python = fake_python(dir.path(), &script);
    let cache = dir.path().join("python-probes.json");
    let count = || {
        fs_err::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let first = PythonIdentity::probe_cached(&python, &cache).unwrap();
    let second = PythonIdentity::probe_cached(&python, &cache).unwrap();
    assert_eq!(first, second);
    assert_eq!(count(), 1, "the second answer comes from the cache");

    // A new interpreter binary (an upgrade in place): asked again.
    fs_err::write(&python, format!("#!/bin/sh\n# upgraded\n{script}\n")).unwrap();
    let third = PythonIdentity::probe_cached(&python, &cache).unwrap();
    assert_eq!(third, first);
    assert_eq!(count(), 2);

    // A broken cache costs a probe, nothing else.
    fs_err::write(&cache, "not json").unwrap();
    PythonIdentity::probe_cached(&python, &cache).unwrap();
    assert_eq!(count(), 3);
}

#[test]
fn probe_errors_name_the_interpreter_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let hint = "\nhint: set `[stackstorm] python` in the site config to StackStorm's interpreter, \
                e.g. `/opt/stackstorm/st2/bin/python3`\n";
    let probe_err = |python: &Path| PythonIdentity::probe(python).unwrap_err();

    let missing = dir.path().join("bin/python3");
    let err = probe_err(&missing);
    assert!(matches!(err, PythonError::NotFound { .. }), "{err:?}");
    let report = rendered(&err, dir.path());
    assert!(
        report.starts_with("error: Python interpreter `[DIR]/bin/python3` does not exist\n"),
        "{report}"
    );
    assert!(report.ends_with(hint), "{report}");

    let err = probe_err(dir.path());
    assert!(matches!(err, PythonError::NotExecutable { .. }), "{err:?}");

    let err = probe_err(Path::new("/bin/false"));
    assert_eq!(
        Report::new(&err).to_string(),
        format!(
            "error: Python interpreter `/bin/false` failed to describe itself (exit status: 1)\n{hint}"
        )
    );

    let err = probe_err(Path::new("/bin/true"));
    assert!(matches!(err, PythonError::Garbage { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("Python interpreter `/bin/true` printed no description"),
        "{err}"
    );

    let failing = fake_python(dir.path(), "echo 'no module named json' >&2\nexit 3");
    let err = probe_err(&failing);
    assert_eq!(
        rendered(&err, dir.path()),
        format!(
            "error: Python interpreter `[DIR]/python3` failed to describe itself (exit status: 3)\n  \
             Caused by: no module named json\n{hint}"
        )
    );
}
