//! Tests of the resolver against real wheel folders: dependencies of dependencies, chains of
//! unsatisfiable requirements, extras, Python versions, wheel tags, sdists and `SHA256SUMS`.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use packsync::mirror::resolve::{
    Request, ResolveError, Resolved, RootRequirement, check_build_backends, resolve,
};
use packsync::mirror::{MetadataCache, MirrorError, MirrorIndex, Prereleases};
use pep440_rs::Version;
use pep508_rs::{PackageName, Requirement};

use crate::common::PYTHON3;
use crate::common::wheels::{make_backend_wheel, make_dist, make_sdist, make_wheel};

/// Requirement lines, as lines 1.. of `requirements.txt`.
fn roots(lines: &[&str]) -> Vec<RootRequirement> {
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| RootRequirement {
            requirement: Requirement::from_str(line).expect("a valid requirement"),
            origin: format!("requirements.txt:{}", index + 1),
        })
        .collect()
}

struct Mirror {
    dir: tempfile::TempDir,
    metadata: MetadataCache,
}

impl Mirror {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temp dir"),
            metadata: MetadataCache::load(None),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn wheel(&self, name: &str, version: &str, requires: &[&str]) -> &Self {
        make_wheel(self.path(), name, version, requires);
        self
    }

    fn index(&self) -> MirrorIndex {
        MirrorIndex::scan(self.path(), None).expect("the mirror scans")
    }

    /// `name version` of every file the lines resolve to, or the error.
    fn resolve(&self, lines: &[&str]) -> Result<Vec<String>, ResolveError> {
        self.resolve_with(lines, &[], &BTreeMap::new())
            .map(|resolved| resolved.0)
    }

    fn resolve_with(
        &self,
        lines: &[&str],
        constraints: &[&str],
        provided: &BTreeMap<PackageName, Version>,
    ) -> Result<(Vec<String>, Vec<String>), ResolveError> {
        let index = self.index();
        let request = Request {
            requirements: &roots(lines),
            constraints: &roots(constraints),
            prereleases: Prereleases::IfRequested,
            python: &PYTHON3,
            provided,
        };
        let Resolved { files, provided } = resolve(&index, &self.metadata, request)?;
        Ok((
            files
                .iter()
                .map(|file| format!("{} {}", file.name, file.version))
                .collect(),
            provided
                .iter()
                .map(|(name, version)| format!("{name} {version}"))
                .collect(),
        ))
    }

    fn chains(&self, lines: &[&str]) -> Vec<String> {
        match self.resolve(lines) {
            Err(ResolveError::Unsatisfiable { chains }) => chains,
            other => panic!("expected no solution, got {other:?}"),
        }
    }
}

#[test]
fn dependencies_of_dependencies_are_resolved() {
    let mirror = Mirror::new();
    mirror
        .wheel("fxa", "1.0", &["fxtwo>=1"])
        .wheel(
            "fxtwo",
            "1.0",
            &["fxdep>=1.1", "fxwin ; sys_platform == 'win32'"],
        )
        .wheel("fxdep", "1.0", &[])
        .wheel("fxdep", "1.1", &[])
        .wheel("fxdep", "1.2", &[]);
    assert_eq!(
        mirror.resolve(&["fxa"]).unwrap(),
        ["fxa 1.0", "fxdep 1.2", "fxtwo 1.0"]
    );
    // A requirement of the set limits what a dependency gets.
    assert_eq!(
        mirror.resolve(&["fxa", "fxdep<1.2"]).unwrap(),
        ["fxa 1.0", "fxdep 1.1", "fxtwo 1.0"]
    );
    let (files, _) = mirror
        .resolve_with(&["fxa"], &["fxdep!=1.2"], &BTreeMap::new())
        .unwrap();
    assert_eq!(
        files,
        ["fxa 1.0", "fxdep 1.1", "fxtwo 1.0"],
        "a -c constraint"
    );
}

#[test]
fn an_unsatisfiable_dependency_is_shown_with_its_chain() {
    let mirror = Mirror::new();
    mirror
        .wheel("fxa", "1.0", &["fxtwo"])
        .wheel("fxtwo", "1.0", &["fxdep>=2"])
        .wheel("fxdep", "1.0", &[])
        .wheel("fxdep", "1.1", &[]);
    assert_eq!(
        mirror.chains(&["fxtwo"]),
        ["requirements.txt:1 fxtwo -> fxdep>=2 : mirror has fxdep 1.0, 1.1"]
    );
    assert_eq!(
        mirror.chains(&["fxdep", "fxa"]),
        ["requirements.txt:2 fxa -> fxtwo -> fxdep>=2 : mirror has fxdep 1.0, 1.1"],
        "the chain starts at the line that brings it in"
    );
}

#[test]
fn requirements_that_exclude_each_other_show_both_ways() {
    let mirror = Mirror::new();
    mirror
        .wheel("fxleft", "1.0", &["fxdep<1.1"])
        .wheel("fxright", "1.0", &["fxdep>=1.1"])
        .wheel("fxdep", "1.0", &[])
        .wheel("fxdep", "1.1", &[]);
    assert_eq!(
        mirror.chains(&["fxleft", "fxright"]),
        [
            "requirements.txt:1 fxleft -> fxdep<1.1 and requirements.txt:2 fxright -> fxdep>=1.1 \
             : no version satisfies all of them; mirror has fxdep 1.0, 1.1"
        ]
    );
}

#[test]
fn extras_bring_their_own_dependencies() {
    let mirror = Mirror::new();
    mirror
        .wheel("fxext", "1.0", &["fxdep ; extra == 'more'"])
        .wheel("fxdep", "1.0", &[]);
    assert_eq!(mirror.resolve(&["fxext"]).unwrap(), ["fxext 1.0"]);
    assert_eq!(
        mirror.resolve(&["fxext[more]"]).unwrap(),
        ["fxdep 1.0", "fxext 1.0"]
    );
}

#[test]
fn versions_for_another_python_are_passed_over() {
    let mirror = Mirror::new();
    mirror.wheel("fxdep", "1.0", &[]);
    make_dist(
        mirror.path(),
        &["--wheel", "fxdep", "2.0", "--requires-python", ">=4"],
    );
    // Only the file name says which interpreter a wheel is for.
    let windows = mirror.path().join("fxdep-3.0-cp27-cp27m-win32.whl");
    fs_err::copy(mirror.path().join("fxdep-1.0-py3-none-any.whl"), &windows).unwrap();

    assert_eq!(mirror.resolve(&["fxdep"]).unwrap(), ["fxdep 1.0"]);
    let chains = mirror.chains(&["fxdep>=2"]);
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert!(
        chains[0].starts_with("requirements.txt:1 fxdep>=2 : fxdep 2.0 requires Python >=4 ("),
        "{chains:?}"
    );
    let chains = mirror.chains(&["fxdep>=3"]);
    assert!(
        chains[0].starts_with(
            "requirements.txt:1 fxdep>=3 : mirror has fxdep 1.0, 2.0, 3.0 (3.0 only as wheels \
             cpython-3."
        ),
        "{chains:?}"
    );
}

#[test]
fn provided_distributions_are_fixed_at_their_installed_version() {
    let mirror = Mirror::new();
    mirror
        .wheel("fxrunner", "1.0", &["fxdep>=1", "fxextra"])
        .wheel("fxdep", "1.0", &[])
        .wheel("fxdep", "2.0", &[])
        .wheel("fxextra", "1.0", &[]);
    let provided = BTreeMap::from([(
        PackageName::from_str("fxdep").unwrap(),
        Version::from_str("1.0").unwrap(),
    )]);
    let (files, used) = mirror.resolve_with(&["fxrunner"], &[], &provided).unwrap();
    assert_eq!(files, ["fxextra 1.0", "fxrunner 1.0"]);
    assert_eq!(used, ["fxdep 1.0"]);
    let err = mirror
        .resolve_with(&["fxdep>=2"], &[], &provided)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "requirements.txt:1 fxdep>=2 : StackStorm's environment has fxdep 1.0"
    );
}

#[test]
fn sdists_resolve_from_their_static_metadata_and_need_their_backend() {
    let mirror = Mirror::new();
    mirror.wheel("fxdep", "1.0", &[]);
    make_sdist(mirror.path(), "fxsrc", "1.0", &["fxdep>=1"]);
    make_dist(
        mirror.path(),
        &[
            "--sdist",
            "fxtool",
            "1.0",
            "--requires",
            "fxdep",
            "--backend",
            "fxbuild:fxbuild",
        ],
    );
    let index = mirror.index();
    let request_for = |lines: &[RootRequirement]| -> Vec<String> {
        let request = Request {
            requirements: lines,
            constraints: &[],
            prereleases: Prereleases::IfRequested,
            python: &PYTHON3,
            provided: &BTreeMap::new(),
        };
        let resolved = resolve(&index, &mirror.metadata, request).unwrap();
        check_build_backends(&index, &mirror.metadata, &resolved, &PYTHON3)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        request_for(&roots(&["fxsrc", "fxtool"])),
        [
            "The sdist `fxsrc-1.0.tar.gz` cannot be built offline: fxsrc-1.0.tar.gz builds with \
             setuptools : mirror has no distribution named `setuptools`",
            "The sdist `fxtool-1.0.tar.gz` cannot be built offline: fxtool-1.0.tar.gz builds \
             with fxbuild : mirror has no distribution named `fxbuild`",
        ]
    );
    make_backend_wheel(mirror.path(), "fxbuild", "1.0");
    let index = mirror.index();
    let request = Request {
        requirements: &roots(&["fxtool"]),
        constraints: &[],
        prereleases: Prereleases::IfRequested,
        python: &PYTHON3,
        provided: &BTreeMap::new(),
    };
    let resolved = resolve(&index, &mirror.metadata, request).unwrap();
    let files: Vec<&str> = resolved
        .files
        .iter()
        .map(|file| file.file_name.as_str())
        .collect();
    assert_eq!(files, ["fxdep-1.0-py3-none-any.whl", "fxtool-1.0.tar.gz"]);
    assert!(check_build_backends(&index, &mirror.metadata, &resolved, &PYTHON3).is_empty());
}

#[test]
fn a_corrupt_wheel_is_named() {
    let mirror = Mirror::new();
    fs_err::write(
        mirror.path().join("fxbad-1.0-py3-none-any.whl"),
        "not a zip",
    )
    .unwrap();
    let err = mirror.resolve(&["fxbad"]).unwrap_err();
    assert!(
        matches!(&err, ResolveError::Mirror(MirrorError::Metadata { path, .. })
            if path.ends_with("fxbad-1.0-py3-none-any.whl")),
        "{err:?}"
    );
}

#[test]
fn sha256sums_pins_every_file_it_lists() {
    let mirror = Mirror::new();
    mirror.wheel("fxdep", "1.0", &[]).wheel("fxtwo", "1.0", &[]);
    let index = mirror.index();
    let [fxdep, fxtwo] = index.files() else {
        panic!("two files")
    };
    assert!(
        index.verify_listed(fxdep).is_ok(),
        "no SHA256SUMS: nothing to check"
    );

    fs_err::write(
        mirror.path().join("SHA256SUMS"),
        format!(
            "{}  {}\n{} *{}\n",
            fxdep.sha256,
            fxdep.file_name,
            "a".repeat(64),
            "other.whl"
        ),
    )
    .unwrap();
    let index = mirror.index();
    let [fxdep, fxtwo_now] = index.files() else {
        panic!("two files")
    };
    assert_eq!(fxtwo_now, fxtwo);
    assert!(index.verify_listed(fxdep).is_ok());
    assert_eq!(
        index.verify_listed(fxtwo).unwrap_err().to_string(),
        format!(
            "The mirror file `fxtwo-1.0-py3-none-any.whl` is not listed in `{}`",
            mirror.path().join("SHA256SUMS").display()
        )
    );

    fs_err::write(
        mirror.path().join("SHA256SUMS"),
        format!("{}  {}\n", "b".repeat(64), fxdep.file_name),
    )
    .unwrap();
    let err = mirror.index().verify_listed(fxdep).unwrap_err();
    assert!(
        matches!(&err, MirrorError::ChecksumMismatch { line: 1, actual, .. } if *actual == fxdep.sha256),
        "{err:?}"
    );

    fs_err::write(mirror.path().join("SHA256SUMS"), "garbage\n").unwrap();
    let err = MirrorIndex::scan(mirror.path(), None).unwrap_err();
    assert!(
        matches!(err, MirrorError::ChecksumLine { line: 1, .. }),
        "{err:?}"
    );
}
