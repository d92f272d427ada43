//! Shared fixtures: Git repos, wheels, sites.

pub(crate) mod git;
pub(crate) mod mongo;
pub(crate) mod site;
pub(crate) mod wheels;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use packsync::python::PythonIdentity;

/// The machine's `python3`, as packsync sees it (markers, wheel tags).
pub(crate) static PYTHON3: LazyLock<PythonIdentity> =
    LazyLock::new(|| PythonIdentity::probe(Path::new("python3")).expect("tests need python3"));

/// `path` in this repository.
pub(crate) fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Copies the folder `from` into `to`, recursively.
#[allow(
    clippy::unwrap_used,
    reason = "a fixture that cannot be built fails its test at once"
)]
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            fs_err::copy(&path, &target).unwrap();
        }
    }
}
