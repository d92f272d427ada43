//! Tests of the source module against real Git repos.

use std::path::{Path, PathBuf};

use packsync::diagnostics::{Diagnose, Report};
use packsync::source::{EntryKind, RefSelector, Repo, Resolved, SourceError, local_path};
use tempfile::TempDir;

use crate::common::git::{DEFAULT_BRANCH, GitRepo};

fn reference(name: &str) -> RefSelector {
    RefSelector::Ref(name.to_owned())
}

fn version(range: &str) -> RefSelector {
    RefSelector::Version(range.parse().expect("tests give valid ranges"))
}

fn resolve(repo: &GitRepo, selector: &RefSelector) -> Result<Resolved, SourceError> {
    Repo::open(repo.path())
        .expect("fixture repos open")
        .resolve(selector)
}

fn commit_of(repo: &GitRepo, selector: &RefSelector) -> String {
    resolve(repo, selector)
        .unwrap_or_else(|err| panic!("`{selector}` should resolve: {err}"))
        .commit
}

/// A repo whose root is a pack, with one commit.
fn pack_repo(dir: &TempDir) -> GitRepo {
    let repo = GitRepo::init(&dir.path().join("clush"));
    repo.write("pack.yaml", "name: clush\nversion: 1.0.0\n");
    repo.commit("Initial pack");
    repo
}

/// A repo with the packs `a` and `b` under `packs/`, with one commit.
fn monorepo(dir: &TempDir) -> GitRepo {
    let repo = GitRepo::init(&dir.path().join("mono"));
    repo.write("README.md", "Our packs\n")
        .write("packs/a/pack.yaml", "name: a\nversion: 1.0.0\n")
        .write("packs/a/actions/run.py", "print('a')\n")
        .write("packs/b/pack.yaml", "name: b\nversion: 1.0.0\n");
    repo.commit("Packs a and b");
    repo
}

#[test]
fn head_is_the_default() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let first = repo.head();
    assert_eq!(
        resolve(&repo, &RefSelector::Head)
            .map(|r| (r.commit, r.label))
            .unwrap(),
        (first.clone(), "HEAD".into())
    );
    repo.write("pack.yaml", "name: clush\nversion: 1.0.1\n");
    let second = repo.commit("Bump");
    assert_ne!(first, second);
    assert_eq!(commit_of(&repo, &RefSelector::Head), second);
}

#[test]
fn detached_head_resolves_to_its_commit() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let first = repo.head();
    repo.write("pack.yaml", "name: clush\nversion: 1.0.1\n");
    repo.commit("Bump");
    repo.detach(&first);
    assert_eq!(commit_of(&repo, &RefSelector::Head), first);
}

#[test]
fn repos_without_commits_have_no_head() {
    let dir = TempDir::new().unwrap();
    let repo = GitRepo::init(&dir.path().join("empty"));
    let err = resolve(&repo, &RefSelector::Head).unwrap_err();
    assert!(matches!(err, SourceError::NoCommits { .. }), "{err:?}");
}

#[test]
fn branches_resolve_to_their_tip() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let stable = repo.head();
    repo.branch("stable");
    repo.write("pack.yaml", "name: clush\nversion: 2.0.0\n");
    let main = repo.commit("Next major");
    assert_eq!(commit_of(&repo, &reference("stable")), stable);
    assert_eq!(commit_of(&repo, &reference(DEFAULT_BRANCH)), main);

    repo.switch("stable");
    repo.write("pack.yaml", "name: clush\nversion: 1.0.1\n");
    let fix = repo.commit("Fix on stable");
    assert_eq!(commit_of(&repo, &reference("stable")), fix);
    assert_eq!(commit_of(&repo, &RefSelector::Head), fix);
    assert_eq!(commit_of(&repo, &reference(DEFAULT_BRANCH)), main);
}

#[test]
fn lightweight_and_annotated_tags_resolve_to_their_commit() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let tagged = repo.head();
    repo.tag("light").annotated_tag("heavy");
    repo.write("pack.yaml", "name: clush\nversion: 1.1.0\n");
    repo.commit("Later");
    // An annotated tag is a tag object; the commit is what it points to.
    assert_eq!(resolve(&repo, &reference("light")).unwrap().tag, None);
    assert!(resolve(&repo, &reference("heavy")).unwrap().tag.is_some());
    for name in ["light", "heavy"] {
        assert_eq!(
            resolve(&repo, &reference(name))
                .map(|r| (r.commit, r.label))
                .unwrap(),
            (tagged.clone(), name.into())
        );
    }
}

#[test]
fn a_bare_version_finds_its_v_tag() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let release = repo.head();
    repo.annotated_tag("v1.8.1");
    repo.write("pack.yaml", "name: clush\nversion: 1.9.0\n");
    repo.commit("Later");
    assert_eq!(
        resolve(&repo, &reference("1.8.1"))
            .map(|r| (r.commit, r.label))
            .unwrap(),
        (release.clone(), "1.8.1".into())
    );
    assert_eq!(commit_of(&repo, &reference("v1.8.1")), release);
}

#[test]
fn branches_win_over_tags_of_the_same_name() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let branch_tip = repo.head();
    repo.branch("release");
    repo.write("pack.yaml", "name: clush\nversion: 1.1.0\n");
    repo.commit("Later");
    repo.tag("release");
    assert_eq!(commit_of(&repo, &reference("release")), branch_tip);
}

#[test]
fn remote_tracking_branches_resolve() {
    let dir = TempDir::new().unwrap();
    let origin = pack_repo(&dir);
    let stable = origin.head();
    origin.branch("stable");
    origin.write("pack.yaml", "name: clush\nversion: 2.0.0\n");
    let main = origin.commit("Next major");

    let clone = origin.clone_to(&dir.path().join("clone"));
    assert_eq!(clone.head(), main);
    // `git clone` makes only the default branch local; `stable` is `origin/stable`.
    assert_eq!(commit_of(&clone, &reference("stable")), stable);

    clone.write("pack.yaml", "name: clush\nversion: 2.0.1\n");
    let local = clone.commit("Local work");
    // The local branch wins over `origin/main`.
    assert_eq!(commit_of(&clone, &reference(DEFAULT_BRANCH)), local);
}

#[test]
fn commit_ids_resolve_full_or_abbreviated() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let first = repo.head();
    repo.write("pack.yaml", "name: clush\nversion: 1.1.0\n");
    repo.commit("Later");
    assert_eq!(commit_of(&repo, &reference(&first)), first);
    assert_eq!(
        resolve(&repo, &reference(&first[..7]))
            .map(|r| (r.commit, r.label))
            .unwrap(),
        (first.clone(), first[..7].into())
    );
    let too_short = resolve(&repo, &reference(&first[..6])).unwrap_err();
    assert!(
        matches!(too_short, SourceError::RefNotFound { .. }),
        "{too_short:?}"
    );
}

#[test]
fn a_missing_ref_lists_the_version_tags() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    repo.tag("v1.0.0").tag("latest");
    repo.write("pack.yaml", "name: clush\nversion: 1.1.0\n");
    repo.commit("Later");
    repo.annotated_tag("1.1.0");

    let err = resolve(&repo, &reference("v9")).unwrap_err();
    let SourceError::RefNotFound {
        git_ref,
        version_tags,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(git_ref, "v9");
    assert_eq!(version_tags, &["1.1.0", "v1.0.0"]);
    assert_eq!(
        err.to_string(),
        format!(
            "Ref `v9` matches no branch, tag or commit of `{}`; version tags: 1.1.0, v1.0.0",
            repo.path().display()
        )
    );
    assert!(
        err.hint()
            .unwrap()
            .contains("commit id of at least 7 hex digits")
    );

    // Looks like a commit id but is none, or is no valid ref name at all.
    for name in ["deadbeefdeadbeef", "a..b", ""] {
        let err = resolve(&repo, &reference(name)).unwrap_err();
        assert!(matches!(err, SourceError::RefNotFound { .. }), "{err:?}");
    }
}

#[test]
fn version_ranges_pick_the_newest_matching_tag() {
    let dir = TempDir::new().unwrap();
    let repo = GitRepo::init(&dir.path().join("clush"));
    let mut commits = Vec::new();
    for (tag, annotated) in [
        ("v1.7.0", false),
        ("v1.8.0", true),
        ("1.8.1", false),
        ("v1.10.0", true),
        ("v2.0.0", false),
        ("v2.1.0-rc.1", true),
    ] {
        repo.write("pack.yaml", format!("name: clush\nversion: {tag}\n"));
        commits.push(repo.commit(tag));
        if annotated {
            repo.annotated_tag(tag);
        } else {
            repo.tag(tag);
        }
    }
    repo.write("pack.yaml", "name: clush\nversion: 3.0.0-dev\n");
    repo.commit("Untagged work");

    assert_eq!(
        resolve(&repo, &version(">=1.8, <2"))
            .map(|r| (r.commit, r.label))
            .unwrap(),
        (commits[3].clone(), "v1.10.0".into())
    );
    assert_eq!(commit_of(&repo, &version("~1.8")), commits[2]);
    // Pre-releases are left out unless the range names one.
    assert_eq!(commit_of(&repo, &version(">=2")), commits[4]);
    assert_eq!(commit_of(&repo, &version(">=2.1.0-rc.1")), commits[5]);

    let err = resolve(&repo, &version(">=3")).unwrap_err();
    let SourceError::NoMatchingVersion { version_tags, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        version_tags,
        &[
            "v2.1.0-rc.1",
            "v2.0.0",
            "v1.10.0",
            "1.8.1",
            "v1.8.0",
            "v1.7.0"
        ]
    );
    assert!(err.to_string().starts_with("No version tag of `"), "{err}");
    assert!(
        err.to_string().ends_with(
            "` matches `>=3`; version tags: v2.1.0-rc.1, v2.0.0, v1.10.0, 1.8.1, v1.8.0, v1.7.0"
        ),
        "{err}"
    );
    assert!(err.hint().unwrap().starts_with("widen `version`"));
}

#[test]
fn version_ranges_without_version_tags_say_so() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    repo.tag("latest");
    let err = resolve(&repo, &version("*")).unwrap_err();
    assert!(
        err.to_string().ends_with("; the repo has no version tags"),
        "{err}"
    );
}

#[test]
fn bare_repos_resolve_and_read_like_work_trees() {
    let dir = TempDir::new().unwrap();
    let origin = pack_repo(&dir);
    origin.annotated_tag("v1.0.0");
    origin.branch("stable");
    origin.write("pack.yaml", "name: clush\nversion: 1.1.0\n");
    origin.commit("Later");

    let bare = Repo::open(&origin.bare_clone(&dir.path().join("clush.git"))).unwrap();
    for selector in [
        RefSelector::Head,
        reference("v1.0.0"),
        reference("1.0.0"),
        reference("stable"),
        reference(DEFAULT_BRANCH),
        version("1"),
    ] {
        let in_bare = bare.resolve(&selector).unwrap();
        assert_eq!(in_bare, resolve(&origin, &selector).unwrap(), "{selector}");
        let tree = bare.pack_tree(&in_bare.commit, None).unwrap();
        let origin_repo = Repo::open(origin.path()).unwrap();
        let origin_tree = origin_repo.pack_tree(&in_bare.commit, None).unwrap();
        assert_eq!(tree.id(), origin_tree.id());
        assert_eq!(
            tree.read_file("pack.yaml").unwrap(),
            origin_tree.read_file("pack.yaml").unwrap()
        );
    }
    assert_eq!(
        bare.uncommitted_changes(None).unwrap(),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn the_git_folder_of_a_work_tree_opens_too() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let opened = Repo::open(&repo.path().join(".git")).unwrap();
    assert_eq!(
        opened.resolve(&RefSelector::Head).unwrap().commit,
        repo.head()
    );
}

#[test]
fn monorepo_subdir_trees_change_only_with_the_subdir() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    let first = repo.head();
    repo.write("packs/b/pack.yaml", "name: b\nversion: 1.1.0\n")
        .write("README.md", "Our packs, updated\n");
    let second = repo.commit("Bump b");
    repo.remove("packs/a/actions/run.py");
    let third = repo.commit("Drop a's action");

    let opened = Repo::open(repo.path()).unwrap();
    let tree_id = |commit: &str, subdir: &str| {
        opened
            .pack_tree(commit, Some(Path::new(subdir)))
            .unwrap()
            .id()
    };
    assert_eq!(tree_id(&first, "packs/a"), tree_id(&second, "packs/a"));
    assert_ne!(tree_id(&second, "packs/a"), tree_id(&third, "packs/a"));
    assert_ne!(tree_id(&first, "packs/b"), tree_id(&second, "packs/b"));
    assert_eq!(tree_id(&second, "packs/b"), tree_id(&third, "packs/b"));
    // Spellings of the same folder, and of the root.
    assert_eq!(tree_id(&first, "packs/a"), tree_id(&first, "./packs/a/"));
    assert_eq!(
        tree_id(&first, "."),
        opened.pack_tree(&first, None).unwrap().id()
    );

    let pack_a = opened
        .pack_tree(&first, Some(Path::new("packs/a")))
        .unwrap();
    assert_eq!(
        pack_a.read_file("pack.yaml").unwrap().unwrap(),
        b"name: a\nversion: 1.0.0\n"
    );
    assert_eq!(
        pack_a.read_file("actions/run.py").unwrap().unwrap(),
        b"print('a')\n"
    );
    assert_eq!(pack_a.read_file("README.md").unwrap(), None);
}

#[test]
fn a_subdir_must_be_a_committed_folder() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    // In the work tree only: content comes from the commit.
    repo.write("packs/c/pack.yaml", "name: c\nversion: 1.0.0\n");
    let opened = Repo::open(repo.path()).unwrap();
    let head = repo.head();
    let pack_tree = |subdir: &str| opened.pack_tree(&head, Some(Path::new(subdir))).err();

    let missing = pack_tree("packs/c").unwrap();
    assert!(
        matches!(&missing, SourceError::SubdirMissing { subdir, commit, .. }
            if subdir == Path::new("packs/c") && *commit == head),
        "{missing:?}"
    );
    assert!(missing.hint().unwrap().contains("not the work tree"));
    assert!(matches!(
        pack_tree("README.md"),
        Some(SourceError::SubdirNotFolder {
            kind: EntryKind::File,
            ..
        })
    ));
    for escaping in ["../mono", "packs/../../mono", "/packs/a"] {
        assert!(
            matches!(pack_tree(escaping), Some(SourceError::SubdirInvalid { .. })),
            "{escaping}"
        );
    }
}

#[test]
fn pack_trees_need_a_commit_of_the_repo() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let opened = Repo::open(repo.path()).unwrap();
    for commit in ["0123456789012345678901234567890123456789", "not hex"] {
        assert!(
            matches!(
                opened.pack_tree(commit, None).err(),
                Some(SourceError::CommitMissing { .. })
            ),
            "{commit}"
        );
    }
}

#[test]
fn a_folder_inside_a_repo_is_refused_with_the_repo_root() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    let err = Repo::open(&repo.path().join("packs/a")).err().unwrap();
    let root = fs_err::canonicalize(repo.path()).unwrap();
    let SourceError::NotARepo {
        enclosing: Some(enclosing),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(enclosing.root, root);
    assert_eq!(enclosing.subdir, Path::new("packs/a"));
    assert!(
        err.hint().unwrap().ends_with(&format!(
            "`{}`: set `source` to the repo root and `subdir = \"packs/a\"`",
            root.display()
        )),
        "{:?}",
        err.hint()
    );
}

#[test]
fn paths_that_are_no_repo_are_refused() {
    let dir = TempDir::new().unwrap();
    let plain = dir.path().join("plain");
    fs_err::create_dir(&plain).unwrap();
    let err = Repo::open(&plain).err().unwrap();
    assert!(
        matches!(&err, SourceError::NotARepo { path, enclosing: None } if *path == plain),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("Path `{}` is not a Git repo", plain.display())
    );

    let missing = dir.path().join("missing");
    assert!(matches!(
        Repo::open(&missing).err(),
        Some(SourceError::RepoMissing { path }) if path == missing
    ));
}

#[test]
fn remote_sources_are_refused_with_a_hint() {
    let err = local_path(
        "https://github.com/StackStorm-Exchange/stackstorm-clush.git",
        Path::new("/etc/packsync"),
    )
    .unwrap_err();
    assert_eq!(
        Report::new(&err).to_string(),
        "error: Source `https://github.com/StackStorm-Exchange/stackstorm-clush.git` is a remote \
         URL\n\nhint: packsync works offline from local repos: clone the repo onto this host \
         (e.g. `git clone --mirror <url> /srv/git/<pack>`) and point `source` at it\n"
    );
}

#[test]
fn file_urls_and_relative_paths_open_local_repos() {
    let dir = TempDir::new().unwrap();
    let repo = pack_repo(&dir);
    let url = url::Url::from_file_path(repo.path()).unwrap();
    for (source, base) in [
        (url.as_str(), Path::new("/unused")),
        ("clush", dir.path()),
        ("./clush", dir.path()),
        ("../clush", &dir.path().join("config")),
    ] {
        fs_err::create_dir_all(base).unwrap();
        let path = local_path(source, base).unwrap();
        let opened = Repo::open(&path).unwrap();
        assert_eq!(
            opened.resolve(&RefSelector::Head).unwrap().commit,
            repo.head()
        );
    }
}

#[test]
fn uncommitted_changes_are_listed_and_never_read() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    repo.write(".gitignore", "*.pyc\n");
    repo.commit("Ignore bytecode");
    repo.write("packs/a/pack.yaml", "name: a\nversion: 9.9.9\n")
        .write("packs/a/actions/new.py", "print('new')\n")
        .write("packs/a/actions/run.pyc", "bytecode")
        .write("packs/b/pack.yaml", "name: b\nversion: 9.9.9\n")
        .remove("README.md");

    let opened = Repo::open(repo.path()).unwrap();
    assert_eq!(
        opened
            .uncommitted_changes(Some(Path::new("packs/a")))
            .unwrap(),
        [
            PathBuf::from("packs/a/actions/new.py"),
            PathBuf::from("packs/a/pack.yaml")
        ]
    );
    assert_eq!(
        opened.uncommitted_changes(None).unwrap(),
        [
            PathBuf::from("README.md"),
            PathBuf::from("packs/a/actions/new.py"),
            PathBuf::from("packs/a/pack.yaml"),
            PathBuf::from("packs/b/pack.yaml"),
        ]
    );
    assert_eq!(
        opened
            .uncommitted_changes(Some(Path::new("./packs/b/")))
            .unwrap(),
        [PathBuf::from("packs/b/pack.yaml")]
    );
    // The subdir is a folder, not a name prefix or a pattern.
    repo.write("packs/ab/pack.yaml", "name: ab\n")
        .write("packs/a*/pack.yaml", "name: glob\n");
    assert_eq!(
        opened
            .uncommitted_changes(Some(Path::new("packs/a")))
            .unwrap(),
        [
            PathBuf::from("packs/a/actions/new.py"),
            PathBuf::from("packs/a/pack.yaml")
        ]
    );
    assert_eq!(
        opened
            .uncommitted_changes(Some(Path::new("packs/a*")))
            .unwrap(),
        [PathBuf::from("packs/a*/pack.yaml")]
    );

    let head = opened.resolve(&RefSelector::Head).unwrap();
    let pack_a = opened
        .pack_tree(&head.commit, Some(Path::new("packs/a")))
        .unwrap();
    assert_eq!(
        pack_a.read_file("pack.yaml").unwrap().unwrap(),
        b"name: a\nversion: 1.0.0\n"
    );
    assert_eq!(pack_a.read_file("actions/new.py").unwrap(), None);

    repo.commit("Everything");
    assert_eq!(
        opened.uncommitted_changes(None).unwrap(),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn pack_file_paths_cannot_leave_the_pack() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    let opened = Repo::open(repo.path()).unwrap();
    let pack_a = opened
        .pack_tree(&repo.head(), Some(Path::new("packs/a")))
        .unwrap();
    for escaping in [
        "../b/pack.yaml",
        "actions/../../b/pack.yaml",
        "/etc/passwd",
        "",
        ".",
    ] {
        assert!(
            matches!(
                pack_a.read_file(escaping),
                Err(SourceError::FilePathInvalid { path }) if path == escaping
            ),
            "{escaping:?}"
        );
    }
    assert_eq!(
        pack_a.read_file("./actions/run.py").unwrap().unwrap(),
        b"print('a')\n"
    );
}

#[test]
fn only_regular_files_are_read() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    repo.symlink("packs/c/pack.yaml", "../a/pack.yaml")
        .write("packs/c/actions/run.sh", "#!/bin/sh\n");
    let script = repo.path().join("packs/c/actions/run.sh");
    let mut permissions = fs_err::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    fs_err::set_permissions(&script, permissions).unwrap();
    let commit = repo.commit("Pack c links to a");

    let opened = Repo::open(repo.path()).unwrap();
    let pack_c = opened
        .pack_tree(&commit, Some(Path::new("packs/c")))
        .unwrap();
    let err = pack_c.read_file("pack.yaml").unwrap_err();
    assert!(
        matches!(&err, SourceError::NotAFile { kind: EntryKind::Symlink, file }
            if *file == pack_c.file_label("pack.yaml")),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("does not follow symlinks"));
    assert!(matches!(
        pack_c.read_file("actions"),
        Err(SourceError::NotAFile {
            kind: EntryKind::Folder,
            ..
        })
    ));
    assert_eq!(
        pack_c.read_file("actions/run.sh").unwrap().unwrap(),
        b"#!/bin/sh\n"
    );
    // A path through a file finds nothing.
    assert_eq!(pack_c.read_file("actions/run.sh/x").unwrap(), None);
}

#[test]
fn file_labels_name_repo_commit_and_path() {
    let dir = TempDir::new().unwrap();
    let repo = monorepo(&dir);
    let head = repo.head();
    let opened = Repo::open(repo.path()).unwrap();
    let short = &head[..7];
    let pack_a = opened
        .pack_tree(&head, Some(Path::new("./packs/a/")))
        .unwrap();
    assert_eq!(
        pack_a.file_label("pack.yaml"),
        format!("{}@{short}:packs/a/pack.yaml", repo.path().display())
    );
    let root = opened.pack_tree(&head, None).unwrap();
    assert_eq!(
        root.file_label("./README.md"),
        format!("{}@{short}:README.md", repo.path().display())
    );
}

#[test]
fn fixture_commits_are_deterministic() {
    let dir = TempDir::new().unwrap();
    let build = |name: &str| {
        let repo = GitRepo::init(&dir.path().join(name));
        repo.write("pack.yaml", "name: clush\nversion: 1.0.0\n");
        let first = repo.commit("One");
        repo.annotated_tag("v1.0.0");
        repo.write("pack.yaml", "name: clush\nversion: 1.1.0\n");
        (first, repo.commit("Two"))
    };
    let (first, second) = build("one");
    assert_ne!(first, second);
    assert_eq!(build("two"), (first, second));
}
