//! Pack virtualenvs, built offline from the wheel mirror and keyed by env digest: packs with
//! the same inputs share one, and a virtualenv is never changed once built.
//!
//! A virtualenv holds its absolute path in its scripts, so it is built where it stays,
//! `envs/<digest>`, with a [`BUILDING_MARKER`] file removed last: a folder that still has
//! the marker is garbage (see `store::prepare`).
//!
//! The build follows StackStorm's `setup_pack_virtualenv`, as the env inputs' settings say:
//! `python -m venv --without-pip [--system-site-packages]` (milliseconds, where seeding pip
//! takes seconds), then the configured interpreter's own pip installs into it
//! (`pip --python <venv>`) with `--no-index --find-links <mirror>` in a clean environment (no
//! proxy or `PIP_*` variables, no user config, no version check, no prompt), with the pinned
//! versions as constraints; then st2's `zzzzzzzzzz__st2__.pth` when asked for. No requirements
//! means no pip at all.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::config::{Installer, SiteConfig};
use crate::diagnostics::{Diagnose, output_tail};
use crate::fsx;
use crate::model::{Digest, EnvInputs, Pin};
use crate::store::BUILDING_MARKER;

/// Builds virtualenvs; one per digest at a time, whatever the number of threads asking.
#[derive(Debug)]
pub struct EnvBuilder {
    python: PathBuf,
    mirror: PathBuf,
    installer: Installer,
    /// uv's cache (wheels unpacked once), under `state_dir`.
    uv_cache: PathBuf,
    /// One lock per env digest, so that a second pack with the same inputs waits for the first
    /// build and then reuses it.
    building: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
}

/// What [`EnvBuilder::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvOutcome {
    /// Created now; `pip` says whether pip ran (it does not without requirements).
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
}

impl Diagnose for EnvError {
    fn hint(&self) -> Option<String> {
        match self {
            EnvError::Install { .. } => Some(
                "the installer refused the resolved files: check the mirror files it names \
                 (an sdist needs its build backend as a wheel in the mirror); nothing was switched"
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
            config.agent.state_dir.join(UV_CACHE),
        )
    }

    pub fn new(python: PathBuf, mirror: PathBuf, installer: Installer, uv_cache: PathBuf) -> Self {
        Self {
            python,
            mirror,
            installer,
            uv_cache,
            building: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the virtualenv for `inputs` exists complete at `dir` (`envs/<digest>`),
    /// building it when it does not. A folder with the building marker is removed first.
    pub fn ensure(&self, dir: &Path, inputs: &EnvInputs) -> Result<EnvOutcome, EnvError> {
        let digest = inputs.digest();
        let lock = Arc::clone(
            self.building
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(digest.clone())
                .or_default(),
        );
        // Held for the whole build: a second caller with the same inputs finds it complete. A
        // build that panicked left its marker, so the poisoned lock is safe to take over.
        let _building = lock.lock().unwrap_or_else(PoisonError::into_inner);

        match fs_err::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() && !has_marker(dir).map_err(io("read", dir))? => {
                tracing::debug!(env = %dir.display(), "virtualenv already built");
                return Ok(EnvOutcome::Reused);
            }
            Ok(_) => {
                tracing::info!(env = %dir.display(), "removing an unfinished virtualenv");
                fsx::remove_tree(dir).map_err(io("remove the unfinished virtualenv", dir))?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io("read", dir)(err)),
        }

        tracing::info!(env = %dir.display(), digest = %digest.short(), "building virtualenv");
        let started = Instant::now();
        let built = self.build(dir, inputs);
        if built.is_err() {
            // Still marked, so removing it is only tidiness: the next run would do it.
            if let Err(err) = fsx::remove_tree(dir) {
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
    fn build(&self, dir: &Path, inputs: &EnvInputs) -> Result<bool, EnvError> {
        create_marked(dir).map_err(io("create the virtualenv folder", dir))?;
        self.create_venv(dir, inputs)?;
        let pip = self.install(dir, inputs)?;
        if let Some(st2_site_packages) = inputs
            .settings
            .iter()
            .find_map(|setting| setting.strip_prefix(ST2_PTH_SETTING))
        {
            write_st2_pth(dir, Path::new(st2_site_packages.trim()))?;
        }
        seal(dir).map_err(io("seal the virtualenv", dir))?;
        Ok(pip)
    }

    /// `python -m venv --without-pip`: the interpreter linked in, no seed packages.
    ///
    /// The interpreter is symlinked (venv's default on Linux, as st2's virtualenv does), not
    /// copied with `--copies`: a copy would be a second binary per env that could drift from
    /// the standard library it loads from `home` (an in-place patch upgrade of the base
    /// interpreter), while a different interpreter is a different env digest anyway.
    fn create_venv(&self, dir: &Path, inputs: &EnvInputs) -> Result<(), EnvError> {
        let mut command = self.command();
        command.args(["-m", "venv", "--without-pip"]);
        if inputs
            .settings
            .iter()
            .any(|setting| setting == SYSTEM_SITE_PACKAGES_SETTING)
        {
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

    /// Installs the resolved files from the mirror, exactly those (`--no-deps`) and only with
    /// the sha256 they were resolved with (`--require-hashes`); `false` when there are none
    /// (no installer run).
    fn install(&self, dir: &Path, inputs: &EnvInputs) -> Result<bool, EnvError> {
        if inputs.pins.is_empty() {
            return Ok(false);
        }
        let work = dir.join(BUILD_FILES);
        fs_err::create_dir(&work).map_err(io("create", &work))?;
        self.install_pins(&inputs.pins, &dir.join("bin/python"), None, &[], &work)?;
        fsx::remove_tree(&work).map_err(io("remove", &work))?;
        Ok(true)
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
        // The installer refuses a swapped file too; checking first names the file plainly.
        for pin in pins {
            let path = extra_links
                .iter()
                .map(|dir| dir.join(&pin.file))
                .find(|path| path.is_file())
                .unwrap_or_else(|| self.mirror.join(&pin.file));
            let actual = crate::mirror::sha256_file(&path).map_err(io("read", &path))?;
            if actual != pin.sha256 {
                return Err(EnvError::Swapped {
                    path,
                    expected: pin.sha256.clone(),
                    actual,
                });
            }
        }
        let pinned_file = work.join("pinned.txt");
        let mut pinned = String::new();
        for pin in pins {
            let _ = writeln!(
                pinned,
                "{}=={} --hash=sha256:{}",
                pin.name, pin.version, pin.sha256
            );
        }
        fs_err::write(&pinned_file, pinned).map_err(io("write", &pinned_file))?;

        let mut command = match &self.installer {
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
                    ])
                    .arg("--no-cache-dir");
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
        };
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
        let output = command.output().map_err(|source| EnvError::Spawn {
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
        let output = self.output(&mut command)?;
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
        command.output().map_err(|source| EnvError::Spawn {
            program: self.python.clone(),
            source,
        })
    }
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

pub(crate) fn has_marker(dir: &Path) -> std::io::Result<bool> {
    dir.join(BUILDING_MARKER).try_exists()
}

/// Creates `dir` holding only the building marker. It is made as a temp sibling and renamed,
/// so that `dir` never exists without its marker, even after a crash right after `mkdir`.
pub(crate) fn create_marked(dir: &Path) -> std::io::Result<()> {
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map_or_else(|| "env".into(), |name| name.to_string_lossy());
    let tmp = parent.join(format!(".{name}.new"));
    fs_err::create_dir_all(parent)?;
    fsx::remove_tree(&tmp)?;
    fs_err::create_dir(&tmp)?;
    fs_err::File::create(tmp.join(BUILDING_MARKER))?.sync_all()?;
    fsx::fsync_dir(&tmp)?;
    fs_err::rename(&tmp, dir)?;
    fsx::fsync_dir(parent)
}

/// Writes st2's `.pth` file, which makes the `.pth` files of StackStorm's own site-packages
/// load in the pack virtualenv too, in the words `setup_pack_virtualenv` uses.
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

/// Makes the built virtualenv read-only and complete, in an order that never shows a complete
/// env that is not final: every entry read-only first, then everything flushed to disk
/// (`syncfs`: one call rather than an fsync per file), then the marker removed (which needs the
/// top folder still writable), then the top folder read-only and the removal made durable.
pub(crate) fn seal(dir: &Path) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() != BUILDING_MARKER {
            fsx::make_read_only(&entry.path())?;
        }
    }
    rustix::fs::syncfs(fs_err::File::open(dir)?)?;
    fs_err::remove_file(dir.join(BUILDING_MARKER))?;
    let mode = fs_err::metadata(dir)?.permissions().mode();
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o222))?;
    fsx::fsync_dir(dir)
}

#[cfg(test)]
mod tests {
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
            EnvBuilder::new(
                PYTHON.clone(),
                mirror,
                Installer::Pip,
                self.path().join("uv-cache"),
            )
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
            builder.ensure(&open, &open_inputs).unwrap(),
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
        assert!(!open.join(BUILDING_MARKER).exists());
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
            builder.ensure(&isolated, &isolated_inputs).unwrap(),
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
            builder.ensure(&open, &open_inputs).unwrap(),
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
        assert_eq!(
            builder.ensure(&env, &inputs).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        assert_eq!(
            stdout_of(&env, "import tinydep; print(tinydep.__version__)"),
            "1.0"
        );
        // Compiled at install: the read-only env never needs to write bytecode.
        let package = site_packages(&env).unwrap().join("tinydep/__pycache__");
        assert!(fs_err::read_dir(&package).unwrap().count() > 0);
        assert!(!env.join(BUILD_FILES).exists());
        assert!(!env.join(BUILDING_MARKER).exists());
        assert_eq!(builder.ensure(&env, &inputs).unwrap(), EnvOutcome::Reused);
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
            scratch.path().join("uv-cache"),
        );
        let inputs = scratch.inputs(
            &[],
            &["tinydep"],
            &[("otherdep", "2.0"), ("tinydep", "1.0")],
        );
        let by_pip = scratch.path().join("envs/pip");
        let by_uv = scratch.path().join("envs/uv");
        assert_eq!(
            pip.ensure(&by_pip, &inputs).unwrap(),
            EnvOutcome::Built { pip: true }
        );
        assert_eq!(
            uv.ensure(&by_uv, &inputs).unwrap(),
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
            .ensure(&scratch.path().join("envs/uv-swapped"), &swapped)
            .unwrap_err();
        assert!(matches!(err, EnvError::Swapped { .. }), "{err:?}");
    }

    #[test]
    fn a_file_swapped_in_the_mirror_since_resolution_is_refused() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let env = scratch.path().join("envs/swapped");
        let mut inputs = scratch.inputs(&[], &["tinydep"], &[("tinydep", "1.0")]);
        inputs.pins[0].sha256 = "0".repeat(64);
        let err = builder.ensure(&env, &inputs).unwrap_err();
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
        fs_err::create_dir_all(env.join("lib")).unwrap();
        fs_err::write(env.join(BUILDING_MARKER), "").unwrap();
        fs_err::write(env.join("lib/half-written.py"), "").unwrap();
        assert_eq!(
            builder.ensure(&env, &inputs(&[], &[], &[])).unwrap(),
            EnvOutcome::Built { pip: false }
        );
        assert!(!env.join("lib/half-written.py").exists());
        assert!(!env.join(BUILDING_MARKER).exists());
        assert_eq!(stdout_of(&env, "print('ok')"), "ok");
    }

    #[test]
    fn concurrent_callers_with_the_same_inputs_build_once() {
        let scratch = Scratch::new();
        let builder = scratch.builder(&[("tinydep", "1.0")]);
        let env = scratch.path().join("envs/shared");
        let inputs = scratch.inputs(&[], &["tinydep"], &[("tinydep", "1.0")]);
        let mut outcomes: Vec<EnvOutcome> = std::thread::scope(|scope| {
            let callers: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| builder.ensure(&env, &inputs).unwrap()))
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
