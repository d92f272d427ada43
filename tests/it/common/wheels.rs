//! Real, pip-installable wheels and sdists, written by `tests/fixtures/make_dist.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAKE_DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/make_dist.py");

/// Writes `<name>-<version>-py3-none-any.whl` (`-`/`.` in `name` escaped to `_`) into `dir`,
/// with a `Requires-Dist` line per entry of `requires`.
pub(crate) fn make_wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    make_dist("--wheel", dir, name, version, requires)
}

/// Writes the sdist `<name>-<version>.tar.gz` (the name exactly as given) into `dir`.
pub(crate) fn make_sdist(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    make_dist("--sdist", dir, name, version, requires)
}

fn make_dist(kind: &str, dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    let output = Command::new("python3")
        .arg(MAKE_DIST)
        .arg(kind)
        .args([name, version])
        .arg(dir)
        .args(
            requires
                .iter()
                .map(|requirement| format!("--requires={requirement}")),
        )
        .output()
        .expect("python3 runs make_dist.py");
    assert!(
        output.status.success(),
        "make_dist.py {kind} {name} {version} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = String::from_utf8(output.stdout).expect("make_dist.py prints a UTF-8 path");
    PathBuf::from(path.trim_end())
}
