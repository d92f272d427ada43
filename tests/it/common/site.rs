//! A whole site in a temp dir: a wheel mirror, pack repos, a site config pointing at them, and
//! the real `packsync` binary run against it.
//!
//! ```ignore
//! let mut site = TestSite::new();
//! site.wheel("six", "1.17.0", &[]);
//! let clush = site.pack_repo("clush", "1.0.0");
//! site.add_pack(PackEntry::new("clush", clush.path()));
//! packsync_snapshot!(site, site.cmd(["plan"]), @"...");
//! ```
//!
//! Every path of the site is inside the temp dir and every command sees a clean environment, so
//! the output is the same on every machine once [`TestSite::filters`] hides the temp dir, the
//! commit ids and the digests.

// A fixture that cannot be built fails its test at once; `fs_err` names what failed.
#![allow(clippy::unwrap_used, reason = "fixture builders panic on failure")]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use packsync::desired::{self, WorkTrees};
use packsync::model::ReleaseId;
use packsync::state::{ActiveRelease, PackRecord, ReleaseRecord};
use packsync::store::{Completion, Layout, ReleaseManifest};
use tempfile::TempDir;

use super::git::GitRepo;
use super::mongo;
use super::wheels::make_wheel;

/// Runs a command of a [`TestSite`] and compares its exit code, stdout and stderr, filtered, with
/// an inline snapshot. The unfiltered output is printed too, shown when the snapshot differs.
macro_rules! packsync_snapshot {
    ($site:expr, $command:expr, @$snapshot:literal) => {{
        $crate::common::site::output_snapshot!(
            $site,
            $crate::common::site::run($command),
            @$snapshot
        );
    }};
}
pub(crate) use packsync_snapshot;

/// [`packsync_snapshot!`] for an output already run (and edited, e.g. a hash replaced).
macro_rules! output_snapshot {
    ($site:expr, $output:expr, @$snapshot:literal) => {{
        let output: String = $output;
        eprintln!("unfiltered output:\n{output}");
        let filters = $site.filters();
        let filters: Vec<(&str, &str)> = filters
            .iter()
            .map(|(pattern, replacement)| (pattern.as_str(), replacement.as_str()))
            .collect();
        // The apply scenarios run once per state backend and must print the same: the same
        // inline snapshot is asserted twice.
        insta::allow_duplicates! {
            insta::with_settings!({filters => filters}, {
                insta::assert_snapshot!(output, @$snapshot);
            });
        }
    }};
}
pub(crate) use output_snapshot;

/// The site config file, in the site's root.
const CONFIG_FILE: &str = "packsync.toml";

/// One `[[pack]]` entry of the site config.
#[derive(Debug, Clone)]
pub(crate) struct PackEntry {
    name: String,
    /// `key = value` lines, the values as TOML.
    keys: Vec<(String, String)>,
    /// `[pack.config]` lines, the values as TOML.
    config: Vec<(String, String)>,
}

impl PackEntry {
    /// `name = "<name>"` and `source` the local repo at `source`.
    pub(crate) fn new(name: &str, source: &Path) -> Self {
        Self {
            name: name.to_owned(),
            keys: vec![("source".to_owned(), toml_path(source))],
            config: Vec::new(),
        }
    }

    /// Sets `key` of the entry to `value`, written as TOML (`r#""v1.0.0""#`, `"false"`).
    pub(crate) fn key(mut self, key: &str, value: &str) -> Self {
        self.keys.retain(|(k, _)| k != key);
        self.keys.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets `key` of `[pack.config]` to `value`, written as TOML.
    pub(crate) fn config(mut self, key: &str, value: &str) -> Self {
        self.config.retain(|(k, _)| k != key);
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Where a site keeps its installed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The embedded store under `state_dir`.
    File,
    /// A database of its own on the shared test server.
    MongoDb,
}

/// A site in a temp dir, removed when dropped (with its MongoDB database).
pub(crate) struct TestSite {
    /// Keeps the temp dir alive.
    _temp: TempDir,
    /// The temp dir, canonical, so that it matches the paths packsync prints.
    root: PathBuf,
    /// Extra lines of `[agent]`, as written.
    agent_lines: Vec<String>,
    /// `key = value` lines of `[stackstorm]` after the paths, as written.
    stackstorm_lines: Vec<String>,
    /// `key = value` lines of `[mirror]` after its path, as written.
    mirror_lines: Vec<String>,
    /// The MongoDB server and database of `[state]`; `None`: the embedded store.
    mongodb: Option<(String, String)>,
    packs: Vec<PackEntry>,
    /// `[[runner]]` entries, their `key = value` lines.
    runners: Vec<String>,
    /// Whole sections (`[watch]` and its keys), as written.
    sections: Vec<String>,
}

impl TestSite {
    /// An empty site on the embedded store: an empty mirror, no pack.
    pub(crate) fn new() -> Self {
        Self::on(Backend::File)
    }

    /// An empty site keeping its state on `backend`.
    pub(crate) fn on(backend: Backend) -> Self {
        let temp = TempDir::new().unwrap();
        let root = fs_err::canonicalize(temp.path()).unwrap();
        fs_err::create_dir_all(root.join("mirror")).unwrap();
        Self {
            _temp: temp,
            root,
            agent_lines: Vec::new(),
            // Virtualenvs with nothing but the pack's requirements: a mirror needs no `six`
            // and what the host's interpreter has installed does not matter.
            stackstorm_lines: vec![
                format!("python = {}", toml_path(python())),
                "system_site_packages = false".to_owned(),
                "base_requirements = []".to_owned(),
            ],
            mirror_lines: Vec::new(),
            mongodb: (backend == Backend::MongoDb)
                .then(|| (mongo::url(), mongo::unique_database())),
            packs: Vec::new(),
            runners: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// Adds a section as written, e.g. `"[watch]\ndebounce = \"300ms\"\n"`.
    pub(crate) fn section(&mut self, text: &str) -> &mut Self {
        self.sections.push(text.to_owned());
        self
    }

    /// Adds `[[runner]]` `name` with `version`.
    /// (A `[[runner]]` of that name is replaced.)
    pub(crate) fn add_runner(&mut self, name: &str, version: &str) -> &mut Self {
        let first = format!("name = \"{name}\"\n");
        self.runners.retain(|runner| !runner.starts_with(&first));
        self.runners
            .push(format!("{first}version = \"{version}\"\n"));
        self
    }

    /// Adds `[[runner]]` `name` built from the Git repo `source` (at its `HEAD`).
    pub(crate) fn add_runner_from(&mut self, name: &str, source: &Path) -> &mut Self {
        self.runners.push(format!(
            "name = \"{name}\"\nsource = {}\n",
            toml_path(source)
        ));
        self
    }

    /// Keeps the state in `database` of the MongoDB server at `url` from now on.
    pub(crate) fn mongodb(&mut self, url: &str, database: &str) -> &mut Self {
        self.mongodb = Some((url.to_owned(), database.to_owned()));
        self
    }

    /// The MongoDB server and database of `[state]`, if any.
    pub(crate) fn mongodb_database(&self) -> Option<&(String, String)> {
        self.mongodb.as_ref()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// The wheel mirror folder.
    pub(crate) fn mirror(&self) -> PathBuf {
        self.root.join("mirror")
    }

    /// `stackstorm.packs_dir`, where `st2 pack install` would have put packs.
    pub(crate) fn packs_dir(&self) -> PathBuf {
        self.root.join("stackstorm/packs")
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// `stackstorm.virtualenvs_dir`.
    pub(crate) fn venvs_dir(&self) -> PathBuf {
        self.root.join("stackstorm/virtualenvs")
    }

    /// `stackstorm.configs_dir`.
    pub(crate) fn configs_dir(&self) -> PathBuf {
        self.root.join("stackstorm/configs")
    }

    /// Writes the executable `bin/<name>`: a `sh` script running `body`, with `$ROOT` the site
    /// and `$LOG` a file the engine scripts append to (read with [`Self::engine_log`]).
    pub(crate) fn engine_script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.root.join("bin").join(name);
        fs_err::create_dir_all(self.root.join("bin")).unwrap();
        fs_err::write(
            &path,
            format!(
                "#!/bin/sh
ROOT='{root}'
LOG='{root}/engine.log'
{body}",
                root = self.root.display()
            ),
        )
        .unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// What the engine scripts wrote to `$LOG`.
    pub(crate) fn engine_log(&self) -> String {
        fs_err::read_to_string(self.root.join("engine.log")).unwrap_or_default()
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// Builds a real wheel into the mirror.
    pub(crate) fn wheel(&self, name: &str, version: &str, requires: &[&str]) -> &Self {
        make_wheel(&self.mirror(), name, version, requires);
        self
    }

    /// A new repo `repos/<name>` holding, at its root, a valid pack `name` at `version`,
    /// committed on `main`.
    pub(crate) fn pack_repo(&self, name: &str, version: &str) -> GitRepo {
        let repo = GitRepo::init(&self.root.join("repos").join(name));
        write_pack(&repo, "", name, version);
        repo.commit(&format!("{name} {version}"));
        repo
    }

    /// Adds a line to `[agent]`, as written: `prune = true`.
    pub(crate) fn agent_line(&mut self, line: &str) -> &mut Self {
        self.agent_lines.push(line.to_owned());
        self
    }

    /// Sets a key of `[stackstorm]`, as written: `base_requirements = ["six"]`.
    pub(crate) fn stackstorm_line(&mut self, line: &str) -> &mut Self {
        let key = |line: &str| line.split('=').next().unwrap_or_default().trim().to_owned();
        self.stackstorm_lines.retain(|l| key(l) != key(line));
        self.stackstorm_lines.push(line.to_owned());
        self
    }

    /// Removes the key `key` of `[stackstorm]`.
    pub(crate) fn remove_stackstorm_line(&mut self, key: &str) -> &mut Self {
        self.stackstorm_lines
            .retain(|line| line.split('=').next().unwrap_or_default().trim() != key);
        self
    }

    /// Adds a line to `[mirror]`, as written: `installer = "uv"`.
    pub(crate) fn mirror_line(&mut self, line: &str) -> &mut Self {
        self.mirror_lines.push(line.to_owned());
        self
    }

    /// Adds a `[[pack]]` entry, or replaces the one of the same name in place.
    pub(crate) fn add_pack(&mut self, entry: PackEntry) -> &mut Self {
        match self.packs.iter_mut().find(|p| p.name == entry.name) {
            Some(existing) => *existing = entry,
            None => self.packs.push(entry),
        }
        self
    }

    /// Removes the `[[pack]]` entry `name`.
    pub(crate) fn remove_pack(&mut self, name: &str) -> &mut Self {
        self.packs.retain(|p| p.name != name);
        self
    }

    /// The site config for the current entries.
    pub(crate) fn config_text(&self) -> String {
        let dir = |rel: &str| toml_path(&self.root.join(rel));
        let mut text = format!("[agent]\nstate_dir = {}\n", dir("state"));
        for line in &self.agent_lines {
            let _ = writeln!(text, "{line}");
        }
        let _ = write!(
            text,
            "\n[stackstorm]\npacks_dir = {}\nvirtualenvs_dir = {}\nconfigs_dir = {}\n",
            dir("stackstorm/packs"),
            dir("stackstorm/virtualenvs"),
            dir("stackstorm/configs"),
        );
        for line in &self.stackstorm_lines {
            let _ = writeln!(text, "{line}");
        }
        let _ = write!(text, "\n[mirror]\npath = {}\n", dir("mirror"));
        for line in &self.mirror_lines {
            let _ = writeln!(text, "{line}");
        }
        for pack in &self.packs {
            let _ = write!(text, "\n[[pack]]\nname = \"{}\"\n", pack.name);
            for (key, value) in &pack.keys {
                let _ = writeln!(text, "{key} = {value}");
            }
            if !pack.config.is_empty() {
                text.push_str("[pack.config]\n");
                for (key, value) in &pack.config {
                    let _ = writeln!(text, "{key} = {value}");
                }
            }
        }
        for runner in &self.runners {
            let _ = write!(text, "\n[[runner]]\n{runner}");
        }
        for section in &self.sections {
            let _ = write!(text, "\n{section}");
        }
        // Last, so that the lines of the packs are the same on both backends.
        if let Some((url, database)) = &self.mongodb {
            let _ = write!(
                text,
                "\n[state]\nurl = '{url}'\ndatabase = '{database}'\ntimeout = \"3s\"\n"
            );
        }
        text
    }

    /// Writes the site config and returns `packsync --config <it> <args>` with a clean
    /// environment.
    pub(crate) fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        fs_err::write(self.config_path(), self.config_text()).unwrap();
        let mut command = packsync([OsStr::new("--config"), self.config_path().as_os_str()]);
        command.args(args);
        command
    }

    /// Records every pack of the site config as installed at the revision it resolves to now,
    /// as an apply leaves it: what is live is read from disk, so the release's `release.json`
    /// and the `current/<pack>` link to it, StackStorm's links through it, and the store's
    /// record agrees.
    pub(crate) fn record_installed(&self) {
        fs_err::write(self.config_path(), self.config_text()).unwrap();
        let config = packsync::config::load(&self.config_path())
            .unwrap_or_else(|errors| panic!("the site config is valid: {errors}"));
        let resolution = desired::resolve(&config, None, WorkTrees::Ignore);
        assert!(
            !resolution.has_errors(),
            "every pack resolves: {:#?}",
            resolution.problems
        );
        let layout = Layout::new(&config);
        let store = packsync::state::open(&config, &config.host()).unwrap();
        let built_at = jiff::Timestamp::now();
        for pack in resolution.desired.packs {
            let id = ReleaseId::of(&pack.revision);
            let release = layout.release(&pack.name, &id);
            fs_err::create_dir_all(&release.dir).unwrap();
            let manifest = ReleaseManifest {
                pack: pack.name.clone(),
                id: id.clone(),
                revision: pack.revision.clone(),
                env_inputs: pack.env_inputs.clone(),
                built_at,
            };
            fs_err::write(
                &release.manifest,
                serde_json::to_vec_pretty(&manifest).unwrap(),
            )
            .unwrap();
            // Its virtualenv as a build leaves it: complete (no distribution in it).
            let env = layout.env(&pack.revision.env);
            fs_err::create_dir_all(&env).unwrap();
            let completion = Completion {
                digest: pack.env_inputs.digest(),
                dists: Vec::new(),
                store_entries: Vec::new(),
            };
            packsync::store::write_completion(&env, &completion).unwrap();
            let current = layout.current(&pack.name);
            fs_err::create_dir_all(current.parent().unwrap()).unwrap();
            let target = Path::new("../releases")
                .join(pack.name.as_str())
                .join(id.as_str());
            packsync::fsx::replace_symlink(&target, &current).unwrap();
            packsync::activate::link(&layout, &pack.name, release.config.exists()).unwrap();
            let record = PackRecord {
                active: Some(ActiveRelease {
                    id: id.clone(),
                    since: built_at,
                }),
                releases: vec![ReleaseRecord {
                    id,
                    revision: pack.revision,
                    env_inputs: pack.env_inputs,
                    built_at,
                }],
                ..PackRecord::default()
            };
            store.save(&pack.name, &record, None).unwrap();
        }
    }

    /// Insta filters that hide what changes from run to run or machine to machine.
    pub(crate) fn filters(&self) -> Vec<(String, String)> {
        let mut filters = Vec::new();
        if let Some((url, database)) = &self.mongodb {
            let hosts = url
                .split_once('@')
                .map_or(url.as_str(), |(_, hosts)| hosts)
                .trim_start_matches("mongodb://");
            let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
            filters.push((regex::escape(hosts), "[MONGODB]".into()));
            filters.push((
                format!(r"\b{}\b", regex::escape(database)),
                "[DATABASE]".into(),
            ));
        }
        filters.extend([
            (
                regex::escape(&self.root.display().to_string()),
                "[TEMP]".into(),
            ),
            (r"sha256:[0-9a-f]{64}".into(), "[DIGEST]".into()),
            (r"SHA256:[A-Za-z0-9+/]{43}".into(), "SHA256:[KEY]".into()),
            (r"git:[0-9a-f]{40}".into(), "[DIGEST]".into()),
            (r"\b[0-9a-f]{40}\b".into(), "[COMMIT]".into()),
            (r"\b[0-9a-f]{7}\b".into(), "[SHORT]".into()),
            // The input hash at the end of a release id: `1.0.0-[SHORT]-[INPUTS]`.
            (r"-[0-9a-f]{8}\b".into(), "-[INPUTS]".into()),
            (r"\(\d+\.\ds\)".into(), "([DURATION])".into()),
            (r"(?m) in \d+\.\ds$".into(), " in [DURATION]".into()),
            (r"(?m)^\[ *\d+\.\ds\]".into(), "[ELAPSED]".into()),
            (r"PID \d+".into(), "PID [PID]".into()),
            (
                r"adopted/(\w+)-\d{8}T\d{6}Z".into(),
                "adopted/$1-[TIME]".into(),
            ),
            (
                r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\dZ)?".into(),
                "[TIME]".into(),
            ),
        ]);
        filters
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        if let Some((url, database)) = &self.mongodb {
            mongo::drop_database(url, database);
        }
    }
}

/// A site with the packs `alpha` (which depends on `zulu`), `zulu`, and `mid`, its state on
/// `backend`.
pub(crate) fn three_packs(backend: Backend) -> TestSite {
    let mut site = TestSite::on(backend);
    let alpha = site.pack_repo("alpha", "1.0.0");
    alpha.write(
        "pack.yaml",
        pack_yaml("alpha", "1.0.0", "dependencies:\n  - zulu\n"),
    );
    alpha.commit("alpha depends on zulu");
    let mid = site.pack_repo("mid", "2.0.0");
    let zulu = site.pack_repo("zulu", "0.3.0");
    site.add_pack(PackEntry::new("alpha", alpha.path()))
        .add_pack(PackEntry::new("mid", mid.path()))
        .add_pack(PackEntry::new("zulu", zulu.path()));
    site
}

/// `packsync <args>` with a clean environment: no config from the environment, no colour, no
/// log filter, no terminal size.
pub(crate) fn packsync<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_packsync"));
    command.args(args);
    for name in ["PACKSYNC_CONFIG", "RUST_LOG", "COLUMNS", "LINES"] {
        command.env_remove(name);
    }
    command.env("NO_COLOR", "1");
    // Parallel builds reach their phases in no fixed order: the snapshots leave the progress
    // lines out, and issue 20's tests ask for them.
    command.env("PACKSYNC_PROGRESS", "none");
    command
}

/// Runs `command` and renders its exit code, stdout and stderr.
pub(crate) fn run(mut command: Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let code = status
        .code()
        .map_or_else(|| format!("killed ({status})"), |code| code.to_string());
    format!(
        "exit_code: {code}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    )
}

/// Runs `command` and checks its exit code, showing its output when it differs; returns the
/// output.
pub(crate) fn assert_exit(command: Command, code: i32) -> String {
    let output = run(command);
    assert!(
        output.starts_with(&format!("exit_code: {code}\n")),
        "expected exit code {code}:\n{output}"
    );
    output
}

/// `pack.yaml` of a valid pack; `extra` is appended as written (`"dependencies:\n  - a\n"`).
pub(crate) fn pack_yaml(name: &str, version: &str, extra: &str) -> String {
    format!(
        "ref: {name}\nname: {name}\ndescription: The {name} test pack\nversion: {version}\n\
         author: Packsync Tests\n{extra}"
    )
}

/// Writes a valid pack `name` at `version` (`pack.yaml` and one Python action) under `dir` of
/// the work tree (`""`: the root). Not committed.
pub(crate) fn write_pack(repo: &GitRepo, dir: &str, name: &str, version: &str) {
    let at = |rel: &str| {
        if dir.is_empty() {
            rel.to_owned()
        } else {
            format!("{dir}/{rel}")
        }
    };
    repo.write(&at("pack.yaml"), pack_yaml(name, version, ""))
        .write(
            &at("actions/run.yaml"),
            "name: run\nrunner_type: python-script\nentry_point: run.py\nenabled: true\n",
        )
        .write(
            &at("actions/run.py"),
            "from st2common.runners.base_action import Action\n\n\n\
             class Run(Action):\n    def run(self):\n        return True\n",
        );
}

/// Runs `command`, which must succeed and print one JSON document.
pub(crate) fn run_json(mut command: Command) -> serde_json::Value {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The real interpreter behind `python3`, resolved once: launchers such as pyenv's shim cost
/// 60 to 150 ms a call, and every virtualenv build calls it.
pub(crate) fn python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

/// A path as a TOML literal string (paths of the temp dir hold no `'`).
fn toml_path(path: &Path) -> String {
    format!("'{}'", path.display())
}
