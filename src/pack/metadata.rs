//! `pack.yaml`, checked against StackStorm's `PackAPI` schema and its pack ref rules, so that a
//! pack StackStorm would refuse at install or registration is refused before anything changes.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

type Mapping = Map<String, Value>;

use super::{PackError, parse_yaml};
use crate::diagnostics::Location;
use crate::model::{InvalidPackName, PackName};

/// StackStorm's `PACK_VERSION_REGEX`: strict semver with lower-case pre-release and build parts.
static PACK_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[\da-z\-]+(?:\.[\da-z\-]+)*)?(?:\+[\da-z\-]+(?:\.[\da-z\-]+)*)?$",
    )
    .expect("the pack version pattern is valid")
});

/// StackStorm's `ST2_VERSION_REGEX`: comparator groups such as `>=3.0.0, <4.0.0`.
static ST2_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((>?>|>=|=|<=|<?<)\s*[0-9]+\.[0-9]+\.[0-9]+?(\s*,)?\s*)+$")
        .expect("the StackStorm version pattern is valid")
});

/// What StackStorm's database (a mongoengine `EmailField`) accepts, in short: one `@` and a
/// domain with a dot, or `localhost`.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[^@\s]+@([^@\s.]+(\.[^@\s.]+)+|localhost)$").expect("the email pattern is valid")
});

/// `PackAPI` limits each `contributors` entry to this many characters.
const MAX_CONTRIBUTOR_CHARS: usize = 100;

/// What packsync needs from a valid `pack.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackMetadata {
    /// `ref`, else `name`: the directory name StackStorm keys the pack by.
    pub pack_ref: PackName,
    pub name: String,
    pub description: String,
    pub version: semver::Version,
    pub author: String,
    pub email: Option<String>,
    /// `"2"` and/or `"3"`; empty when `pack.yaml` does not say.
    pub python_versions: Vec<String>,
    pub dependencies: Vec<PackDependency>,
    /// The comparator groups as written, e.g. `>=3.0.0, <4.0.0`.
    pub stackstorm_version: Option<String>,
}

/// One `dependencies` entry, in `st2 pack install` syntax: `<name or URL>[=<version or ref>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackDependency {
    /// The pack name: a plain name as written; for a URL or path, its last segment without
    /// `.git` and without the `stackstorm-` prefix of StackStorm Exchange repos.
    pub name: String,
    pub version: Option<String>,
    /// The entry as written.
    pub raw: String,
}

/// What is wrong in a `pack.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataProblem {
    #[error("the file is empty")]
    Empty,
    #[error("the top level must be a mapping, not {found}")]
    NotAMapping { found: &'static str },
    #[error("`{key}` is missing")]
    Missing { key: &'static str },
    #[error("`{key}` must be {expected}, not {found}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`version` `{0}` is not strict semver")]
    Version(String),
    #[error("`ref` `{0}` may only contain lower-case letters, digits and `_`")]
    Ref(String),
    #[error("`name` `{0}` is not a valid pack ref and there is no `ref`")]
    NameIsNotARef(String),
    #[error("the pack ref `_global` is reserved by StackStorm")]
    ReservedRef,
    #[error("`email` `{0}` is not an email address")]
    Email(String),
    #[error("the `contributors` entry `{0}` is longer than 100 characters")]
    ContributorTooLong(String),
    #[error("the `python_versions` entry `{0}` is not `\"2\"` or `\"3\"`")]
    PythonVersion(String),
    #[error("the `python_versions` entry `{0}` is a number, not a string")]
    PythonVersionNotQuoted(String),
    #[error("`python_versions` must list one or two distinct versions")]
    PythonVersionsCount,
    #[error("Python 2 only packs cannot run on StackStorm 3.x")]
    Python2Only,
    #[error("`stackstorm_version` `{0}` is not a list of version comparisons")]
    StackstormVersion(String),
    #[error("the dependency `{0}` names no pack")]
    DependencyEmpty(String),
    #[error("the dependency `{0}` has more than one `=`")]
    DependencySeparators(String),
    #[error("the dependency `{0}` has an empty version after `=`")]
    DependencyVersion(String),
    #[error("the dependency `{0}` is neither a pack ref nor a URL")]
    DependencyName(String),
}

impl MetadataProblem {
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::Empty | Self::NotAMapping { .. } => {
                "A `pack.yaml` is a mapping with at least `name`, `description`, `version` and \
                 `author`"
                    .to_owned()
            }
            Self::Missing { key } => format!("add `{key}:` to `pack.yaml`"),
            Self::WrongType { key, expected, .. } => format!("make `{key}` {expected}"),
            Self::Version(version) => format!(
                "use a three-part version such as `{}`: StackStorm rejects anything else",
                suggest_version(version)
            ),
            Self::Ref(_) => {
                "use lower-case letters, digits and `_` only; dashes are not allowed".to_owned()
            }
            Self::NameIsNotARef(name) => format!(
                "add `ref: {}` to `pack.yaml`: the ref names the pack's directory",
                suggest_ref(name)
            ),
            Self::ReservedRef => "choose another `ref`".to_owned(),
            Self::Email(_) => {
                "use an address such as `team@example.org`, or drop `email`".to_owned()
            }
            Self::ContributorTooLong(_) => {
                "shorten it to `Name <email>`; StackStorm refuses longer entries".to_owned()
            }
            Self::PythonVersion(_) | Self::PythonVersionsCount => {
                "use `python_versions: [\"3\"]`".to_owned()
            }
            Self::PythonVersionNotQuoted(version) => format!(
                "quote it: `python_versions: [\"{version}\"]` (StackStorm's schema wants strings)"
            ),
            Self::Python2Only => {
                "Port the pack to Python 3 and add `\"3\"` to `python_versions`".to_owned()
            }
            Self::StackstormVersion(_) => {
                "use comparisons of full versions, such as `>=3.0.0, <4.0.0`".to_owned()
            }
            Self::DependencyEmpty(_)
            | Self::DependencySeparators(_)
            | Self::DependencyVersion(_)
            | Self::DependencyName(_) => {
                "Write dependencies as `st2 pack install` does: `<pack>`, `<pack>=<version>` or \
                 `<git URL>=<ref>`"
                    .to_owned()
            }
        };
        Some(hint)
    }
}

/// `0.2` -> `0.2.0`, as StackStorm's `normalize_pack_version` would; anything else -> `1.0.0`.
fn suggest_version(version: &str) -> String {
    let candidate = if version.matches('.').count() == 1 {
        format!("{version}.0")
    } else {
        version.to_owned()
    };
    if PACK_VERSION.is_match(&candidate) {
        candidate
    } else {
        "1.0.0".to_owned()
    }
}

/// `My-Pack` -> `my_pack`.
fn suggest_ref(name: &str) -> String {
    let suggestion: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if suggestion.trim_matches('_').is_empty() {
        "my_pack".to_owned()
    } else {
        suggestion
    }
}

/// Parses and checks `pack.yaml`; the error names the first problem found, at its key's line.
pub fn parse_metadata(text: &str, file_label: &str) -> Result<PackMetadata, PackError> {
    let document: Value = parse_yaml(text, file_label)?;
    let empty = Mapping::new();
    let map = match &document {
        Value::Object(map) => Ok(map),
        Value::Null => Err(MetadataProblem::Empty),
        other => Err(MetadataProblem::NotAMapping {
            found: yaml_kind(other),
        }),
    };
    let fields = Fields {
        map: map.as_ref().map_or(&empty, |map| map),
        text,
        file: file_label,
    };
    if let Err(problem) = map {
        return Err(fields.error("", problem));
    }

    let name = fields.required_string("name")?;
    let description = fields.required_string("description")?;
    let version_text = fields.required_string("version")?;
    let author = fields.required_string("author")?;

    let version = Some(&version_text)
        .filter(|text| PACK_VERSION.is_match(text))
        .and_then(|text| semver::Version::parse(text).ok())
        .ok_or_else(|| fields.error("version", MetadataProblem::Version(version_text.clone())))?;

    let pack_ref = pack_ref(&fields, &name)?;

    let email = fields.optional_string("email")?;
    if let Some(email) = email.as_ref().filter(|email| !EMAIL.is_match(email)) {
        return Err(fields.error("email", MetadataProblem::Email(email.clone())));
    }
    fields.string_list("keywords")?;
    if let Some(long) = fields
        .string_list("contributors")?
        .into_iter()
        .find(|contributor| contributor.chars().count() > MAX_CONTRIBUTOR_CHARS)
    {
        return Err(fields.error("contributors", MetadataProblem::ContributorTooLong(long)));
    }

    let python_versions = python_versions(&fields)?;

    let stackstorm_version = fields.optional_string("stackstorm_version")?;
    if let Some(range) = stackstorm_version
        .as_ref()
        .filter(|range| !ST2_VERSION.is_match(range))
    {
        return Err(fields.error(
            "stackstorm_version",
            MetadataProblem::StackstormVersion(range.clone()),
        ));
    }

    let dependencies = fields
        .string_list("dependencies")?
        .iter()
        .map(|raw| parse_dependency(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|problem| fields.error("dependencies", problem))?;

    match fields.get("system") {
        None | Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(fields.wrong_type("system", "a mapping", other));
        }
    }

    Ok(PackMetadata {
        pack_ref,
        name,
        description,
        version,
        author,
        email,
        python_versions,
        dependencies,
        stackstorm_version,
    })
}

/// StackStorm's `get_pack_ref_from_metadata`: `ref` when given (an empty one counts as absent),
/// else `name` when it is a valid ref.
fn pack_ref(fields: &Fields<'_>, name: &str) -> Result<PackName, PackError> {
    let explicit = fields
        .optional_string("ref")?
        .filter(|explicit| !explicit.is_empty());
    let (key, candidate) = match &explicit {
        Some(explicit) => ("ref", explicit.as_str()),
        None => ("name", name),
    };
    PackName::new(candidate).map_err(|err| {
        let problem = match (err, &explicit) {
            (InvalidPackName::Reserved, _) => MetadataProblem::ReservedRef,
            (InvalidPackName::Pattern(bad), Some(_)) => MetadataProblem::Ref(bad),
            (InvalidPackName::Pattern(bad), None) => MetadataProblem::NameIsNotARef(bad),
        };
        fields.error(key, problem)
    })
}

fn python_versions(fields: &Fields<'_>) -> Result<Vec<String>, PackError> {
    const KEY: &str = "python_versions";
    let items = match fields.get(KEY) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(fields.wrong_type(KEY, "a list", other)),
    };
    let mut versions: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let problem = match item {
            Value::String(version) if version == "2" || version == "3" => {
                if versions.contains(version) {
                    MetadataProblem::PythonVersionsCount
                } else {
                    versions.push(version.clone());
                    continue;
                }
            }
            Value::String(version) => MetadataProblem::PythonVersion(version.clone()),
            Value::Number(number) => MetadataProblem::PythonVersionNotQuoted(number.to_string()),
            other => return Err(fields.wrong_type(KEY, "a list of strings", other)),
        };
        return Err(fields.error(KEY, problem));
    }
    if !(1..=2).contains(&versions.len()) {
        return Err(fields.error(KEY, MetadataProblem::PythonVersionsCount));
    }
    if !versions.iter().any(|version| version == "3") {
        return Err(fields.error(KEY, MetadataProblem::Python2Only));
    }
    Ok(versions)
}

/// Splits on `=` as StackStorm's `get_repo_url` does. More than one `=` is refused: StackStorm
/// would silently drop what follows the second one (a URL with a query string breaks there too).
fn parse_dependency(raw: &str) -> Result<PackDependency, MetadataProblem> {
    let (name_or_url, version) = match raw.split_once('=') {
        Some((_, version)) if version.contains('=') => {
            return Err(MetadataProblem::DependencySeparators(raw.to_owned()));
        }
        Some((_, "")) => return Err(MetadataProblem::DependencyVersion(raw.to_owned())),
        Some((name_or_url, version)) => (name_or_url, Some(version.to_owned())),
        None => (raw, None),
    };
    // Without a `/`, StackStorm looks the name up in its pack index, which is keyed by pack ref.
    let name = if name_or_url.contains("://") {
        let url = url::Url::parse(name_or_url)
            .map_err(|_| MetadataProblem::DependencyName(raw.to_owned()))?;
        let segment = url
            .path_segments()
            .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
            .unwrap_or_default();
        repo_pack_name(segment).to_owned()
    } else if name_or_url.contains('/') {
        let segment = name_or_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        repo_pack_name(segment).to_owned()
    } else if name_or_url.is_empty() || PackName::new(name_or_url).is_ok() {
        name_or_url.to_owned()
    } else {
        return Err(MetadataProblem::DependencyName(raw.to_owned()));
    };
    if name.is_empty() {
        return Err(MetadataProblem::DependencyEmpty(raw.to_owned()));
    }
    Ok(PackDependency {
        name,
        version,
        raw: raw.to_owned(),
    })
}

/// `stackstorm-aws.git` -> `aws`: StackStorm Exchange repos are named `stackstorm-<pack>`.
fn repo_pack_name(segment: &str) -> &str {
    let segment = segment.strip_suffix(".git").unwrap_or(segment);
    segment.strip_prefix("stackstorm-").unwrap_or(segment)
}

/// The top-level mapping of `pack.yaml`, with typed getters whose errors point at the key.
struct Fields<'a> {
    map: &'a Mapping,
    text: &'a str,
    file: &'a str,
}

impl Fields<'_> {
    /// The error for `key`, or for the whole file when `key` is empty.
    fn error(&self, key: &str, problem: MetadataProblem) -> PackError {
        let location = if key.is_empty() {
            Location::at(self.file, self.text, 0..0)
        } else {
            Location::of_yaml_key(self.file, self.text, key)
        };
        PackError::Metadata {
            file: self.file.to_owned(),
            problem,
            location: Box::new(location),
        }
    }

    fn wrong_type(&self, key: &'static str, expected: &'static str, found: &Value) -> PackError {
        let found = yaml_kind(found);
        self.error(
            key,
            MetadataProblem::WrongType {
                key,
                expected,
                found,
            },
        )
    }

    /// The value of `key`; an explicit `null` counts as absent, as StackStorm's schema allows
    /// `null` for optional keys without a default.
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn required_string(&self, key: &'static str) -> Result<String, PackError> {
        match self.map.get(key) {
            None => Err(self.error(key, MetadataProblem::Missing { key })),
            Some(value) => self.string(key, value),
        }
    }

    fn optional_string(&self, key: &'static str) -> Result<Option<String>, PackError> {
        self.get(key)
            .map(|value| self.string(key, value))
            .transpose()
    }

    fn string(&self, key: &'static str, value: &Value) -> Result<String, PackError> {
        match value {
            Value::String(text) => Ok(text.clone()),
            // StackStorm casts an unquoted `version: 1.0` to a string (which then fails the
            // semver check with a clear message).
            Value::Number(number) if key == "version" => Ok(number.to_string()),
            other => Err(self.wrong_type(key, "a string", other)),
        }
    }

    fn string_list(&self, key: &'static str) -> Result<Vec<String>, PackError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    other => Err(self.wrong_type(key, "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(key, "a list of strings", other)),
        }
    }
}

/// How YAML calls the kind of `value`, for "must be X, not Y" messages.
fn yaml_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
