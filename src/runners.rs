//! StackStorm runners as immutable runner sets, never installed into StackStorm's own
//! virtualenv.
//!
//! A runner set is the `[[runner]]` distributions (always) and the dependencies StackStorm's
//! environment does not already have, installed with `--target` into
//! `state_dir/runners/sets/<digest>/site-packages`, verified and sealed read-only, like a pack
//! virtualenv. StackStorm's interpreter sees the active set through one `.pth` file in its
//! site-packages (written once) that puts `state_dir/runners/current/site-packages` ahead of
//! StackStorm's own site-packages, so a stale copy of a runner once `pip install`ed into
//! StackStorm's virtualenv never wins; `current` is the one link switched by `rename(2)`.
//!
//! Before the switch a health check runs StackStorm's interpreter with the candidate set first
//! on `sys.path` and calls what StackStorm calls: every runner must be found in the set under
//! the `st2common.runners.runner` entry-point group, its module must import, `get_runner()`
//! must answer, and `get_metadata()` must return the runner as the registrar
//! (`bootstrap/runnersregistrar.py`) needs it: a dict with `name` and `runner_module`, valid
//! `runner_parameters`; its `runner.yaml` must be a list of runners. A set that fails never
//! goes live. After the switch `register_runners` runs; when it fails, the previous set is
//! switched back and registered again. Then `restart`: a running action runner keeps the old
//! runner module until it restarts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr as _;

use serde::Deserialize;

use crate::config::{RunnerSource, SiteConfig};
use crate::diagnostics::{Diagnose, output_tail};
use crate::engine::{self, EngineError, Hook};
use crate::env::{self, EnvBuilder, EnvError};
use crate::fsx;
use crate::model::{Digest, EnvInputs};
use crate::python::PythonIdentity;
use crate::source::{Repo, SourceError};
use crate::store::{self, Completion, Sweep};
use crate::unit::{self, Direction, RollOut, Unit};

/// The file each set keeps its inputs in, read back to know what is active.
const INPUTS_FILE: &str = "runner-set.json";
/// The hook in StackStorm's site-packages.
const PTH_FILE: &str = "packsync-runners.pth";
/// StackStorm's entry-point group for runners.
pub const ENTRY_POINT_GROUP: &str = "st2common.runners.runner";

/// Where runner sets live under `state_dir`.
pub const RUNNERS_DIR: &str = "runners";

/// Where runner sets live.
#[derive(Debug, Clone)]
pub struct RunnersLayout {
    root: PathBuf,
}

impl RunnersLayout {
    pub fn new(config: &SiteConfig) -> Self {
        Self {
            root: config.agent.state_dir.join(RUNNERS_DIR),
        }
    }

    /// `runners/current`: the link StackStorm's `.pth` hook goes through.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    pub fn set(&self, digest: &Digest) -> PathBuf {
        self.sets().join(digest.short())
    }

    /// `runners/sets`, one folder per set, named by the short digest of its inputs.
    pub fn sets(&self) -> PathBuf {
        self.root.join("sets")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("Failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to build the runner set `{}`", dir.display())]
    Build {
        dir: PathBuf,
        #[source]
        source: Box<EnvError>,
    },
    #[error("StackStorm's Python has no site-packages to hook the runner set into: `{}` runs in no virtualenv", python.display())]
    NoSitePackages { python: PathBuf },
    #[error("The runner health check failed, so the set did not go live: {}", problems.join("; "))]
    Unhealthy { problems: Vec<String> },
    /// `register_runners` failed after the switch, and what was live before is live again.
    #[error(
        "Registering the runners failed, so {previous} is live again{}",
        if *registered_again { "" } else { "; registering it again failed too" }
    )]
    Reverted {
        /// "the runner set `3f2a...`", or "no runner set".
        previous: String,
        /// Whether the previous set was registered again (there was one, and it worked).
        registered_again: bool,
        #[source]
        register: Box<RunnerError>,
    },
    #[error("Cannot run the runner health check with `{}`", python.display())]
    Check {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to build a wheel of the runner in `{}` at {commit}", repo.display())]
    Wheel {
        repo: PathBuf,
        commit: String,
        #[source]
        source: Box<EnvError>,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Diagnose for RunnerError {
    fn hint(&self) -> Option<String> {
        match self {
            RunnerError::NoSitePackages { .. } => Some(
                "set `[stackstorm] st2_python` to StackStorm's own interpreter, \
                 `/opt/stackstorm/st2/bin/python`"
                    .to_string(),
            ),
            RunnerError::Unhealthy { .. } => Some(
                "a runner distribution declares its runner with an entry point in \
                 `st2common.runners.runner`; its module has `get_runner()` and `get_metadata()`, \
                 which returns the runner as a dict (StackStorm's runners return \
                 `st2common.runners.base.get_metadata(__package__)[0]`), and ships `runner.yaml` \
                 (a list of runners with `name` and `runner_module`) next to it; fix the runner \
                 and publish a new version"
                    .to_string(),
            ),
            RunnerError::Wheel { .. } => Some(
                "the runner builds offline with the build backend its pyproject.toml names \
                 (`[build-system] requires`, setuptools by default): put a wheel of it in the \
                 mirror"
                    .to_string(),
            ),
            _ => None,
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        match self {
            RunnerError::Build { source, .. } | RunnerError::Wheel { source, .. } => {
                Some(&**source)
            }
            RunnerError::Reverted { register, .. } => Some(&**register),
            RunnerError::Source(err) => Some(err),
            RunnerError::Engine(err) => Some(err),
            _ => None,
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunnerError {
    let path = path.to_path_buf();
    move |source| RunnerError::Io {
        action,
        path,
        source,
    }
}

/// The inputs of the active runner set; `None` when there is none, or it cannot be read or
/// is not complete (a crash while it was built): the next switch repairs it.
pub fn installed(layout: &RunnersLayout) -> Option<EnvInputs> {
    let current = layout.current();
    let inputs = read_inputs(&current)?;
    store::is_complete(&current, &inputs.digest()).then_some(inputs)
}

/// The inputs of the kept, complete set named `set` (its short digest).
pub fn kept(layout: &RunnersLayout, set: &str) -> Option<EnvInputs> {
    let plain = !set.is_empty() && set.chars().all(|c| c.is_ascii_hexdigit());
    let dir = layout.sets().join(set);
    let complete =
        plain && store::read_completion(&dir).is_some_and(|done| done.digest.short() == set);
    complete.then(|| read_inputs(&dir)).flatten()
}

fn read_inputs(set: &Path) -> Option<EnvInputs> {
    let text = fs_err::read(set.join(INPUTS_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Removes the runner sets beyond the `keep` newest (the live one always kept, and counted),
/// and any a crash left unfinished; returns what it removed (with [`Sweep::ListOnly`], what it
/// would remove).
pub fn collect(
    layout: &RunnersLayout,
    keep: usize,
    sweep: Sweep,
) -> Result<Vec<PathBuf>, RunnerError> {
    let sets_dir = layout.sets();
    let live = fsx::link_target(&layout.current()).map_err(io("read", &layout.current()))?;
    let mut sets = Vec::new();
    match fs_err::read_dir(&sets_dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry.map_err(io("read", &sets_dir))?.path();
                if Some(&path) == live.as_ref() {
                    continue;
                }
                let modified = fs_err::metadata(&path)
                    .and_then(|meta| meta.modified())
                    .map_err(io("read", &path))?;
                let unfinished = store::read_completion(&path).is_none();
                sets.push((unfinished, modified, path));
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io("read", &sets_dir)(err)),
    }
    // Finished sets newest first; unfinished ones are garbage whatever their age.
    sets.sort_by_key(|(unfinished, modified, _)| (*unfinished, std::cmp::Reverse(*modified)));
    let others = keep.saturating_sub(usize::from(live.is_some()));
    let mut removed = Vec::new();
    let mut kept: Vec<PathBuf> = live.into_iter().collect();
    for (index, (unfinished, _, path)) in sets.into_iter().enumerate() {
        if unfinished || index >= others {
            if sweep == Sweep::Remove {
                fsx::remove_tree(&path).map_err(io("remove", &path))?;
            }
            removed.push(path);
        } else {
            kept.push(path);
        }
    }
    // Wheels built from a runner's source: kept while a kept set installs from them.
    let wheels_dir = layout.root.join("wheels");
    let used: Vec<PathBuf> = kept
        .iter()
        .filter_map(|set| read_inputs(set))
        .flat_map(|inputs| {
            source_links(&inputs)
                .into_iter()
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect();
    if let Ok(entries) = fs_err::read_dir(&wheels_dir) {
        for entry in entries {
            let path = entry.map_err(io("read", &wheels_dir))?.path();
            if !used.contains(&path) {
                if sweep == Sweep::Remove {
                    fsx::remove_tree(&path).map_err(io("remove", &path))?;
                }
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

/// The runner distributions of the set `inputs`, `name version`, from the mirror or from
/// StackStorm's own environment.
pub fn versions(config: &SiteConfig, inputs: &EnvInputs) -> Vec<String> {
    config
        .runners
        .iter()
        .map(|runner| {
            let name = runner.requirement.name.to_string();
            let pinned = inputs
                .pins
                .iter()
                .find(|pin| pin.name == name)
                .map(|pin| pin.version.clone());
            let provided = || {
                inputs.settings.iter().find_map(|setting| {
                    setting
                        .strip_prefix("provided ")?
                        .strip_prefix(name.as_str())?
                        .strip_prefix("==")
                        .map(str::to_string)
                })
            };
            match pinned.or_else(provided) {
                Some(version) => format!("{name} {version}"),
                None => name,
            }
        })
        .collect()
}

/// Whether going from the set `from` to the set `to` takes a `[[runner]]` distribution to an
/// older version.
pub fn downgrades(config: &SiteConfig, from: &EnvInputs, to: &EnvInputs) -> bool {
    let version = |inputs: &EnvInputs, name: &str| {
        let canonical = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
        inputs
            .pins
            .iter()
            .find(|pin| canonical(&pin.name) == canonical(name))
            .and_then(|pin| pep440_rs::Version::from_str(&pin.version).ok())
    };
    config.runners.iter().any(|runner| {
        let name = runner.requirement.name.to_string();
        matches!(
            (version(from, &name), version(to, &name)),
            (Some(old), Some(new)) if new < old
        )
    })
}

/// Makes the runner set of `inputs` live: built if needed, checked, linked, registered (switched
/// back when that fails), and the runners restarted.
pub fn switch(
    config: &SiteConfig,
    builder: &EnvBuilder,
    inputs: &EnvInputs,
) -> Result<(), RunnerError> {
    let st2_python = config
        .stackstorm
        .st2_python
        .as_deref()
        .expect("the config requires st2_python with runners");
    let mut unit = RunnerSet {
        config,
        builder,
        inputs,
        st2_python,
        layout: RunnersLayout::new(config),
    };
    match unit::roll_out(&mut unit) {
        RollOut::Live { settled } => settled,
        RollOut::Failed(err) => Err(err),
        RollOut::Reverted {
            previous,
            register,
            again,
        } => Err(RunnerError::Reverted {
            previous: previous.as_ref().and_then(|p| p.file_name()).map_or_else(
                || "no runner set".to_string(),
                |name| format!("the runner set `{}`", name.to_string_lossy()),
            ),
            registered_again: again
                .inspect_err(|again| tracing::info!(error = %again, "registering the previous runner set failed too"))
                .is_ok(),
            register: Box::new(register),
        }),
        RollOut::Stuck { undo, .. } => Err(undo),
    }
}

/// A runner set as a [`Unit`]: its release is a sealed folder under `runners/sets/`, its link
/// `runners/current` (which StackStorm's `.pth` hook goes through), its gate the health check,
/// its registration `[stackstorm] register_runners`, and what follows registration
/// `[stackstorm] restart`.
struct RunnerSet<'a> {
    config: &'a SiteConfig,
    builder: &'a EnvBuilder,
    inputs: &'a EnvInputs,
    st2_python: &'a Path,
    layout: RunnersLayout,
}

impl Unit for RunnerSet<'_> {
    /// The set's folder.
    type Release = PathBuf;
    type Error = RunnerError;

    fn stage(&mut self) -> Result<PathBuf, RunnerError> {
        let set = self.layout.set(&self.inputs.digest());
        build(self.builder, &set, self.inputs, self.st2_python)?;
        Ok(set)
    }

    /// A set that fails is never live, not even for an instant.
    fn gate(&mut self, set: &PathBuf) -> Result<(), RunnerError> {
        let names: Vec<String> = self
            .config
            .runners
            .iter()
            .map(|runner| runner.requirement.name.to_string())
            .collect();
        check(self.st2_python, &set.join("site-packages"), &names)
            .map_err(|problems| RunnerError::Unhealthy { problems })
    }

    fn live(&mut self) -> Result<Option<PathBuf>, RunnerError> {
        let current = self.layout.current();
        fsx::link_target(&current).map_err(io("read", &current))
    }

    fn switch(&mut self, set: &PathBuf) -> Result<(), RunnerError> {
        let probes = self.config.agent.state_dir.join(crate::python::PROBE_CACHE);
        let st2 = PythonIdentity::probe_cached(self.st2_python, &probes).map_err(|err| {
            RunnerError::Check {
                python: self.st2_python.to_path_buf(),
                source: std::io::Error::other(err.to_string()),
            }
        })?;
        hook(&st2, &self.layout)?;
        let current = self.layout.current();
        fsx::replace_symlink(set, &current).map_err(io("switch", &current))?;
        tracing::info!(set = %set.display(), "runner set switched");
        Ok(())
    }

    fn unlink(&mut self) -> Result<(), RunnerError> {
        let current = self.layout.current();
        fsx::remove_if_exists(&current).map_err(io("switch back", &current))
    }

    fn register(&mut self) -> Result<(), RunnerError> {
        let Some(register) = &self.config.stackstorm.register_runners else {
            return Ok(());
        };
        engine::run_for_runners(Hook::RegisterRunners, register, &self.config.stackstorm)
            .inspect_err(|failed| tracing::info!(error = %failed, "registering the runners failed"))
            .map_err(RunnerError::from)
    }

    /// A running action runner keeps the old runner module until it restarts; after going
    /// back, it never loaded the new one.
    fn settle(&mut self, _: &PathBuf, direction: Direction) -> Result<(), RunnerError> {
        match (&self.config.stackstorm.restart, direction) {
            (Some(restart), Direction::Forward) => {
                engine::run_for_runners(Hook::Restart, restart, &self.config.stackstorm)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Builds the set at `dir` unless it is there complete: verified, sealed read-only and
/// finished by its completion record, like a virtualenv.
fn build(
    builder: &EnvBuilder,
    dir: &Path,
    inputs: &EnvInputs,
    st2_python: &Path,
) -> Result<(), RunnerError> {
    let build_error = |source| RunnerError::Build {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    };
    let digest = inputs.digest();
    if store::is_complete(dir, &digest) {
        return Ok(());
    }
    fsx::remove_tree_aside(dir).map_err(io("remove the unfinished runner set", dir))?;
    fs_err::create_dir_all(dir).map_err(io("create", dir))?;
    let built = (|| {
        let work = dir.join(".packsync-build");
        fs_err::create_dir(&work).map_err(io("create", &work))?;
        if !inputs.pins.is_empty() {
            let links = source_links(inputs);
            builder
                .install_pins(
                    &inputs.pins,
                    st2_python,
                    Some(&dir.join("site-packages")),
                    &links,
                    &work,
                )
                .map_err(build_error)?;
        }
        fsx::remove_tree(&work).map_err(io("remove", &work))?;
        let json = serde_json::to_vec_pretty(inputs).expect("env inputs serialise");
        let inputs_file = dir.join(INPUTS_FILE);
        fs_err::write(&inputs_file, json).map_err(io("write", &inputs_file))?;
        let dists = env::verify_installed(&dir.join("site-packages"), dir, &inputs.pins)
            .map_err(build_error)?;
        env::seal(
            dir,
            &Completion {
                digest,
                dists,
                store_entries: Vec::new(),
            },
        )
        .map_err(io("seal", dir))
    })();
    if built.is_err() {
        let _ = fsx::remove_tree_aside(dir);
    }
    built
}

/// The setting of a runner set that names a folder of runner wheels built from source.
pub const FIND_LINKS_SETTING: &str = "find-links ";

/// The folders of runner wheels built from source that the set `inputs` installs from.
fn source_links(inputs: &EnvInputs) -> Vec<&Path> {
    inputs
        .settings
        .iter()
        .filter_map(|setting| setting.strip_prefix(FIND_LINKS_SETTING))
        .map(Path::new)
        .collect()
}

/// The folder holding the wheel of the runner at `source` (its committed tree at the selected
/// ref), built offline the first time that tree is seen: `runners/wheels/<tree>`.
pub fn source_wheel(
    config: &SiteConfig,
    source: &RunnerSource,
    builder: &EnvBuilder,
) -> Result<SourceWheel, RunnerError> {
    let repo = Repo::open(&source.repo)?;
    let resolved = repo.resolve(&source.selector)?;
    if let Some(policy) = &source.verify {
        repo.check_signed(&resolved, policy)?;
    }
    let tree = repo.pack_tree(&resolved.commit, None)?;
    let dir = RunnersLayout::new(config)
        .root
        .join("wheels")
        .join(&tree.id()[..12]);
    let wheel = SourceWheel {
        dir: dir.clone(),
        origin: format!(
            "from {}@{}",
            repo.path().display(),
            crate::model::short_commit(&resolved.commit)
        ),
    };
    // Its completion record names the tree the wheel was built from.
    let built_from = Digest::sha256(tree.id().as_bytes());
    if store::is_complete(&dir, &built_from) {
        return Ok(wheel);
    }
    fsx::remove_tree_aside(&dir).map_err(io("remove the unfinished", &dir))?;
    fs_err::create_dir_all(&dir).map_err(io("create", &dir))?;
    let project = dir.join(".source");
    let built = tree
        .export(&project)
        .map_err(RunnerError::from)
        .and_then(|()| {
            builder
                .build_wheel(&project, &dir)
                .map_err(|source| RunnerError::Wheel {
                    repo: source_repo(&repo),
                    commit: resolved.commit.clone(),
                    source: Box::new(source),
                })
        })
        .and_then(|()| fsx::remove_tree(&project).map_err(io("remove", &project)))
        .and_then(|()| {
            let completion = Completion {
                digest: built_from,
                dists: Vec::new(),
                store_entries: Vec::new(),
            };
            store::write_completion(&dir, &completion).map_err(io("write the record of", &dir))
        });
    if built.is_err() {
        let _ = fsx::remove_tree_aside(&dir);
    }
    built.map(|()| wheel)
}

/// A runner's wheel built from its Git repo.
#[derive(Debug, Clone)]
pub struct SourceWheel {
    /// The folder holding the wheel.
    pub dir: PathBuf,
    /// `from <repo>@<commit>`, for the plan.
    pub origin: String,
}

fn source_repo(repo: &Repo) -> PathBuf {
    repo.path().to_path_buf()
}

/// Writes the `.pth` hook into StackStorm's site-packages when it is not there already.
fn hook(st2: &PythonIdentity, layout: &RunnersLayout) -> Result<(), RunnerError> {
    let (path, content) = hook_file(st2, layout)?;
    if fs_err::read_to_string(&path).is_ok_and(|existing| existing == content) {
        return Ok(());
    }
    fsx::write_atomic(&path, content.as_bytes()).map_err(io("write", &path))
}

/// Whether StackStorm's interpreter `st2` loads the runner sets: its hook is in place.
pub fn hooked(st2: &PythonIdentity, layout: &RunnersLayout) -> bool {
    hook_file(st2, layout).is_ok_and(|(path, content)| {
        fs_err::read_to_string(&path).is_ok_and(|existing| existing == content)
    })
}

/// The hook's path in StackStorm's site-packages and its content.
fn hook_file(
    st2: &PythonIdentity,
    layout: &RunnersLayout,
) -> Result<(PathBuf, String), RunnerError> {
    let site_packages = st2
        .venv_site_packages()
        .ok_or_else(|| RunnerError::NoSitePackages {
            python: st2.path().to_path_buf(),
        })?;
    let path = site_packages.join(PTH_FILE);
    // `addsitedir` (not a bare path line) so that `.pth` files of the set are processed too;
    // what it added then moves ahead of this site-packages (`sitedir`, in scope where `site`
    // runs the line), so that the set's runners win over stale copies installed here.
    let literal = layout
        .current()
        .join("site-packages")
        .to_string_lossy()
        .replace('\\', r"\\")
        .replace('\'', r"\'");
    let content = format!(
        "# Written by packsync: the active runner set (see `packsync status`), ahead of this \
         site-packages.\n\
         import site, sys; n = len(sys.path); site.addsitedir('{literal}'); added = sys.path[n:]; \
         del sys.path[n:]; i = sys.path.index(sitedir) if sitedir in sys.path else 0; \
         sys.path[i:i] = added\n"
    );
    Ok((path, content))
}

/// What the health check script reports per runner distribution.
#[derive(Debug, Deserialize)]
struct Found {
    error: Option<String>,
    /// Where the distribution was found (its site-packages).
    location: Option<String>,
    entry_points: Vec<EntryPoint>,
}

#[derive(Debug, Deserialize)]
struct EntryPoint {
    name: String,
    error: Option<String>,
    /// What `get_metadata()` returned, as JSON.
    metadata: Option<serde_json::Value>,
    runner_yaml: Option<String>,
}

/// Puts the candidate set (argv 1) first on `sys.path`, finds each runner distribution as
/// StackStorm does and calls what StackStorm calls: the module's `get_runner()` (the loader)
/// and `get_metadata()` (the registrar); prints JSON. Python 3.8+ (StackStorm's oldest),
/// stdlib only.
const CHECK_SCRIPT: &str = r#"
import importlib, importlib.metadata as md, json, os, site, sys
candidate = sys.argv[1]
n = len(sys.path)
site.addsitedir(candidate)
added = sys.path[n:]
del sys.path[n:]
sys.path[0:0] = added
importlib.invalidate_caches()
found = {}
for name in sys.argv[2:]:
    report = {"error": None, "location": None, "entry_points": []}
    found[name] = report
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        report["error"] = "not installed"
        continue
    report["location"] = str(dist.locate_file(""))
    for ep in dist.entry_points:
        if ep.group != GROUP:
            continue
        item = {"name": ep.name, "error": None, "metadata": None, "runner_yaml": None}
        report["entry_points"].append(item)
        try:
            module = importlib.import_module(ep.value.split(":")[0])
            module.get_runner()
            item["metadata"] = json.loads(json.dumps(module.get_metadata(), default=str))
            path = os.path.join(os.path.dirname(module.__file__), "runner.yaml")
            if os.path.exists(path):
                with open(path) as f:
                    item["runner_yaml"] = f.read()
        except BaseException as error:
            item["error"] = "%s: %s" % (type(error).__name__, error)
print(json.dumps(found))
"#;

/// Runs the health check of the set whose site-packages is `candidate` with StackStorm's
/// interpreter; every problem found, or none.
fn check(st2_python: &Path, candidate: &Path, names: &[String]) -> Result<(), Vec<String>> {
    let script = CHECK_SCRIPT.replace("GROUP", &format!("{ENTRY_POINT_GROUP:?}"));
    let output = Command::new(st2_python)
        .args(["-I", "-c", &script])
        .arg(candidate)
        .args(names)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| vec![format!("cannot run `{}`: {err}", st2_python.display())])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let found: std::collections::BTreeMap<String, Found> = serde_json::from_str(
        stdout.trim_end().lines().last().unwrap_or_default(),
    )
    .map_err(|_| {
        vec![format!(
            "`{}` failed to run the check: {}",
            st2_python.display(),
            output_tail(&output)
        )]
    })?;
    let mut problems = Vec::new();
    for name in names {
        let Some(found) = found.get(name) else {
            problems.push(format!("{name}: not checked"));
            continue;
        };
        if let Some(error) = &found.error {
            problems.push(format!("{name}: {error}"));
            continue;
        }
        if let Some(location) = &found.location
            && !Path::new(location).starts_with(candidate)
        {
            problems.push(format!(
                "{name}: found in `{location}`, not in the runner set"
            ));
            continue;
        }
        if found.entry_points.is_empty() {
            problems.push(format!(
                "{name}: declares no entry point in `{ENTRY_POINT_GROUP}`"
            ));
        }
        for entry_point in &found.entry_points {
            if let Some(problem) = entry_point_problem(entry_point) {
                problems.push(format!("{name}: runner `{}`: {problem}", entry_point.name));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What is wrong with one runner entry point as the check found it, if anything.
fn entry_point_problem(entry_point: &EntryPoint) -> Option<String> {
    let problem = match (&entry_point.error, &entry_point.metadata) {
        (Some(error), _) => Some(error.clone()),
        (None, Some(metadata)) => validate_metadata(metadata, &entry_point.name)
            .err()
            .map(|problem| format!("get_metadata() {problem}")),
        (None, None) => Some("get_metadata() returned nothing".to_string()),
    };
    problem.or_else(|| {
        let yaml = entry_point.runner_yaml.as_deref()?;
        validate_runner_yaml(yaml, &entry_point.name)
            .err()
            .map(|problem| format!("runner.yaml {problem}"))
    })
}

/// The keys `RunnerTypeAPI` allows (`additionalProperties: false`), and the two the registrar
/// strips before it validates.
const RUNNER_KEYS: [&str; 13] = [
    "id",
    "uid",
    "name",
    "description",
    "enabled",
    "runner_package",
    "runner_module",
    "query_module",
    "runner_parameters",
    "output_key",
    "output_schema",
    "aliases",
    "experimental",
];

/// The JSON Schema types a parameter may have.
const PARAMETER_TYPES: [&str; 7] = [
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// What StackStorm's registrar does with `get_metadata()`'s answer (`register_runner`, then
/// `RunnerTypeAPI.validate`): one runner, a mapping with a `name` and a `runner_module`, known
/// keys only, `runner_parameters` a mapping of `\w+` names to parameter schemas.
fn validate_metadata(metadata: &serde_json::Value, entry_point: &str) -> Result<(), String> {
    let Some(runner) = metadata.as_object() else {
        return Err(if metadata.is_array() {
            "returned a list: StackStorm's registrar needs one runner, a mapping (return \
             `get_metadata(__package__)[0]`)"
                .to_string()
        } else {
            "returned no mapping".to_string()
        });
    };
    let text = |key: &str| runner.get(key).and_then(serde_json::Value::as_str);
    let Some(name) = text("name") else {
        return Err("returned a runner with no `name`".to_string());
    };
    let invalid = |what: String| Err(format!("returned runner `{name}` {what}"));
    if text("runner_module").is_none() {
        return invalid("with no `runner_module`".to_string());
    }
    if let Some(key) = runner
        .keys()
        .find(|key| !RUNNER_KEYS.contains(&key.as_str()))
    {
        return invalid(format!("with the unknown key `{key}`"));
    }
    if runner
        .get("enabled")
        .is_some_and(|enabled| !enabled.is_boolean())
    {
        return invalid("whose `enabled` is not a boolean".to_string());
    }
    if let Some(parameters) = runner.get("runner_parameters") {
        let Some(parameters) = parameters.as_object() else {
            return invalid("whose `runner_parameters` is no mapping".to_string());
        };
        for (parameter, schema) in parameters {
            let named =
                !parameter.is_empty() && parameter.chars().all(|c| c.is_alphanumeric() || c == '_');
            if !named {
                return invalid(format!(
                    "with the parameter `{parameter}`, whose name is not `\\w+`"
                ));
            }
            let typed = match schema.as_object().map(|schema| schema.get("type")) {
                Some(None) => true,
                Some(Some(serde_json::Value::String(kind))) => {
                    PARAMETER_TYPES.contains(&kind.as_str())
                }
                Some(Some(serde_json::Value::Array(kinds))) => kinds.iter().all(|kind| {
                    kind.as_str()
                        .is_some_and(|kind| PARAMETER_TYPES.contains(&kind))
                }),
                // Not a mapping, or a `type` of another shape.
                None | Some(Some(_)) => false,
            };
            if !typed {
                return invalid(format!(
                    "whose parameter `{parameter}` is no schema with a known `type`"
                ));
            }
        }
    }
    let wanted = entry_point.replace('_', "-");
    let aliases = runner
        .get("aliases")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str);
    if std::iter::once(name)
        .chain(aliases)
        .any(|n| n.replace('_', "-") == wanted)
    {
        Ok(())
    } else {
        invalid(format!("for the entry point `{entry_point}`"))
    }
}

/// StackStorm's rules for `runner.yaml`: a list of mappings with a `name` and a
/// `runner_module`, one of them named as the entry point (st2 also tries `_` as `-`).
fn validate_runner_yaml(yaml: &str, entry_point: &str) -> Result<(), String> {
    let value = crate::yaml::load_str(yaml).map_err(|err| format!("is not YAML: {err}"))?;
    let runners = value
        .as_array()
        .ok_or("is not a list of runners".to_string())?;
    let mut names = Vec::new();
    for (index, runner) in runners.iter().enumerate() {
        let field = |key: &str| runner.get(key).and_then(serde_json::Value::as_str);
        let Some(name) = field("name") else {
            return Err(format!("entry {} has no `name`", index + 1));
        };
        if field("runner_module").is_none() {
            return Err(format!("runner `{name}` has no `runner_module`"));
        }
        names.push(name.to_string());
    }
    let wanted = entry_point.replace('_', "-");
    if names.iter().any(|name| name.replace('_', "-") == wanted) {
        Ok(())
    } else {
        Err(format!(
            "names no runner `{entry_point}` (it has {})",
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_yaml_follows_stackstorms_rules() {
        let good = "- name: clush-runner\n  runner_module: clush_runner.clush_runner\n";
        assert_eq!(validate_runner_yaml(good, "clush-runner"), Ok(()));
        assert_eq!(validate_runner_yaml(good, "clush_runner"), Ok(()));
        assert_eq!(
            validate_runner_yaml(good, "other"),
            Err("names no runner `other` (it has clush-runner)".into())
        );
        assert_eq!(
            validate_runner_yaml("- name: x\n", "x"),
            Err("runner `x` has no `runner_module`".into())
        );
        assert_eq!(
            validate_runner_yaml("name: x\nrunner_module: y\n", "x"),
            Err("is not a list of runners".into())
        );
    }
}
