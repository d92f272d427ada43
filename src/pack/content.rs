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
        let Ok(value) = serde_yaml::from_slice::<serde_yaml::Value>(&file.bytes) else {
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
                    .and_then(serde_yaml::Value::as_sequence);
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

/// A YAML scalar as the string Python's `str()` gives for a name.
fn scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(text) => Some(text.clone()),
        serde_yaml::Value::Number(number) => Some(number.to_string()),
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
