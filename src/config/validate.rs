//! The site config's TOML, checked into a [`SiteConfig`]: defaults filled in, relative paths
//! resolved against the file's folder, every problem collected with its `file:line:col`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use toml::Spanned;

use super::{
    AgentConfig, CommandTemplate, ConfigError, ConfigErrors, Cron, FleetConfig, Installer,
    MessagingConfig, MirrorConfig, MongoConfig, PackConfig, RunnerConfig, RunnerSource,
    ScheduleConfig, SecretUrl, SiteConfig, StackStormConfig, StateConfig, VirtualenvConfig,
    WatchConfig, WatchMode, raw,
};
use crate::diagnostics::{Diagnose as _, LineStarts, Location};
use crate::model::{PackName, Prune};
use crate::source::{self, AllowedSigners, RefSelector, SignatureMode, SignaturePolicy};

/// Where StackStorm keeps packs, venvs and configs unless told otherwise.
const DEFAULT_PACKS_DIR: &str = "/opt/stackstorm/packs";
pub(super) const DEFAULT_VIRTUALENVS_DIR: &str = "/opt/stackstorm/virtualenvs";
const DEFAULT_CONFIGS_DIR: &str = "/opt/stackstorm/configs";
const DEFAULT_PYTHON: &str = "/opt/stackstorm/st2/bin/python3";
const DEFAULT_STATE_DIR: &str = "/var/lib/packsync";
/// StackStorm's `BASE_PACK_REQUIREMENTS`: installed into every pack virtualenv.
const DEFAULT_BASE_REQUIREMENTS: [&str; 1] = ["six>=1.9.0,<2.0"];
const DEFAULT_KEEP_RELEASES: usize = 3;
/// StackStorm's own database: packsync's collections sit next to `pack_d_b`.
const DEFAULT_DATABASE: &str = "st2";
const DEFAULT_COLLECTION_PREFIX: &str = "packsync_";
const DEFAULT_STATE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);
const DEFAULT_POLL: Duration = Duration::from_secs(30);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_mins(10);
const DEFAULT_RETRY: Duration = Duration::from_mins(1);
const DEFAULT_BUILD_RETRY: Duration = Duration::from_mins(5);
const DEFAULT_BUILD_RETRY_MAX: Duration = Duration::from_hours(6);
/// How often the agent verifies the live releases unless `[agent] verify_every` says.
const DEFAULT_VERIFY: Duration = Duration::from_hours(24);
const DEFAULT_PREPARE_TIMEOUT: Duration = Duration::from_mins(10);
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
const DEFAULT_EXCHANGE: &str = "packsync";
const DEFAULT_QUEUE_LIMIT: usize = 10_000;
/// Every 15 minutes, at second 0.
const DEFAULT_CRON: &str = "0 */15 * * * *";

/// Placeholders an engine command may use.
/// The placeholders of the per-pack commands (`register`, `test`, `unregister`, `registered`).
const PLACEHOLDERS: &[&str] = &["pack", "pack_dir", "release_dir", "venv_dir", "config_file"];
/// Those of `purge`: one resource of one pack.
const PURGE_PLACEHOLDERS: &[&str] = &["pack", "kind", "ref"];
/// The runner commands have none.
const NO_PLACEHOLDERS: &[&str] = &[];

/// Validates `text` as the site config read from `path`; reads the `url_file`s it names.
pub fn parse(path: &Path, text: &str) -> Result<SiteConfig, ConfigErrors> {
    let raw: raw::RawSiteConfig = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        ConfigErrors(vec![ConfigError::Invalid {
            location: Location::at(path.display(), text, span),
            message: err.message().trim_end().to_string(),
            hint: None,
        }])
    })?;
    let mut validator = Validator {
        path,
        text,
        lines: LineStarts::of(text),
        base_dir: path.parent().unwrap_or(Path::new(".")),
        errors: Vec::new(),
    };
    let config = validator.site_config(raw);
    if validator.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(validator.errors))
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    lines: LineStarts,
    base_dir: &'a Path,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn location(&self, span: Range<usize>) -> Location {
        Location::at_line(self.path.display(), self.text, &self.lines, span)
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        let location = self.location(span);
        self.errors.push(ConfigError::Invalid {
            location,
            message: message.into(),
            hint,
        });
    }

    #[allow(clippy::too_many_lines)] // one field after the other, in the file's order
    fn site_config(&mut self, raw: raw::RawSiteConfig) -> SiteConfig {
        if let Some(version) = &raw.version
            && *version.get_ref() != 1
        {
            self.error(
                version.span(),
                format!("Unsupported site config `version = {}`", version.get_ref()),
                Some("this packsync reads `version = 1`".to_string()),
            );
        }
        let agent = AgentConfig {
            state_dir: self.path_or(raw.agent.state_dir.as_ref(), DEFAULT_STATE_DIR),
            host: raw.agent.host.map(Spanned::into_inner),
            prune: if raw.agent.prune.unwrap_or(false) {
                Prune::On
            } else {
                Prune::Off
            },
            keep_releases: self
                .positive(raw.agent.keep_releases.as_ref(), "keep_releases")
                .unwrap_or(DEFAULT_KEEP_RELEASES),
            concurrency: self
                .positive(raw.agent.concurrency.as_ref(), "concurrency")
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, Into::into)),
            metrics_listen: raw.agent.metrics_listen.and_then(|raw| {
                raw.get_ref()
                    .parse()
                    .map_err(|_| {
                        self.error(
                            raw.span(),
                            format!(
                                "`metrics_listen` `{}` is not an address and port",
                                raw.get_ref()
                            ),
                            Some("write it as `metrics_listen = \"127.0.0.1:9101\"`".into()),
                        );
                    })
                    .ok()
            }),
            build_retry: raw
                .agent
                .build_retry
                .and_then(|raw| self.duration(&raw, "build_retry"))
                .unwrap_or(DEFAULT_BUILD_RETRY),
            build_retry_max: raw
                .agent
                .build_retry_max
                .and_then(|raw| self.duration(&raw, "build_retry_max"))
                .unwrap_or(DEFAULT_BUILD_RETRY_MAX),
            verify_every: match raw.agent.verify_every {
                None => Some(DEFAULT_VERIFY),
                Some(raw) if raw.get_ref() == "off" => None,
                Some(raw) => self.duration(&raw, "verify_every"),
            },
        };
        let virtualenv = VirtualenvConfig {
            system_site_packages: raw.stackstorm.system_site_packages.unwrap_or(true),
            base_requirements: raw.stackstorm.base_requirements.map_or_else(
                || DEFAULT_BASE_REQUIREMENTS.map(String::from).to_vec(),
                |requirements| self.requirements(requirements),
            ),
            st2_pth: raw.stackstorm.st2_pth.unwrap_or(true),
        };
        let stackstorm = StackStormConfig {
            packs_dir: self.path_or(raw.stackstorm.packs_dir.as_ref(), DEFAULT_PACKS_DIR),
            virtualenvs_dir: self.path_or(
                raw.stackstorm.virtualenvs_dir.as_ref(),
                DEFAULT_VIRTUALENVS_DIR,
            ),
            configs_dir: self.path_or(raw.stackstorm.configs_dir.as_ref(), DEFAULT_CONFIGS_DIR),
            python: raw.stackstorm.python.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_PYTHON),
                |python| self.program(python),
            ),
            virtualenv,
            register: self.command(raw.stackstorm.register, "register", PLACEHOLDERS),
            unregister: self.command(raw.stackstorm.unregister, "unregister", PLACEHOLDERS),
            test: self.command(raw.stackstorm.test, "test", PLACEHOLDERS),
            st2_python: raw
                .stackstorm
                .st2_python
                .as_ref()
                .map(|python| self.program(python)),
            register_runners: self.command(
                raw.stackstorm.register_runners,
                "register_runners",
                NO_PLACEHOLDERS,
            ),
            restart: self.command(raw.stackstorm.restart, "restart", NO_PLACEHOLDERS),
            health: self.command(raw.stackstorm.health, "health", PLACEHOLDERS),
            command_timeout: raw
                .stackstorm
                .command_timeout
                .and_then(|raw| self.duration(&raw, "command_timeout"))
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
            registered: self.command(raw.stackstorm.registered, "registered", PLACEHOLDERS),
            purge: self.command(raw.stackstorm.purge, "purge", PURGE_PLACEHOLDERS),
            repair_engine_drift: raw.stackstorm.repair_engine_drift.unwrap_or(true),
            env: raw
                .stackstorm
                .env
                .unwrap_or_default()
                .into_iter()
                .filter_map(|name| self.env_name(name))
                .collect(),
        };
        let mirror = if let Some(mirror) = raw.mirror {
            MirrorConfig {
                path: self.path(&mirror.path),
                installer: self.installer(mirror.installer.as_ref(), mirror.uv.as_ref()),
            }
        } else {
            self.error(
                0..0,
                "Missing `[mirror]` section",
                Some(
                    "add `[mirror]` with `path = \"/path/to/wheels\"`, the folder of wheels and \
                     sdists pack virtualenvs are built from"
                        .to_string(),
                ),
            );
            MirrorConfig {
                path: PathBuf::new(),
                installer: Installer::Pip,
            }
        };
        let state = raw
            .state
            .map_or(StateConfig::File, |state| self.state(state));
        let default_verify = raw.agent.verify.and_then(|raw| self.signature_policy(raw));
        let mut packs: Vec<PackConfig> = Vec::with_capacity(raw.packs.len());
        for raw_pack in raw.packs {
            let Some(pack) = self.pack(raw_pack, default_verify.as_ref()) else {
                continue;
            };
            if let Some(first) = packs.iter().find(|p| p.name == pack.name) {
                let message = format!(
                    "Pack `{}` is declared twice (first at {})",
                    pack.name, first.location
                );
                self.errors.push(ConfigError::Invalid {
                    location: pack.location,
                    message,
                    hint: Some("pack names are unique: remove or rename one entry".to_string()),
                });
                continue;
            }
            packs.push(pack);
        }
        let runners = self.runners(raw.runners, &stackstorm, default_verify.as_ref());
        let watch = WatchConfig {
            debounce: raw
                .watch
                .debounce
                .and_then(|raw| self.duration(&raw, "debounce"))
                .unwrap_or(DEFAULT_DEBOUNCE),
            poll: raw
                .watch
                .poll
                .and_then(|raw| self.duration(&raw, "poll"))
                .unwrap_or(DEFAULT_POLL),
            mode: raw
                .watch
                .mode
                .map_or(WatchMode::Auto, |raw| self.watch_mode(&raw)),
        };
        let schedule = ScheduleConfig {
            cron: raw
                .schedule
                .cron
                .and_then(|raw| self.cron(&raw))
                .unwrap_or_else(|| {
                    DEFAULT_CRON
                        .parse()
                        .expect("the default cron expression parses")
                }),
            splay: raw
                .schedule
                .splay
                .and_then(|raw| self.duration(&raw, "splay"))
                .unwrap_or(Duration::ZERO),
            retry: raw
                .schedule
                .retry
                .and_then(|raw| self.duration(&raw, "retry"))
                .unwrap_or(DEFAULT_RETRY),
        };
        let messaging = raw.messaging.map(|raw| self.messaging(raw));
        let fleet = raw.fleet.map(|raw| self.fleet(raw, &state));
        SiteConfig {
            path: self.path.to_path_buf(),
            agent,
            stackstorm,
            mirror,
            state,
            packs,
            runners,
            watch,
            schedule,
            messaging,
            fleet,
        }
    }

    fn fleet(&mut self, raw: Spanned<raw::RawFleet>, state: &StateConfig) -> FleetConfig {
        let span = raw.span();
        let raw = raw.into_inner();
        if matches!(state, StateConfig::File) {
            self.error(
                span.clone(),
                "`[fleet]` needs the MongoDB state store",
                Some(
                    "the hosts of a fleet coordinate through the database they share: add \
                     `[state]` with the `url` of StackStorm's MongoDB on every host"
                        .to_string(),
                ),
            );
        }
        self.name(&raw.name, "name", "st2-prod");
        let hosts = self.fleet_hosts(raw.hosts);
        let quorum = match self.positive(raw.quorum.as_ref(), "quorum") {
            Some(quorum) if quorum > hosts.len() => {
                let raw = raw.quorum.as_ref().expect("a quorum was given");
                self.error(
                    raw.span(),
                    format!(
                        "`quorum` {quorum} is more than the {} hosts of the fleet",
                        hosts.len()
                    ),
                    Some("the quorum counts hosts of `hosts`: at most all of them".to_string()),
                );
                hosts.len()
            }
            Some(quorum) => quorum,
            None => hosts.len(),
        };
        let waves = self.fleet_waves(raw.waves, &hosts);
        FleetConfig {
            name: raw.name.into_inner(),
            hosts,
            waves,
            quorum,
            prepare_timeout: raw
                .prepare_timeout
                .and_then(|raw| self.duration(&raw, "prepare_timeout"))
                .unwrap_or(DEFAULT_PREPARE_TIMEOUT),
            lease_ttl: raw
                .lease_ttl
                .and_then(|raw| self.duration(&raw, "lease_ttl"))
                .unwrap_or(DEFAULT_LEASE_TTL),
        }
    }

    /// `[fleet] hosts`: each once, each a host name.
    fn fleet_hosts(&mut self, raw: Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        let raw_hosts = raw;
        let hosts_span = raw_hosts.span();
        let mut hosts: Vec<String> = Vec::new();
        for host in raw_hosts.into_inner() {
            if hosts.contains(host.get_ref()) {
                self.error(
                    host.span(),
                    format!("Host `{}` is listed twice", host.get_ref()),
                    Some("list each host of the fleet once".to_string()),
                );
                continue;
            }
            let valid = !host.get_ref().is_empty()
                && host
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                self.error(
                    host.span(),
                    format!("`hosts` `{}` is not a host name", host.get_ref()),
                    Some(
                        "name each host as its `[agent] host` (default: its hostname) names \
                         it: letters, digits, `.`, `_` and `-`"
                            .to_string(),
                    ),
                );
            }
            hosts.push(host.into_inner());
        }
        if hosts.is_empty() {
            self.error(
                hosts_span,
                "`hosts` lists no host",
                Some(
                    "list every StackStorm node by its `[agent] host` name, e.g. \
                     `hosts = [\"st2-1\", \"st2-2\"]`"
                        .to_string(),
                ),
            );
        }
        hosts
    }

    /// `[fleet] waves`: hosts of `hosts`, each in one wave; the hosts no wave names are the last.
    fn fleet_waves(
        &mut self,
        raw: Option<Spanned<Vec<Vec<Spanned<String>>>>>,
        hosts: &[String],
    ) -> Vec<Vec<String>> {
        let mut waves: Vec<Vec<String>> = Vec::new();
        if let Some(raw_waves) = raw {
            for wave in raw_waves.into_inner() {
                let mut members = Vec::new();
                for host in wave {
                    if !hosts.contains(host.get_ref()) {
                        self.error(
                            host.span(),
                            format!(
                                "`waves` names `{}`, which `hosts` does not list",
                                host.get_ref()
                            ),
                            Some("a wave lists hosts of `hosts`".to_string()),
                        );
                    } else if waves
                        .iter()
                        .flatten()
                        .chain(&members)
                        .any(|h| h == host.get_ref())
                    {
                        self.error(
                            host.span(),
                            format!("`waves` names `{}` twice", host.get_ref()),
                            Some("each host switches in one wave".to_string()),
                        );
                    } else {
                        members.push(host.into_inner());
                    }
                }
                if !members.is_empty() {
                    waves.push(members);
                }
            }
        }
        let rest: Vec<String> = hosts
            .iter()
            .filter(|host| !waves.iter().flatten().any(|h| h == *host))
            .cloned()
            .collect();
        if !rest.is_empty() {
            waves.push(rest);
        }
        waves
    }

    fn messaging(&mut self, raw: Spanned<raw::RawMessaging>) -> MessagingConfig {
        let span = raw.span();
        let raw = raw.into_inner();
        let example = "amqp://user:password@mq1:5672/st2";
        let url = match self.secret_url("messaging", span, raw.url, raw.url_file, example) {
            Some(found) => {
                if !(found.url.expose().starts_with("amqp://")
                    || found.url.expose().starts_with("amqps://"))
                {
                    self.error(
                        found.span,
                        format!("{} is not an AMQP URL", found.origin),
                        Some(format!("write it as `{example}`")),
                    );
                }
                found.url
            }
            None => SecretUrl::new(String::new()),
        };
        let exchange = raw.exchange.map_or_else(
            || DEFAULT_EXCHANGE.to_string(),
            |exchange| {
                self.name(&exchange, "exchange", DEFAULT_EXCHANGE);
                exchange.into_inner()
            },
        );
        MessagingConfig {
            url,
            exchange,
            queue_limit: self
                .positive(raw.queue_limit.as_ref(), "queue_limit")
                .unwrap_or(DEFAULT_QUEUE_LIMIT),
        }
    }

    fn cron(&mut self, raw: &Spanned<String>) -> Option<Cron> {
        match raw.get_ref().parse::<Cron>() {
            Ok(schedule) => Some(schedule),
            Err(err) => {
                self.error(
                    raw.span(),
                    format!("`cron` `{}` is not a cron expression: {err}", raw.get_ref()),
                    Some(
                        "six or seven fields, seconds first: `\"0 */15 * * * *\"` is every 15 \
                         minutes"
                            .into(),
                    ),
                );
                None
            }
        }
    }

    fn installer(
        &mut self,
        installer: Option<&Spanned<String>>,
        uv: Option<&Spanned<String>>,
    ) -> Installer {
        let uv_binary = || uv.map_or_else(|| PathBuf::from("uv"), |uv| self.program(uv));
        match installer.map(|i| i.get_ref().as_str()) {
            None | Some("pip") => {
                if let Some(uv) = uv {
                    self.error(
                        uv.span(),
                        "`uv` is set but `installer` is not \"uv\"",
                        Some("add `installer = \"uv\"` to `[mirror]`, or remove `uv`".into()),
                    );
                }
                Installer::Pip
            }
            Some("uv") => Installer::Uv(uv_binary()),
            Some(other) => {
                let span = installer.map(Spanned::span).unwrap_or_default();
                self.error(
                    span,
                    format!("Unknown installer `{other}`"),
                    Some(
                        "`installer` is \"pip\" (the default) or \"uv\" (with `uv = \"/path/to/uv\"` \
                         when it is not on PATH)"
                            .into(),
                    ),
                );
                Installer::Pip
            }
        }
    }

    fn watch_mode(&mut self, raw: &Spanned<String>) -> WatchMode {
        match raw.get_ref().as_str() {
            "auto" => WatchMode::Auto,
            "notify" => WatchMode::Notify,
            "poll" => WatchMode::Poll,
            other => {
                self.error(
                    raw.span(),
                    format!("Unknown watch mode `{other}`"),
                    Some(
                        "`mode` is \"auto\" (the default: network file systems polled, the rest \
                         notified by the kernel), \"notify\" or \"poll\""
                            .into(),
                    ),
                );
                WatchMode::Auto
            }
        }
    }

    /// One `[[runner]]`, or `None` after reporting why not.
    fn runner(
        &mut self,
        runner: raw::RawRunner,
        default_verify: Option<&SignaturePolicy>,
    ) -> Option<RunnerConfig> {
        let location = self.location(runner.name.span());
        if let Some(version) = &runner.version
            && pep440_rs::VersionSpecifiers::from_str(version.get_ref()).is_err()
        {
            self.error(
                version.span(),
                format!(
                    "`version` `{}` is not a PEP 440 version specifier",
                    version.get_ref()
                ),
                Some(
                    "write an operator and a version, e.g. `\"==1.2.*\"` or `\">=1.2, <2\"`".into(),
                ),
            );
            return None;
        }
        let text = match &runner.version {
            Some(version) => format!("{}{}", runner.name.get_ref(), version.get_ref()),
            None => runner.name.get_ref().clone(),
        };
        let requirement = match pep508_rs::Requirement::from_str(&text) {
            Ok(requirement) if requirement.marker.is_true() && requirement.extras.is_empty() => {
                requirement
            }
            Ok(_) | Err(_) => {
                let span = runner
                    .version
                    .as_ref()
                    .map_or(runner.name.span(), Spanned::span);
                self.error(
                    span,
                    format!("`{text}` is not a runner name with a PEP 440 version specifier"),
                    Some(
                        "write the distribution name and the versions, e.g. `name = \
                         \"clush_runner\"` and `version = \"==1.2.*\"`"
                            .into(),
                    ),
                );
                return None;
            }
        };
        let verify = match runner.verify {
            Some(own) => Some(self.signature_policy(own)?),
            None => default_verify.cloned(),
        };
        let source = match (&runner.source, runner.git_ref) {
            (Some(source), git_ref) => match source::local_path(source.get_ref(), self.base_dir) {
                Ok(repo) => Some(RunnerSource {
                    repo: normalize(&repo),
                    selector: git_ref
                        .map_or(RefSelector::Head, |r| RefSelector::Ref(r.into_inner())),
                    verify,
                }),
                Err(err) => {
                    let hint = err.hint();
                    self.error(source.span(), err.to_string(), hint);
                    return None;
                }
            },
            (None, Some(git_ref)) => {
                self.error(
                    git_ref.span(),
                    "`ref` needs `source`",
                    Some(
                        "set `source` to the runner's local Git repo, or remove `ref` to take \
                         the runner from the mirror"
                            .into(),
                    ),
                );
                return None;
            }
            (None, None) => None,
        };
        Some(RunnerConfig {
            requirement,
            source,
            location,
        })
    }

    fn runners(
        &mut self,
        raw: Vec<raw::RawRunner>,
        stackstorm: &StackStormConfig,
        default_verify: Option<&SignaturePolicy>,
    ) -> Vec<RunnerConfig> {
        let mut runners: Vec<RunnerConfig> = Vec::new();
        for raw_runner in raw {
            let Some(runner) = self.runner(raw_runner, default_verify) else {
                continue;
            };
            if let Some(first) = runners
                .iter()
                .find(|r| r.requirement.name == runner.requirement.name)
            {
                let message = format!(
                    "Runner `{}` is declared twice (first at {})",
                    runner.requirement.name, first.location
                );
                self.errors.push(ConfigError::Invalid {
                    location: runner.location,
                    message,
                    hint: Some("remove one of the two `[[runner]]` entries".into()),
                });
                continue;
            }
            runners.push(runner);
        }
        if let Some(first) = runners.first()
            && stackstorm.st2_python.is_none()
        {
            self.errors.push(ConfigError::Invalid {
                location: first.location.clone(),
                message: "Runners need `[stackstorm] st2_python`".into(),
                hint: Some(
                    "runners install for StackStorm's own interpreter: set `st2_python = \
                     \"/opt/stackstorm/st2/bin/python\"` in `[stackstorm]`"
                        .into(),
                ),
            });
        }
        runners
    }

    fn state(&mut self, raw: Spanned<raw::RawState>) -> StateConfig {
        let span = raw.span();
        let raw = raw.into_inner();
        let example = "mongodb://user:password@host:27017/?authSource=admin";
        let (url, from_url) = match self.secret_url("state", span, raw.url, raw.url_file, example) {
            Some(found) => match mongodb::options::ConnectionString::parse(found.url.expose()) {
                Ok(parsed) => (found.url, parsed.default_database),
                Err(err) => {
                    self.error(
                        found.span,
                        format!(
                            "{} is not a MongoDB connection string: {}",
                            found.origin,
                            found.url.redact(&err.kind.to_string())
                        ),
                        Some(format!("write it as `{example}` (or `mongodb+srv://...`)")),
                    );
                    (found.url, None)
                }
            },
            None => (SecretUrl::new(String::new()), None),
        };
        let database = match raw.database {
            Some(database) => {
                self.name(&database, "database", "st2");
                database.into_inner()
            }
            None => from_url.unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
        };
        let collection_prefix = raw.collection_prefix.map_or_else(
            || DEFAULT_COLLECTION_PREFIX.to_string(),
            |prefix| {
                self.name(&prefix, "collection_prefix", "packsync_");
                prefix.into_inner()
            },
        );
        let timeout = raw
            .timeout
            .and_then(|timeout| self.duration(&timeout, "timeout"))
            .unwrap_or(DEFAULT_STATE_TIMEOUT);
        StateConfig::MongoDb(MongoConfig {
            url,
            database,
            collection_prefix,
            timeout,
        })
    }

    /// The connection URL of `[state]` or `[messaging]`: written in `url`, or read from
    /// `url_file`, which keeps the password out of the site config (a mounted Kubernetes
    /// Secret, a file only root reads). Reading it is the one I/O of the validation.
    fn secret_url(
        &mut self,
        section: &str,
        table: Range<usize>,
        url: Option<Spanned<String>>,
        url_file: Option<Spanned<String>>,
        example: &str,
    ) -> Option<FoundUrl> {
        match (url, url_file) {
            (Some(url), None) => Some(FoundUrl {
                span: url.span(),
                url: SecretUrl::new(url.into_inner()),
                origin: "`url`".to_string(),
            }),
            (None, Some(file)) => {
                let path = self.path(&file);
                match fs_err::read_to_string(&path) {
                    Ok(text) => Some(FoundUrl {
                        span: file.span(),
                        url: SecretUrl::new(text.trim().to_string()),
                        origin: format!("The URL in `{}`", path.display()),
                    }),
                    Err(err) => {
                        self.error(
                            file.span(),
                            format!("Cannot read `url_file`: {err}"),
                            Some(format!(
                                "write the URL (`{example}`) into that file, readable by \
                                 packsync only, or mount the Secret that holds it there"
                            )),
                        );
                        None
                    }
                }
            }
            (Some(url), Some(_)) => {
                self.error(
                    url.span(),
                    format!("`[{section}]` has both `url` and `url_file`"),
                    Some("keep one: `url_file` keeps the password out of the site config".into()),
                );
                None
            }
            (None, None) => {
                self.error(
                    table,
                    format!("`[{section}]` needs `url` or `url_file`"),
                    Some(format!(
                        "write `url = \"{example}\"`, or `url_file = \"/etc/packsync/{section}-url\"` \
                         naming a file that holds it"
                    )),
                );
                None
            }
        }
    }

    /// A database or collection name: letters, digits, `_` and `-`.
    fn name(&mut self, raw: &Spanned<String>, key: &str, example: &str) {
        let name = raw.get_ref();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            self.error(
                raw.span(),
                format!("`{key}` `{name}` is not a valid name"),
                Some(format!(
                    "use letters, digits, `_` and `-`, e.g. `{key} = \"{example}\"`"
                )),
            );
        }
    }

    /// A positive duration such as `"10s"` or `"1m 30s"`.
    fn duration(&mut self, raw: &Spanned<String>, key: &str) -> Option<Duration> {
        let parsed = jiff::SignedDuration::from_str(raw.get_ref())
            .ok()
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero());
        if parsed.is_none() {
            self.error(
                raw.span(),
                format!("`{key}` `{}` is not a positive duration", raw.get_ref()),
                Some(format!("write it as `{key} = \"10s\"` or `\"1m 30s\"`")),
            );
        }
        parsed
    }

    /// A `verify` table: its mode and its allowed-signers file, read now.
    fn signature_policy(&mut self, raw: Spanned<raw::RawVerify>) -> Option<SignaturePolicy> {
        let span = raw.span();
        let raw = raw.into_inner();
        let mode = match raw.mode.get_ref().as_str() {
            "commit" => Some(SignatureMode::Commit),
            "tag" => Some(SignatureMode::Tag),
            "commit-or-tag" => Some(SignatureMode::CommitOrTag),
            other => {
                self.error(
                    raw.mode.span(),
                    format!("`mode` `{other}` is not a way to verify signatures"),
                    Some("write `mode = \"commit\"`, `\"tag\"` or `\"commit-or-tag\"`".into()),
                );
                None
            }
        };
        if let Some(keys) = &raw.openpgp_keys {
            self.error(
                keys.span(),
                "OpenPGP keys are not supported yet: packsync verifies SSH signatures",
                Some(
                    "sign with SSH keys (`git -c gpg.format=ssh commit -S`) and list them in \
                     `allowed_signers`"
                        .into(),
                ),
            );
        }
        let Some(signers) = raw.allowed_signers else {
            self.error(
                span,
                "`verify` names no trusted keys",
                Some("add `allowed_signers = \"/etc/packsync/allowed_signers\"`".into()),
            );
            return None;
        };
        let path = self.path(&signers);
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                self.error(
                    signers.span(),
                    format!("Cannot read the allowed signers: {err}"),
                    Some(
                        "an allowed-signers file lists `principal key` per line, as \
                         `gpg.ssh.allowedSignersFile` of git"
                            .into(),
                    ),
                );
                return None;
            }
        };
        let signers = match AllowedSigners::parse(&path, &text) {
            Ok(signers) => signers,
            Err(err) => {
                self.error(
                    signers.span(),
                    format!("`{}` line {}: {}", path.display(), err.line, err.message),
                    Some(
                        "each line is `principals [options] key-type base64-key [comment]`, \
                         as ssh-keygen(1) describes ALLOWED SIGNERS"
                            .into(),
                    ),
                );
                return None;
            }
        };
        Some(SignaturePolicy {
            mode: mode?,
            signers,
        })
    }

    fn pack(
        &mut self,
        raw: raw::RawPack,
        default_verify: Option<&SignaturePolicy>,
    ) -> Option<PackConfig> {
        let verify = match raw.verify {
            Some(own) => Some(self.signature_policy(own)?),
            None => default_verify.cloned(),
        };
        let name = match PackName::new(raw.name.get_ref().clone()) {
            Ok(name) => Some(name),
            Err(err) => {
                self.error(
                    raw.name.span(),
                    err.to_string(),
                    Some(
                        "use the pack's ref from its `pack.yaml`: lower case letters, digits \
                         and `_`"
                            .to_string(),
                    ),
                );
                None
            }
        };
        let repo = match source::local_path(raw.source.get_ref(), self.base_dir) {
            Ok(repo) => Some(normalize(&repo)),
            Err(err) => {
                let hint = err.hint();
                self.error(raw.source.span(), err.to_string(), hint);
                None
            }
        };
        let selector = match (raw.git_ref, raw.version) {
            (Some(_), Some(version)) => {
                self.error(
                    version.span(),
                    "`ref` and `version` are both set",
                    Some(
                        "keep one: `ref` pins a branch, tag or commit; `version` picks the newest \
                         tag in a semver range"
                            .to_string(),
                    ),
                );
                None
            }
            (Some(git_ref), None) if git_ref.get_ref().trim().is_empty() => {
                self.error(
                    git_ref.span(),
                    "`ref` is empty",
                    Some("remove `ref` to follow the repo's HEAD".to_string()),
                );
                None
            }
            (Some(git_ref), None) => Some(RefSelector::Ref(git_ref.into_inner())),
            (None, Some(version)) => match semver::VersionReq::parse(version.get_ref()) {
                Ok(req) => Some(RefSelector::Version(req)),
                Err(err) => {
                    self.error(
                        version.span(),
                        format!("`version` is not a semver range: {err}"),
                        Some("write a range such as `\">=1.8, <2\"` or `\"~1.8\"`".to_string()),
                    );
                    None
                }
            },
            (None, None) => Some(RefSelector::Head),
        };
        let subdir = raw.subdir.and_then(|subdir| {
            let path = PathBuf::from(subdir.get_ref());
            let escapes = path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)));
            if escapes || path.as_os_str().is_empty() {
                self.error(
                    subdir.span(),
                    format!(
                        "`subdir` `{}` must be a relative path inside the repo",
                        path.display()
                    ),
                    Some("write it from the repo root, e.g. `subdir = \"packs/clush\"`".into()),
                );
                return None;
            }
            Some(path)
        });
        let (values, value_locations) = self.pack_values(raw.config.unwrap_or_default());
        Some(PackConfig {
            name: name?,
            repo: repo?,
            selector: selector?,
            subdir,
            enabled: raw.enabled.unwrap_or(true),
            values,
            value_locations,
            location: self.location(raw.name.span()),
            verify,
        })
    }

    fn pack_values(
        &self,
        table: BTreeMap<Spanned<String>, toml::Value>,
    ) -> (
        serde_json::Map<String, serde_json::Value>,
        BTreeMap<String, Location>,
    ) {
        let mut values = serde_json::Map::new();
        let mut locations = BTreeMap::new();
        for (key, value) in table {
            locations.insert(key.get_ref().clone(), self.location(key.span()));
            values.insert(key.into_inner(), toml_to_json(value));
        }
        (values, locations)
    }

    /// A name of `[stackstorm] env`: an environment variable's name.
    fn env_name(&mut self, raw: Spanned<String>) -> Option<String> {
        let valid = !raw.get_ref().is_empty()
            && !raw.get_ref().starts_with(|c: char| c.is_ascii_digit())
            && raw
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            return Some(raw.into_inner());
        }
        self.error(
            raw.span(),
            format!("`env` names `{}`, which is no variable name", raw.get_ref()),
            Some(
                "`env` lists the names of variables the commands get from packsync's \
                 environment, e.g. `env = [\"ST2_AUTH_TOKEN\"]`"
                    .to_string(),
            ),
        );
        None
    }

    fn command(
        &mut self,
        raw: Option<Spanned<Vec<String>>>,
        key: &str,
        allowed: &[&str],
    ) -> Option<CommandTemplate> {
        let raw = raw?;
        let span = raw.span();
        let argv = raw.into_inner();
        if argv.first().is_none_or(|program| program.trim().is_empty()) {
            self.error(
                span,
                format!("`{key}` needs a program to run"),
                Some(format!(
                    "remove `{key}` or give an argv list, e.g. `[\"st2ctl\", \"reload\"]`"
                )),
            );
            return None;
        }
        for arg in &argv {
            for placeholder in placeholders(arg) {
                if !allowed.contains(&placeholder) {
                    let hint = if allowed.is_empty() {
                        format!("`{key}` takes no placeholders")
                    } else {
                        let names: Vec<String> =
                            allowed.iter().map(|p| format!("`{{{p}}}`")).collect();
                        format!("the placeholders of `{key}` are {}", names.join(", "))
                    };
                    self.error(
                        span.clone(),
                        format!("Unknown placeholder `{{{placeholder}}}` in `{key}`"),
                        Some(hint),
                    );
                }
            }
        }
        Some(CommandTemplate(argv))
    }

    /// A count that must be at least 1.
    fn positive(&mut self, raw: Option<&Spanned<i64>>, key: &str) -> Option<usize> {
        let raw = raw?;
        match usize::try_from(*raw.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.error(
                    raw.span(),
                    format!("`{key}` must be at least 1"),
                    Some(format!("remove `{key}` to use the default")),
                );
                None
            }
        }
    }

    /// `base_requirements`: each one a PEP 508 requirement by name and version (no URL).
    fn requirements(&mut self, raw: Vec<Spanned<String>>) -> Vec<String> {
        let mut requirements = Vec::with_capacity(raw.len());
        for line in raw {
            match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line.get_ref()) {
                Ok(requirement)
                    if !matches!(
                        requirement.version_or_url,
                        Some(pep508_rs::VersionOrUrl::Url(_))
                    ) =>
                {
                    requirements.push(line.into_inner());
                }
                Ok(_) => self.error(
                    line.span(),
                    format!("Base requirement `{}` is a URL", line.get_ref()),
                    Some("name a distribution of the mirror, e.g. `six>=1.9.0,<2.0`".into()),
                ),
                Err(err) => self.error(
                    line.span(),
                    format!(
                        "Base requirement `{}` is not PEP 508: {err}",
                        line.get_ref()
                    ),
                    Some("write it as in requirements.txt, e.g. `six>=1.9.0,<2.0`".into()),
                ),
            }
        }
        requirements
    }

    fn path_or(&self, raw: Option<&Spanned<String>>, default: &str) -> PathBuf {
        raw.map_or_else(|| PathBuf::from(default), |raw| self.path(raw))
    }

    /// A path from the file, relative ones taken from the config file's folder.
    fn path(&self, raw: &Spanned<String>) -> PathBuf {
        normalize(&self.base_dir.join(raw.get_ref()))
    }

    /// Like [`Self::path`], but a bare program name stays as it is, for a `PATH` lookup.
    fn program(&self, raw: &Spanned<String>) -> PathBuf {
        if raw.get_ref().contains('/') {
            self.path(raw)
        } else {
            PathBuf::from(raw.get_ref())
        }
    }
}

/// A connection URL and where it was written, for the messages about it.
struct FoundUrl {
    url: SecretUrl,
    span: Range<usize>,
    /// "`url`", or "The URL in `/etc/packsync/secrets/mongodb/url`".
    origin: String,
}

/// The `{name}` placeholders of an argument.
fn placeholders(arg: &str) -> impl Iterator<Item = &str> {
    arg.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Removes `.` and resolves `..` without touching the filesystem, so messages show clean paths.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(s) => Json::String(s),
        toml::Value::Integer(i) => Json::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        toml::Value::Boolean(b) => Json::Bool(b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => Json::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Json::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}
