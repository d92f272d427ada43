//! The desired state: the site config read together with the Git sources, the packs' own
//! files and the wheel mirror.
//!
//! [`resolve()`] never stops at the first problem: every pack is read, every problem is collected
//! with its file and position, and a pack with an error is set aside as `unresolved` so that the
//! plan leaves it alone.

mod cache;

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::{Installer, PackConfig, SiteConfig};
use crate::diagnostics::{Location, Problem, Report, Severity};
use crate::env::EnvBuilder;
use pep440_rs::Version;
use pep508_rs::PackageName;

use crate::mirror::resolve::{self, Request, ResolveError, RootRequirement};
use crate::mirror::{MetadataCache, MirrorIndex, Prereleases};
use crate::model::{Desired, DesiredPack, Digest, EnvInputs, PackName, Pin, Revision};
use crate::pack::content::{CONTENT_DIRS, ContentFile, KnownRunners, check_resources};
use crate::pack::{self, PackMetadata, RequirementLine, Requirements};
use crate::python::PythonIdentity;
use crate::source::{PackTree, RefSelector, RefStamps, Repo};
use cache::{DesiredCache, ReadFrom};

const PACK_YAML: &str = "pack.yaml";
const CONFIG_SCHEMA: &str = "config.schema.yaml";
const REQUIREMENTS: &str = "requirements.txt";
/// The sha256 cache of the mirror index, under `state_dir`.
const MIRROR_CACHE: &str = "mirror-index.json";
/// The metadata read from mirror files, by sha256, under `state_dir`.
const METADATA_CACHE: &str = "mirror-metadata.json";

/// Whether to look at Git work trees for uncommitted edits (which never count, but `check`
/// warns about them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkTrees {
    Ignore,
    Warn,
}

/// The desired state and every problem met while reading it.
#[derive(Debug, Default)]
pub struct Resolution {
    pub desired: Desired,
    pub problems: Vec<Problem>,
}

impl Resolution {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// Reads the desired state of the packs of `config` (all of them, or those in `only`).
pub fn resolve(
    config: &SiteConfig,
    only: Option<&BTreeSet<PackName>>,
    work_trees: WorkTrees,
) -> Resolution {
    let mut resolution = Resolution::default();
    let probes = config.agent.state_dir.join(crate::python::PROBE_CACHE);
    let python = PythonIdentity::probe_cached(&config.stackstorm.python, &probes)
        .map_err(|err| resolution.problems.push(error(Report::new(&err))))
        .ok();
    let st2 = config
        .stackstorm
        .st2_python
        .as_ref()
        .and_then(|st2_python| {
            PythonIdentity::probe_cached(st2_python, &probes)
                .map_err(|err| resolution.problems.push(error(Report::new(&err))))
                .ok()
        });
    if let (Some(python), Some(st2)) = (&python, &st2) {
        resolution.problems.extend(same_minor_version(python, st2));
    }
    if let Some(python) = python
        .as_ref()
        .filter(|_| config.mirror.installer == Installer::Pip)
    {
        resolution.problems.extend(pip_too_old(python));
    }
    let cache = config.agent.state_dir.join(MIRROR_CACHE);
    let mirror = MirrorIndex::scan(&config.mirror.path, Some(&cache))
        .map_err(|err| resolution.problems.push(error(Report::new(&err))))
        .ok();
    if let Some(mirror) = &mirror {
        resolution
            .problems
            .extend(mirror.skipped().iter().map(|skipped| {
                finding(
                    Severity::Warning,
                    format!(
                        "Ignoring `{}` in the mirror: {}",
                        skipped.file_name, skipped.reason
                    ),
                    None,
                    Some("rename or remove the file; pip ignores it too".to_string()),
                )
            }));
    }
    let site_packs: BTreeSet<&PackName> = config.packs.iter().map(|p| &p.name).collect();
    let base_requirements = base_requirements(config);
    // An sdist that declares its dependencies in no file is built (offline, its backend from
    // the mirror) to learn them, once per content: the cache keeps what it learnt.
    let wheels = EnvBuilder::for_site(config);
    let metadata = MetadataCache::load(Some(&config.agent.state_dir.join(METADATA_CACHE)))
        .with_builder(
            Box::new(move |sdist, out| {
                wheels
                    .build_wheel(sdist, out)
                    .map_err(|err| Report::new(&err).one_line())
            }),
            config.agent.state_dir.join(PEP517_SCRATCH),
        );
    let reader = PackReader {
        declared_runners: declared_runners(config),
        st2_runners: OnceCell::new(),
        st2: st2.as_ref(),
        config,
        base_requirements: &base_requirements,
        python: python.as_ref(),
        mirror: mirror.as_ref(),
        metadata: &metadata,
        site_packs,
        work_trees,
    };
    // `check` reads work trees too, and warns about what is uncommitted: never from the cache.
    let mut cache = match (&mirror, work_trees) {
        (Some(mirror), WorkTrees::Ignore) => Some(DesiredCache::open(
            &config.agent.state_dir,
            &cache_key(config, python.as_ref(), st2.as_ref(), mirror),
        )),
        _ => None,
    };
    read_packs(&reader, only, cache.as_mut(), &mut resolution);
    if !config.runners.is_empty()
        && only.is_none()
        && let (Some(st2), Some(_)) = (&st2, &mirror)
    {
        resolution.desired.runners = reader.runners(st2, &mut resolution.problems);
    }
    if let Some(mirror) = &mirror {
        metadata.save(mirror.files().iter().map(|file| file.sha256.as_str()));
    }
    if let Some(cache) = cache {
        cache.save(config.packs.iter().map(|pack| &pack.name));
    }
    resolution
}

/// Reads every pack of the site config (of `only`) into `resolution`, from `cache` where
/// nothing it was read from changed.
fn read_packs(
    reader: &PackReader<'_>,
    only: Option<&BTreeSet<PackName>>,
    mut cache: Option<&mut DesiredCache>,
    resolution: &mut Resolution,
) {
    let config = reader.config;
    for pack in &config.packs {
        if only.is_some_and(|only| !only.contains(&pack.name)) {
            continue;
        }
        if !pack.enabled {
            resolution.desired.disabled.push(pack.name.clone());
            continue;
        }
        if let Some(desired) = cache.as_deref().and_then(|cache| cache.get(&pack.name)) {
            resolution.desired.packs.push(desired);
            continue;
        }
        let mut problems = Vec::new();
        let mut read_from = None;
        let desired = reader.read(pack, &mut problems, &mut read_from);
        if let (Some(cache), Some(desired), Some(read_from), true) = (
            cache.as_deref_mut(),
            &desired,
            read_from,
            problems.is_empty(),
        ) {
            cache.put(desired, read_from);
        }
        let failed = problems
            .iter()
            .any(|p: &Problem| p.severity == Severity::Error);
        resolution
            .problems
            .extend(problems.into_iter().map(|mut problem| {
                problem.report.pack = Some(pack.name.clone());
                problem
            }));
        match desired {
            Some(desired) if !failed => resolution.desired.packs.push(desired),
            _ => resolution.desired.unresolved.push(pack.name.clone()),
        }
    }
}

/// What a pack's desired state is read against besides its own sources: packsync itself, the
/// site config, the interpreters and the mirror's files.
fn cache_key(
    config: &SiteConfig,
    python: Option<&PythonIdentity>,
    st2: Option<&PythonIdentity>,
    mirror: &MirrorIndex,
) -> Vec<String> {
    let mut key = vec![
        env!("CARGO_PKG_VERSION").to_string(),
        format!("{config:?}"),
        python.map(PythonIdentity::fingerprint).unwrap_or_default(),
        st2.map(PythonIdentity::fingerprint).unwrap_or_default(),
    ];
    key.extend(
        mirror
            .files()
            .iter()
            .map(|file| format!("{} {}", file.file_name, file.sha256)),
    );
    key
}

/// The distributions of the target environment a resolution relies on.
type Provided = Vec<(PackageName, Version)>;

/// Pack virtualenvs import st2common from StackStorm's site-packages: they must run its Python
/// minor version.
/// The oldest pip that installs into another environment (`pip --python`, pip 22.3).
const PIP_WITH_PYTHON_OPTION: (u64, u64) = (22, 3);

/// The error when `[mirror] installer = "pip"` and the interpreter's pip cannot do what packsync
/// asks of it (`--python <venv>`).
fn pip_too_old(python: &PythonIdentity) -> Option<Problem> {
    let found = match python.pip_version()? {
        None => "no pip".to_string(),
        Some(version) => {
            let mut parts = version
                .split('.')
                .map(|part| part.parse::<u64>().unwrap_or(0));
            let major_minor = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if major_minor >= PIP_WITH_PYTHON_OPTION {
                return None;
            }
            format!("pip {version}")
        }
    };
    Some(finding(
        Severity::Error,
        format!(
            "`{}` has {found}: packsync installs with `pip --python <venv>`, which needs pip \
             22.3 or later",
            python.path().display()
        ),
        None,
        Some(
            "set `[mirror] installer = \"uv\"` (uv needs no pip in the interpreter), or put a pip \
             22.3+ wheel in the mirror and install it into that interpreter: \
             `<python> -m pip install --no-index --find-links <mirror> -U pip`"
                .to_string(),
        ),
    ))
}

fn same_minor_version(python: &PythonIdentity, st2: &PythonIdentity) -> Option<Problem> {
    (st2.minor_version() != python.minor_version()).then(|| {
        finding(
            Severity::Error,
            format!(
                "Pack virtualenvs would run Python {} (`{}`), but StackStorm runs Python {} \
                 (`{}`): actions import st2common from StackStorm's site-packages, built for \
                 its own Python",
                python.minor_version(),
                python.path().display(),
                st2.minor_version(),
                st2.path().display()
            ),
            None,
            Some(format!(
                "set `[stackstorm] python` to an interpreter of Python {}, e.g. `python = \"{}\"`",
                st2.minor_version(),
                st2.path().display()
            )),
        )
    })
}

fn error(report: Report) -> Problem {
    Problem {
        severity: Severity::Error,
        report,
    }
}

fn warning(report: Report) -> Problem {
    Problem {
        severity: Severity::Warning,
        report,
    }
}

/// A problem that is not an error value: a message, where, and how to fix it.
fn finding(
    severity: Severity,
    message: String,
    location: Option<Location>,
    hint: Option<String>,
) -> Problem {
    Problem {
        severity,
        report: Report {
            pack: None,
            message,
            causes: Vec::new(),
            location,
            hint,
            output: None,
        },
    }
}

/// `[stackstorm] base_requirements` as requirement lines (the config validated them).
fn base_requirements(config: &SiteConfig) -> Vec<RequirementLine> {
    let file = format!("{} [stackstorm] base_requirements", config.path.display());
    config
        .stackstorm
        .virtualenv
        .base_requirements
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            Some(RequirementLine {
                requirement: line.parse().ok()?,
                hashes: Vec::new(),
                file: file.clone(),
                line: i + 1,
            })
        })
        .collect()
}

/// Where sdists are built to learn their metadata, under `state_dir`.
const PEP517_SCRATCH: &str = "cache/pep517";

/// What every pack is read against.
struct PackReader<'a> {
    config: &'a SiteConfig,
    base_requirements: &'a [RequirementLine],
    /// `None` when the interpreter could not be probed (already reported).
    python: Option<&'a PythonIdentity>,
    /// `None` when the mirror could not be read (already reported).
    mirror: Option<&'a MirrorIndex>,
    metadata: &'a MetadataCache,
    site_packs: BTreeSet<&'a PackName>,
    work_trees: WorkTrees,
    /// The runners actions may use besides StackStorm's built-in ones, as the site config
    /// declares them.
    declared_runners: KnownRunners,
    /// Every runner StackStorm's interpreter has, asked once and only when an action names a
    /// runner neither built in nor declared: the question costs a process start.
    st2_runners: OnceCell<KnownRunners>,
    /// StackStorm's interpreter, when the site config names it and it could be probed.
    st2: Option<&'a PythonIdentity>,
}

impl PackReader<'_> {
    /// The declared runners and every runner StackStorm's interpreter has (the list is then
    /// complete: an unknown runner is an error); the declared ones alone when it cannot say.
    fn st2_runners(&self) -> &KnownRunners {
        self.st2_runners.get_or_init(|| {
            let mut runners = self.declared_runners.clone();
            if let Some(names) = self.st2.and_then(|st2| {
                st2.entry_point_names(crate::runners::ENTRY_POINT_GROUP)
                    .ok()
            }) {
                runners.custom.extend(names);
                runners.complete = true;
            }
            runners
        })
    }

    /// Reads one pack, pushing every problem; `None` when it cannot be planned. `read_from`
    /// gets what its ref lookup read, stamped before the lookup.
    fn read(
        &self,
        pack: &PackConfig,
        problems: &mut Vec<Problem>,
        read_from: &mut Option<ReadFrom>,
    ) -> Option<DesiredPack> {
        // A source that cannot be read is this `[[pack]]`'s problem: its place in the site
        // config is where to fix it.
        let mut report = |err: &(dyn crate::diagnostics::Diagnose + 'static)| {
            let mut report = Report::new(err);
            report.location.get_or_insert_with(|| pack.location.clone());
            problems.push(error(report));
        };
        let repo = Repo::open(&pack.repo).map_err(|err| report(&err)).ok()?;
        let dirs = repo.git_dirs();
        let stamps = RefStamps::read(&dirs, &pack.selector);
        *read_from = Some((dirs, stamps));
        let resolved = repo
            .resolve(&pack.selector)
            .map_err(|err| report(&err))
            .ok()?;
        // A commit nobody trusted signed is never read further: the live release stays.
        if let Some(policy) = &pack.verify {
            repo.check_signed(&resolved, policy)
                .map_err(|err| report(&err))
                .ok()?;
        }
        let tree = repo
            .pack_tree(&resolved.commit, pack.subdir.as_deref())
            .map_err(|err| report(&err))
            .ok()?;
        // What the export at `apply` refuses, refused now.
        tree.check_exportable().map_err(|err| report(&err)).ok()?;
        if self.work_trees == WorkTrees::Warn {
            Self::warn_uncommitted(&repo, pack, problems);
        }
        let metadata = self.metadata(pack, &tree, problems);
        let resources_valid = self.check_resources(&tree, problems);
        let config = self.config_digest(pack, &tree, problems);
        let env_inputs = self.env_inputs(&tree, problems);
        let (metadata, config, env_inputs) = (metadata?, config?, env_inputs?);
        resources_valid.then_some(())?;
        let git_ref = match &pack.selector {
            RefSelector::Head => "HEAD".to_string(),
            RefSelector::Ref(_) | RefSelector::Version(_) => resolved.label,
        };
        Some(DesiredPack {
            name: pack.name.clone(),
            revision: Revision {
                commit: resolved.commit,
                version: metadata.version,
                git_ref,
                tree: Digest::git_tree(&tree.id()),
                env: env_inputs.digest(),
                config,
            },
            env_inputs,
            dependencies: metadata
                .dependencies
                .iter()
                .filter_map(|dep| PackName::new(dep.name.clone()).ok())
                .collect(),
        })
    }

    /// The pack's actions checked as StackStorm's registrar checks them; `false` when one is
    /// refused for sure.
    fn check_resources(&self, tree: &PackTree<'_>, problems: &mut Vec<Problem>) -> bool {
        let files = match content_files(tree) {
            Ok(files) => files,
            Err(err) => {
                problems.push(error(Report::new(&err)));
                return false;
            }
        };
        let exists = |rel: &str| tree.read_file(rel).is_ok_and(|file| file.is_some());
        let mut found = check_resources(&files, &self.declared_runners, exists);
        if found.iter().any(|found| !found.certain) {
            found = check_resources(&files, self.st2_runners(), exists);
        }
        let mut valid = true;
        for found in found {
            valid &= !found.certain;
            let severity = if found.certain {
                Severity::Error
            } else {
                Severity::Warning
            };
            problems.push(finding(
                severity,
                format!("`{}` {}", tree.file_label(&found.file), found.message),
                None,
                found.hint,
            ));
        }
        valid
    }

    fn warn_uncommitted(repo: &Repo, pack: &PackConfig, problems: &mut Vec<Problem>) {
        match repo.uncommitted_changes(pack.subdir.as_deref()) {
            Ok(paths) if paths.is_empty() => {}
            Ok(paths) => {
                let shown: Vec<String> = paths
                    .iter()
                    .take(5)
                    .map(|p| format!("`{}`", p.display()))
                    .collect();
                let more = paths.len().saturating_sub(shown.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                problems.push(finding(
                    Severity::Warning,
                    format!(
                        "Uncommitted changes in `{}` are ignored: {}{more}",
                        repo.path().display(),
                        shown.join(", ")
                    ),
                    None,
                    Some("packsync deploys committed content only: commit the changes".into()),
                ));
            }
            Err(err) => problems.push(warning(Report::new(&err))),
        }
    }

    /// `pack.yaml`, checked, and its ref matched against the site config's name.
    fn metadata(
        &self,
        pack: &PackConfig,
        tree: &PackTree<'_>,
        problems: &mut Vec<Problem>,
    ) -> Option<PackMetadata> {
        let label = tree.file_label(PACK_YAML);
        let text = match read_yaml_text(tree, PACK_YAML) {
            Ok(Some(text)) => text,
            Ok(None) => {
                problems.push(finding(
                    Severity::Error,
                    format!("`{label}` does not exist"),
                    None,
                    Some(
                        "a StackStorm pack has `pack.yaml` at its root: check `source`, `subdir` \
                         and `ref` for this pack"
                            .to_string(),
                    ),
                ));
                return None;
            }
            Err(err) => {
                problems.push(error(Report::new(&err)));
                return None;
            }
        };
        let metadata = pack::parse_metadata(&text, &label)
            .map_err(|err| problems.push(error(Report::new(&err))))
            .ok()?;
        if metadata.pack_ref != pack.name {
            let key = if text.lines().any(|l| l.starts_with("ref:")) {
                "ref"
            } else {
                "name"
            };
            problems.push(finding(
                Severity::Error,
                format!(
                    "Pack `{}` in the site config is `{}` in its `pack.yaml`",
                    pack.name, metadata.pack_ref
                ),
                Some(Location::of_yaml_key(&label, &text, key)),
                Some(format!(
                    "StackStorm keys a pack by its ref: set `name = \"{}\"` in the site config \
                     (at {})",
                    metadata.pack_ref, pack.location
                )),
            ));
            return None;
        }
        for dep in &metadata.dependencies {
            let known = PackName::new(dep.name.clone()).is_ok_and(|n| self.site_packs.contains(&n));
            if !known {
                problems.push(finding(
                    Severity::Warning,
                    format!(
                        "Pack depends on `{}`, which this site config does not manage",
                        dep.raw
                    ),
                    Some(Location::of_yaml_key(&label, &text, "dependencies")),
                    Some(format!(
                        "add a `[[pack]]` for `{}` or make sure it is installed",
                        dep.name
                    )),
                ));
            }
        }
        Some(metadata)
    }

    /// The pack config values, validated against `config.schema.yaml` when the pack has one,
    /// and their digest.
    fn config_digest(
        &self,
        pack: &PackConfig,
        tree: &PackTree<'_>,
        problems: &mut Vec<Problem>,
    ) -> Option<Digest> {
        let schema = match read_yaml_text(tree, CONFIG_SCHEMA) {
            Ok(Some(text)) => Some(
                pack::parse_config_schema(&text, &tree.file_label(CONFIG_SCHEMA))
                    .map_err(|err| problems.push(error(Report::new(&err))))
                    .ok()?,
            ),
            Ok(None) => None,
            Err(err) => {
                problems.push(error(Report::new(&err)));
                return None;
            }
        };
        let mut valid = true;
        if let Some(schema) = schema.as_ref().filter(|_| pack.values.is_empty()) {
            // No `[pack.config]`: the config is the site's (`st2 pack config` writes it), and
            // StackStorm registers a pack without one. Checked when it is there, never changed.
            self.check_site_config(pack, schema, problems);
        } else if let Some(schema) = &schema {
            let findings = schema.check(&pack.values);
            let errors = findings.errors.into_iter().map(|p| (Severity::Error, p));
            let warnings = findings
                .warnings
                .into_iter()
                .map(|p| (Severity::Warning, p));
            for (severity, found) in errors.chain(warnings) {
                valid &= severity != Severity::Error;
                let top_key = found.key.split('.').next().unwrap_or_default();
                let location = pack
                    .value_locations
                    .get(top_key)
                    .cloned()
                    .or_else(|| Some(pack.location.clone()));
                problems.push(finding(
                    severity,
                    format!("Pack config `{}`: {}", found.key, found.message),
                    location,
                    found.hint.clone(),
                ));
            }
        } else if !pack.values.is_empty() {
            problems.push(finding(
                Severity::Warning,
                "Pack has no `config.schema.yaml`: its config values are not checked".to_string(),
                Some(pack.location.clone()),
                None,
            ));
        }
        valid.then(|| Digest::sha256(canonical_json(&pack.values).as_bytes()))
    }

    /// Checks the site's own config file of `pack` (`configs_dir/<pack>.yaml`, not a link of
    /// packsync's) against `schema`; what is wrong is a warning, as StackStorm registers the pack
    /// anyway (`ConfigsRegistrar` skips a pack without a config file).
    fn check_site_config(
        &self,
        pack: &PackConfig,
        schema: &pack::ConfigSchema,
        problems: &mut Vec<Problem>,
    ) {
        let path = self
            .config
            .stackstorm
            .configs_dir
            .join(format!("{}.yaml", pack.name));
        let ours = crate::fsx::link_target(&path)
            .ok()
            .flatten()
            .is_some_and(|target| target.starts_with(&self.config.agent.state_dir));
        if ours {
            return;
        }
        let (values, origin) = match fs_err::read(&path) {
            Ok(bytes) => match crate::yaml::load(&bytes) {
                Ok(serde_json::Value::Object(values)) => (values, format!("`{}`", path.display())),
                Ok(serde_json::Value::Null) => {
                    (serde_json::Map::new(), format!("`{}`", path.display()))
                }
                Ok(_) | Err(_) => {
                    problems.push(finding(
                        Severity::Warning,
                        format!("The pack config `{}` is no YAML mapping", path.display()),
                        None,
                        Some("StackStorm fails to register this config: fix or remove it".into()),
                    ));
                    return;
                }
            },
            Err(_) => (
                serde_json::Map::new(),
                "no `[pack.config]` and no config file".to_string(),
            ),
        };
        let findings = schema.check(&values);
        for found in findings.errors.into_iter().chain(findings.warnings) {
            problems.push(finding(
                Severity::Warning,
                format!("Pack config `{}` ({origin}): {}", found.key, found.message),
                Some(pack.location.clone()),
                Some(
                    "the pack has no `[pack.config]`, so its config is the site's \
                     (`st2 pack config`, or `configs_dir/<pack>.yaml`); give `[pack.config]` for \
                     packsync to own and check it"
                        .to_string(),
                ),
            ));
        }
    }

    /// The virtualenv inputs: interpreter, requirements and the mirror files they resolve to.
    fn env_inputs(&self, tree: &PackTree<'_>, problems: &mut Vec<Problem>) -> Option<EnvInputs> {
        let mut requirements = Self::requirements(tree, problems)?;
        let (python, mirror) = (self.python?, self.mirror?);
        // First, so that the chains of errors name the pack's own line when both require it.
        requirements
            .requirements
            .splice(0..0, self.base_requirements.iter().cloned());
        let prereleases = if requirements.options.iter().any(|o| o == "--pre") {
            Prereleases::Allow
        } else {
            Prereleases::IfRequested
        };
        // `requirements.txt:3`: the file within the pack, for chains and hash errors.
        let in_pack = tree.file_label("");
        let origin = |line: &RequirementLine| {
            let file = line.file.strip_prefix(&in_pack).unwrap_or(&line.file);
            format!("{file}:{}", line.line)
        };
        let roots = |lines: &[RequirementLine]| -> Vec<RootRequirement> {
            lines
                .iter()
                .filter(|line| line.requirement.marker.evaluate(python.markers(), &[]))
                .map(|line| RootRequirement {
                    requirement: line.requirement.clone(),
                    origin: origin(line),
                })
                .collect()
        };
        let request = Request {
            requirements: &roots(&requirements.requirements),
            constraints: &roots(&requirements.constraints),
            prereleases,
            python,
            provided: &BTreeMap::new(),
        };
        let (pins, _) = self.resolve_pins(mirror, request, problems)?;
        // `--hash` options of the pack's own lines pin the file too, as pip's hash mode does.
        let before = problems.len();
        for line in &requirements.requirements {
            let Some(pin) = pins
                .iter()
                .find(|pin| !line.hashes.is_empty() && pin.name == line.requirement.name.as_ref())
            else {
                continue;
            };
            let allowed = line
                .hashes
                .iter()
                .any(|hash| hash.strip_prefix("sha256:") == Some(pin.sha256.as_str()));
            if !allowed {
                problems.push(finding(
                    Severity::Error,
                    format!(
                        "{}: the mirror's `{}` has sha256 {}, which no `--hash` of the line \
                         allows",
                        origin(line),
                        pin.file,
                        pin.sha256
                    ),
                    None,
                    Some(format!(
                        "check the file, then add `--hash=sha256:{}` to the line, or put back \
                         the file the line was written for",
                        pin.sha256
                    )),
                ));
            }
        }
        if problems.len() > before {
            return None;
        }
        Some(EnvInputs {
            python: python.label(),
            settings: self.env_settings(python),
            requirements: requirements.normalized(),
            pins,
        })
    }

    /// The mirror files `request` resolves to, each checked against `SHA256SUMS` and, for an
    /// sdist, that its build backend is in the mirror, and the provided distributions it uses;
    /// `None` after pushing every problem.
    fn resolve_pins(
        &self,
        mirror: &MirrorIndex,
        request: Request<'_>,
        problems: &mut Vec<Problem>,
    ) -> Option<(Vec<Pin>, Provided)> {
        if request.requirements.is_empty() {
            return Some((Vec::new(), Vec::new()));
        }
        let resolved = match resolve::resolve(mirror, self.metadata, request) {
            Ok(resolved) => resolved,
            Err(ResolveError::Unsatisfiable { chains }) => {
                let hint = format!(
                    "add the missing versions to the mirror folder `{}`, or change the \
                     requirement",
                    mirror.dir().display()
                );
                problems.extend(
                    chains
                        .into_iter()
                        .map(|chain| finding(Severity::Error, chain, None, Some(hint.clone()))),
                );
                return None;
            }
            Err(err) => {
                let mut report = Report::new(&err);
                if let Some(base) = self.base_requirement_of(&err) {
                    report.message = format!(
                        "{} (brought in by `[stackstorm] base_requirements` `{base}`, not by the \
                         pack)",
                        report.message
                    );
                }
                problems.push(error(report));
                return None;
            }
        };
        let before = problems.len();
        for file in &resolved.files {
            if let Err(err) = mirror.verify_listed(file) {
                problems.push(error(Report::new(&err)));
            }
        }
        problems.extend(
            resolve::check_build_backends(mirror, self.metadata, &resolved, request.python)
                .iter()
                .map(|err| error(Report::new(err))),
        );
        (problems.len() == before).then(|| {
            (
                resolved.files.iter().map(|file| file.pin()).collect(),
                resolved.provided,
            )
        })
    }

    /// The base requirement (`[stackstorm] base_requirements`) whose own mirror file the
    /// resolution `err` failed on, if it did: six's sdist, say.
    fn base_requirement_of(&self, err: &resolve::ResolveError) -> Option<String> {
        let resolve::ResolveError::Mirror(crate::mirror::MirrorError::Metadata { path, .. }) = err
        else {
            return None;
        };
        let file = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        self.base_requirements
            .iter()
            .map(|line| line.requirement.name.to_string())
            .find(|name| {
                let stem = name.replace('-', "_");
                file.starts_with(&format!("{stem}-")) || file.starts_with(&format!("{name}-"))
            })
    }

    /// The runner set: the `[[runner]]` requirements resolved for StackStorm's interpreter,
    /// with what its environment already has fixed at the installed version.
    fn runners(&self, st2: &PythonIdentity, problems: &mut Vec<Problem>) -> Option<EnvInputs> {
        let mirror = self.mirror?;
        let builder = EnvBuilder::for_site(self.config);
        let mut local = Vec::new();
        for runner in &self.config.runners {
            let Some(source) = &runner.source else {
                continue;
            };
            match crate::runners::source_wheel(self.config, source, &builder) {
                Ok(wheel) => local.push(wheel),
                Err(err) => {
                    let mut report = Report::new(&err);
                    report.message = format!("runners: {}", report.message);
                    problems.push(error(report));
                }
            }
        }
        if local.len()
            < self
                .config
                .runners
                .iter()
                .filter(|r| r.source.is_some())
                .count()
        {
            return None;
        }
        let overlaid;
        let mirror = if local.is_empty() {
            mirror
        } else {
            let dirs: Vec<PathBuf> = local.iter().map(|wheel| wheel.dir.clone()).collect();
            overlaid = mirror
                .overlaid(&dirs)
                .map_err(|err| problems.push(error(Report::new(&err))))
                .ok()?;
            &overlaid
        };
        let mut provided = st2
            .installed_distributions(
                &self
                    .config
                    .agent
                    .state_dir
                    .join(crate::runners::RUNNERS_DIR),
            )
            .map_err(|err| problems.push(error(Report::new(&err))))
            .ok()?;
        // The runners themselves always come from the set, which StackStorm's interpreter loads
        // ahead of its own site-packages: a copy once `pip install`ed there is stale.
        for runner in &self.config.runners {
            if let Some(stale) = provided.remove(&runner.requirement.name) {
                problems.push(stale_runner(st2, runner, &stale));
            }
        }
        let roots: Vec<RootRequirement> = self
            .config
            .runners
            .iter()
            .map(|runner| RootRequirement {
                requirement: runner.requirement.clone(),
                origin: format!("[[runner]] at {}", runner.location),
            })
            .collect();
        let request = Request {
            requirements: &roots,
            constraints: &[],
            prereleases: Prereleases::IfRequested,
            python: st2,
            provided: &provided,
        };
        let before = problems.len();
        let Some((pins, provided)) = self.resolve_pins(mirror, request, problems) else {
            for problem in &mut problems[before..] {
                problem.report.message = format!("runners: {}", problem.report.message);
            }
            return None;
        };
        let mut requirements: Vec<String> = roots
            .iter()
            .map(|root| root.requirement.to_string())
            .collect();
        requirements.sort();
        Some(EnvInputs {
            python: st2.label(),
            settings: runner_settings(&provided, &local, &pins),
            requirements,
            pins,
        })
    }

    /// The virtualenv layout choices, as recorded in the env inputs.
    fn env_settings(&self, python: &PythonIdentity) -> Vec<String> {
        let virtualenv = &self.config.stackstorm.virtualenv;
        let mut settings = Vec::new();
        if virtualenv.system_site_packages {
            settings.push("system-site-packages".to_string());
        }
        if virtualenv.st2_pth
            && let Some(site_packages) = python.venv_site_packages()
        {
            settings.push(format!("st2-pth {}", site_packages.display()));
        }
        settings
    }

    /// `requirements.txt` and what it includes; none when the pack has no such file.
    fn requirements(tree: &PackTree<'_>, problems: &mut Vec<Problem>) -> Option<Requirements> {
        pack::parse_requirements(
            REQUIREMENTS,
            |rel| tree.file_label(rel),
            |rel| read_text(tree, rel),
        )
        .map_err(|err| problems.push(error(Report::new(&err))))
        .ok()
    }
}

/// The settings of a runner set: what StackStorm's environment provides, the folders of the
/// wheels built from Git, and which pins those wheels are.
fn runner_settings(
    provided: &Provided,
    local: &[crate::runners::SourceWheel],
    pins: &[crate::model::Pin],
) -> Vec<String> {
    provided
        .iter()
        .map(|(name, version)| format!("provided {name}=={version}"))
        .chain(local.iter().map(|wheel| {
            format!(
                "{}{}",
                crate::runners::FIND_LINKS_SETTING,
                wheel.dir.display()
            )
        }))
        .chain(pins.iter().filter_map(|pin| {
            let wheel = local
                .iter()
                .find(|wheel| wheel.dir.join(&pin.file).is_file())?;
            Some(format!(
                "{}{} {} {}",
                crate::model::BUILT_SETTING,
                pin.name,
                pin.version,
                wheel.origin
            ))
        }))
        .collect()
}

/// The warning about a runner also installed in StackStorm's own environment, with the command
/// that removes it.
fn stale_runner(
    st2: &PythonIdentity,
    runner: &crate::config::RunnerConfig,
    version: &Version,
) -> Problem {
    let name = &runner.requirement.name;
    let pip = st2
        .path()
        .parent()
        .map_or_else(|| PathBuf::from("pip"), |bin| bin.join("pip"));
    finding(
        Severity::Warning,
        format!(
            "runners: StackStorm's environment (`{}`) has {name} {version} installed: the runner \
             set's copy is loaded ahead of it, but StackStorm's own upgrades and pip see the stale \
             one",
            st2.path().display()
        ),
        Some(runner.location.clone()),
        Some(format!(
            "remove it from StackStorm's virtualenv: `{} uninstall -y {name}`",
            pip.display()
        )),
    )
}

/// The resource files of the pack at `tree`, as StackStorm's registrars list them.
pub fn content_files(tree: &PackTree<'_>) -> Result<Vec<ContentFile>, crate::source::SourceError> {
    let mut files = Vec::new();
    for dir in CONTENT_DIRS {
        for (name, bytes) in tree.files_in(dir)? {
            files.push(ContentFile { dir, name, bytes });
        }
    }
    Ok(files)
}

/// The runners this site's actions may use besides StackStorm's built-in ones: the
/// `[[runner]]`s.
fn declared_runners(config: &SiteConfig) -> KnownRunners {
    let mut runners = KnownRunners::default();
    runners.custom.extend(
        config
            .runners
            .iter()
            .map(|runner| runner.requirement.name.to_string()),
    );
    runners
}

/// A YAML file of the pack as StackStorm opens it: UTF-8 text, or an error at the first byte
/// that is not.
fn read_yaml_text(tree: &PackTree<'_>, rel: &str) -> Result<Option<String>, pack::PackError> {
    let bytes = tree
        .read_file(rel)
        .map_err(|source| pack::PackError::Read {
            file: tree.file_label(rel),
            source: crate::diagnostics::Cause::new(source),
        })?;
    bytes
        .map(|bytes| pack::yaml_text(bytes, &tree.file_label(rel)))
        .transpose()
}

/// A file of the pack as UTF-8 text.
fn read_text(tree: &PackTree<'_>, rel: &str) -> Result<Option<String>, crate::source::SourceError> {
    Ok(tree
        .read_file(rel)?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// JSON with object keys sorted at every level, so equal configs always hash the same.
fn canonical_json(values: &serde_json::Map<String, serde_json::Value>) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(&serde_json::Value::Object(values.clone())).to_string()
}
