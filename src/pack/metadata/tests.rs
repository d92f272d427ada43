use super::*;
use crate::diagnostics::Diagnose as _;

const FILE: &str = "/srv/git/clush@3f2a9c1:pack.yaml";

const CLUSH: &str = "---
ref: clush
name: clush
description: Run commands on cluster nodes with ClusterShell
keywords: [clustershell, hpc]
version: 1.8.1
python_versions: [\"3\"]
author: HPC team
email: hpc-admins@example.org
dependencies: [slurm]
";

/// A minimal valid `pack.yaml` with `extra` appended.
fn with(extra: &str) -> String {
    format!("name: demo\ndescription: A demo\nversion: 0.1.0\nauthor: Ops\n{extra}")
}

fn assert_problems(cases: Vec<(String, MetadataProblem, usize)>) {
    for (text, expected, line) in cases {
        assert_eq!(problem_of(&text), (expected, line), "for {text:?}");
    }
}

fn problem_of(text: &str) -> (MetadataProblem, usize) {
    match parse_metadata(text, FILE) {
        Err(PackError::Metadata {
            problem, location, ..
        }) => (problem, location.line),
        other => panic!("expected a metadata problem, got {other:?}"),
    }
}

#[test]
fn a_typical_pack_parses() {
    let metadata = parse_metadata(CLUSH, FILE).unwrap();
    assert_eq!(
        metadata,
        PackMetadata {
            pack_ref: PackName::new("clush").unwrap(),
            name: "clush".into(),
            description: "Run commands on cluster nodes with ClusterShell".into(),
            version: semver::Version::new(1, 8, 1),
            author: "HPC team".into(),
            email: Some("hpc-admins@example.org".into()),
            python_versions: vec!["3".into()],
            dependencies: vec![PackDependency {
                name: "slurm".into(),
                version: None,
                raw: "slurm".into(),
            }],
            stackstorm_version: None,
        }
    );
}

#[test]
fn the_ref_comes_from_ref_else_from_name() {
    let named = parse_metadata(&with(""), FILE).unwrap();
    assert_eq!(named.pack_ref.as_str(), "demo");
    let text = "name: Cluster Shell\nref: clush\ndescription: d\nversion: 1.0.0\nauthor: a\n";
    assert_eq!(
        parse_metadata(text, FILE).unwrap().pack_ref.as_str(),
        "clush"
    );
    let empty_ref = "name: demo\nref: ''\ndescription: d\nversion: 1.0.0\nauthor: a\n";
    assert_eq!(
        parse_metadata(empty_ref, FILE).unwrap().pack_ref.as_str(),
        "demo"
    );
}

#[test]
fn unknown_keys_and_null_optional_keys_are_accepted() {
    let metadata = parse_metadata(
        &with("homepage: https://example.org\nemail:\nsystem: {apt: [clush]}\n"),
        FILE,
    )
    .unwrap();
    assert_eq!(metadata.email, None);
}

#[test]
fn version_errors_point_at_the_key_and_suggest_a_fix() {
    let text = "name: demo\ndescription: d\nauthor: a\nversion: 0.2\n";
    let err = parse_metadata(text, FILE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid pack metadata in `/srv/git/clush@3f2a9c1:pack.yaml`: `version` `0.2` is not \
         strict semver"
    );
    let location = err.location().unwrap();
    assert_eq!((location.line, location.column), (4, 1));
    assert_eq!(
        err.hint().unwrap(),
        "use a three-part version such as `0.2.0`: StackStorm rejects anything else"
    );
}

#[test]
fn names_without_ref_must_be_valid_refs() {
    let text = "description: d\nversion: 1.0.0\nauthor: a\nname: Cluster-Shell\n";
    let err = parse_metadata(text, FILE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid pack metadata in `/srv/git/clush@3f2a9c1:pack.yaml`: `name` `Cluster-Shell` \
         is not a valid pack ref and there is no `ref`"
    );
    assert_eq!(err.location().unwrap().line, 4);
    assert_eq!(
        err.hint().unwrap(),
        "add `ref: cluster_shell` to `pack.yaml`: the ref names the pack's directory"
    );
}

#[test]
fn missing_keys_bad_types_and_bad_versions_are_refused() {
    use MetadataProblem as P;
    let missing = |key| P::Missing { key };
    let wrong = |key, expected, found| P::WrongType {
        key,
        expected,
        found,
    };
    let cases: Vec<(String, MetadataProblem, usize)> = vec![
        (String::new(), P::Empty, 1),
        ("- a\n".into(), P::NotAMapping { found: "a list" }, 1),
        (
            "description: d\nversion: 1.0.0\nauthor: a\n".into(),
            missing("name"),
            1,
        ),
        (
            "name: x\nversion: 1.0.0\nauthor: a\n".into(),
            missing("description"),
            1,
        ),
        (
            "name: x\ndescription: d\nauthor: a\n".into(),
            missing("version"),
            1,
        ),
        (
            "name: x\ndescription: d\nversion: 1.0.0\n".into(),
            missing("author"),
            1,
        ),
        (
            "name: x\ndescription: [d]\nversion: 1.0.0\nauthor: a\n".into(),
            wrong("description", "a string", "a list"),
            2,
        ),
        (
            "name: x\ndescription: d\nversion: 1.0.0\nauthor:\n".into(),
            wrong("author", "a string", "empty"),
            4,
        ),
        (
            "name: x\ndescription: d\nversion: 1\nauthor: a\n".into(),
            P::Version("1".into()),
            3,
        ),
        (
            "name: x\ndescription: d\nversion: v1.0.0\nauthor: a\n".into(),
            P::Version("v1.0.0".into()),
            3,
        ),
        (
            "name: x\ndescription: d\nversion: 1.0.0-RC1\nauthor: a\n".into(),
            P::Version("1.0.0-RC1".into()),
            3,
        ),
    ];
    assert_problems(cases);
}

#[test]
fn bad_optional_keys_are_refused_at_their_line() {
    use MetadataProblem as P;
    let wrong = |key, expected, found| P::WrongType {
        key,
        expected,
        found,
    };
    let cases: Vec<(String, MetadataProblem, usize)> = vec![
        (with("ref: my-pack\n"), P::Ref("my-pack".into()), 5),
        (with("ref: _global\n"), P::ReservedRef, 5),
        (with("email: ops\n"), P::Email("ops".into()), 5),
        (
            with("email: ops@example\n"),
            P::Email("ops@example".into()),
            5,
        ),
        (
            with("keywords: hpc\n"),
            wrong("keywords", "a list of strings", "a string"),
            5,
        ),
        (
            with(&format!("contributors: [{}]\n", "x".repeat(101))),
            P::ContributorTooLong("x".repeat(101)),
            5,
        ),
        (with("python_versions: [\"2\"]\n"), P::Python2Only, 5),
        (with("python_versions: []\n"), P::PythonVersionsCount, 5),
        (
            with("python_versions: [\"3\", \"3\"]\n"),
            P::PythonVersionsCount,
            5,
        ),
        (
            with("python_versions: [\"3.11\"]\n"),
            P::PythonVersion("3.11".into()),
            5,
        ),
        (
            with("python_versions: [3]\n"),
            P::PythonVersionNotQuoted("3".into()),
            5,
        ),
        (
            with("python_versions: \"3\"\n"),
            wrong("python_versions", "a list", "a string"),
            5,
        ),
        (
            with("stackstorm_version: \"3.0\"\n"),
            P::StackstormVersion("3.0".into()),
            5,
        ),
        (
            with("stackstorm_version: \"~3.0.0\"\n"),
            P::StackstormVersion("~3.0.0".into()),
            5,
        ),
        (
            with("dependencies: [\"slurm=1.0=2\"]\n"),
            P::DependencySeparators("slurm=1.0=2".into()),
            5,
        ),
        (
            with("dependencies: [\"slurm=\"]\n"),
            P::DependencyVersion("slurm=".into()),
            5,
        ),
        (
            with("dependencies: [\"=1.0.0\"]\n"),
            P::DependencyEmpty("=1.0.0".into()),
            5,
        ),
        (
            with("dependencies: [\"https://git.example.org/\"]\n"),
            P::DependencyEmpty("https://git.example.org/".into()),
            5,
        ),
        (
            with("dependencies: [\"My Pack\"]\n"),
            P::DependencyName("My Pack".into()),
            5,
        ),
        (
            with("dependencies: [1]\n"),
            wrong("dependencies", "a list of strings", "a number"),
            5,
        ),
        (
            with("system: yes\n"),
            wrong("system", "a mapping", "a boolean"),
            5,
        ),
    ];
    assert_problems(cases);
}

#[test]
fn yaml_syntax_errors_carry_their_position() {
    let err = parse_metadata("name: demo\nversion: [1.0\n", FILE).unwrap_err();
    assert!(matches!(err, PackError::Yaml { .. }), "{err:?}");
    let location = err.location().unwrap();
    assert_eq!(location.file, FILE);
    assert!(location.line >= 2, "{location:?}");
}

#[test]
fn valid_variants_are_accepted() {
    for extra in [
        "version_note: x\n",
        "stackstorm_version: \">=3.0.0, <4.0.0\"\n",
        "stackstorm_version: \">2.9.0\"\n",
        "python_versions: [\"2\", \"3\"]\n",
        "contributors: [\"Jane Doe <jane@example.org>\"]\n",
        "email: jane.doe+packs@mail.example.org\n",
        "email: root@localhost\n",
    ] {
        assert!(parse_metadata(&with(extra), FILE).is_ok(), "for {extra:?}");
    }
    let prerelease = "name: x\ndescription: d\nversion: 2.0.0-rc.1+build.5\nauthor: a\n";
    assert_eq!(
        parse_metadata(prerelease, FILE).unwrap().version,
        semver::Version::parse("2.0.0-rc.1+build.5").unwrap()
    );
}

#[test]
fn dependencies_follow_st2_pack_install_syntax() {
    let cases = [
        ("slurm", "slurm", None),
        ("slurm=1.2.0", "slurm", Some("1.2.0")),
        ("StackStorm-Exchange/stackstorm-aws", "aws", None),
        (
            "https://github.com/StackStorm-Exchange/stackstorm-aws.git=v1.0.0",
            "aws",
            Some("v1.0.0"),
        ),
        ("file:///srv/git/packs/slurm/=main", "slurm", Some("main")),
        ("git@git.example.org:hpc/clush.git", "clush", None),
        ("/srv/git/packs/clush", "clush", None),
        ("https://git.example.org/hpc/clush/", "clush", None),
    ];
    for (raw, name, version) in cases {
        assert_eq!(
            parse_dependency(raw),
            Ok(PackDependency {
                name: name.into(),
                version: version.map(Into::into),
                raw: raw.into(),
            }),
            "for {raw}"
        );
    }
}

/// Issue 16: StackStorm opens pack.yaml as UTF-8 and fails on anything else; so does packsync,
/// at the offending byte.
#[test]
fn a_pack_yaml_that_is_not_utf8_is_refused_at_its_byte() {
    let bytes = b"name: demo\ndescription: Caf\xe9 pack\nversion: 0.1.0\nauthor: Ops\n".to_vec();
    let err = crate::pack::yaml_text(bytes, "repo@abc:pack.yaml").unwrap_err();
    let location = crate::diagnostics::Diagnose::location(&err).unwrap();
    assert_eq!((location.line, location.column), (2, 17));
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "is not UTF-8: byte 0xE9 at offset 27 (StackStorm reads it as UTF-8 and fails with \
         UnicodeDecodeError) (line 2, column 17)"
    );
}
