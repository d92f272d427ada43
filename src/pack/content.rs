//! What StackStorm registers from a pack's files, named as its registrars name it, so that
//! what StackStorm holds for a pack can be compared with what its live release carries.
//!
//! Read from st2common's `bootstrap/*registrar.py` (master c2eaf56):
//! - each registrar lists `<pack>/<dir>/*.yaml` and `*.yml`, not recursively, sorted
//!   (`ResourceRegistrar.get_resources_from_pack`, `ALLOWED_EXTS`); the actions registrar
//!   skips `actions/config.yaml`;
//! - the pack is the name of the folder registered (`os.path.split(pack_dir)`), and a
//!   resource's ref is `<pack>.<name>` (`ResourceReference.to_string_reference`) for actions
//!   (workflows are actions too), rules, aliases, policies and trigger types (`triggers/`);
//! - a sensor is named after its `class_name` (`sensor_type_utils.to_sensor_db_model`), and
//!   each of its `trigger_types` registers a trigger type `<pack>.<name>`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::PackName;

/// A kind of content StackStorm registers, as the `st2` CLI names its noun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Action,
    Rule,
    Sensor,
    /// A trigger type.
    Trigger,
    ActionAlias,
    Policy,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Action => "action",
            ResourceKind::Rule => "rule",
            ResourceKind::Sensor => "sensor",
            ResourceKind::Trigger => "trigger",
            ResourceKind::ActionAlias => "action-alias",
            ResourceKind::Policy => "policy",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing StackStorm holds for a pack: `{"kind": "action", "ref": "clush.run"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    #[serde(rename = "ref")]
    pub reference: String,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reference, self.kind)
    }
}

/// The folders of a pack StackStorm registers content from.
pub const CONTENT_DIRS: [&str; 6] = [
    "actions", "rules", "sensors", "triggers", "aliases", "policies",
];

/// One resource file: its folder (one of [`CONTENT_DIRS`]), its name and its bytes.
#[derive(Debug, Clone)]
pub struct ContentFile {
    pub dir: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Whether StackStorm reads the file `name` of the folder `dir` as a resource.
#[allow(clippy::case_sensitive_file_extension_comparisons)] // st2's glob `*.yaml` is too
pub fn is_resource_file(dir: &str, name: &str) -> bool {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    yaml && !(dir == "actions" && (name == "config.yaml" || name == "config.yml"))
}

/// Everything `pack` registers from `files`. A file that cannot be read as StackStorm would is
/// left out: its registration fails, and nothing is purged after a failed registration.
pub fn content(pack: &PackName, files: &[ContentFile]) -> BTreeSet<Resource> {
    let mut resources = BTreeSet::new();
    let named = |kind, name: &str| Resource {
        kind,
        reference: format!("{pack}.{name}"),
    };
    for file in files {
        if !is_resource_file(file.dir, &file.name) {
            continue;
        }
        let Ok(value) = crate::yaml::load(&file.bytes) else {
            continue;
        };
        let field = |key: &str| value.get(key).and_then(scalar);
        let kind = match file.dir {
            "actions" => ResourceKind::Action,
            "rules" => ResourceKind::Rule,
            "triggers" => ResourceKind::Trigger,
            "aliases" => ResourceKind::ActionAlias,
            "policies" => ResourceKind::Policy,
            "sensors" => {
                if let Some(class_name) = field("class_name") {
                    resources.insert(named(ResourceKind::Sensor, &class_name));
                }
                let trigger_types = value
                    .get("trigger_types")
                    .and_then(serde_json::Value::as_array);
                for trigger_type in trigger_types.into_iter().flatten() {
                    if let Some(name) = trigger_type.get("name").and_then(scalar) {
                        resources.insert(named(ResourceKind::Trigger, &name));
                    }
                }
                continue;
            }
            _ => continue,
        };
        if let Some(name) = field("name") {
            resources.insert(named(kind, &name));
        }
    }
    resources
}

/// StackStorm's own runners (contrib/runners, master c2eaf56) and the older names they are also
/// registered under (`aliases` in their runner.yaml).
pub const BUILT_IN_RUNNERS: [&str; 20] = [
    "action-chain",
    "announcement",
    "http-request",
    "http-runner",
    "inquirer",
    "local-shell-cmd",
    "local-shell-script",
    "noop",
    "orquesta",
    "python-script",
    "remote-shell-cmd",
    "remote-shell-script",
    "run-local",
    "run-local-script",
    "run-python",
    "run-remote",
    "run-remote-script",
    "winrm-cmd",
    "winrm-ps-cmd",
    "winrm-ps-script",
];

/// The runners whose action names a file to run: `entry_point`, relative to `actions/`.
const RUNNERS_WITH_ENTRY_POINT: [&str; 9] = [
    "action-chain",
    "local-shell-script",
    "orquesta",
    "python-script",
    "remote-shell-script",
    "run-local-script",
    "run-python",
    "run-remote-script",
    "winrm-ps-script",
];

/// The runners a site has, for [`check_resources`].
#[derive(Debug, Clone, Default)]
pub struct KnownRunners {
    /// Names besides the built-in ones (the site's custom runners).
    pub custom: BTreeSet<String>,
    /// Whether `custom` is every runner StackStorm has (read from its interpreter): an unknown
    /// `runner_type` is then an error, else a warning.
    pub complete: bool,
}

impl KnownRunners {
    fn knows(&self, runner: &str) -> bool {
        let dashed = runner.replace('_', "-");
        BUILT_IN_RUNNERS.contains(&dashed.as_str())
            || self
                .custom
                .iter()
                .any(|custom| custom.replace('_', "-") == dashed)
    }
}

/// What a resource file has that StackStorm's registrar refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceProblem {
    /// The file, relative to the pack (`actions/run.yaml`).
    pub file: String,
    pub message: String,
    pub hint: Option<String>,
    /// Refused for sure; `false`: probably refused (a runner packsync cannot see).
    pub certain: bool,
}

/// Checks the actions of `files` as StackStorm's actions registrar does before it registers
/// them (`ActionAPI`, `action_validator.validate_action`): a mapping with a `name`, no two
/// actions of one name, a `runner_type` among the runners the site has, and for the runners
/// that run a file, an `entry_point` that `exists` (given relative to the pack).
pub fn check_resources(
    files: &[ContentFile],
    runners: &KnownRunners,
    exists: impl Fn(&str) -> bool,
) -> Vec<ResourceProblem> {
    let mut problems = check_other_resources(files, &exists);
    let mut names = BTreeSet::new();
    for file in files.iter().filter(|file| file.dir == "actions") {
        if !is_resource_file(file.dir, &file.name) {
            continue;
        }
        let path = format!("{}/{}", file.dir, file.name);
        let problem = |message: String, hint: Option<&str>, certain: bool| ResourceProblem {
            file: path.clone(),
            message,
            hint: hint.map(str::to_string),
            certain,
        };
        let value = match mapping(file) {
            Ok(value) => value,
            Err(message) => {
                problems.push(problem(message, None, true));
                continue;
            }
        };
        let field = |key: &str| value.get(key).and_then(scalar);
        let Some(name) = field("name") else {
            problems.push(problem(
                "has no `name`".to_string(),
                Some("an action's ref is `<pack>.<name>`"),
                true,
            ));
            continue;
        };
        if !names.insert(name.clone()) {
            problems.push(problem(
                format!("names the action `{name}` again"),
                Some("the later file replaces the earlier one in StackStorm: rename one"),
                true,
            ));
        }
        let Some(runner) = field("runner_type") else {
            problems.push(problem("has no `runner_type`".to_string(), None, true));
            continue;
        };
        if !runners.knows(&runner) {
            problems.push(problem(
                format!("uses the runner `{runner}`, which StackStorm does not have"),
                Some(if runners.complete {
                    "StackStorm fails the registration (`RunnerType ... is not found`): use one of \
                     its runners (python-script, orquesta, local-shell-cmd, ...) or add the \
                     runner as a `[[runner]]`"
                } else {
                    "not one of StackStorm's own runners nor a `[[runner]]`: if StackStorm's \
                     virtualenv does not have it, registration fails; set `[stackstorm] \
                     st2_python` so that `check` can tell"
                }),
                runners.complete,
            ));
            continue;
        }
        if RUNNERS_WITH_ENTRY_POINT.contains(&runner.replace('_', "-").as_str()) {
            match field("entry_point") {
                None => problems.push(problem(
                    format!("has no `entry_point`, which the runner `{runner}` runs"),
                    None,
                    true,
                )),
                Some(entry_point) if !exists(&format!("actions/{entry_point}")) => {
                    problems.push(problem(
                        format!("names the entry point `actions/{entry_point}`, not in the pack"),
                        Some("`entry_point` is relative to the `actions/` folder"),
                        true,
                    ));
                }
                Some(_) => {}
            }
        }
    }
    problems
}

/// What the sensors, rules, aliases and policies registrars refuse outright: a file that is no
/// mapping, a missing key their API model requires, a sensor whose `entry_point` is not in
/// the pack.
fn check_other_resources(
    files: &[ContentFile],
    exists: &impl Fn(&str) -> bool,
) -> Vec<ResourceProblem> {
    let mut problems = Vec::new();
    for file in files {
        let required: &[&str] = match file.dir {
            "sensors" => &["class_name", "entry_point"],
            "rules" => &["name", "trigger", "action"],
            "aliases" => &["name", "action_ref"],
            "policies" => &["name", "resource_ref", "policy_type"],
            "triggers" => &["name"],
            _ => continue,
        };
        if !is_resource_file(file.dir, &file.name) {
            continue;
        }
        let path = format!("{}/{}", file.dir, file.name);
        let problem = |message: String| ResourceProblem {
            file: path.clone(),
            message,
            hint: None,
            certain: true,
        };
        let value = match mapping(file) {
            Ok(value) => value,
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        if let Some(key) = required
            .iter()
            .find(|key| value.get(**key).is_none_or(serde_json::Value::is_null))
        {
            problems.push(problem(format!(
                "has no `{key}`, which StackStorm requires"
            )));
            continue;
        }
        if file.dir == "rules" && value["action"].get("ref").and_then(scalar).is_none() {
            problems.push(problem(
                "has no `action.ref`, which StackStorm requires".to_string(),
            ));
        }
        if file.dir == "sensors"
            && let Some(entry_point) = value.get("entry_point").and_then(scalar)
            && !exists(&format!("sensors/{entry_point}"))
        {
            problems.push(problem(format!(
                "names the entry point `sensors/{entry_point}`, not in the pack"
            )));
        }
    }
    problems
}

/// A resource file read as StackStorm's registrars read it: a YAML mapping, or why not.
fn mapping(file: &ContentFile) -> Result<serde_json::Value, String> {
    match crate::yaml::load(&file.bytes) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err("is no mapping".to_string()),
        Err(err) => Err(format!("is no valid YAML: {err}")),
    }
}

/// A YAML scalar as the string Python's `str()` gives for a name.
fn scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &'static str, name: &str, text: &str) -> ContentFile {
        ContentFile {
            dir,
            name: name.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn every_kind_is_named_as_stackstorm_registers_it() {
        let pack = PackName::new("clush").unwrap();
        let files = [
            file(
                "actions",
                "run.yaml",
                "name: run\nrunner_type: python-script\n",
            ),
            file(
                "actions",
                "deploy.yml",
                "---\nname: deploy\nrunner_type: orquesta\n",
            ),
            file("actions", "config.yaml", "name: not_an_action\n"),
            file("actions", "run.py", "name = 'not yaml'\n"),
            file("actions", "notes.json", "{\"name\": \"json is not read\"}"),
            file("rules", "on_boot.yaml", "name: on_boot\n"),
            file(
                "sensors",
                "watcher.yaml",
                "class_name: NodeWatcher\nentry_point: watcher.py\ntrigger_types:\n  - name: node_down\n  - name: node_up\n",
            ),
            file("triggers", "manual.yaml", "name: manual\n"),
            file(
                "aliases",
                "run.yaml",
                "name: run_alias\naction_ref: clush.run\n",
            ),
            file("policies", "concurrency.yaml", "name: run.concurrency\n"),
            file("rules", "broken.yaml", "name: [unclosed\n"),
        ];
        let refs: Vec<String> = content(&pack, &files)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            refs,
            [
                "clush.deploy (action)",
                "clush.run (action)",
                "clush.on_boot (rule)",
                "clush.NodeWatcher (sensor)",
                "clush.manual (trigger)",
                "clush.node_down (trigger)",
                "clush.node_up (trigger)",
                "clush.run_alias (action-alias)",
                "clush.run.concurrency (policy)",
            ]
        );
    }

    /// Issue 16: what StackStorm's actions registrar refuses is found before anything is built.
    #[test]
    fn actions_are_checked_as_the_registrar_checks_them() {
        let files = [
            file(
                "actions",
                "a.yaml",
                "name: a\nrunner_type: python-script\nentry_point: a.py\n",
            ),
            file(
                "actions",
                "b.yaml",
                "name: b\nrunner_type: no-such-runner\n",
            ),
            file(
                "actions",
                "c.yaml",
                "name: c\nrunner_type: orquesta\nentry_point: workflows/c.yaml\n",
            ),
            file(
                "actions",
                "d.yaml",
                "name: a\nrunner_type: local-shell-cmd\n",
            ),
            file("actions", "e.yaml", "runner_type: noop\n"),
            file("actions", "f.yaml", "name: f\nrunner_type: clush_runner\n"),
            file("actions", "g.yaml", "name: g\nrunner_type: run-python\n"),
        ];
        let exists = |path: &str| path == "actions/a.py";
        let mut runners = KnownRunners::default();
        runners.custom.insert("clush-runner".to_string());
        let problems = check_resources(&files, &runners, exists);
        let said: Vec<String> = problems
            .iter()
            .map(|p| format!("{} {} ({})", p.file, p.message, p.certain))
            .collect();
        assert_eq!(
            said,
            [
                "actions/b.yaml uses the runner `no-such-runner`, which StackStorm does not have (false)",
                "actions/c.yaml names the entry point `actions/workflows/c.yaml`, not in the pack (true)",
                "actions/d.yaml names the action `a` again (true)",
                "actions/e.yaml has no `name` (true)",
                "actions/g.yaml has no `entry_point`, which the runner `run-python` runs (true)",
            ]
        );
        runners.complete = true;
        assert!(check_resources(&files, &runners, exists)[0].certain);
    }

    #[test]
    fn sensors_rules_aliases_and_policies_need_what_their_models_require() {
        let files = [
            file("sensors", "ok.yaml", "class_name: Ok\nentry_point: ok.py\n"),
            file(
                "sensors",
                "lost.yaml",
                "class_name: Lost\nentry_point: lost.py\n",
            ),
            file("sensors", "bare.yaml", "entry_point: ok.py\n"),
            file(
                "rules",
                "r.yaml",
                "name: r\ntrigger:\n  type: core.st2.webhook\naction: {}\n",
            ),
            file("aliases", "a.yaml", "name: a\n"),
            file(
                "policies",
                "p.yaml",
                "name: p\nresource_ref: x.y\npolicy_type: action.concurrency\n",
            ),
        ];
        let exists = |path: &str| path == "sensors/ok.py";
        let said: Vec<String> = check_resources(&files, &KnownRunners::default(), exists)
            .iter()
            .map(|p| format!("{} {}", p.file, p.message))
            .collect();
        assert_eq!(
            said,
            [
                "sensors/lost.yaml names the entry point `sensors/lost.py`, not in the pack",
                "sensors/bare.yaml has no `class_name`, which StackStorm requires",
                "rules/r.yaml has no `action.ref`, which StackStorm requires",
                "aliases/a.yaml has no `action_ref`, which StackStorm requires",
            ]
        );
    }

    #[test]
    fn resources_read_and_write_the_json_of_the_registered_command() {
        let json = r#"[{"kind": "action-alias", "ref": "clush.run_alias"}, {"kind": "sensor", "ref": "clush.W"}]"#;
        let resources: Vec<Resource> = serde_json::from_str(json).unwrap();
        assert_eq!(resources[0].kind, ResourceKind::ActionAlias);
        assert_eq!(resources[1].reference, "clush.W");
        assert_eq!(
            serde_json::to_string(&resources[0]).unwrap(),
            r#"{"kind":"action-alias","ref":"clush.run_alias"}"#
        );
    }
}
