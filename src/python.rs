//! The interpreter pack virtualenvs are built with: who it is (for the env digest) and the
//! PEP 508 marker values requirements are evaluated against.
//!
//! The interpreter is asked once, with a small script that prints JSON, rather than guessed
//! from its path: StackStorm ships its own Python, and only it knows its version and platform.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use pep440_rs::{Version, VersionParseError};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, PackageName};
use serde::{Deserialize, Serialize};

use crate::diagnostics::Diagnose;

/// Prints the interpreter's identity as one JSON object. The marker values are computed as in
/// PEP 508's reference implementation. Runs on any Python 3.
const PROBE_SCRIPT: &str = r#"
import json, os, platform, sys, sysconfig

def full_version(info):
    version = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version

def supported_tags():
    # pip's own copy first: it is what pip installs with, and any StackStorm venv has pip.
    for module in ("pip._vendor.packaging.tags", "packaging.tags"):
        try:
            tags = __import__(module, fromlist=["sys_tags"])
            return [str(tag) for tag in tags.sys_tags()]
        except Exception:
            pass
    return None

def pip_version():
    try:
        import pip
        return pip.__version__
    except Exception:
        return None

implementation = sys.implementation
print(json.dumps({
    "pip": {"version": pip_version()},
    "tags": supported_tags(),
    "cache_tag": implementation.cache_tag,
    "abiflags": getattr(sys, "abiflags", ""),
    "implementation_name": implementation.name,
    "implementation_version": full_version(implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
    "venv_site_packages": sysconfig.get_paths()["purelib"] if sys.prefix != sys.base_prefix else None,
}))
"#;

/// What [`PROBE_SCRIPT`] prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    /// The wheel tags the interpreter installs, best first (`packaging.tags.sys_tags()`);
    /// `None` when neither pip nor packaging is importable.
    tags: Option<Vec<String>>,
    /// `None` for an implementation without bytecode caching.
    cache_tag: Option<String>,
    abiflags: String,
    implementation_name: String,
    implementation_version: String,
    os_name: String,
    platform_machine: String,
    platform_python_implementation: String,
    platform_release: String,
    platform_system: String,
    platform_version: String,
    python_full_version: String,
    python_version: String,
    sys_platform: String,
    venv_site_packages: Option<String>,
    /// Absent from a probe cached by an older packsync: then unknown.
    #[serde(default)]
    pip: Option<PipProbe>,
}

/// The pip the interpreter has, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PipProbe {
    version: Option<String>,
}

/// The configured interpreter, as it describes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonIdentity {
    /// As configured: the virtualenvs link to this path.
    path: PathBuf,
    cache_tag: Option<String>,
    abiflags: String,
    markers: MarkerEnvironment,
    venv_site_packages: Option<PathBuf>,
    /// Wheel tag -> preference, 0 the best.
    tags: HashMap<String, usize>,
    /// The version of the pip it has; `None` when unknown (an older probe).
    pip: Option<PipProbe>,
}

#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("Python interpreter `{}` does not exist", path.display())]
    NotFound {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Python interpreter `{}` is not executable", path.display())]
    NotExecutable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot run the Python interpreter `{}`", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Python interpreter `{}` failed to describe itself ({status})", path.display())]
    Failed {
        path: PathBuf,
        status: ExitStatus,
        #[source]
        stderr: Option<Stderr>,
    },
    #[error("Python interpreter `{}` printed no description packsync understands", path.display())]
    Garbage {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("Python interpreter `{}` reports a version that is not PEP 440", path.display())]
    Version {
        path: PathBuf,
        #[source]
        source: VersionParseError,
    },
}

/// What a failed interpreter wrote to stderr, as the cause of [`PythonError::Failed`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stderr(String);

impl Diagnose for PythonError {
    fn hint(&self) -> Option<String> {
        Some(
            "set `[stackstorm] python` in the site config to StackStorm's interpreter, e.g. \
             `/opt/stackstorm/st2/bin/python3`"
                .to_string(),
        )
    }
}

/// Prints `[name, version, location]` of every installed distribution, as JSON.
/// The entry point names of the group `argv[1]`, as a JSON list. Python 3.8+, stdlib only.
const ENTRY_POINTS_SCRIPT: &str = r#"
import importlib.metadata as md, json, sys
eps = md.entry_points()
group = eps.select(group=sys.argv[1]) if hasattr(eps, "select") else eps.get(sys.argv[1], [])
print(json.dumps(sorted({ep.name for ep in group})))
"#;

const DISTRIBUTIONS_SCRIPT: &str = r#"
import json, importlib.metadata as md
print(json.dumps([
    [d.metadata["Name"], d.version, str(d.locate_file(""))]
    for d in md.distributions() if d.metadata["Name"]
]))
"#;

/// The binary `python` runs (a bare name looked up on `PATH`, links followed), its size and
/// modification time, and the kernel release; `None` when it cannot be told.
fn binary_stamp(python: &Path) -> Option<(PathBuf, u64, i128, String)> {
    let found = if python.components().count() > 1 {
        python.to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(python))
            .find(|candidate| candidate.is_file())?
    };
    let binary = fs_err::canonicalize(found).ok()?;
    let metadata = fs_err::metadata(&binary).ok()?;
    let mtime_ns = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Some((
        binary,
        metadata.len(),
        i128::try_from(mtime_ns).ok()?,
        kernel,
    ))
}

/// The tags of pure-Python wheels, for an interpreter that can say nothing better (no pip, no
/// packaging): `py3X-none-any`, `py3-none-any`, then the older minor versions, as
/// `packaging.tags.compatible_tags` orders them.
fn pure_python_tags(python_version: &str) -> Vec<String> {
    let (major, minor) = python_version
        .split_once('.')
        .unwrap_or((python_version, "0"));
    let minor: u32 = minor.parse().unwrap_or(0);
    let mut tags = vec![
        format!("py{major}{minor}-none-any"),
        format!("py{major}-none-any"),
    ];
    tags.extend(
        (0..minor)
            .rev()
            .map(|older| format!("py{major}{older}-none-any")),
    );
    tags
}

/// The interpreters' descriptions, under `state_dir`.
pub const PROBE_CACHE: &str = "python-probes.json";

/// How long a cached description is trusted without asking the interpreter again, even when
/// its binary did not change: what it says also depends on the system around it (the C
/// library version decides the manylinux tags), which no file stamp covers.
const PROBE_CACHE_MAX_AGE: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// One cached description, and what it was valid for.
#[derive(Debug, Serialize, Deserialize)]
struct CachedProbe {
    /// The binary the configured path resolved to, its size and modification time.
    binary: PathBuf,
    size: u64,
    mtime_ns: i128,
    /// `uname -r` (a marker value).
    kernel: String,
    probed_at: jiff::Timestamp,
    probe: Probe,
}

impl PythonIdentity {
    /// Everything the identity says, in a stable order: what a cache of what was read against
    /// this interpreter is keyed on.
    pub fn fingerprint(&self) -> String {
        let mut tags: Vec<(&String, &usize)> = self.tags.iter().collect();
        tags.sort();
        format!(
            "{}|{:?}|{}|{:?}|{:?}|{tags:?}|{:?}",
            self.path.display(),
            self.cache_tag,
            self.abiflags,
            self.markers,
            self.venv_site_packages,
            self.pip
        )
    }

    /// [`probe`](Self::probe), answered from the cache file at `cache` while the interpreter's
    /// binary, the kernel and `PROBE_CACHE_MAX_AGE` (ten minutes) say nothing changed:
    /// starting an interpreter costs tens of milliseconds on every `plan` and `apply`. The cache
    /// is only a cache: unreadable, it costs a probe; unwritable, it is logged at debug level.
    pub fn probe_cached(python: &Path, cache: &Path) -> Result<Self, PythonError> {
        let stamp = binary_stamp(python);
        let mut cached: BTreeMap<PathBuf, CachedProbe> = fs_err::read(cache)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let now = jiff::Timestamp::now();
        if let Some((binary, size, mtime_ns, kernel)) = &stamp
            && let Some(hit) = cached.get(python).filter(|hit| {
                hit.binary == *binary
                    && hit.size == *size
                    && hit.mtime_ns == *mtime_ns
                    && hit.kernel == *kernel
                    && now.duration_since(hit.probed_at) < PROBE_CACHE_MAX_AGE
            })
        {
            tracing::debug!(python = %python.display(), "interpreter description from the cache");
            return Self::from_probe(python, hit.probe.clone());
        }
        let probe = Self::run_probe(python)?;
        let identity = Self::from_probe(python, probe.clone())?;
        if let Some((binary, size, mtime_ns, kernel)) = stamp {
            cached.insert(
                python.to_path_buf(),
                CachedProbe {
                    binary,
                    size,
                    mtime_ns,
                    kernel,
                    probed_at: now,
                    probe,
                },
            );
            let json = serde_json::to_vec(&cached).expect("probes serialise to JSON");
            if let Err(error) = crate::fsx::write_atomic(cache, &json) {
                tracing::debug!(%error, "interpreter description not cached");
            }
        }
        Ok(identity)
    }

    /// Runs `python` once, isolated (`-I`: no user site, no `PYTHON*` variables), and reads
    /// what it says about itself.
    pub fn probe(python: &Path) -> Result<Self, PythonError> {
        Self::from_probe(python, Self::run_probe(python)?)
    }

    fn run_probe(python: &Path) -> Result<Probe, PythonError> {
        let path = python.to_path_buf();
        let output = Command::new(python)
            .args(["-I", "-c", PROBE_SCRIPT])
            // `-I` already ignores them; removed too so that nothing the interpreter starts
            // inherits them.
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => PythonError::NotFound {
                    path: path.clone(),
                    source,
                },
                io::ErrorKind::PermissionDenied => PythonError::NotExecutable {
                    path: path.clone(),
                    source,
                },
                _ => PythonError::Spawn {
                    path: path.clone(),
                    source,
                },
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(PythonError::Failed {
                path,
                status: output.status,
                stderr: (!stderr.is_empty()).then_some(Stderr(stderr)),
            });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        // The description is the last line: a `sitecustomize` may print before the script runs.
        let description = stdout.trim_end().lines().last().unwrap_or_default();
        serde_json::from_str(description).map_err(|source| {
            tracing::debug!(python = %path.display(), %stdout, "unexpected interpreter output");
            PythonError::Garbage { path, source }
        })
    }

    fn from_probe(python: &Path, probe: Probe) -> Result<Self, PythonError> {
        let path = python.to_path_buf();
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &probe.implementation_name,
            implementation_version: &probe.implementation_version,
            os_name: &probe.os_name,
            platform_machine: &probe.platform_machine,
            platform_python_implementation: &probe.platform_python_implementation,
            platform_release: &probe.platform_release,
            platform_system: &probe.platform_system,
            platform_version: &probe.platform_version,
            python_full_version: &probe.python_full_version,
            python_version: &probe.python_version,
            sys_platform: &probe.sys_platform,
        })
        .map_err(|source| PythonError::Version {
            path: path.clone(),
            source,
        })?;
        let tags = probe
            .tags
            .unwrap_or_else(|| pure_python_tags(&probe.python_version));
        Ok(Self {
            tags: tags
                .into_iter()
                .enumerate()
                .map(|(preference, tag)| (tag, preference))
                .rev()
                .collect(),
            path,
            cache_tag: probe.cache_tag,
            abiflags: probe.abiflags,
            markers,
            venv_site_packages: probe.venv_site_packages.map(PathBuf::from),
            pip: probe.pip,
        })
    }

    /// The version of the pip this interpreter has: `Some(None)` when it has none, `None` when
    /// unknown.
    pub fn pip_version(&self) -> Option<Option<&str>> {
        self.pip.as_ref().map(|pip| pip.version.as_deref())
    }

    /// The PEP 508 marker values of this interpreter.
    pub fn markers(&self) -> &MarkerEnvironment {
        &self.markers
    }

    /// The interpreter as configured (a bare name is looked up on `PATH`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The site-packages of the virtualenv this interpreter runs in (StackStorm's own, on a
    /// StackStorm host); `None` for an interpreter outside any virtualenv.
    pub fn venv_site_packages(&self) -> Option<&Path> {
        self.venv_site_packages.as_deref()
    }

    /// The names of the entry points of `group` this interpreter's environment has (for
    /// StackStorm's: its runners, `st2common.runners.runner`).
    pub fn entry_point_names(&self, group: &str) -> Result<BTreeSet<String>, PythonError> {
        self.run_json(ENTRY_POINTS_SCRIPT, &[group])
    }

    /// Runs `script` with `args` in isolated mode and reads the JSON of its last line.
    fn run_json<T: serde::de::DeserializeOwned>(
        &self,
        script: &str,
        args: &[&str],
    ) -> Result<T, PythonError> {
        let output = Command::new(&self.path)
            .args(["-I", "-c", script])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| PythonError::Spawn {
                path: self.path.clone(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(PythonError::Failed {
                path: self.path.clone(),
                status: output.status,
                stderr: (!stderr.is_empty()).then_some(Stderr(stderr)),
            });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.trim_end().lines().last().unwrap_or_default()).map_err(
            |source| PythonError::Garbage {
                path: self.path.clone(),
                source,
            },
        )
    }

    /// The distributions installed for this interpreter (site-packages and `.pth` additions),
    /// leaving out those under `except` (packsync's own runner sets). The first of a name on
    /// `sys.path` wins, as it does for imports.
    pub fn installed_distributions(
        &self,
        except: &Path,
    ) -> Result<BTreeMap<PackageName, Version>, PythonError> {
        let listed: Vec<(String, String, PathBuf)> = self.run_json(DISTRIBUTIONS_SCRIPT, &[])?;
        let mut installed = BTreeMap::new();
        for (name, version, location) in listed {
            if location.starts_with(except) {
                continue;
            }
            // A distribution whose metadata says no valid name or version is not one pip
            // would count either.
            if let (Ok(name), Ok(version)) = (name.parse(), version.parse()) {
                installed.entry(name).or_insert(version);
            }
        }
        Ok(installed)
    }

    /// How much the interpreter prefers a wheel with this tag (`py3-none-any`), 0 the best;
    /// `None` when it cannot install such a wheel at all.
    pub fn tag_preference(&self, tag: &str) -> Option<usize> {
        self.tags.get(tag).copied()
    }

    /// `major.minor`, e.g. 3.11: pack virtualenvs must share it with StackStorm's interpreter.
    pub fn minor_version(&self) -> &str {
        &self.markers.python_version().string
    }

    /// The full Python version, e.g. 3.11.7.
    pub fn version(&self) -> &Version {
        &self.markers.python_full_version().version
    }

    /// `sys.implementation.cache_tag`, e.g. `cpython-311`: the tag of its `.pyc` files.
    pub fn cache_tag(&self) -> Option<&str> {
        self.cache_tag.as_deref()
    }

    /// What identifies the interpreter for the env digest, e.g.
    /// `cpython-3.11.7 x86_64-linux /opt/stackstorm/st2/bin/python3`: implementation, version
    /// and ABI flags, machine and OS, and the configured path the virtualenvs link to.
    pub fn label(&self) -> String {
        format!(
            "{}-{}{} {}-{} {}",
            self.markers.implementation_name(),
            self.markers.python_full_version().string,
            self.abiflags,
            self.markers.platform_machine(),
            self.markers.sys_platform(),
            self.path.display()
        )
    }
}
