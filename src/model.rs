//! Pure types shared by every layer: what a pack should be (`Desired`), what it is
//! (`Installed`) and the vocabulary of the plan (`Action`, `Reason`, `Change`).
//!
//! Nothing here does I/O; the plan imports only this module.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// StackStorm's pack ref rule (`PACK_REF_WHITELIST_REGEX`).
static PACK_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9_]+$").expect("the pack ref pattern is valid"));

/// A pack ref: the directory name StackStorm keys a pack by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PackName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPackName {
    #[error("Pack name `{0}` must match `^[a-z0-9_]+$`")]
    Pattern(String),
    #[error("Pack name `_global` is reserved by StackStorm")]
    Reserved,
}

impl PackName {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidPackName> {
        let name = name.into();
        if name == "_global" {
            return Err(InvalidPackName::Reserved);
        }
        if !PACK_REF.is_match(&name) {
            return Err(InvalidPackName::Pattern(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PackName {
    type Error = InvalidPackName;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl From<PackName> for String {
    fn from(name: PackName) -> Self {
        name.0
    }
}

impl fmt::Display for PackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content digest with its algorithm: `sha256:<hex>` for what packsync hashes,
/// `git:<hex>` for a Git tree id (already a content hash, so it is not hashed again).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn sha256(bytes: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(bytes).as_slice())
    }

    /// The digest of a finished `Sha256` hasher's output.
    pub fn from_sha256(output: &[u8]) -> Self {
        Self(format!("sha256:{}", hex(output)))
    }

    pub fn git_tree(tree_id: &str) -> Self {
        Self(format!("git:{tree_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex digits without the algorithm.
    pub fn hex(&self) -> &str {
        self.0
            .split_once(':')
            .map_or(self.0.as_str(), |(_, hex)| hex)
    }

    /// The first 12 hex digits, for humans.
    pub fn short(&self) -> &str {
        let hex = self.hex();
        &hex[..hex.len().min(12)]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The current time to the millisecond: what every state backend keeps exactly (MongoDB's
/// dates have no finer unit).
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .expect("the current time rounds within jiff's range")
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The first 7 characters of a commit id, as Git shows it.
pub fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(7)]
}

/// Everything that identifies what one release of a pack is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Full commit id the pack tree was read from.
    pub commit: String,
    /// `version` of the pack's `pack.yaml` (strict semver).
    pub version: semver::Version,
    /// The ref or version range the site config asked for (`HEAD` when none).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Git tree id of the pack folder.
    pub tree: Digest,
    /// Digest of everything the virtualenv is built from (see [`EnvInputs`]).
    pub env: Digest,
    /// Digest of the rendered pack config.
    pub config: Digest,
}

/// Names a release of a pack: `<version>-<commit>-<digest>`, e.g. `1.8.1-3f2a9c1-e4b1c2d8`.
///
/// The last part hashes the tree, env and config digests, so equal inputs always give the same
/// id (a release can be found again instead of rebuilt) and different inputs never share one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseId(String);

impl ReleaseId {
    pub fn of(revision: &Revision) -> Self {
        let mut hasher = Sha256::new();
        for digest in [&revision.tree, &revision.env, &revision.config] {
            hasher.update(digest.as_str().as_bytes());
            hasher.update([0]);
        }
        let inputs = hex(&hasher.finalize()[..4]);
        Self(format!(
            "{}-{}-{inputs}",
            revision.version,
            short_commit(&revision.commit)
        ))
    }

    /// The id a release folder is named by, read back from disk: `None` for a name no release
    /// folder has (empty, hidden, or not one path component).
    pub fn from_name(name: &str) -> Option<Self> {
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0']);
        plain.then(|| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The inputs of a pack virtualenv, kept so that the plan can say what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvInputs {
    /// Interpreter identity, e.g. `cpython-3.11.7-x86_64-linux-gnu /opt/stackstorm/st2/bin/python3`.
    pub python: String,
    /// How the virtualenv is laid out, as StackStorm would build it, e.g.
    /// `system-site-packages`, `st2-pth /opt/stackstorm/st2/lib/python3.11/site-packages`.
    #[serde(default)]
    pub settings: Vec<String>,
    /// Normalised requirement lines (direct, markers applied), sorted.
    pub requirements: Vec<String>,
    /// The mirror files the requirements select.
    pub pins: Vec<Pin>,
}

impl EnvInputs {
    /// The env digest: a hash over the python identity, the requirements and the pinned files.
    pub fn digest(&self) -> Digest {
        let mut hasher = Sha256::new();
        for part in [&self.python]
            .into_iter()
            .chain(&self.settings)
            .chain(&self.requirements)
            .map(String::as_str)
            .chain(self.pins.iter().flat_map(|pin| {
                [
                    pin.name.as_str(),
                    pin.version.as_str(),
                    pin.file.as_str(),
                    pin.sha256.as_str(),
                ]
            }))
        {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        Digest::from_sha256(hasher.finalize().as_slice())
    }
}

/// The setting `built <name> <version> from <repo>@<commit>` of a runner set: that pin's wheel
/// was built from the runner's Git repo, not taken from the mirror.
pub const BUILT_SETTING: &str = "built ";

/// One file of the wheel mirror chosen for an env.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pin {
    /// PEP 503 normalised distribution name.
    pub name: String,
    pub version: String,
    /// File name in the mirror.
    pub file: String,
    /// Hex sha256 of the file.
    pub sha256: String,
}

/// A pack as the site config and its sources say it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPack {
    pub name: PackName,
    pub revision: Revision,
    pub env_inputs: EnvInputs,
    /// Packs of this site that this pack depends on (`pack.yaml` `dependencies`).
    pub dependencies: Vec<PackName>,
}

/// What should be installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub packs: Vec<DesiredPack>,
    /// Packs with `enabled = false`: whatever is installed stays as it is.
    pub disabled: Vec<PackName>,
    /// Packs in the site config whose desired state could not be read; the error is reported
    /// elsewhere, and the plan leaves them alone (they are neither orphans nor removals).
    pub unresolved: Vec<PackName>,
    /// Packs `packsync suspend` holds back, with the reason given: their changes are planned
    /// but not carried out.
    pub suspended: BTreeMap<PackName, String>,
    /// Packs whose virtualenv failed to build from the inputs they still have, and whose retry
    /// time has not come: their changes are planned but not carried out.
    pub failed_builds: BTreeMap<PackName, FailedBuild>,
    /// The runner set `[[runner]]` asks for: an environment overlay on StackStorm's own
    /// (`python` is `st2_python`, `requirements` the runners, `settings` what StackStorm's
    /// environment provides to it, `pins` what the set installs). `None` without runners, or
    /// when they cannot be resolved (reported elsewhere).
    pub runners: Option<EnvInputs>,
}

/// A virtualenv build that failed, remembered by its env digest and installer so that the
/// same inputs are not built again before `retry_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedBuild {
    /// Failures in a row of these inputs.
    pub failures: u32,
    pub failed_at: jiff::Timestamp,
    pub retry_after: jiff::Timestamp,
    /// The first lines of the error.
    pub cause: String,
}

/// What `packsync suspend` holds back: one pack, or with no pack the whole host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    #[serde(default)]
    pub pack: Option<PackName>,
    pub reason: String,
    pub at: jiff::Timestamp,
}

/// A pack release that packsync installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPack {
    pub name: PackName,
    pub revision: Revision,
    /// Absent for records that predate them; the plan then gives a generic reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_inputs: Option<EnvInputs>,
    /// StackStorm's links to this release (`packs_dir/<pack>`, `virtualenvs_dir/<pack>`,
    /// `configs_dir/<pack>.yaml`) found not leading to it: replaced by a folder (an image's
    /// init container copying packs over the volume, a hand copy) or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken_links: Vec<PathBuf>,
    /// The live release's virtualenv, when it has no completion record for the release's env
    /// digest (a crash while it was built, a hand edit): the release is broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_env: Option<PathBuf>,
    /// StackStorm's database does not hold what this release carries: registered and purged
    /// again by a `repair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_repair: Option<EngineRepair>,
    /// What `packsync verify` found changed in this release since it was built: it is built
    /// again from Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tampered: Option<String>,
}

impl fmt::Display for EngineRepair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineRepair::Drift {
                registered: Some(version),
            } => write!(
                f,
                "StackStorm has version {version} registered, not the live release"
            ),
            EngineRepair::Drift { registered: None } => {
                f.write_str("StackStorm has the pack not registered")
            }
            EngineRepair::Unpurged => f.write_str(
                "the last purge failed, StackStorm may hold content the live release does not \
                 carry",
            ),
        }
    }
}

/// Why StackStorm's view of a live pack needs registering and purging again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineRepair {
    /// StackStorm has another version registered (`st2 pack install` run by hand), or none.
    Drift { registered: Option<String> },
    /// The last purge failed: StackStorm may hold content the live release does not carry.
    Unpurged,
}

/// A pack directory in `packs_dir` that packsync did not install (e.g. `st2 pack install`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmanagedPack {
    pub path: PathBuf,
    /// `version` from its `pack.yaml`, when readable.
    pub version: Option<String>,
}

/// What is installed: packsync's releases and the packs it would take over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub packs: BTreeMap<PackName, InstalledPack>,
    pub unmanaged: BTreeMap<PackName, UnmanagedPack>,
    /// The active runner set, as its `runner-set.json` says.
    pub runners: Option<EnvInputs>,
    /// A runner set is live but StackStorm's interpreter does not load it.
    pub runners_unhooked: bool,
}

/// Whether packs that left the site config are removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prune {
    /// Report them as orphans and leave them in place.
    #[default]
    Off,
    On,
}

/// What the plan does to one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Install,
    Upgrade,
    Downgrade,
    /// Same pack tree; the virtualenv inputs changed.
    Rebuild,
    /// Only the pack config changed.
    Reconfigure,
    /// Left the site config and `prune` is on.
    Remove,
    /// Left the site config and `prune` is off: reported only.
    Orphan,
    /// The live release is the desired one, but StackStorm's links to it are broken: linked
    /// again (what is in the way moved aside) and registered again.
    Repair,
    Unchanged,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::Install,
        Action::Upgrade,
        Action::Downgrade,
        Action::Rebuild,
        Action::Reconfigure,
        Action::Remove,
        Action::Orphan,
        Action::Repair,
        Action::Unchanged,
    ];

    /// Whether carrying out this action changes anything on the host.
    pub fn changes_host(self) -> bool {
        !matches!(self, Action::Orphan | Action::Unchanged)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Downgrade => "downgrade",
            Action::Rebuild => "rebuild",
            Action::Reconfigure => "reconfigure",
            Action::Remove => "remove",
            Action::Orphan => "orphan",
            Action::Repair => "repair",
            Action::Unchanged => "unchanged",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the plan chose an action, in words a human reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    NotInstalled,
    /// A pack directory that packsync did not install will be moved aside and replaced.
    Adopts {
        path: PathBuf,
        version: Option<String>,
    },
    VersionChanged {
        from: semver::Version,
        to: semver::Version,
    },
    /// The pack tree changed while `pack.yaml` kept its version.
    TreeChangedSameVersion {
        version: semver::Version,
    },
    /// A newer commit whose pack tree, env and config are what is installed.
    CommitOnly {
        from: String,
        to: String,
    },
    RefChanged {
        from: String,
        to: String,
    },
    PythonChanged {
        from: String,
        to: String,
    },
    EnvSettingsChanged {
        from: Vec<String>,
        to: Vec<String>,
    },
    RequirementAdded(String),
    RequirementRemoved(String),
    /// `origin`: where the new file comes from, when not the mirror (`built from repo@commit`).
    PinChanged {
        name: String,
        from: String,
        to: String,
        origin: Option<String>,
    },
    PinAdded {
        name: String,
        version: String,
        origin: Option<String>,
    },
    PinRemoved {
        name: String,
        version: String,
    },
    /// The same pinned version now comes from a different file (a rebuilt wheel in the mirror).
    PinFileChanged {
        name: String,
        version: String,
    },
    /// The env digest changed and the installed record has no inputs to compare.
    EnvChanged,
    /// The runner set is live but StackStorm's `.pth` hook to it is gone (its virtualenv was
    /// rebuilt, e.g. by a StackStorm upgrade).
    RunnerHookMissing,
    /// StackStorm's database does not hold what the live release carries.
    EngineRepair(EngineRepair),
    /// StackStorm's links to the live release no longer lead to it.
    LinksBroken {
        links: Vec<PathBuf>,
    },
    /// `packsync suspend`: the change `held` waits until `packsync resume`.
    Suspended {
        reason: String,
        held: Action,
    },
    /// The live release's virtualenv is not complete: it is built again in place.
    EnvBroken {
        env: PathBuf,
    },
    /// `packsync verify` found the live release changed since it was built.
    Tampered {
        what: String,
    },
    /// The virtualenv the change needs failed to build from these same inputs: the change
    /// `held` waits until the retry time, new inputs, or `--retry-failed`.
    BuildFailed {
        failed: FailedBuild,
        held: Action,
    },
    ConfigChanged,
    Disabled,
    LeftConfig,
    LeftConfigPruneOff,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotInstalled => f.write_str("not installed"),
            Reason::Adopts { path, version } => {
                write!(f, "takes over `{}`", path.display())?;
                if let Some(version) = version {
                    write!(f, " (version {version})")?;
                }
                f.write_str(", installed outside packsync; it is moved aside, not deleted")
            }
            Reason::VersionChanged { from, to } => write!(f, "version {from} -> {to}"),
            Reason::TreeChangedSameVersion { version } => {
                write!(f, "pack files changed, pack.yaml still says {version}")
            }
            Reason::CommitOnly { from, to } => write!(
                f,
                "commit {} -> {} leaves the pack tree, env and config unchanged",
                short_commit(from),
                short_commit(to)
            ),
            Reason::RefChanged { from, to } => write!(f, "ref `{from}` -> `{to}`"),
            Reason::PythonChanged { from, to } => write!(f, "python {from} -> {to}"),
            Reason::EnvSettingsChanged { from, to } => write!(
                f,
                "virtualenv settings [{}] -> [{}]",
                from.join(", "),
                to.join(", ")
            ),
            Reason::RequirementAdded(line) => write!(f, "requirement added: {line}"),
            Reason::RequirementRemoved(line) => write!(f, "requirement removed: {line}"),
            Reason::PinChanged {
                name,
                from,
                to,
                origin,
            } => write!(
                f,
                "{name} {from} -> {to} ({})",
                origin.as_deref().unwrap_or("mirror")
            ),
            Reason::PinAdded {
                name,
                version,
                origin,
            } => write!(
                f,
                "{name} {version} added ({})",
                origin.as_deref().unwrap_or("mirror")
            ),
            Reason::PinRemoved { name, version } => write!(f, "{name} {version} dropped"),
            Reason::PinFileChanged { name, version } => {
                write!(f, "{name} {version}: mirror file changed")
            }
            Reason::EnvChanged => f.write_str("virtualenv inputs changed"),
            Reason::Suspended { reason, held } => write!(
                f,
                "suspended ({reason}): the {} waits for `packsync resume`",
                held.as_str()
            ),
            Reason::EngineRepair(repair) => write!(f, "{repair}: registered and purged again"),
            Reason::Tampered { what } => write!(
                f,
                "`packsync verify` found it changed on disk ({what}): built again from Git, the \
                 tampered release moved aside"
            ),
            Reason::EnvBroken { env } => write!(
                f,
                "its virtualenv `{}` is incomplete (broken): built again",
                env.display()
            ),
            Reason::BuildFailed { failed, held } => write!(
                f,
                "failed build, retry after {} ({} failure{}): the {} waits; {}",
                failed.retry_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
                failed.failures,
                if failed.failures == 1 { "" } else { "s" },
                held.as_str(),
                failed.cause
            ),
            Reason::RunnerHookMissing => f.write_str(
                "StackStorm's Python no longer loads the runner set (its `packsync-runners.pth` \
                 is gone)",
            ),
            Reason::LinksBroken { links } => {
                f.write_str("no longer linked to the live release: ")?;
                for (i, link) in links.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{}`", link.display())?;
                }
                Ok(())
            }
            Reason::ConfigChanged => f.write_str("pack config changed"),
            Reason::Disabled => f.write_str("disabled in the site config: left as installed"),
            Reason::LeftConfig => f.write_str("no longer in the site config (prune is on)"),
            Reason::LeftConfigPruneOff => {
                f.write_str("no longer in the site config; kept because prune is off")
            }
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One pack's entry in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub pack: PackName,
    pub action: Action,
    pub from: Option<Revision>,
    pub to: Option<Revision>,
    pub reasons: Vec<Reason>,
}

/// The ordered changes that take the installed state to the desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The runner set to switch to; runners go live before any pack, whose actions may use
    /// them.
    pub runners: Option<RunnerChange>,
}

/// A new runner set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunnerChange {
    /// The digest of the active set, if any.
    pub from: Option<Digest>,
    pub to: EnvInputs,
    pub reasons: Vec<Reason>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.runners.is_some()
            || self
                .changes
                .iter()
                .any(|change| change.action.changes_host())
    }

    /// How many changes of each action, in [`Action::ALL`] order.
    pub fn counts(&self) -> BTreeMap<Action, usize> {
        let mut counts: BTreeMap<Action, usize> = Action::ALL.iter().map(|a| (*a, 0)).collect();
        for change in &self.changes {
            *counts.entry(change.action).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_names_follow_stackstorm_rules() {
        assert!(PackName::new("clush").is_ok());
        assert!(PackName::new("st2_v2").is_ok());
        assert_eq!(PackName::new("_global"), Err(InvalidPackName::Reserved));
        assert!(matches!(
            PackName::new("Clush"),
            Err(InvalidPackName::Pattern(_))
        ));
        assert!(matches!(
            PackName::new("a.b"),
            Err(InvalidPackName::Pattern(_))
        ));
        assert!(matches!(
            PackName::new(""),
            Err(InvalidPackName::Pattern(_))
        ));
    }

    #[test]
    fn env_digest_depends_on_every_input() {
        let base = EnvInputs {
            python: "cpython-3.11.7".into(),
            settings: vec!["system-site-packages".into()],
            requirements: vec!["six>=1.9".into()],
            pins: vec![Pin {
                name: "six".into(),
                version: "1.16.0".into(),
                file: "six-1.16.0-py2.py3-none-any.whl".into(),
                sha256: "aa".into(),
            }],
        };
        let mut other_python = base.clone();
        other_python.python = "cpython-3.12.1".into();
        let mut other_hash = base.clone();
        other_hash.pins[0].sha256 = "bb".into();
        let mut no_reqs = base.clone();
        no_reqs.requirements.clear();
        let mut isolated = base.clone();
        isolated.settings.clear();
        let digests =
            [&base, &other_python, &other_hash, &no_reqs, &isolated].map(EnvInputs::digest);
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(base.digest(), base.clone().digest());
    }

    #[test]
    fn release_ids_name_version_commit_and_inputs() {
        let revision = Revision {
            commit: "3f2a9c1d00000000000000000000000000000000".into(),
            version: semver::Version::new(1, 8, 1),
            git_ref: "v1.8.1".into(),
            tree: Digest::git_tree("aa"),
            env: Digest::sha256(b"env"),
            config: Digest::sha256(b"config"),
        };
        let id = ReleaseId::of(&revision);
        assert!(id.as_str().starts_with("1.8.1-3f2a9c1-"), "{id}");
        assert_eq!(id.as_str().len(), "1.8.1-3f2a9c1-".len() + 8);
        let mut reconfigured = revision.clone();
        reconfigured.config = Digest::sha256(b"other");
        assert_ne!(ReleaseId::of(&reconfigured), id);
        let mut other_ref = revision.clone();
        other_ref.git_ref = "main".into();
        assert_eq!(ReleaseId::of(&other_ref), id);
        assert_eq!(ReleaseId::from_name(id.as_str()), Some(id));
    }

    #[test]
    fn release_ids_from_folder_names_are_one_plain_component() {
        assert!(ReleaseId::from_name("1.8.1-3f2a9c1-e4b1c2d8").is_some());
        for name in ["", ".", "..", ".clush.link", "a/b"] {
            assert_eq!(ReleaseId::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn digest_short_form_skips_the_algorithm() {
        assert_eq!(Digest::git_tree("0123456789abcdef").short(), "0123456789ab");
        assert!(
            Digest::sha256(b"")
                .as_str()
                .starts_with("sha256:e3b0c44298fc")
        );
    }
}
