//! The site config exactly as the file says it: serde structs that refuse unknown keys and keep
//! the spans that validation errors point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSiteConfig {
    pub(super) version: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) agent: RawAgent,
    #[serde(default)]
    pub(super) stackstorm: RawStackStorm,
    pub(super) mirror: Option<RawMirror>,
    pub(super) state: Option<Spanned<RawState>>,
    pub(super) messaging: Option<Spanned<RawMessaging>>,
    pub(super) fleet: Option<Spanned<RawFleet>>,
    #[serde(default)]
    pub(super) watch: RawWatch,
    #[serde(default)]
    pub(super) schedule: RawSchedule,
    #[serde(default, rename = "pack")]
    pub(super) packs: Vec<RawPack>,
    #[serde(default, rename = "runner")]
    pub(super) runners: Vec<RawRunner>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) state_dir: Option<Spanned<String>>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) prune: Option<bool>,
    pub(super) keep_releases: Option<Spanned<i64>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) metrics_listen: Option<Spanned<String>>,
    pub(super) build_retry: Option<Spanned<String>>,
    pub(super) build_retry_max: Option<Spanned<String>>,
    pub(super) verify_every: Option<Spanned<String>>,
    /// The default of every `[[pack]] verify`.
    pub(super) verify: Option<Spanned<RawVerify>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStackStorm {
    pub(super) packs_dir: Option<Spanned<String>>,
    pub(super) virtualenvs_dir: Option<Spanned<String>>,
    pub(super) configs_dir: Option<Spanned<String>>,
    pub(super) python: Option<Spanned<String>>,
    pub(super) system_site_packages: Option<bool>,
    pub(super) base_requirements: Option<Vec<Spanned<String>>>,
    pub(super) st2_pth: Option<bool>,
    pub(super) register: Option<Spanned<Vec<String>>>,
    pub(super) unregister: Option<Spanned<Vec<String>>>,
    pub(super) test: Option<Spanned<Vec<String>>>,
    pub(super) st2_python: Option<Spanned<String>>,
    pub(super) register_runners: Option<Spanned<Vec<String>>>,
    pub(super) restart: Option<Spanned<Vec<String>>>,
    pub(super) health: Option<Spanned<Vec<String>>>,
    pub(super) command_timeout: Option<Spanned<String>>,
    pub(super) registered: Option<Spanned<Vec<String>>>,
    pub(super) purge: Option<Spanned<Vec<String>>>,
    pub(super) repair_engine_drift: Option<bool>,
    pub(super) env: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMirror {
    pub(super) path: Spanned<String>,
    pub(super) installer: Option<Spanned<String>>,
    pub(super) uv: Option<Spanned<String>>,
}

/// `[state]`: where the installed state is kept; absent, the embedded file store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) url: Option<Spanned<String>>,
    pub(super) url_file: Option<Spanned<String>>,
    pub(super) database: Option<Spanned<String>>,
    pub(super) collection_prefix: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPack {
    pub(super) name: Spanned<String>,
    pub(super) source: Spanned<String>,
    #[serde(rename = "ref")]
    pub(super) git_ref: Option<Spanned<String>>,
    pub(super) version: Option<Spanned<String>>,
    pub(super) subdir: Option<Spanned<String>>,
    pub(super) enabled: Option<bool>,
    pub(super) config: Option<BTreeMap<Spanned<String>, toml::Value>>,
    pub(super) verify: Option<Spanned<RawVerify>>,
}

/// `verify = { mode = "commit", allowed_signers = "PATH" }`: the signatures a source must carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVerify {
    pub(super) mode: Spanned<String>,
    pub(super) allowed_signers: Option<Spanned<String>>,
    pub(super) openpgp_keys: Option<Spanned<Vec<String>>>,
}

/// One `[[runner]]`: a StackStorm runner distribution, from the mirror.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunner {
    pub(super) name: Spanned<String>,
    pub(super) version: Option<Spanned<String>>,
    pub(super) source: Option<Spanned<String>>,
    #[serde(rename = "ref")]
    pub(super) git_ref: Option<Spanned<String>>,
    pub(super) verify: Option<Spanned<RawVerify>>,
}

/// `[watch]`: how `packsync run` notices changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    pub(super) debounce: Option<Spanned<String>>,
    pub(super) poll: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
}

/// `[schedule]`: the full reconciles of `packsync run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    pub(super) cron: Option<Spanned<String>>,
    pub(super) splay: Option<Spanned<String>>,
    pub(super) retry: Option<Spanned<String>>,
}

/// `[messaging]`: where the agent publishes its events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) name: Spanned<String>,
    pub(super) hosts: Spanned<Vec<Spanned<String>>>,
    pub(super) quorum: Option<Spanned<i64>>,
    pub(super) prepare_timeout: Option<Spanned<String>>,
    pub(super) lease_ttl: Option<Spanned<String>>,
    pub(super) waves: Option<Spanned<Vec<Vec<Spanned<String>>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMessaging {
    pub(super) url: Option<Spanned<String>>,
    pub(super) url_file: Option<Spanned<String>>,
    pub(super) exchange: Option<Spanned<String>>,
    pub(super) queue_limit: Option<Spanned<i64>>,
}
