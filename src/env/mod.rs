//! Pack virtualenvs, built offline from the wheel mirror and keyed by env digest: packs with
//! the same inputs share one, and a virtualenv is never changed once built.
//!
//! A virtualenv holds its absolute path in its scripts, so it is built where it stays,
//! `envs/<digest>`. It is finished only when its completion record (`store::Completion`) is
//! there, written last with what `verify` proved; a folder without it is garbage, whatever
//! wrote into it (see `store::prepare`).
//!
//! The build follows StackStorm's `setup_pack_virtualenv`, as the env inputs' settings say:
//! `python -m venv --without-pip [--system-site-packages]` (milliseconds, where seeding pip
//! takes seconds), then st2's `zzzzzzzzzz__st2__.pth` when asked for, then the configured
//! interpreter's own pip installs into it (`pip --python <venv>`) with `--no-index --find-links
//! <mirror>` in a clean environment (no proxy or `PIP_*` variables, no user config, no version
//! check, no prompt), exactly the pinned files, every one of them even where the base
//! interpreter or StackStorm already has that version (`--ignore-installed`: at run time st2's
//! copy would shadow the base's, so a skipped pin runs another version). No requirements means
//! no pip at all. Every installer runs as a child of [`Children`]: none outlives packsync.
//!
//! The installer installs each pinned file once, into the compiled-distribution store
//! ([`dists`]); a virtualenv links the files from there, so that bytecode compiled for one
//! virtualenv serves every other.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

mod dists;
mod failures;
mod verify;

pub use failures::FailedBuilds;

use crate::children::Children;
use crate::config::{Installer, SiteConfig};
use crate::diagnostics::{Diagnose, Report, output_tail};
use crate::fsx;
use crate::model::{Digest, EnvInputs, Pin};
use crate::store::{self, Completion, VerifiedDist};

/// Told each line an installer writes, as it comes (a live progress view shows the latest).
pub type Lines<'a> = &'a (dyn Fn(&str) + Sync);

/// Builds virtualenvs; one per digest at a time, whatever the number of threads asking.
#[derive(Debug)]
pub struct EnvBuilder {
    python: PathBuf,
    mirror: PathBuf,
    installer: Installer,
    /// uv's cache (wheels unpacked once), under `state_dir`.
    uv_cache: PathBuf,
    /// The compiled-distribution store the virtualenvs are assembled from, under `state_dir`.
    dists: dists::DistStore,
    /// Every installer, `python -m venv` and `pip wheel` runs as one of these.
    children: Children,
    /// The memo of failed builds, updated by every build.
    failures: FailedBuilds,
    /// How long building a wheel of a project or sdist may take (`[stackstorm]
    /// command_timeout`); `None`: no limit.
    build_timeout: Option<Duration>,
    /// One lock per env digest, so that a second pack with the same inputs waits for the first
    /// build and then reuses it.
    building: KeyedLocks,
}

/// One lock per digest, made when first asked for: what is built under a digest is built once
/// however many threads ask.
#[derive(Debug, Default)]
struct KeyedLocks(Mutex<HashMap<Digest, Arc<Mutex<()>>>>);

impl KeyedLocks {
    /// The lock of `key`. One that a panicking holder poisoned is safe to take: what it built
    /// has no completion record, and is built again.
    fn of(&self, key: &Digest) -> Arc<Mutex<()>> {
        Arc::clone(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_default(),
        )
    }
}

/// What [`EnvBuilder::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvOutcome {
    /// Created now; `pip` says whether distributions were installed (none without
    /// requirements).
    Built { pip: bool },
    /// Already there and complete.
    Reused,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("Failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot run `{}`", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to create the virtualenv `{}` ({status}): {output}", dir.display())]
    Venv {
        dir: PathBuf,
        status: std::process::ExitStatus,
        output: String,
    },
    /// `output` is the end of the installer's output.
    #[error("`{}` failed to install into `{}` from the mirror `{}` ({status}): {output}", installer.display(), dir.display(), mirror.display())]
    Install {
        installer: PathBuf,
        dir: PathBuf,
        mirror: PathBuf,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("The mirror file `{}` changed since it was resolved: sha256 {actual}, expected {expected}", path.display())]
    Swapped {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("The environment `{}` does not hold exactly its pins: {}", dir.display(), problems.join("; "))]
    Unverified { dir: PathBuf, problems: Vec<String> },
    #[error("The virtualenv `{}` failed to build in this run already, for a pack with the same inputs: {cause}", dir.display())]
    FailedBefore { dir: PathBuf, cause: String },
    #[error("Building a wheel of `{}` did not finish within {timeout:?} and was killed: {output}", project.display())]
    TimedOut {
        project: PathBuf,
        timeout: Duration,
        output: String,
    },
}

impl Diagnose for EnvError {
    fn hint(&self) -> Option<String> {
        match self {
            EnvError::Install { .. } => Some(
                "the installer refused the resolved files: check the mirror files it names \
                 (an sdist needs its build backend as a wheel in the mirror); nothing was switched"
                    .to_string(),
            ),
            EnvError::Unverified { .. } => Some(
                "the installer left another set of distributions than the resolved one; nothing \
                 was switched: check the installer's version and the mirror files named, then \
                 run `packsync apply --retry-failed`"
                    .to_string(),
            ),
            EnvError::Swapped { .. } => Some(
                "a file in the mirror was replaced between the plan and the install; nothing was \
                 switched: run `packsync plan` again to resolve against the mirror as it is now"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

impl EnvBuilder {
    /// The builder of the virtualenvs, runner sets and runner wheels of `config`.
    pub fn for_site(config: &SiteConfig) -> Self {
        Self::new(
            config.stackstorm.python.clone(),
            config.mirror.path.clone(),
            config.mirror.installer.clone(),
            &config.agent.state_dir,
        )
        .with_failures(FailedBuilds::open(config))
        .with_build_timeout(config.stackstorm.command_timeout)
    }

    /// A builder keeping its caches, child records and failed builds under `state_dir`.
    pub fn new(python: PathBuf, mirror: PathBuf, installer: Installer, state_dir: &Path) -> Self {
        let failures = FailedBuilds::at(
            state_dir,
            &installer,
            Duration::from_mins(5),
            Duration::from_hours(6),
        );
        Self {
            python,
            mirror,
            installer,
            uv_cache: state_dir.join(UV_CACHE),
            dists: dists::DistStore::at(state_dir),
            children: Children::new(state_dir),
            failures,
            build_timeout: None,
            building: KeyedLocks::default(),
        }
    }

    fn with_failures(self, failures: FailedBuilds) -> Self {
        Self { failures, ..self }
    }

    fn with_build_timeout(self, timeout: Duration) -> Self {
        Self {
            build_timeout: Some(timeout),
            ..self
        }
    }

    /// The memo of failed builds this builder keeps (runner sets record theirs there too).
    pub fn failures(&self) -> &FailedBuilds {
        &self.failures
    }

    /// Makes sure the virtualenv for `inputs` exists complete at `dir` (`envs/<digest>`),
    /// building it when it does not. A folder there without its completion record is garbage:
    /// moved aside and removed first. How a build ends goes into the memo of failed builds;
    /// inputs whose build already failed in this run fail again without a build.
    /// Each line the installer writes goes to `lines` as it comes.
    pub fn ensure(
        &self,
        dir: &Path,
        inputs: &EnvInputs,
        lines: Lines<'_>,
    ) -> Result<EnvOutcome, EnvError> {
        let lock = self.building.of(&inputs.digest());
        // Held for the whole build and its memo: a second caller with the same inputs finds it
        // complete, or failed. A build that panicked wrote no completion record, so the
        // poisoned lock is safe to take over.
        let _building = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = self.ensure_once(dir, inputs, lines);
        if !matches!(
            outcome,
            Ok(EnvOutcome::Reused) | Err(EnvError::FailedBefore { .. })
        ) {
            self.failures.remember(inputs, outcome.as_ref().err());
        }
        outcome
    }

    fn ensure_once(
        &self,
        dir: &Path,
        inputs: &EnvInputs,
        lines: Lines<'_>,
    ) -> Result<EnvOutcome, EnvError> {
        let digest = inputs.digest();

        if store::is_complete(dir, &digest) {
            tracing::debug!(env = %dir.display(), "virtualenv already built");
            return Ok(EnvOutcome::Reused);
        }
        if let Some(failed) = self.failures.failed_in_this_run(&digest) {
            return Err(EnvError::FailedBefore {
                dir: dir.to_path_buf(),
                cause: failed.cause,
            });
        }
        if fsx::exists(dir).map_err(io("read", dir))? {
            tracing::info!(env = %dir.display(), "removing an unfinished virtualenv");
            fsx::remove_tree_aside(dir).map_err(io("remove the unfinished virtualenv", dir))?;
        }

        tracing::info!(env = %dir.display(), digest = %digest.short(), "building virtualenv");
        let started = Instant::now();
        let built = self.build(dir, inputs, lines);
        if built.is_err() {
            // Without its record it is garbage anyway: removing it is only tidiness.
            if let Err(err) = fsx::remove_tree_aside(dir) {
                tracing::warn!(env = %dir.display(), error = %err, "failed to remove a failed virtualenv");
            }
        }
        let pip = built?;
        tracing::info!(
            env = %dir.display(),
            pip,
            elapsed = ?started.elapsed(),
            "virtualenv built"
        );
        Ok(EnvOutcome::Built { pip })
    }

    /// Builds the virtualenv at `dir`, which does not exist; says whether pip ran.
    fn build(&self, dir: &Path, inputs: &EnvInputs, lines: Lines<'_>) -> Result<bool, EnvError> {
        if let Some(parent) = dir.parent() {
            fs_err::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let system_site_packages = inputs
            .settings
            .iter()
            .any(|setting| setting == SYSTEM_SITE_PACKAGES_SETTING);
        let skeleton = self
            .create_venv(dir, &inputs.python, system_site_packages)?
            .name();
        // Before the install, as st2 does: what the pack's code sees at run time is there
        // while pip runs too.
        if let Some(st2_site_packages) = inputs
            .settings
            .iter()
            .find_map(|setting| setting.strip_prefix(ST2_PTH_SETTING))
        {
            write_st2_pth(dir, Path::new(st2_site_packages.trim()))?;
        }
        let mut linked = HashSet::new();
        let mut store_entries = vec![skeleton];
        store_entries.extend(self.install(dir, inputs, &mut linked, lines)?);
        let dists = verify_linked(&site_packages(dir)?, dir, &inputs.pins, &linked)?;
        let completion = Completion {
            digest: inputs.digest(),
            dists,
            store_entries,
        };
        seal(dir, &completion).map_err(io("seal the virtualenv", dir))?;
        Ok(!inputs.pins.is_empty())
    }

    /// `python -m venv --without-pip`: the interpreter linked in, no seed packages.
    ///
    /// The interpreter is symlinked (venv's default on Linux, as st2's virtualenv does), not
    /// copied with `--copies`: a copy would be a second binary per env that could drift from
    /// the standard library it loads from `home` (an in-place patch upgrade of the base
    /// interpreter), while a different interpreter is a different env digest anyway.
    ///
    /// Run once per interpreter and setting, into the distribution store, which every
    /// virtualenv is then linked from ([`Self::create_venv`]).
    fn run_venv(&self, dir: &Path, system_site_packages: bool) -> Result<(), EnvError> {
        let mut command = self.command();
        command.args(["-m", "venv", "--without-pip"]);
        if system_site_packages {
            command.arg("--system-site-packages");
        }
        let output = self.output(command.arg(dir))?;
        tracing::debug!(
            env = %dir.display(),
            output = %output_tail(&output),
            "python -m venv finished"
        );
        if output.status.success() {
            return Ok(());
        }
        Err(EnvError::Venv {
            dir: dir.to_path_buf(),
            status: output.status,
            output: output_tail(&output),
        })
    }

    /// Installs the resolved files, exactly those, from the compiled-distribution store
    /// (`dists`), which the installer fills from the mirror with what it lacks; the store
    /// entries linked. No requirements, no installer run.
    /// The files hard-linked from the store go into `linked`.
    fn install(
        &self,
        dir: &Path,
        inputs: &EnvInputs,
        linked: &mut HashSet<PathBuf>,
        lines: Lines<'_>,
    ) -> Result<Vec<String>, EnvError> {
        if inputs.pins.is_empty() {
            return Ok(Vec::new());
        }
        let work = dir.join(BUILD_FILES);
        fs_err::create_dir(&work).map_err(io("create", &work))?;
        let entries =
            self.install_from_store(dir, &inputs.python, &inputs.pins, &work, linked, lines)?;
        fsx::remove_tree(&work).map_err(io("remove", &work))?;
        Ok(entries)
    }

    /// Installs exactly `pins` for the interpreter `python`: into its environment, or into the
    /// folder `target` (`--target`, for a runner set). `work` holds the requirement file.
    pub fn install_pins(
        &self,
        pins: &[Pin],
        python: &Path,
        target: Option<&Path>,
        extra_links: &[&Path],
        work: &Path,
    ) -> Result<(), EnvError> {
        let run = InstallerRun {
            target,
            extra_links,
            ..InstallerRun::into_env(Bytecode::ByInstaller, &|_| {})
        };
        self.install_pins_with(pins, python, work, run)
    }

    /// [`Self::install_pins`] as `run` says.
    fn install_pins_with(
        &self,
        pins: &[Pin],
        python: &Path,
        work: &Path,
        run: InstallerRun<'_>,
    ) -> Result<(), EnvError> {
        let InstallerRun {
            target,
            extra_links,
            bytecode,
            lines,
        } = run;
        let pinned_file = self.write_pinned(pins, extra_links, work)?;
        let mut command = self.installer_command(python, bytecode);
        if let Some(target) = target {
            command.arg("--target").arg(target);
        }
        for dir in extra_links {
            command.arg("--find-links").arg(dir);
        }
        command
            .args([
                "--no-index",
                "--no-deps",
                "--require-hashes",
                "--find-links",
            ])
            .arg(&self.mirror)
            .arg("-r")
            .arg(&pinned_file);
        let output = self
            .children
            .output_lines(&mut command, lines)
            .map_err(|source| EnvError::Spawn {
                program: self.installer_program().to_path_buf(),
                source,
            })?;
        let dir = target.unwrap_or_else(|| fsx::parent(work));
        tracing::debug!(
            dir = %dir.display(),
            stdout = %String::from_utf8_lossy(&output.stdout),
            stderr = %String::from_utf8_lossy(&output.stderr),
            "installer finished"
        );
        if !output.status.success() {
            return Err(EnvError::Install {
                installer: self.installer_program().to_path_buf(),
                dir: dir.to_path_buf(),
                mirror: self.mirror.clone(),
                status: output.status,
                output: output_tail(&output),
            });
        }
        Ok(())
    }

    /// The configured installer's `install` into the environment of `python`.
    fn installer_command(&self, python: &Path, bytecode: Bytecode) -> Command {
        match &self.installer {
            Installer::Pip => {
                let mut command = self.command();
                command
                    .args(["-m", "pip", "--python"])
                    .arg(python)
                    .args([
                        "install",
                        "--isolated",
                        "--no-input",
                        "--disable-pip-version-check",
                        // Every pin into the venv, even one the base interpreter or st2 has.
                        "--ignore-installed",
                    ])
                    .arg("--no-cache-dir");
                if bytecode == Bytecode::Later {
                    command.arg("--no-compile");
                }
                command
            }
            Installer::Uv(uv) => {
                let mut command = clean_command(uv);
                command
                    .args(["pip", "install", "--python"])
                    .arg(python)
                    .args([
                        "--offline",
                        "--no-config",
                        "--compile-bytecode",
                        "--link-mode=copy",
                    ])
                    .arg("--cache-dir")
                    .arg(&self.uv_cache);
                command
            }
        }
    }

    /// Writes `work/pinned.txt`, the requirement file naming exactly `pins` with their sha256,
    /// after checking each file (in the mirror, or built into one of `extra_links`) has it.
    fn write_pinned(
        &self,
        pins: &[Pin],
        extra_links: &[&Path],
        work: &Path,
    ) -> Result<PathBuf, EnvError> {
        // The installer refuses a swapped file too; checking first names the file plainly.
        let mut pinned = String::new();
        for pin in pins {
            let built = extra_links
                .iter()
                .map(|dir| dir.join(&pin.file))
                .find(|path| path.is_file());
            let path = built.clone().unwrap_or_else(|| self.mirror.join(&pin.file));
            let actual = crate::mirror::sha256_file(&path).map_err(io("read", &path))?;
            if actual != pin.sha256 {
                return Err(EnvError::Swapped {
                    path,
                    expected: pin.sha256.clone(),
                    actual,
                });
            }
            // A wheel built from source is named by its path: the mirror may hold a file of the
            // same name (the same version), which the installer would take and refuse.
            let _ = match built {
                Some(path) => writeln!(pinned, "{} --hash=sha256:{}", path.display(), pin.sha256),
                None => writeln!(
                    pinned,
                    "{}=={} --hash=sha256:{}",
                    pin.name, pin.version, pin.sha256
                ),
            };
        }
        let pinned_file = work.join("pinned.txt");
        fs_err::write(&pinned_file, pinned).map_err(io("write", &pinned_file))?;
        Ok(pinned_file)
    }

    /// Builds a wheel of the project at `project` into `out`, offline: `pip wheel --no-deps`,
    /// its build backend installed from the mirror (build isolation).
    pub fn build_wheel(&self, project: &Path, out: &Path) -> Result<(), EnvError> {
        let mut command = self.command();
        command
            .args([
                "-m",
                "pip",
                "wheel",
                "--isolated",
                "--no-input",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--no-deps",
                "--no-index",
                "--find-links",
            ])
            .arg(&self.mirror)
            .arg("--wheel-dir")
            .arg(out)
            .arg(project);
        let (output, timed_out) = self
            .children
            .output_within(&mut command, self.build_timeout)
            .map_err(|source| EnvError::Spawn {
                program: self.python.clone(),
                source,
            })?;
        if timed_out {
            return Err(EnvError::TimedOut {
                project: project.to_path_buf(),
                timeout: self.build_timeout.unwrap_or_default(),
                output: output_tail(&output),
            });
        }
        tracing::debug!(
            project = %project.display(),
            stdout = %String::from_utf8_lossy(&output.stdout),
            stderr = %String::from_utf8_lossy(&output.stderr),
            "pip wheel finished"
        );
        if output.status.success() {
            return Ok(());
        }
        Err(EnvError::Install {
            installer: self.python.clone(),
            dir: out.to_path_buf(),
            mirror: self.mirror.clone(),
            status: output.status,
            output: output_tail(&output),
        })
    }

    fn installer_program(&self) -> &Path {
        match &self.installer {
            Installer::Pip => &self.python,
            Installer::Uv(uv) => uv,
        }
    }

    /// The configured interpreter in a clean environment: nothing of packsync's environment
    /// (proxies, `PIP_*`, `PYTHON*`) reaches pip, so the build depends on the env inputs only.
    /// `-I` keeps the working folder and user site-packages off `sys.path`.
    fn command(&self) -> Command {
        let mut command = clean_command(&self.python);
        command.arg("-I");
        command
    }

    fn output(&self, command: &mut Command) -> Result<std::process::Output, EnvError> {
        self.children
            .output(command)
            .map_err(|source| EnvError::Spawn {
                program: self.python.clone(),
                source,
            })
    }
}

/// How one installer run goes, beyond the pins it installs for an interpreter.
#[derive(Clone, Copy)]
struct InstallerRun<'a> {
    /// `--target`: into this folder (a runner set) instead of the interpreter's environment.
    target: Option<&'a Path>,
    /// More folders to find the pinned files in (runner wheels built from source).
    extra_links: &'a [&'a Path],
    bytecode: Bytecode,
    lines: Lines<'a>,
}

impl<'a> InstallerRun<'a> {
    /// Into the interpreter's environment, from the mirror alone.
    fn into_env(bytecode: Bytecode, lines: Lines<'a>) -> Self {
        Self {
            target: None,
            extra_links: &[],
            bytecode,
            lines,
        }
    }
}

/// Who compiles the bytecode of what pip installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bytecode {
    /// The installer, as it installs.
    ByInstaller,
    /// The caller, after (pip: `--no-compile`; uv compiles in parallel itself, always).
    Later,
}

/// `program` with nothing of packsync's environment but `PATH` and [`CHILD_ENV`].
fn clean_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .envs(CHILD_ENV.iter().copied())
        .stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// uv's cache, under `state_dir`, when `[mirror] installer = "uv"`.
const UV_CACHE: &str = "cache/uv";

/// The setting that makes the base interpreter's site-packages visible.
const SYSTEM_SITE_PACKAGES_SETTING: &str = "system-site-packages";
/// The setting `st2-pth <st2's site-packages>`.
const ST2_PTH_SETTING: &str = "st2-pth ";
/// StackStorm's name for the file, sorted last so that it loads after every other `.pth`.
const ST2_PTH_FILE: &str = "zzzzzzzzzz__st2__.pth";
/// Inside the virtualenv while it is built (and still marked): pip's requirement files.
const BUILD_FILES: &str = ".packsync-build";

/// The whole environment of `python -m venv` and pip, besides `PATH`. pip does not read
/// `PIP_*` variables with `--isolated`; they are set for what it runs (build backends) too.
/// `PYTHONDONTWRITEBYTECODE` stays unset: pip compiles `.pyc` files at install, and the
/// sealed virtualenv is read-only afterwards.
const CHILD_ENV: [(&str, &str); 7] = [
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("PIP_CONFIG_FILE", "/dev/null"),
    ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ("PIP_NO_INPUT", "1"),
    ("PIP_NO_CACHE_DIR", "1"),
    ("PYTHONNOUSERSITE", "1"),
];

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EnvError {
    let path = path.to_path_buf();
    move |source| EnvError::Io {
        action,
        path,
        source,
    }
}

/// Checks that `site_packages` (inside `root`) holds exactly `pins`; what it verified.
pub fn verify_installed(
    site_packages: &Path,
    root: &Path,
    pins: &[Pin],
) -> Result<Vec<VerifiedDist>, EnvError> {
    verify_linked(site_packages, root, pins, &HashSet::new())
}

/// [`verify_installed`], where the files in `linked` are hard links of sealed, verified files
/// of the distribution store and not hashed again.
fn verify_linked(
    site_packages: &Path,
    root: &Path,
    pins: &[Pin],
    linked: &HashSet<PathBuf>,
) -> Result<Vec<VerifiedDist>, EnvError> {
    verify::verify(site_packages, root, pins, linked).map_err(|problems| EnvError::Unverified {
        dir: root.to_path_buf(),
        problems,
    })
}

/// Writes st2's `.pth` file, which makes the `.pth` files of StackStorm's own site-packages
/// load in the pack virtualenv too, in the words `setup_pack_virtualenv` uses.
/// What is wrong with the sealed virtualenv `dir` built from `inputs`, checked as if it had
/// just been built, every file hashed again: its completion record, its pinned distributions
/// and every file their `RECORD`s hash, and no file in its site-packages that no `RECORD`
/// names. Empty when nothing is. (Bytecode is not checked: installers record it unhashed.)
pub fn audit(dir: &Path, inputs: &EnvInputs) -> Vec<String> {
    let mut problems = Vec::new();
    if !store::is_complete(dir, &inputs.digest()) {
        problems.push(format!(
            "`{}` has no completion record for its inputs",
            dir.display()
        ));
    }
    let site = match site_packages(dir) {
        Ok(site) => site,
        Err(err) if inputs.pins.is_empty() => {
            tracing::debug!(error = %err, "no site-packages in an env without pins");
            return problems;
        }
        Err(err) => {
            problems.push(Report::new(&err).one_line());
            return problems;
        }
    };
    if let Err(found) = verify::verify(&site, dir, &inputs.pins, &HashSet::new()) {
        problems.extend(found);
    }
    match verify::unowned(&site, &[ST2_PTH_FILE]) {
        Ok(unowned) => problems.extend(
            unowned
                .into_iter()
                .map(|path| format!("`{}` is in site-packages but in no RECORD", path.display())),
        ),
        Err(err) => problems.push(format!("cannot list `{}`: {err}", site.display())),
    }
    problems
}

fn write_st2_pth(dir: &Path, st2_site_packages: &Path) -> Result<(), EnvError> {
    let site_packages = site_packages(dir)?;
    let path = site_packages.join(ST2_PTH_FILE);
    // A Python string literal: the path inside quotes, backslashes and quotes escaped.
    let literal = st2_site_packages
        .to_string_lossy()
        .replace('\\', r"\\")
        .replace('\'', r"\'");
    let content = format!(
        "# Written by packsync, as StackStorm's setup_pack_virtualenv does.\n\
         import sys; addsitedir('{literal}', known_paths)\n"
    );
    fs_err::write(&path, content).map_err(io("write", &path))
}

/// `dir/lib/python*/site-packages`, the first one, as st2's `get_virtualenv_lib_path` finds it.
fn site_packages(dir: &Path) -> Result<PathBuf, EnvError> {
    let lib = dir.join("lib");
    let mut candidates: Vec<PathBuf> = fs_err::read_dir(&lib)
        .map_err(io("read", &lib))?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python"))
        .map(|entry| entry.path().join("site-packages"))
        .filter(|path| path.is_dir())
        .collect();
    candidates.sort();
    candidates.into_iter().next().ok_or_else(|| {
        io("find site-packages in", &lib)(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no `python*/site-packages` folder",
        ))
    })
}

/// Makes the built folder read-only and complete, in an order that never shows a complete
/// folder that is not final: every entry read-only first, then everything flushed to disk
/// (`syncfs`: one call rather than an fsync per file), then the completion record written
/// (which needs the top folder still writable), then the top folder read-only.
pub(crate) fn seal(dir: &Path, completion: &Completion) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        fsx::make_read_only(&entry?.path())?;
    }
    rustix::fs::syncfs(fs_err::File::open(dir)?)?;
    store::write_completion(dir, completion)?;
    let mode = fs_err::metadata(dir)?.permissions().mode();
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o222))?;
    fsx::fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::os::unix::fs::MetadataExt as _;
    use std::process::Output;
    use std::sync::LazyLock;

    use super::*;

    /// The interpreter itself, not a pyenv shim (which takes a good part of a second to start).
    static PYTHON: LazyLock<PathBuf> = LazyLock::new(|| {
        let output = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("tests need python3");
        assert!(output.status.success(), "{output:?}");
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    });

    /// A temp folder removed with its read-only virtualenvs (`TempDir` cannot, unless root).
    struct Scratch(tempfile::TempDir);

    impl Scratch {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        /// A mirror folder with `name-version` wheels, and a builder reading it.
        fn builder(&self, wheels: &[(&str, &str)]) -> EnvBuilder {
            let mirror = self.path().join("mirror");
            fs_err::create_dir_all(&mirror).unwrap();
            for (name, version) in wheels {
                let output = Command::new(&*PYTHON)
                    .arg(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tests/fixtures/make_dist.py"
                    ))
                    .args(["--wheel", name, version])
                    .arg(&mirror)
                    .output()
                    .unwrap();
                assert!(output.status.success(), "{output:?}");
            }
            EnvBuilder::new(PYTHON.clone(), mirror, Installer::Pip, self.path())
        }

        /// Env inputs pinning the `name-version` wheels of the mirror, with their real sha256.
        fn inputs(
            &self,
            settings: &[&str],
            requirements: &[&str],
            pins: &[(&str, &str)],
        ) -> EnvInputs {
            let mut inputs = inputs(settings, requirements, pins);
            for pin in &mut inputs.pins {
                pin.sha256 =
                    crate::mirror::sha256_file(&self.path().join("mirror").join(&pin.file))
                        .unwrap();
            }
            inputs
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fsx::remove_tree(self.0.path());
        }
    }

    fn inputs(settings: &[&str], requirements: &[&str], pins: &[(&str, &str)]) -> EnvInputs {
        EnvInputs {
            python: "cpython-test".into(),
            settings: settings.iter().map(ToString::to_string).collect(),
            requirements: requirements.iter().map(ToString::to_string).collect(),
            pins: pins
                .iter()
                .map(|(name, version)| Pin {
                    name: (*name).into(),
                    version: (*version).into(),
                    file: format!("{name}-{version}-py3-none-any.whl"),
                    sha256: "00".into(),
                })
                .collect(),
        }
    }

    fn run_python(env: &Path, code: &str) -> Output {
        Command::new(env.join("bin/python"))
            .args(["-c", code])
            .output()
            .unwrap()
    }

    fn stdout_of(env: &Path, code: &str) -> String {
        let output = run_python(env, code);
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    fn pyvenv_cfg(env: &Path) -> String {
        fs_err::read_to_string(env.join("pyvenv.cfg")).unwrap()
    }

    #[test]
    fn an_env_without_requirements_runs_no_pip() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[]);
        let st2_site_packages = scratch.path().join("st2/lib/python3.11/site-packages");

        let open = scratch.path().join("envs/open");
        let open_inputs = inputs(
            &[
                "system-site-packages",
                &format!("st2-pth {}", st2_site_packages.display()),
            ],
            &[],
            &[],
        );
        assert_eq!(
            builder.ensure(&open, &open_inputs, &|_| {}).unwrap(),
            EnvOutcome::Built { pip: false }
        );
        assert!(pyvenv_cfg(&open).contains("include-system-site-packages = true"));
        assert_eq!(stdout_of(&open, "print(6 * 7)"), "42");
        let pth = fs_err::read_to_string(site_packages(&open).unwrap().join(ST2_PTH_FILE)).unwrap();
        assert_eq!(
            pth,
            format!(
                "# Written by packsync, as StackStorm's setup_pack_virtualenv does.\n\
                 import sys; addsitedir('{}', known_paths)\n",
                st2_site_packages.display()
            )
        );
        // Python runs it: st2's site-packages is on the pack virtualenv's path.
        assert!(
            stdout_of(&open, "import sys; print(sys.path)")
                .contains(&st2_site_packages.display().to_string())
        );
        assert!(store::is_complete(&open, &open_inputs.digest()));
        assert!(!open.join(BUILD_FILES).exists());
        let mode = fs_err::metadata(&open).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "{mode:o}");
        assert_eq!(
            fs_err::metadata(open.join("pyvenv.cfg"))
                .unwrap()
                .permissions()
                .mode()
                & 0o222,
            0
        );

        let isolated = scratch.path().join("envs/isolated");
        let isolated_inputs = inputs(&[], &["-c six<2", "--pre"], &[]);
        assert_eq!(
            builder
                .ensure(&isolated, &isolated_inputs, &|_| {})
                .unwrap(),
            EnvOutcome::Built { pip: false }
        );
        assert!(pyvenv_cfg(&isolated).contains("include-system-site-packages = false"));
        assert!(
            !site_packages(&isolated)
                .unwrap()
                .join(ST2_PTH_FILE)
                .exists()
        );

        assert_eq!(
            builder.ensure(&open, &open_inputs, &|_| {}).unwrap(),
            EnvOutcome::Reused
        );
    }

    #[test]
    fn requirements_install_from_the_mirror_at_the_pinned_version() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0"), ("tinydep", "2.0")]);
        let env = scratch.path().join("envs/pinned");
        let inputs = scratch.inputs(
            &[],
            &["--prefer-binary", "-c tinydep>=1", "tinydep>=1"],
            &[("tinydep", "1.0")],
        );
        // What pip says as it installs is told line by line (a live view shows the latest).
        let lines = std::sync::Mutex::new(Vec::new());
        let collect = |line: &str| lines.lock().unwrap().push(line.to_string());
        assert_eq!(
            builder.ensure(&env, &inputs, &collect).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        let lines = lines.into_inner().unwrap();
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("Successfully installed tinydep-1.0")),
            "{lines:#?}"
        );
        assert_eq!(
            stdout_of(&env, "import tinydep; print(tinydep.__version__)"),
            "1.0"
        );
        // Compiled at install: the read-only env never needs to write bytecode.
        let package = site_packages(&env).unwrap().join("tinydep/__pycache__");
        assert!(fs_err::read_dir(&package).unwrap().count() > 0);
        assert!(!env.join(BUILD_FILES).exists());
        let completion = store::read_completion(&env).unwrap();
        assert_eq!(completion.digest, inputs.digest());
        assert_eq!(
            completion.dists,
            [VerifiedDist {
                name: "tinydep".into(),
                version: "1.0".into(),
                files: 5,
            }]
        );
        assert_eq!(
            builder.ensure(&env, &inputs, &|_| {}).unwrap(),
            EnvOutcome::Reused
        );
    }

    /// The uv binary `scripts/with-mongodb` installs (`PACKSYNC_TEST_UV`).
    fn test_uv() -> PathBuf {
        let uv = std::env::var_os("PACKSYNC_TEST_UV")
            .map(PathBuf::from)
            .expect(
                "PACKSYNC_TEST_UV is not set: run the tests with `scripts/test`, which installs uv",
            );
        assert!(
            uv.is_file(),
            "PACKSYNC_TEST_UV `{}` is no file",
            uv.display()
        );
        uv
    }

    /// Every `name-version.dist-info` and module of the env's site-packages, and its `.pyc`s.
    fn installed(env: &Path) -> (Vec<String>, usize) {
        let site = site_packages(env).unwrap();
        let mut names: Vec<String> = fs_err::read_dir(&site)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("_virtualenv") && name != "__pycache__")
            .collect();
        names.sort();
        let pycs = names
            .iter()
            .filter_map(|name| fs_err::read_dir(site.join(name).join("__pycache__")).ok())
            .map(Iterator::count)
            .sum();
        (names, pycs)
    }

    #[test]
    fn uv_builds_the_env_pip_builds() {
        let scratch = Scratch::new();
        let pip = scratch.builder(&[("tinydep", "1.0"), ("otherdep", "2.0")]);
        let uv = EnvBuilder::new(
            PYTHON.clone(),
            scratch.path().join("mirror"),
            Installer::Uv(test_uv()),
            scratch.path(),
        );
        let inputs = scratch.inputs(
            &[],
            &["tinydep"],
            &[("otherdep", "2.0"), ("tinydep", "1.0")],
        );
        let by_pip = scratch.path().join("envs/pip");
        let by_uv = scratch.path().join("envs/uv");
        assert_eq!(
            pip.ensure(&by_pip, &inputs, &|_| {}).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        assert_eq!(
            uv.ensure(&by_uv, &inputs, &|_| {}).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        let (pip_files, pip_pycs) = installed(&by_pip);
        let (uv_files, uv_pycs) = installed(&by_uv);
        assert_eq!(pip_files, uv_files);
        assert!(
            pip_files.contains(&"otherdep-2.0.dist-info".to_string()),
            "{pip_files:?}"
        );
        assert!(
            pip_pycs > 0 && uv_pycs == pip_pycs,
            "bytecode: pip {pip_pycs}, uv {uv_pycs}"
        );
        assert_eq!(
            stdout_of(
                &by_uv,
                "import tinydep, otherdep; print(otherdep.__version__)"
            ),
            "2.0"
        );

        // uv checks the hashes too.
        let mut swapped = scratch.inputs(&[], &["tinydep"], &[("tinydep", "1.0")]);
        swapped.pins[0].sha256 = "1".repeat(64);
        let err = uv
            .ensure(&scratch.path().join("envs/uv-swapped"), &swapped, &|_| {})
            .unwrap_err();
        assert!(matches!(err, EnvError::Swapped { .. }), "{err:?}");
    }

    /// Issue 14: a pin that StackStorm's environment already has at the pinned version is
    /// installed into the pack virtualenv all the same, by pip and by uv: at run time st2's
    /// copy would otherwise be what the action imports.
    #[test]
    fn every_pin_is_installed_even_where_stackstorm_has_it() {
        let scratch = Scratch::new();
        let pip = scratch.builder(&[("tinydep", "1.0")]);
        let mirror = scratch.path().join("mirror");
        let uv = EnvBuilder::new(
            PYTHON.clone(),
            mirror.clone(),
            Installer::Uv(test_uv()),
            scratch.path(),
        );
        let st2_site_packages = scratch.path().join("st2/lib/python3.11/site-packages");
        let output = Command::new(&*PYTHON)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
            ])
            .arg(&mirror)
            .arg("--target")
            .arg(&st2_site_packages)
            .arg("tinydep==1.0")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let inputs = scratch.inputs(
            &[
                "system-site-packages",
                &format!("st2-pth {}", st2_site_packages.display()),
            ],
            &["tinydep"],
            &[("tinydep", "1.0")],
        );
        for (name, builder) in [("pip", &pip), ("uv", &uv)] {
            let env = scratch.path().join("envs").join(name);
            assert_eq!(
                builder.ensure(&env, &inputs, &|_| {}).unwrap(),
                EnvOutcome::Built { pip: true },
                "{name}"
            );
            assert!(
                site_packages(&env)
                    .unwrap()
                    .join("tinydep-1.0.dist-info")
                    .is_dir(),
                "{name} installed its own copy"
            );
            let imported = stdout_of(&env, "import tinydep; print(tinydep.__file__)");
            assert!(
                imported.starts_with(&env.display().to_string()),
                "{name}: {imported}"
            );
            assert_eq!(store::read_completion(&env).unwrap().dists.len(), 1);
        }
    }

    #[test]
    fn a_file_swapped_in_the_mirror_since_resolution_is_refused() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let env = scratch.path().join("envs/swapped");
        let mut inputs = scratch.inputs(&[], &["tinydep"], &[("tinydep", "1.0")]);
        inputs.pins[0].sha256 = "0".repeat(64);
        let err = builder.ensure(&env, &inputs, &|_| {}).unwrap_err();
        let EnvError::Swapped { path, expected, .. } = &err else {
            panic!("unexpected {err:?}");
        };
        assert!(
            path.ends_with("mirror/tinydep-1.0-py3-none-any.whl"),
            "{path:?}"
        );
        assert_eq!(expected, &"0".repeat(64));
        assert!(!env.exists(), "a failed build is removed");
        assert!(err.to_string().starts_with("The mirror file `"), "{err}");
    }

    #[test]
    fn an_unfinished_env_is_rebuilt() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[]);
        let env = scratch.path().join("envs/crashed");
        // What a process that outlived a crashed run wrote: no record.
        fs_err::create_dir_all(env.join("lib")).unwrap();
        fs_err::write(env.join("lib/half-written.py"), "").unwrap();
        assert_eq!(
            builder
                .ensure(&env, &inputs(&[], &[], &[]), &|_| {})
                .unwrap(),
            EnvOutcome::Built { pip: false }
        );
        assert!(!env.join("lib/half-written.py").exists());
        assert!(store::is_complete(&env, &inputs(&[], &[], &[]).digest()));
        assert_eq!(
            fs_err::read_dir(scratch.path().join("envs"))
                .unwrap()
                .count(),
            1,
            "the garbage is gone"
        );
        assert_eq!(stdout_of(&env, "print('ok')"), "ok");
    }

    /// Writes a wheel into the scratch mirror with `make_dist.py --wheel` and `flags`; its pin.
    fn mirror_wheel(scratch: &Scratch, name: &str, flags: &[&str]) -> Pin {
        let output = Command::new(&*PYTHON)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/make_dist.py"
            ))
            .args(["--wheel", name, "1.0"])
            .arg(scratch.path().join("mirror"))
            .args(flags)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let path = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        Pin {
            name: name.into(),
            version: "1.0".into(),
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            sha256: crate::mirror::sha256_file(&path).unwrap(),
        }
    }

    /// Every path under `root` but bytecode, relative, with the sha256 of its content (`root`
    /// in it read as `<env>`; a RECORD line's hash left out, as a script's holds the env's
    /// path), and the `.pyc` names.
    fn tree(root: &Path) -> (BTreeMap<PathBuf, String>, BTreeSet<PathBuf>) {
        let (mut files, mut pycs) = (BTreeMap::new(), BTreeSet::new());
        for (path, file_type) in dists::walk(root).unwrap() {
            if path.extension().is_some_and(|ext| ext == "pyc") {
                pycs.insert(path);
                continue;
            }
            let content = if file_type.is_symlink() {
                format!(
                    "-> {}",
                    fs_err::read_link(root.join(&path)).unwrap().display()
                )
            } else if file_type.is_file() {
                let bytes = fs_err::read(root.join(&path)).unwrap();
                let bytes =
                    dists::replace_all(&bytes, root.as_os_str().as_encoded_bytes(), b"<env>");
                let bytes = if path.ends_with("RECORD") {
                    let mut kept = String::new();
                    for line in String::from_utf8(bytes).unwrap().lines() {
                        let fields: Vec<&str> = line.rsplitn(3, ',').collect();
                        let _ = writeln!(kept, "{},{}", fields[2], fields[0]);
                    }
                    kept.into_bytes()
                } else {
                    bytes
                };
                Digest::sha256(&bytes).short().to_string()
            } else {
                "folder".to_string()
            };
            files.insert(path, content);
        }
        (files, pycs)
    }

    /// A builder and env inputs pinning `tinydep`, a wheel that installs everywhere (console
    /// script, script, `.pth`, data file) and one with a C extension.
    fn rich_site(scratch: &Scratch) -> (EnvBuilder, EnvInputs) {
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let mut inputs = scratch.inputs(&[], &["rich-dist", "fastdep"], &[("tinydep", "1.0")]);
        inputs.pins.push(mirror_wheel(
            scratch,
            "rich-dist",
            &["--installs-everywhere"],
        ));
        inputs
            .pins
            .push(mirror_wheel(scratch, "fastdep", &["--c-extension"]));
        (builder, inputs)
    }

    /// Issue 19: a virtualenv linked from the compiled-distribution store holds what the
    /// installer puts in one (console scripts, scripts, a `.pth`, data files, a C extension),
    /// runs the same, and passes `pip check`.
    #[test]
    fn an_env_from_the_store_is_what_the_installer_builds() {
        let scratch = Scratch::new();
        let (builder, inputs) = rich_site(&scratch);

        // The reference: the installer straight into a virtualenv, as before the store. The
        // same folder name (venv writes it into the activate scripts' prompt), and a path as
        // long (a RECORD has each script's size).
        let by_installer = scratch.path().join("pips/env");
        builder.run_venv(&by_installer, false).unwrap();
        let work = scratch.path().join("work");
        fs_err::create_dir_all(&work).unwrap();
        builder
            .install_pins(
                &inputs.pins,
                &by_installer.join("bin/python"),
                None,
                &[],
                &work,
            )
            .unwrap();

        let from_store = scratch.path().join("envs/env");
        assert_eq!(
            builder.ensure(&from_store, &inputs, &|_| {}).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        let (mut expected, expected_pycs) = tree(&by_installer);
        let (mut linked, linked_pycs) = tree(&from_store);
        expected.remove(Path::new(store::COMPLETE_RECORD));
        linked.remove(Path::new(store::COMPLETE_RECORD));
        assert_eq!(linked, expected);
        assert_eq!(linked_pycs, expected_pycs);
        assert!(linked_pycs.len() >= 3, "{linked_pycs:?}");

        // It runs as the installer's does, from its own path.
        let env = from_store.display().to_string();
        let hello = Command::new(from_store.join("bin/rich_dist-hello"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&hello.stdout),
            format!("hello from {env}/lib/python3.11/site-packages/rich_dist/__init__.py\n"),
            "{hello:?}"
        );
        let tool = Command::new(from_store.join("bin/rich_dist-tool"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&tool.stdout),
            "tool 1.0\n",
            "{tool:?}"
        );
        assert_eq!(
            stdout_of(
                &from_store,
                "import extra_rich_dist, fastdep_speedups, tinydep; \
                 print(extra_rich_dist.ANSWER, fastdep_speedups.answer(), \
                 tinydep.__version__, tinydep.__spec__.cached)"
            ),
            format!(
                "from the pth 42 1.0 {env}/lib/python3.11/site-packages/tinydep/__pycache__/\
                 __init__.cpython-311.pyc"
            )
        );
        // Bytecode compiled in the store, its code named after the env's file.
        assert_eq!(
            stdout_of(
                &from_store,
                "import rich_dist; print(rich_dist.hello.__code__.co_filename)"
            ),
            format!("{env}/lib/python3.11/site-packages/rich_dist/__init__.py")
        );
        assert_eq!(
            fs_err::read_to_string(from_store.join("share/rich_dist/rich_dist.txt")).unwrap(),
            "data of rich-dist\n"
        );
        let check = Command::new(&*PYTHON)
            .args(["-m", "pip", "--python"])
            .arg(from_store.join("bin/python"))
            .arg("check")
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
    }

    /// Issue 19: an env's files are links of a sealed store entry its record names; a second
    /// env takes its pins from the store without the installer (the mirror is gone by then);
    /// removing an env leaves the store sealed.
    #[test]
    fn envs_share_the_sealed_files_of_the_store() {
        let scratch = Scratch::new();
        let (builder, inputs) = rich_site(&scratch);
        let first = scratch.path().join("envs/first");
        builder.ensure(&first, &inputs, &|_| {}).unwrap();

        let module = Path::new("lib/python3.11/site-packages/tinydep/__init__.py");
        let completion = store::read_completion(&first).unwrap();
        // The virtualenv's own files (`python -m venv`), and one per distribution.
        assert_eq!(completion.store_entries.len(), 4);
        let stored = completion
            .store_entries
            .iter()
            .map(|name| store::dist_root(scratch.path()).join(name).join(module))
            .find(|path| path.is_file())
            .expect("an entry holds tinydep");
        let (linked_meta, stored_meta) = (
            fs_err::metadata(first.join(module)).unwrap(),
            fs_err::metadata(&stored).unwrap(),
        );
        assert_eq!(linked_meta.ino(), stored_meta.ino());
        assert_eq!(stored_meta.permissions().mode() & 0o222, 0);

        // A second env with these pins needs no installer: the mirror is gone.
        fsx::remove_tree(&scratch.path().join("mirror")).unwrap();
        let mut again = inputs.clone();
        again.requirements.push("tinydep".into());
        let second = scratch.path().join("envs/second");
        assert_eq!(
            builder.ensure(&second, &again, &|_| {}).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        assert_eq!(
            stdout_of(
                &second,
                "import fastdep_speedups; print(fastdep_speedups.answer())"
            ),
            "42"
        );
        assert_eq!(
            store::read_completion(&second).unwrap().store_entries,
            completion.store_entries
        );

        // Removing an env leaves the files it shared read-only.
        fsx::remove_tree(&first).unwrap();
        fsx::remove_tree(&second).unwrap();
        assert_eq!(
            fs_err::metadata(&stored).unwrap().permissions().mode() & 0o222,
            0
        );
    }

    /// A batch is split into one share per distribution (what its RECORD names, its
    /// `.dist-info`, its bytecode); two distributions writing one file cannot be told apart,
    /// and the batch is then filled one by one.
    #[test]
    fn a_batch_splits_by_distribution_unless_two_write_one_file() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let tinydep = scratch
            .inputs(&[], &[], &[("tinydep", "1.0")])
            .pins
            .remove(0);
        let [one, two] = ["ns-one", "ns-two"]
            .map(|name| mirror_wheel(&scratch, name, &["--also", "shared/__init__.py"]));
        let batch = |name: &str, pins: &[Pin]| {
            let root = scratch.path().join(name);
            builder.run_venv(&root, false).unwrap();
            let skeleton: BTreeSet<PathBuf> = dists::walk(&root)
                .unwrap()
                .into_iter()
                .map(|(path, _)| path)
                .collect();
            let work = scratch.path().join(format!("{name}-work"));
            fs_err::create_dir_all(&work).unwrap();
            builder
                .install_pins(pins, &root.join("bin/python"), None, &[], &work)
                .unwrap();
            let added: BTreeSet<PathBuf> = dists::walk(&root)
                .unwrap()
                .into_iter()
                .filter(|(path, kind)| !kind.is_dir() && !skeleton.contains(path))
                .map(|(path, _)| path)
                .collect();
            let site = site_packages(&root).unwrap();
            dists::split(&root, &site, pins, added).unwrap()
        };

        let shares = batch("apart", &[tinydep.clone(), one.clone()]).expect("split");
        let names = |share: &BTreeSet<PathBuf>| -> Vec<String> {
            share
                .iter()
                .map(|path| {
                    path.strip_prefix("lib/python3.11/site-packages")
                        .unwrap_or(path)
                        .display()
                        .to_string()
                })
                .collect()
        };
        assert_eq!(
            names(&shares[0]),
            [
                "tinydep/__init__.py",
                "tinydep/__pycache__/__init__.cpython-311.pyc",
                "tinydep-1.0.dist-info/INSTALLER",
                "tinydep-1.0.dist-info/METADATA",
                "tinydep-1.0.dist-info/RECORD",
                "tinydep-1.0.dist-info/REQUESTED",
                "tinydep-1.0.dist-info/WHEEL",
            ]
        );
        assert!(
            names(&shares[1]).contains(&"shared/__init__.py".to_string()),
            "{:?}",
            shares[1]
        );
        assert_eq!(
            batch("together", &[one, two]).unwrap_err(),
            "`lib/python3.11/site-packages/shared/__init__.py` belongs to two distributions"
        );
    }

    /// An entry a crash left unfinished is filled again; a finished one is reused.
    #[test]
    fn an_unfinished_store_entry_is_filled_again() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let inputs = scratch.inputs(&[], &["tinydep"], &[("tinydep", "1.0")]);
        let first = scratch.path().join("envs/first");
        builder.ensure(&first, &inputs, &|_| {}).unwrap();
        let entry = store::dist_root(scratch.path())
            .join(&store::read_completion(&first).unwrap().store_entries[0]);
        // What a crash between the install and the record leaves: no record, a stray file.
        fsx::remove_tree(&entry.join(store::COMPLETE_RECORD)).unwrap();
        fsx::remove_tree(&entry.join("lib/python3.11/site-packages/tinydep")).unwrap();

        let mut again = inputs.clone();
        again.requirements.push("tinydep>=1".into());
        let second = scratch.path().join("envs/second");
        builder.ensure(&second, &again, &|_| {}).unwrap();
        assert!(store::read_completion(&entry).is_some());
        assert_eq!(
            stdout_of(&second, "import tinydep; print(tinydep.__version__)"),
            "1.0"
        );
    }

    #[test]
    fn concurrent_callers_with_the_same_inputs_build_once() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let env = scratch.path().join("envs/shared");
        let inputs = scratch.inputs(&[], &["tinydep"], &[("tinydep", "1.0")]);
        let mut outcomes: Vec<EnvOutcome> = std::thread::scope(|scope| {
            let callers: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| builder.ensure(&env, &inputs, &|_| {}).unwrap()))
                .collect();
            callers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        outcomes.sort_by_key(|outcome| matches!(outcome, EnvOutcome::Reused));
        assert_eq!(
            outcomes,
            [EnvOutcome::Built { pip: true }, EnvOutcome::Reused]
        );
        assert_eq!(
            stdout_of(&env, "import tinydep; print(tinydep.__version__)"),
            "1.0"
        );
    }
}
