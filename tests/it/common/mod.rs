//! Shared fixtures: Git repos, wheels, sites.

pub(crate) mod git;
pub(crate) mod mongo;
pub(crate) mod site;
pub(crate) mod wheels;

use std::sync::LazyLock;

use packsync::python::PythonIdentity;

/// The machine's `python3`, as packsync sees it (markers, wheel tags).
pub(crate) static PYTHON3: LazyLock<PythonIdentity> = LazyLock::new(|| {
    PythonIdentity::probe(std::path::Path::new("python3")).expect("tests need python3")
});
