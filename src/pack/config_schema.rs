//! `config.schema.yaml` and the pack config values checked against it, the way StackStorm's
//! `ConfigSchemaAPI` and `validate_config_against_schema` do at registration: defaults filled in
//! first, `required: true` per key (JSON-Schema draft 3 style), unknown keys allowed.
//!
//! Top-level keys follow StackStorm's action-parameter meta-schema strictly (one `type`, no
//! unknown attributes), because StackStorm refuses the schema otherwise. Nested `properties` and
//! `items` are read leniently: their attributes are checked only where packsync uses them.
//!
//! Everything else StackStorm's validator checks (`minimum`, `pattern`, `anyOf`, `oneOf`,
//! `patternProperties`, local `$ref`s such as `#/properties/<x>`, ...) is checked by the
//! `jsonschema` crate, draft 4 as st2's `CustomValidator`, on the schema wrapped as st2 wraps it
//! (`{type: object, properties: <schema>}`), with the defaults filled in first.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::{PackError, parse_yaml};
use crate::diagnostics::Location;

/// StackStorm's pattern for top-level config keys.
static KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\w+$").expect("the config key pattern is valid"));

/// The attributes of StackStorm's `action_params.json` meta-schema; it refuses any other.
const KNOWN_ATTRIBUTES: &[&str] = &[
    "id",
    "$schema",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "additionalItems",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "secret",
    "additionalProperties",
    "definitions",
    "properties",
    "patternProperties",
    "dependencies",
    "enum",
    "type",
    "position",
    "immutable",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// A parsed `config.schema.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSchema {
    properties: BTreeMap<String, PropertySchema>,
    /// The schema as st2 validates against it, in draft 4 terms (see [`draft4`]).
    wrapped: Value,
}

/// The schema of one config value.
#[derive(Debug, Clone, PartialEq)]
struct PropertySchema {
    /// Empty: any type.
    types: Vec<JsonType>,
    required: bool,
    secret: bool,
    default: Option<Value>,
    allowed: Option<Vec<Value>>,
    properties: BTreeMap<String, PropertySchema>,
    /// The `patternProperties` patterns: a key matching one is not an unknown key.
    patterns: Vec<String>,
    items: Items,
    additional: Additional,
}

#[derive(Debug, Clone, PartialEq)]
enum Items {
    Any,
    Each(Box<PropertySchema>),
    /// JSON-Schema tuple form: one schema per position.
    Positional(Vec<PropertySchema>),
}

/// `additionalProperties` of an object.
#[derive(Debug, Clone, PartialEq)]
enum Additional {
    /// Allowed (the default); packsync warns about them as likely typos.
    Allowed,
    Denied,
    Schema(Box<PropertySchema>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    Null,
}

impl JsonType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            // StackStorm's own type: a string that its parameter rendering leaves alone.
            "string" | "raw_string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            "null" => Self::Null,
            _ => return None,
        })
    }

    /// JSON-Schema draft 4 typing: `3.0` is not an integer, booleans are not numbers.
    fn matches(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Number => value.is_number(),
            Self::Boolean => value.is_boolean(),
            Self::Object => value.is_object(),
            Self::Array => value.is_array(),
            Self::Null => value.is_null(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
            Self::Null => "null",
        }
    }
}

/// What is wrong in a `config.schema.yaml`; `key` is the dotted path of the schema entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaProblem {
    #[error("the file is empty")]
    Empty,
    #[error("the top level must be a mapping of config keys, not {found}")]
    NotAMapping { found: &'static str },
    #[error("the config key `{0}` may only contain letters, digits and `_`")]
    KeyName(String),
    #[error("`{key}` must be a mapping that describes the value, not {found}")]
    NotASchema { key: String, found: &'static str },
    #[error("`{key}` has the unknown attribute `{attribute}`")]
    UnknownAttribute { key: String, attribute: String },
    #[error("`{key}` has the unknown type `{found}`")]
    UnknownType { key: String, found: String },
    #[error("`{key}` lists several types, which StackStorm refuses for a top-level config key")]
    TypeList { key: String },
    #[error("`{attribute}` of `{key}` must be {expected}")]
    Attribute {
        key: String,
        attribute: &'static str,
        expected: &'static str,
    },
    #[error("it is not a schema StackStorm's validator (JSON Schema draft 4) can use: {0}")]
    Draft4(String),
}

impl SchemaProblem {
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Empty => Some(
                "StackStorm refuses an empty `config.schema.yaml`: describe the config keys, or \
                 delete the file"
                    .to_owned(),
            ),
            Self::NotAMapping { .. } | Self::NotASchema { .. } => Some(
                "Describe each config key as a mapping, e.g. `api_key: {type: string, secret: \
                 true, required: true}`"
                    .to_owned(),
            ),
            Self::KeyName(_) => Some("rename the key, e.g. with `_` instead of `-`".to_owned()),
            Self::UnknownAttribute { .. } => Some(
                "check the spelling: StackStorm accepts JSON-Schema attributes plus `required`, \
                 `secret`, `position` and `immutable`"
                    .to_owned(),
            ),
            Self::UnknownType { .. } => Some(
                "use one of `string`, `integer`, `number`, `boolean`, `object`, `array` or `null`"
                    .to_owned(),
            ),
            Self::TypeList { .. } => {
                Some("give one `type`, or list the alternatives under `anyOf`".to_owned())
            }
            Self::Attribute { .. } => None,
            Self::Draft4(_) => Some(
                "check the `$ref`s (local ones only, e.g. `#/properties/<key>`) and the \
                 `pattern`s (regular expressions)"
                    .to_owned(),
            ),
        }
    }
}

/// A config value that does not fit the schema (an error) or looks wrong (a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the value, e.g. `ssh.port` or `servers.0.host`.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.key, self.message)
    }
}

/// Parses and checks `config.schema.yaml`.
pub fn parse_config_schema(text: &str, file_label: &str) -> Result<ConfigSchema, PackError> {
    let error = |key: &str, problem| PackError::ConfigSchema {
        file: file_label.to_owned(),
        problem,
        location: Box::new(if key.is_empty() {
            Location::at(file_label, text, 0..0)
        } else {
            Location::of_yaml_key(file_label, text, key)
        }),
    };
    let document: Value = parse_yaml(text, file_label)?;
    let entries = match document {
        Value::Object(entries) if !entries.is_empty() => entries,
        Value::Null | Value::Object(_) => return Err(error("", SchemaProblem::Empty)),
        other => {
            let found = json_kind(&other);
            return Err(error("", SchemaProblem::NotAMapping { found }));
        }
    };
    let mut properties = BTreeMap::new();
    for (key, value) in &entries {
        if !KEY.is_match(key) {
            return Err(error(key, SchemaProblem::KeyName(key.clone())));
        }
        let schema = PropertySchema::parse(key, value, Level::Top).map_err(|p| error(key, p))?;
        properties.insert(key.clone(), schema);
    }
    let wrapped = draft4(&entries);
    jsonschema::draft4::new(&wrapped)
        .map_err(|err| error("", SchemaProblem::Draft4(err.to_string())))?;
    Ok(ConfigSchema {
        properties,
        wrapped,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// A top-level config key: StackStorm's meta-schema applies strictly.
    Top,
    Nested,
}

impl PropertySchema {
    fn parse(path: &str, value: &Value, level: Level) -> Result<Self, SchemaProblem> {
        let Value::Object(attributes) = value else {
            return Err(SchemaProblem::NotASchema {
                key: path.to_owned(),
                found: json_kind(value),
            });
        };
        if level == Level::Top
            && let Some(unknown) = attributes
                .keys()
                .find(|attribute| !KNOWN_ATTRIBUTES.contains(&attribute.as_str()))
        {
            return Err(SchemaProblem::UnknownAttribute {
                key: path.to_owned(),
                attribute: unknown.clone(),
            });
        }
        // Nested schemas are read leniently: a value StackStorm may not check counts as unset.
        let flag = |attribute: &'static str| match attributes.get(attribute) {
            None => Ok(false),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(_) if level == Level::Nested => Ok(false),
            Some(_) => Err(invalid(path, attribute, "`true` or `false`")),
        };
        let (required, secret) = (flag("required")?, flag("secret")?);
        flag("immutable")?;
        if attributes
            .get("description")
            .is_some_and(|description| !description.is_string())
        {
            return Err(invalid(path, "description", "a string"));
        }
        let allowed = match attributes.get("enum") {
            None => None,
            Some(Value::Array(values)) if !values.is_empty() => Some(values.clone()),
            Some(_) => return Err(invalid(path, "enum", "a non-empty list")),
        };
        Ok(Self {
            types: parse_types(path, attributes.get("type"), level)?,
            required,
            secret,
            default: attributes.get("default").cloned(),
            allowed,
            properties: parse_properties(path, attributes.get("properties"))?,
            patterns: attributes
                .get("patternProperties")
                .and_then(Value::as_object)
                .map(|patterns| patterns.keys().cloned().collect())
                .unwrap_or_default(),
            items: parse_items(path, attributes.get("items"))?,
            additional: parse_additional(path, attributes.get("additionalProperties"))?,
        })
    }
}

fn invalid(path: &str, attribute: &'static str, expected: &'static str) -> SchemaProblem {
    SchemaProblem::Attribute {
        key: path.to_owned(),
        attribute,
        expected,
    }
}

fn parse_types(
    path: &str,
    value: Option<&Value>,
    level: Level,
) -> Result<Vec<JsonType>, SchemaProblem> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(name)) => Ok(vec![parse_type(path, name)?]),
        // StackStorm's meta-schema for config keys allows a single type only.
        Some(Value::Array(_)) if level == Level::Top => Err(SchemaProblem::TypeList {
            key: path.to_owned(),
        }),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| match name {
                Value::String(name) => parse_type(path, name),
                _ => Err(invalid(path, "type", "a type name or a list of type names")),
            })
            .collect(),
        Some(_) => Err(invalid(path, "type", "a type name")),
    }
}

fn parse_properties(
    path: &str,
    value: Option<&Value>,
) -> Result<BTreeMap<String, PropertySchema>, SchemaProblem> {
    match value {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(properties)) => properties
            .iter()
            .map(|(name, schema)| {
                PropertySchema::parse(&join(path, name), schema, Level::Nested)
                    .map(|schema| (name.clone(), schema))
            })
            .collect(),
        Some(_) => Err(invalid(path, "properties", "a mapping")),
    }
}

fn parse_items(path: &str, value: Option<&Value>) -> Result<Items, SchemaProblem> {
    let items_path = join(path, "items");
    match value {
        None => Ok(Items::Any),
        Some(schema @ Value::Object(_)) => Ok(Items::Each(Box::new(PropertySchema::parse(
            &items_path,
            schema,
            Level::Nested,
        )?))),
        Some(Value::Array(schemas)) => schemas
            .iter()
            .map(|schema| PropertySchema::parse(&items_path, schema, Level::Nested))
            .collect::<Result<_, _>>()
            .map(Items::Positional),
        Some(_) => Err(invalid(path, "items", "a mapping or a list of mappings")),
    }
}

fn parse_additional(path: &str, value: Option<&Value>) -> Result<Additional, SchemaProblem> {
    match value {
        None | Some(Value::Bool(true)) => Ok(Additional::Allowed),
        Some(Value::Bool(false)) => Ok(Additional::Denied),
        Some(schema @ Value::Object(_)) => Ok(Additional::Schema(Box::new(PropertySchema::parse(
            &join(path, "additionalProperties"),
            schema,
            Level::Nested,
        )?))),
        Some(_) => Err(invalid(
            path,
            "additionalProperties",
            "`true`, `false` or a mapping",
        )),
    }
}

fn parse_type(path: &str, name: &str) -> Result<JsonType, SchemaProblem> {
    JsonType::parse(name).ok_or_else(|| SchemaProblem::UnknownType {
        key: path.to_owned(),
        found: name.to_owned(),
    })
}

impl ConfigSchema {
    /// Checks `values` in one walk. Errors are what StackStorm would refuse at registration:
    /// missing required keys (after defaults are filled in), type and `enum` mismatches, at any
    /// depth; values containing Jinja (`{{`, `{%`) are resolved by StackStorm at run time and are
    /// not checked. Warnings are what StackStorm accepts but is likely a mistake: keys the schema
    /// does not describe (typos: StackStorm ignores them) and static values of `secret: true`
    /// keys (StackStorm stores those in plain text in its database).
    pub fn check(&self, values: &Map<String, Value>) -> ConfigFindings {
        let mut findings = self.walk(values);
        findings.json_schema(&self.wrapped, &self.with_defaults(values));
        findings
    }

    /// `values` with the defaults of missing or null keys filled in, at every depth, as st2's
    /// validator does (`use_default=True`).
    fn with_defaults(&self, values: &Map<String, Value>) -> Value {
        fn fill(properties: &BTreeMap<String, PropertySchema>, values: &mut Map<String, Value>) {
            for (name, schema) in properties {
                let missing = values.get(name).is_none_or(Value::is_null);
                if missing && let Some(default) = schema.default.as_ref().filter(|d| !d.is_null()) {
                    values.insert(name.clone(), default.clone());
                }
                if let Some(Value::Object(nested)) = values.get_mut(name) {
                    fill(&schema.properties, nested);
                }
            }
        }
        let mut filled = values.clone();
        fill(&self.properties, &mut filled);
        Value::Object(filled)
    }

    fn walk(&self, values: &Map<String, Value>) -> ConfigFindings {
        let mut findings = ConfigFindings::default();
        // StackStorm validates pack configs with additional properties allowed.
        findings.object(&self.properties, &[], &Additional::Allowed, values, "");
        findings
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Where a checked value came from: only values the user wrote can be plain-text secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Given,
    Default,
}

/// What [`ConfigSchema::check`] found.
#[derive(Debug, Default)]
pub struct ConfigFindings {
    pub errors: Vec<ConfigProblem>,
    pub warnings: Vec<ConfigProblem>,
}

impl ConfigFindings {
    fn problem(&mut self, key: &str, message: String, hint: Option<&str>) {
        self.errors.push(ConfigProblem {
            key: key.to_owned(),
            message,
            hint: hint.map(str::to_owned),
        });
    }

    fn warning(&mut self, key: &str, message: &str, hint: &str) {
        self.warnings.push(ConfigProblem {
            key: key.to_owned(),
            message: message.to_owned(),
            hint: Some(hint.to_owned()),
        });
    }

    /// What the draft 4 validator finds that the first pass did not report: a value at a path
    /// already reported, a Jinja value (rendered at run time) and `required` (checked above) are
    /// left out.
    fn json_schema(&mut self, schema: &Value, instance: &Value) {
        let Ok(validator) = jsonschema::draft4::new(schema) else {
            return; // Refused when the schema was parsed.
        };
        let reported: Vec<String> = self.errors.iter().map(|p| p.key.clone()).collect();
        for error in validator.iter_errors(instance) {
            let pointer = error.instance_path().as_str().to_string();
            let key: Vec<String> = pointer
                .split('/')
                .skip(1)
                .map(|part| part.replace("~1", "/").replace("~0", "~"))
                .collect();
            let path = key.join(".");
            let jinja = instance
                .pointer(&pointer)
                .and_then(Value::as_str)
                .is_some_and(is_jinja);
            // Reported already: at this path, above it, or below it (`additionalProperties`
            // is the object's error in draft 4, the key's in the first pass).
            let already = reported.iter().any(|done| {
                path == *done
                    || path.starts_with(&format!("{done}."))
                    || done.starts_with(&format!("{path}."))
                    || (path.is_empty() && !done.is_empty())
            });
            let required = matches!(
                error.kind(),
                jsonschema::error::ValidationErrorKind::Required { .. }
            );
            if jinja || already || required {
                continue;
            }
            let message = format!("does not match the schema: {error}");
            if path.is_empty() {
                self.problem("", message, None);
            } else {
                self.problem(&path, message, None);
            }
        }
    }

    /// StackStorm's order: fill defaults where the value is missing or null, then validate.
    fn object(
        &mut self,
        properties: &BTreeMap<String, PropertySchema>,
        patterns: &[String],
        additional: &Additional,
        values: &Map<String, Value>,
        prefix: &str,
    ) {
        for (name, schema) in properties {
            let path = join(prefix, name);
            match (values.get(name), &schema.default) {
                (Some(value), _) if !value.is_null() => {
                    self.value(schema, value, &path, Origin::Given);
                }
                (_, Some(default)) if !default.is_null() => {
                    self.value(schema, default, &path, Origin::Default);
                }
                (given, None) if schema.required => match given {
                    Some(null) => self.value(schema, null, &path, Origin::Given),
                    None => self.problem(
                        &path,
                        "is required by the schema and has no default".to_owned(),
                        Some("Set it in the pack config"),
                    ),
                },
                // A null default, or an optional key, makes `null` acceptable.
                (_, Some(_) | None) => {}
            }
        }
        for (name, value) in values {
            if properties.contains_key(name) || matches_any(patterns, name) {
                continue;
            }
            let path = join(prefix, name);
            match additional {
                Additional::Allowed => self.warning(
                    &path,
                    "is not in the schema; StackStorm ignores it",
                    "Check the spelling against `config.schema.yaml`",
                ),
                Additional::Denied => self.problem(
                    &path,
                    "is not in the schema, which allows no other keys here".to_owned(),
                    Some("Remove it, or check the spelling against `config.schema.yaml`"),
                ),
                Additional::Schema(schema) => self.value(schema, value, &path, Origin::Given),
            }
        }
    }

    fn value(&mut self, schema: &PropertySchema, value: &Value, path: &str, origin: Origin) {
        if let Value::String(text) = value
            && is_jinja(text)
        {
            if schema.secret && text.contains("decrypt_kv") {
                self.problem(
                    path,
                    "uses the `decrypt_kv` filter on a `secret: true` key".to_owned(),
                    Some(
                        "Drop `| decrypt_kv`: StackStorm decrypts the values of secret keys \
                             itself",
                    ),
                );
            }
            return;
        }
        if schema.secret && origin == Origin::Given && !value.is_null() {
            self.warning(
                path,
                "is secret but given as a plain value, which StackStorm stores unencrypted",
                "Store it with `st2 key set <name> <value> --encrypt` and use \
                 `{{ st2kv.system.<name> }}`",
            );
        }
        if !schema.types.is_empty() && !schema.types.iter().any(|t| t.matches(value)) {
            let expected: Vec<_> = schema.types.iter().map(|t| t.name()).collect();
            let shown = shown(schema, value);
            let message = format!("must be {}, not {shown}", expected.join(" or "));
            self.problem(path, message, None);
            return;
        }
        if let Some(allowed) = &schema.allowed
            && !allowed.iter().any(|candidate| same_value(candidate, value))
        {
            let allowed: Vec<_> = allowed.iter().map(|v| format!("`{v}`")).collect();
            let shown = shown(schema, value);
            let message = format!("is {shown}, not one of {}", allowed.join(", "));
            self.problem(path, message, None);
        }
        match value {
            Value::Object(values)
                if !(schema.properties.is_empty() && schema.additional == Additional::Allowed) =>
            {
                self.object(
                    &schema.properties,
                    &schema.patterns,
                    &schema.additional,
                    values,
                    path,
                );
            }
            Value::Array(values) => match &schema.items {
                Items::Any => {}
                Items::Each(item) => {
                    for (index, value) in values.iter().enumerate() {
                        self.value(item, value, &join(path, &index.to_string()), origin);
                    }
                }
                Items::Positional(items) => {
                    for (index, (item, value)) in items.iter().zip(values).enumerate() {
                        self.value(item, value, &join(path, &index.to_string()), origin);
                    }
                }
            },
            _ => {}
        }
    }
}

/// Whether `key` matches one of the `patternProperties` patterns (an invalid pattern matches
/// nothing here; the schema check reports it).
fn matches_any(patterns: &[String], key: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| Regex::new(pattern).is_ok_and(|pattern| pattern.is_match(key)))
}

/// st2's config schema as the draft 4 schema its validator applies: wrapped as
/// `{type: object, properties: <schema>}` (so `#/properties/<x>` refers to a top-level key), its
/// per-key `required: true` left to the first pass, and st2's own keywords (`secret`,
/// `immutable`, `position`) dropped.
fn draft4(document: &Map<String, Value>) -> Value {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(key, value)| {
                        let st2_only = matches!(key.as_str(), "secret" | "immutable" | "position");
                        let per_key_required = key.as_str() == "required" && value.is_boolean();
                        !(st2_only || per_key_required)
                    })
                    .map(|(key, value)| (key.clone(), strip(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    serde_json::json!({
        "type": "object",
        "properties": strip(&Value::Object(document.clone())),
        "additionalProperties": true,
    })
}

/// StackStorm's `is_jinja_expression`.
fn is_jinja(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// JSON equality, except that numbers compare by value as in Python (`3 == 3.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a.to_bits() == b.to_bits(),
        _ => a == b,
    }
}

/// The kind of `value`, and the value itself unless the key is secret.
fn shown(schema: &PropertySchema, value: &Value) -> String {
    let kind = json_kind(value);
    if schema.secret || value.is_null() {
        kind.to_owned()
    } else {
        format!("{kind} `{value}`")
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
