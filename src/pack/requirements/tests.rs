use std::collections::HashMap;

use super::*;

const SHA_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn label(path: &str) -> String {
    format!("clush@3f2a9c1:{path}")
}

/// A file the test's reader cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unreadable(&'static str);

impl crate::diagnostics::Diagnose for Unreadable {}

fn parse(files: &[(&str, &str)]) -> Result<Requirements, PackError> {
    let files: HashMap<_, _> = files.iter().copied().collect();
    parse_requirements("requirements.txt", label, |path| {
        Ok::<_, Unreadable>(files.get(path).map(ToString::to_string))
    })
}

fn problem_of(files: &[(&str, &str)]) -> (String, usize, RequirementProblem, (usize, usize)) {
    match parse(files) {
        Err(PackError::Requirements {
            file,
            line,
            problem,
            location,
        }) => (file, line, problem, (location.line, location.column)),
        other => panic!("expected a requirements problem, got {other:?}"),
    }
}

fn display(lines: &[RequirementLine]) -> Vec<(String, usize, String)> {
    lines
        .iter()
        .map(|l| (l.requirement.to_string(), l.line, l.file.clone()))
        .collect()
}

#[test]
fn a_full_file_parses_with_includes_options_and_hashes() {
    let root = format!(
        "# Runtime dependencies\n\
         --prefer-binary\n\
         ClusterShell >= 1.9, < 2.0  # the CLI\n\
         \n\
         requests[socks,security]==2.31.0 ; python_version >= \"3.8\" \\\n    \
         --hash={SHA_A} \\\n    --hash {SHA_B}\n\
         -r requirements/base.txt\n\
         --constraint=requirements/../constraints.txt\n\
         --only-binary :all:\n"
    );
    let requirements = parse(&[
        ("requirements.txt", &root),
        ("requirements/base.txt", "six>=1.9.0,<2.0\n--pre\n"),
        ("constraints.txt", "urllib3<2\n"),
    ])
    .unwrap();
    assert_eq!(
        display(&requirements.requirements),
        vec![
            (
                "clustershell>=1.9,<2.0".into(),
                3,
                "clush@3f2a9c1:requirements.txt".into()
            ),
            (
                "requests[socks,security]==2.31.0 ; python_full_version >= '3.8'".into(),
                5,
                "clush@3f2a9c1:requirements.txt".into()
            ),
            (
                "six>=1.9.0,<2.0".into(),
                1,
                "clush@3f2a9c1:requirements/base.txt".into()
            ),
        ]
    );
    assert_eq!(requirements.requirements[1].hashes, vec![SHA_A, SHA_B]);
    assert_eq!(
        display(&requirements.constraints),
        vec![(
            "urllib3<2".into(),
            1,
            "clush@3f2a9c1:constraints.txt".into()
        )]
    );
    assert_eq!(
        requirements.options,
        vec!["--prefer-binary", "--pre", "--only-binary=:all:"]
    );
}

#[test]
fn a_pack_without_requirements_has_none() {
    assert_eq!(parse(&[]).unwrap(), Requirements::default());
    let only_comments = parse(&[("requirements.txt", "# nothing yet\n\n   \n")]).unwrap();
    assert_eq!(only_comments, Requirements::default());
}

#[test]
fn normalized_lines_ignore_layout_but_not_meaning() {
    let base = format!(
        "six>=1.9,<2\nrequests[socks,security]==2.31 --hash={SHA_A} --hash={SHA_B}\n\
         -c c.txt\n--pre\n"
    );
    let normalized = parse(&[("requirements.txt", &base), ("c.txt", "idna<4\n")])
        .unwrap()
        .normalized();
    assert_eq!(
        normalized,
        vec![
            "--pre".to_owned(),
            "-c idna<4".to_owned(),
            format!("requests[security,socks]==2.31 --hash={SHA_A} --hash={SHA_B}"),
            "six>=1.9,<2".to_owned(),
        ]
    );
    let reformatted = format!(
        "--pre  # allow betas\n# comment\n-c c.txt\nRequests [security, socks] == 2.31 \\\n  \
         --hash {SHA_B} --hash={SHA_A}\n\n-r more.txt\n"
    );
    let same = parse(&[
        ("requirements.txt", &reformatted),
        ("more.txt", "SIX <2 , >=1.9\nsix>=1.9,<2\n"),
        ("c.txt", "IDNA < 4\n"),
    ])
    .unwrap();
    assert_eq!(same.normalized(), normalized);

    let changes = [
        ("six>=1.9,<2", "six>=1.10,<2"),
        ("six>=1.9,<2", "six>=1.9,<2 ; python_version < \"3.12\""),
        ("requests[socks,security]", "requests[socks]"),
        (SHA_B, SHA_A),
        ("-c c.txt", "-r c.txt"),
        ("--pre", "--prefer-binary"),
    ];
    for (from, to) in changes {
        let edited = base.replacen(from, to, 1);
        let other = parse(&[("requirements.txt", &edited), ("c.txt", "idna<4\n")])
            .unwrap()
            .normalized();
        assert_ne!(other, normalized, "{from} -> {to}");
    }
}

/// Checks each `(line, problem, column)` with the line placed as line 3 of a file, indented.
fn assert_refused(cases: &[(&str, RequirementProblem, usize)]) {
    for (line, expected, column) in cases {
        let text = format!("# first\nsix\n  {line}\n");
        assert_eq!(
            problem_of(&[("requirements.txt", &text)]),
            (
                label("requirements.txt"),
                3,
                expected.clone(),
                (3, column + 2)
            ),
            "for {line:?}"
        );
    }
}

#[test]
fn requirements_that_leave_the_mirror_are_refused_at_their_column() {
    use RequirementProblem as P;
    let cases = [
        (
            "requests @ https://files.example.org/requests-2.31.0-py3-none-any.whl",
            P::Url("requests @ https://files.example.org/requests-2.31.0-py3-none-any.whl".into()),
            1,
        ),
        (
            "https://example.org/x.whl",
            P::Url("https://example.org/x.whl".into()),
            1,
        ),
        (
            "git+https://git.example.org/clush.git#egg=clush",
            P::Vcs("git+https://git.example.org/clush.git#egg=clush".into()),
            1,
        ),
        ("./vendor/clush", P::LocalPath("./vendor/clush".into()), 1),
        ("/tmp/x.whl", P::LocalPath("/tmp/x.whl".into()), 1),
        ("vendor/clush", P::LocalPath("vendor/clush".into()), 1),
        (
            "clush-1.9.tar.gz",
            P::LocalArchive("clush-1.9.tar.gz".into()),
            1,
        ),
        (
            "ClusterShell-1.9-py3-none-any.whl",
            P::LocalArchive("ClusterShell-1.9-py3-none-any.whl".into()),
            1,
        ),
    ];
    assert_refused(&cases);
}

#[test]
fn options_that_leave_the_mirror_or_are_unknown_are_refused() {
    use RequirementProblem as P;
    let cases = [
        ("-e .", P::Editable("-e".into()), 1),
        (
            "--editable=git+https://x/y",
            P::Editable("--editable".into()),
            1,
        ),
        (
            "-i https://pypi.example.org/simple",
            P::Network("-i".into()),
            1,
        ),
        (
            "--index-url=https://pypi.example.org/simple",
            P::Network("--index-url".into()),
            1,
        ),
        (
            "--extra-index-url https://x",
            P::Network("--extra-index-url".into()),
            1,
        ),
        ("-f /srv/wheels", P::Network("-f".into()), 1),
        (
            "--find-links=/srv/wheels",
            P::Network("--find-links".into()),
            1,
        ),
        (
            "--trusted-host pypi.example.org",
            P::Network("--trusted-host".into()),
            1,
        ),
        ("--upgrade", P::UnsupportedOption("--upgrade".into()), 1),
        ("--pre=yes", P::UnsupportedOption("--pre=yes".into()), 1),
        (
            "--pre --use-feature=x",
            P::UnsupportedOption("--use-feature".into()),
            7,
        ),
        (
            "six --install-option=x",
            P::UnsupportedOption("--install-option".into()),
            5,
        ),
        ("six --hash", P::MissingValue("--hash".into()), 5),
        ("-r", P::MissingValue("-r".into()), 1),
        ("--only-binary", P::MissingValue("--only-binary".into()), 1),
        ("six --hash=md5:abc", P::Hash("md5:abc".into()), 12),
        ("six --hash=sha256:ABC", P::Hash("sha256:ABC".into()), 12),
        (
            "-r /etc/requirements.txt",
            P::IncludeOutsidePack("/etc/requirements.txt".into()),
            4,
        ),
        (
            "-r ../other/requirements.txt",
            P::IncludeOutsidePack("../other/requirements.txt".into()),
            4,
        ),
        (
            "-r https://x/req.txt",
            P::Url("https://x/req.txt".into()),
            4,
        ),
        ("-c missing.txt", P::IncludeMissing("missing.txt".into()), 4),
    ];
    assert_refused(&cases);
}

#[test]
fn invalid_requirements_point_at_the_parse_error() {
    let (file, line, problem, (row, column)) =
        problem_of(&[("requirements.txt", "six\n\nrequests >= \n")]);
    assert_eq!(
        (file.as_str(), line, row),
        ("clush@3f2a9c1:requirements.txt", 3, 3)
    );
    assert!(
        matches!(problem, RequirementProblem::Invalid(_)),
        "{problem:?}"
    );
    assert!(column > 1, "the column points into the line: {column}");
}

#[test]
fn errors_read_well_and_carry_a_hint() {
    let err = parse(&[(
        "requirements.txt",
        "six\nclush @ git+https://git.example.org/clush.git\n",
    )])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot use line 2 of `clush@3f2a9c1:requirements.txt`: `clush @ \
         git+https://git.example.org/clush.git` points at a URL"
    );
    let location = err.location().unwrap();
    assert_eq!(location.to_string(), "clush@3f2a9c1:requirements.txt:2:1");
    assert!(err.hint().unwrap().contains("wheel mirror"));
}

#[test]
fn errors_in_included_files_name_that_file() {
    let (file, line, problem, _) = problem_of(&[
        ("requirements.txt", "-r reqs/base.txt\n"),
        ("reqs/base.txt", "six\n-r nested.txt\n"),
        ("reqs/nested.txt", "# nested\n--index-url https://x\n"),
    ]);
    assert_eq!(
        (file.as_str(), line, problem),
        (
            "clush@3f2a9c1:reqs/nested.txt",
            2,
            RequirementProblem::Network("--index-url".into())
        )
    );
}

#[test]
fn include_cycles_are_refused_but_diamonds_are_fine() {
    let (file, line, problem, _) = problem_of(&[
        ("requirements.txt", "-r a.txt\n"),
        ("a.txt", "six\n-r b.txt\n"),
        ("b.txt", "-r ./a.txt\n"),
    ]);
    assert_eq!(
        (file.as_str(), line, problem),
        (
            "clush@3f2a9c1:b.txt",
            1,
            RequirementProblem::IncludeCycle("a.txt".into())
        )
    );
    let diamond = parse(&[
        ("requirements.txt", "-r a.txt\n-r b.txt\n"),
        ("a.txt", "-r common.txt\n"),
        ("b.txt", "-r common.txt\n"),
        ("common.txt", "six\n"),
    ])
    .unwrap();
    assert_eq!(diamond.requirements.len(), 1);
}

#[test]
fn read_failures_are_reported_with_the_file() {
    let err = parse_requirements("requirements.txt", label, |_| {
        Err(Unreadable("object missing from the repository"))
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Failed to read `clush@3f2a9c1:requirements.txt`"
    );
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "object missing from the repository"
    );
}

#[test]
fn continuations_and_comments_follow_pip() {
    let lines = logical_lines("a \\\nb\n# c \\\nd\\\n# e\nf");
    let texts: Vec<_> = lines.iter().map(|l| (l.number, l.text.as_str())).collect();
    assert_eq!(
        texts,
        vec![(1, "a b"), (3, "# c \\"), (4, "d # e"), (6, "f")]
    );
    assert_eq!(strip_comment("six#egg"), "six#egg");
    assert_eq!(strip_comment("six  # pinned"), "six  ");
    assert_eq!(strip_comment("# all"), "");
    // Offsets map back into the file across the join.
    assert_eq!(lines[0].file_offset(2), 4);
}
