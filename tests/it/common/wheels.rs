//! Real, pip-installable wheels and sdists, written by `tests/fixtures/make_dist.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAKE_DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/make_dist.py");

/// Writes `<name>-<version>-py3-none-any.whl` (`-`/`.` in `name` escaped to `_`) into `dir`,
/// with a `Requires-Dist` line per entry of `requires`.
pub(crate) fn make_wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    make_dist_with("--wheel", dir, name, version, requires)
}

/// Writes the sdist `<name>-<version>.tar.gz` (the name exactly as given) into `dir`.
pub(crate) fn make_sdist(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    make_dist_with("--sdist", dir, name, version, requires)
}

/// Writes a wheel of a tiny PEP 517 build backend (module `name`): sdists made with
/// `--backend name:name` build with it, offline and without setuptools.
pub(crate) fn make_backend_wheel(dir: &Path, name: &str, version: &str) -> PathBuf {
    make_dist(dir, &["--backend-wheel", name, version])
}

fn make_dist_with(kind: &str, dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    let requires: Vec<String> = requires
        .iter()
        .map(|requirement| format!("--requires={requirement}"))
        .collect();
    let mut args = vec![kind, name, version];
    args.extend(requires.iter().map(String::as_str));
    make_dist(dir, &args)
}

/// Runs `make_dist.py` with `args` (the kind, name and version first), writing into `dir`.
pub(crate) fn make_dist(dir: &Path, args: &[&str]) -> PathBuf {
    let (head, options) = args.split_at(3);
    let output = Command::new("python3")
        .arg(MAKE_DIST)
        .args(head)
        .arg(dir)
        .args(options)
        .output()
        .expect("python3 runs make_dist.py");
    assert!(
        output.status.success(),
        "make_dist.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8(output.stdout).expect("make_dist.py prints a UTF-8 path");
    PathBuf::from(path.trim_end())
}
