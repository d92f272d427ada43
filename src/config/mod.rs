//! The site config (TOML, version 1): which packs, from which local Git repo and ref, where the
//! wheel mirror and StackStorm's directories are.
//!
//! [`load`] parses the file into serde structs that refuse unknown keys (`raw`), then validates
//! them into a [`SiteConfig`] (`validate`), collecting every problem with its `file:line:col`
//! rather than stopping at the first. Relative paths resolve against the config file's folder.
//! Nothing here reads Git or the mirror; that is `desired`'s job.

mod cron;
mod raw;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostics::{Diagnose, Location};
use crate::model::{PackName, Prune};
use crate::source::RefSelector;

pub use cron::Cron;
pub use secret::SecretUrl;
pub use validate::parse;

/// A validated site config.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The file it was read from.
    pub path: PathBuf,
    pub agent: AgentConfig,
    pub stackstorm: StackStormConfig,
    pub mirror: MirrorConfig,
    pub state: StateConfig,
    pub packs: Vec<PackConfig>,
    pub runners: Vec<RunnerConfig>,
    pub watch: WatchConfig,
    pub schedule: ScheduleConfig,
    /// `None`: the agent publishes no events.
    pub messaging: Option<MessagingConfig>,
    /// `None`: this host deploys alone.
    pub fleet: Option<FleetConfig>,
}

/// `[fleet]`: hosts of one StackStorm site that deploy as one, coordinated through the MongoDB
/// state store they share.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub name: String,
    /// Every member, by its `[agent] host` name; the same list on every host.
    pub hosts: Vec<String>,
    /// The hosts in the order their waves switch (a canary first, say); hosts no wave names
    /// are the last wave. Default: one wave of every host.
    pub waves: Vec<Vec<String>>,
    /// How many hosts must have a release built and gated for it to go live once
    /// `prepare_timeout` has passed; every host goes as soon as all have. Default: all of them
    /// (a host that is down holds the change).
    pub quorum: usize,
    /// How long the hosts wait for each other to build and gate a release.
    pub prepare_timeout: Duration,
    /// How long the lease of the host that registers lasts without being renewed: after it, a
    /// host that died holding it is replaced.
    pub lease_ttl: Duration,
}

/// `[messaging]`: a RabbitMQ topic exchange for the agent's events.
#[derive(Debug, Clone)]
pub struct MessagingConfig {
    /// `amqp://user:password@host:5672/vhost` (or `amqps://`); never printed with its password.
    pub url: SecretUrl,
    /// Declared by packsync: topic, durable.
    pub exchange: String,
    /// Events kept while the broker is away; beyond it the oldest are dropped.
    pub queue_limit: usize,
}

/// `[watch]`: how `packsync run` notices a commit, a new mirror file or a config edit.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Quiet time after the last event of a burst before reconciling.
    pub debounce: Duration,
    /// How often to look at what is polled.
    pub poll: Duration,
    pub mode: WatchMode,
}

/// `[watch] mode`: how changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// The kernel's notifications (inotify), but for places on a network file system (NFS,
    /// CIFS, Ceph, Lustre, GPFS, FUSE, ...), whose changes made on other hosts the kernel never
    /// sees: those are polled. The default.
    Auto,
    /// The kernel's notifications everywhere; polling only where they cannot be set up.
    Notify,
    /// Polling everywhere.
    Poll,
}

/// `[schedule]`: the full reconciles of `packsync run`, whatever the watches saw.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Seconds-first cron syntax (the `cron` crate's), e.g. `0 */15 * * * *`.
    pub cron: Cron,
    /// Up to this much random delay, drawn again for every run.
    pub splay: Duration,
    /// The first wait before failed packs are tried again; it doubles up to the cron period.
    pub retry: Duration,
}

impl FleetConfig {
    /// The wave `host` switches in (0 first), if it is a member.
    pub fn wave_of(&self, host: &str) -> Option<usize> {
        self.waves
            .iter()
            .position(|wave| wave.iter().any(|member| member == host))
    }
}

impl SiteConfig {
    /// The name this host records its state and runs under: `[agent] host`, else the
    /// machine's hostname.
    pub fn host(&self) -> String {
        self.agent
            .host
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }
}

/// Where the installed state is kept.
#[derive(Debug, Clone)]
pub enum StateConfig {
    /// No `[state]` section: `state_dir/state.json` and `state_dir/history.jsonl`.
    File,
    MongoDb(MongoConfig),
}

/// `[state]`: a MongoDB database, usually StackStorm's own.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    pub url: SecretUrl,
    /// The database named in `database`, else in the URL, else `st2`.
    pub database: String,
    pub collection_prefix: String,
    /// How long an operation waits for a reachable server before it fails.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    /// `None`: the machine's hostname.
    pub host: Option<String>,
    pub prune: Prune,
    /// Releases kept per pack, the active one included (at least 1).
    pub keep_releases: usize,
    /// How many packs are built at once; default: the number of cores.
    pub concurrency: usize,
    /// Where `packsync run` serves `/metrics` and `/healthz`; `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a virtualenv that failed to build waits before the same inputs are built
    /// again; the wait doubles with each failure in a row, up to `build_retry_max`.
    pub build_retry: Duration,
    pub build_retry_max: Duration,
    /// How often `packsync run` verifies the live releases (`packsync verify`); `None`: never.
    pub verify_every: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct StackStormConfig {
    pub packs_dir: PathBuf,
    pub virtualenvs_dir: PathBuf,
    pub configs_dir: PathBuf,
    /// Interpreter for pack virtualenvs; a bare name is looked up on `PATH`.
    pub python: PathBuf,
    /// How pack virtualenvs are built, as StackStorm builds them.
    pub virtualenv: VirtualenvConfig,
    pub register: Option<CommandTemplate>,
    pub unregister: Option<CommandTemplate>,
    pub test: Option<CommandTemplate>,
    /// StackStorm's own interpreter (`/opt/stackstorm/st2/bin/python`): runners install for
    /// it, and pack virtualenvs must share its minor version.
    pub st2_python: Option<PathBuf>,
    /// Registers runners after the runner set changed (`st2-register-content
    /// --register-runners`).
    pub register_runners: Option<CommandTemplate>,
    /// Restarts what loads runners (`st2ctl restart-component st2actionrunner`); on a fleet
    /// host, also what loads pack code once a release is live (`st2sensorcontainer`).
    pub restart: Option<CommandTemplate>,
    /// On a fleet host, checks that a release that went live works here (after `restart`); the
    /// next wave of the fleet waits for it.
    pub health: Option<CommandTemplate>,
    /// How long any of these commands may run before it is killed and its step fails: a hung
    /// registration must not stop every later deployment.
    pub command_timeout: Duration,
    /// Prints what StackStorm holds for `{pack}`: a JSON list of `{"kind", "ref"}`.
    pub registered: Option<CommandTemplate>,
    /// Removes (or, for a sensor, disables) the resource `{ref}` of kind `{kind}`.
    pub purge: Option<CommandTemplate>,
    /// Whether `apply` registers a live pack again (and purges) when StackStorm has another
    /// version of it registered (`st2 pack install` run by hand).
    pub repair_engine_drift: bool,
    /// The names of packsync's environment variables the commands get, besides `PATH`,
    /// `HOME`, `LANG` and `PACKSYNC_*`.
    pub env: Vec<String>,
}

impl StackStormConfig {
    /// The two commands that purge, when both are set.
    pub fn purging(&self) -> Option<(&CommandTemplate, &CommandTemplate)> {
        self.registered.as_ref().zip(self.purge.as_ref())
    }
}

/// StackStorm's virtualenv choices (`setup_pack_virtualenv`), each one a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualenvConfig {
    /// st2's `[actionrunner] virtualenv_opts` default: the base interpreter's site-packages are
    /// visible.
    pub system_site_packages: bool,
    /// PEP 508 requirements every pack virtualenv gets (st2: `six>=1.9.0,<2.0`).
    pub base_requirements: Vec<String>,
    /// Write st2's `zzzzzzzzzz__st2__.pth` when `python` runs in a virtualenv (StackStorm's
    /// own), so that its `.pth` files load in the pack virtualenv too.
    pub st2_pth: bool,
}

#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub path: PathBuf,
    pub installer: Installer,
}

/// What installs the resolved files into an environment. Both install the same files with
/// the same hashes, `--no-deps`: the resolution is packsync's, not the installer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    /// The pip of `[stackstorm] python` (any StackStorm host has it).
    Pip,
    /// The `uv` binary at this path (a bare name is looked up on `PATH`).
    Uv(PathBuf),
}

/// One `[[runner]]`.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The distribution and the versions wanted, e.g. `clush_runner==1.2.*`.
    pub requirement: pep508_rs::Requirement,
    /// Built from this local Git repo (at `ref`, default `HEAD`) instead of taken from the
    /// mirror.
    pub source: Option<RunnerSource>,
    /// Where the runner is in the site config.
    pub location: Location,
}

/// Where a runner is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerSource {
    pub repo: PathBuf,
    pub selector: RefSelector,
    /// The signatures its commit (or tag) must carry: the runner's own `verify`, else
    /// `[agent] verify`.
    pub verify: Option<crate::source::SignaturePolicy>,
}

/// An engine command: an argv list (no shell) with `{placeholder}`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate(pub Vec<String>);

/// One `[[pack]]` entry.
#[derive(Debug, Clone)]
pub struct PackConfig {
    pub name: PackName,
    /// The local repository, resolved from `source`.
    pub repo: PathBuf,
    pub selector: RefSelector,
    pub subdir: Option<PathBuf>,
    pub enabled: bool,
    /// `[pack.config]` values, as JSON (what StackStorm's config file holds).
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Where each top-level `[pack.config]` key is in the site config, for error messages.
    pub value_locations: BTreeMap<String, Location>,
    /// Where the pack's `name` is in the site config.
    pub location: Location,
    /// The signatures its commit (or tag) must carry: its own `verify`, else `[agent]
    /// verify`; `None`: none.
    pub verify: Option<crate::source::SignaturePolicy>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Failed to read the site config `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Shown with its location by [`crate::diagnostics::Report`], so the message leaves it out.
    #[error("{message}")]
    Invalid {
        location: Location,
        message: String,
        hint: Option<String>,
    },
}

impl Diagnose for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } => Some(
                "pass `--config FILE` or set `PACKSYNC_CONFIG`; the default is \
                 `/etc/packsync/packsync.toml`"
                    .to_string(),
            ),
            ConfigError::Invalid { hint, .. } => hint.clone(),
        }
    }

    fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { location, .. } => Some(location),
        }
    }
}

/// Every problem found in one site config.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [only] => only.fmt(f),
            all => write!(f, "The site config has {} errors", all.len()),
        }
    }
}

/// Reads and validates the site config at `path`.
/// Every path of the config comes out absolute: they end up in links StackStorm follows from
/// its own working directory.
pub fn load(path: &Path) -> Result<SiteConfig, ConfigErrors> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let text = fs_err::read_to_string(&path).map_err(|source| {
        ConfigErrors(vec![ConfigError::Read {
            path: path.clone(),
            source,
        }])
    })?;
    parse(&path, &text)
}

#[cfg(test)]
mod tests;
