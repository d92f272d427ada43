//! What a mirror file declares about itself: its dependencies, the Pythons it supports and, for
//! an sdist, what it builds with. The resolver needs these for every candidate it considers.
//!
//! A wheel carries `*.dist-info/METADATA`. An sdist is read
//! for static metadata in the order build tools trust it: `pyproject.toml` `[project]` (PEP
//! 621) when `dependencies` is not dynamic, `PKG-INFO` of metadata 2.2 or later (PEP 643) when
//! `Requires-Dist` is not dynamic, then setuptools' `*.egg-info/requires.txt`; an egg-info
//! without `requires.txt` declares no dependencies (setuptools writes the file only when there
//! are some: psycopg2, pykerberos, prettytable ship so). An sdist with none of them is built,
//! the way pip and uv learn such metadata (PEP 517): offline, in an isolated build environment
//! from the mirror's backend wheels ([`WheelBuilder`]), once per sdist content; without a
//! builder (or when the build fails) it is refused with a hint.
//!
//! The archive is read once per content: [`MetadataCache`] keeps what was read by sha256 in a
//! file under `state_dir`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::{DistKind, MirrorError, MirrorFile};

/// pip's build requirements for an sdist that declares none (no `[build-system]`).
const LEGACY_BUILD_REQUIRES: &str = "setuptools>=40.8.0";

/// What a distribution file declares, as strings (parsed where used, so that a bad line names
/// its file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistMetadata {
    /// PEP 508 requirements, with their markers (`extra == "x"` for optional ones).
    pub requires_dist: Vec<String>,
    /// A PEP 440 specifier set, e.g. `>=3.8`.
    pub requires_python: Option<String>,
    /// For an sdist: what its build backend needs (`[build-system] requires`).
    pub build_requires: Vec<String>,
}

/// Builds the wheel of the sdist at the first path into the folder at the second, offline:
/// the PEP 517 way to learn the metadata of an sdist that declares it in no file.
pub type WheelBuilder = Box<dyn Fn(&Path, &Path) -> Result<(), String> + Send + Sync>;

/// Reads metadata from the archive at most once per file content.
pub struct MetadataCache {
    path: Option<PathBuf>,
    /// By sha256 of the file.
    entries: Mutex<CacheState>,
    /// Builds what no file declares, in a scratch folder.
    builder: Option<(WheelBuilder, PathBuf)>,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("path", &self.path)
            .field("builds", &self.builder.as_ref().map(|(_, scratch)| scratch))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct CacheState {
    entries: BTreeMap<String, Arc<DistMetadata>>,
    changed: bool,
}

impl MetadataCache {
    /// The cache stored at `path` (a missing or unreadable one is empty: it is only a cache).
    pub fn load(path: Option<&Path>) -> Self {
        let entries: BTreeMap<String, Arc<DistMetadata>> = path
            .and_then(|path| fs_err::read(path).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path: path.map(Path::to_path_buf),
            entries: Mutex::new(CacheState {
                entries,
                changed: false,
            }),
            builder: None,
        }
    }

    /// Builds the sdists whose metadata no file declares with `builder`, in the folder
    /// `scratch` (removed after each build).
    #[must_use]
    pub fn with_builder(self, builder: WheelBuilder, scratch: PathBuf) -> Self {
        Self {
            builder: Some((builder, scratch)),
            ..self
        }
    }

    /// The metadata of `file`, read from its archive the first time its content is seen.
    pub fn get(&self, file: &MirrorFile) -> Result<Arc<DistMetadata>, MirrorError> {
        let mut state = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = state.entries.get(&file.sha256) {
            return Ok(Arc::clone(found));
        }
        let read = match read(file) {
            Err(MirrorError::Metadata { reason, .. })
                if reason.starts_with(NO_STATIC_METADATA) && self.builder.is_some() =>
            {
                let (builder, scratch) = self.builder.as_ref().expect("checked above");
                build_metadata(file, builder, scratch)?
            }
            read => read?,
        };
        let read = Arc::new(read);
        state.entries.insert(file.sha256.clone(), Arc::clone(&read));
        state.changed = true;
        Ok(read)
    }

    /// Writes the cache back when this run read new files, keeping only the entries of files
    /// still in the mirror (`live`, by sha256) so that it never outgrows the mirror.
    pub fn save<'a>(&self, live: impl IntoIterator<Item = &'a str>) {
        let Some(path) = &self.path else { return };
        let mut state = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.changed {
            return;
        }
        let live: std::collections::BTreeSet<&str> = live.into_iter().collect();
        state
            .entries
            .retain(|sha256, _| live.contains(sha256.as_str()));
        let json = serde_json::to_vec(&state.entries).expect("metadata serialises to JSON");
        match crate::fsx::write_atomic(path, &json) {
            Ok(()) => state.changed = false,
            Err(error) => tracing::debug!(%error, "mirror metadata cache not written"),
        }
    }
}

/// Reads the metadata out of the wheel or sdist `file`.
fn read(file: &MirrorFile) -> Result<DistMetadata, MirrorError> {
    let invalid = |reason: String| MirrorError::Metadata {
        path: file.path.clone(),
        reason,
    };
    match file.kind {
        DistKind::Wheel => {
            let members = read_members(&file.path, |name| {
                name.split_once('/')
                    .is_some_and(|(top, rest)| top.ends_with(".dist-info") && rest == "METADATA")
            })
            .map_err(invalid)?;
            let (_, text) = members
                .into_iter()
                .next()
                .ok_or_else(|| invalid("the wheel has no `*.dist-info/METADATA`".into()))?;
            let headers = Headers::parse(&text);
            Ok(DistMetadata {
                requires_dist: headers.all("Requires-Dist"),
                requires_python: headers.first("Requires-Python"),
                build_requires: Vec::new(),
            })
        }
        DistKind::Sdist => read_sdist(file).map_err(invalid),
    }
}

fn read_sdist(file: &MirrorFile) -> Result<DistMetadata, String> {
    // `name-1.0/PKG-INFO`, `name-1.0/pyproject.toml`, `name-1.0[/src]/x.egg-info/requires.txt`
    // (and the egg-info's own PKG-INFO, which says an egg-info is there).
    let members = read_members(&file.path, |name| {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            [_, "PKG-INFO" | "pyproject.toml"] => true,
            [_, egg_info, "requires.txt" | "PKG-INFO"]
            | [_, "src", egg_info, "requires.txt" | "PKG-INFO"] => egg_info.ends_with(".egg-info"),
            _ => false,
        }
    })?;
    let has_egg_info = members
        .iter()
        .any(|(name, _)| name.ends_with(".egg-info/PKG-INFO"));
    let member = |suffix: &str| {
        members
            .iter()
            .filter(|(name, _)| name.ends_with(suffix))
            .min_by_key(|(name, _)| name.len())
            .map(|(_, text)| text.as_str())
    };
    let pyproject: Option<toml::Table> = member("/pyproject.toml")
        .map(|text| {
            text.parse()
                .map_err(|err| format!("its `pyproject.toml` is not valid TOML: {err}"))
        })
        .transpose()?;
    let pkg_info = member("/PKG-INFO").map(Headers::parse);

    let build_requires = match pyproject
        .as_ref()
        .and_then(|table| table.get("build-system"))
        .and_then(|build| build.get("requires"))
    {
        Some(requires) => strings(requires, "[build-system] requires")?,
        None => vec![LEGACY_BUILD_REQUIRES.to_string()],
    };
    let project = pyproject.as_ref().and_then(|table| table.get("project"));
    let dynamic = |key: &str| {
        project
            .and_then(|project| project.get("dynamic"))
            .and_then(toml::Value::as_array)
            .is_some_and(|dynamic| dynamic.iter().any(|value| value.as_str() == Some(key)))
    };
    let requires_python = project
        .and_then(|project| project.get("requires-python"))
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .or_else(|| pkg_info.as_ref()?.first("Requires-Python"));

    let requires_dist = if let Some(project) = project.filter(|_| !dynamic("dependencies")) {
        project_requirements(project)?
    } else if let Some(headers) = pkg_info
        .as_ref()
        .filter(|headers| headers.static_requires())
    {
        headers.all("Requires-Dist")
    } else if let Some(requires) = member(".egg-info/requires.txt") {
        egg_info_requirements(requires)
    } else if has_egg_info {
        // setuptools writes `requires.txt` only when there are dependencies.
        Vec::new()
    } else {
        return Err(format!(
            "{NO_STATIC_METADATA} (no static `[project] dependencies`, no PKG-INFO 2.2, no \
             egg-info)"
        ));
    };
    Ok(DistMetadata {
        requires_dist,
        requires_python,
        build_requires,
    })
}

/// How [`read_sdist`]'s error starts when only a build can tell the dependencies.
const NO_STATIC_METADATA: &str =
    "the sdist declares its dependencies in no file packsync can read without building it";

/// The metadata of the sdist `file` from the wheel `builder` makes of it (PEP 517's last
/// resort, as pip's): `Requires-Dist` and `Requires-Python` of the wheel, the build
/// requirements of the sdist.
fn build_metadata(
    file: &MirrorFile,
    builder: &WheelBuilder,
    scratch: &Path,
) -> Result<DistMetadata, MirrorError> {
    let failed = |reason: String| MirrorError::Metadata {
        path: file.path.clone(),
        reason,
    };
    let out = scratch.join(&file.sha256);
    let _ = crate::fsx::remove_tree(&out);
    fs_err::create_dir_all(&out).map_err(|err| failed(err.to_string()))?;
    tracing::info!(sdist = %file.file_name, "building it to learn its dependencies (PEP 517)");
    let built = builder(&file.path, &out)
        .map_err(|output| format!("{NO_STATIC_METADATA}, and building it failed: {output}"))
        .and_then(|()| {
            let wheel = fs_err::read_dir(&out)
                .map_err(|err| err.to_string())?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
                .ok_or_else(|| "the build made no wheel".to_string())?;
            let members = read_members(&wheel, |name| {
                name.split_once('/')
                    .is_some_and(|(top, rest)| top.ends_with(".dist-info") && rest == "METADATA")
            })?;
            let (_, text) = members
                .into_iter()
                .next()
                .ok_or_else(|| "the built wheel has no `*.dist-info/METADATA`".to_string())?;
            let headers = Headers::parse(&text);
            Ok(DistMetadata {
                requires_dist: headers.all("Requires-Dist"),
                requires_python: headers.first("Requires-Python"),
                build_requires: read_sdist_build_requires(file)?,
            })
        });
    let _ = crate::fsx::remove_tree(&out);
    built.map_err(failed)
}

/// `[build-system] requires` of an sdist (pip's legacy default without one).
fn read_sdist_build_requires(file: &MirrorFile) -> Result<Vec<String>, String> {
    let members = read_members(&file.path, |name| {
        matches!(
            name.split('/').collect::<Vec<_>>().as_slice(),
            [_, "pyproject.toml"]
        )
    })?;
    let Some((_, text)) = members.into_iter().next() else {
        return Ok(vec![LEGACY_BUILD_REQUIRES.to_string()]);
    };
    let table: toml::Table = text
        .parse()
        .map_err(|err| format!("its `pyproject.toml` is not valid TOML: {err}"))?;
    match table
        .get("build-system")
        .and_then(|build| build.get("requires"))
    {
        Some(requires) => strings(requires, "[build-system] requires"),
        None => Ok(vec![LEGACY_BUILD_REQUIRES.to_string()]),
    }
}

/// `[project] dependencies` and `optional-dependencies` as `Requires-Dist` lines.
fn project_requirements(project: &toml::Value) -> Result<Vec<String>, String> {
    let mut requires = match project.get("dependencies") {
        Some(dependencies) => strings(dependencies, "[project] dependencies")?,
        None => Vec::new(),
    };
    if let Some(optional) = project
        .get("optional-dependencies")
        .and_then(toml::Value::as_table)
    {
        for (extra, dependencies) in optional {
            for requirement in strings(dependencies, "[project] optional-dependencies")? {
                requires.push(with_extra(&requirement, extra, None));
            }
        }
    }
    Ok(requires)
}

/// setuptools' `requires.txt`: plain lines, then `[extra]`, `[:marker]` or `[extra:marker]`
/// sections.
fn egg_info_requirements(text: &str) -> Vec<String> {
    let mut requires = Vec::new();
    let mut section: Option<(String, Option<String>)> = None;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (extra, marker) = header.split_once(':').unwrap_or((header, ""));
            section = Some((
                extra.trim().to_string(),
                Some(marker.trim().to_string()).filter(|marker| !marker.is_empty()),
            ));
            continue;
        }
        requires.push(match &section {
            None => line.to_string(),
            Some((extra, marker)) => with_extra(line, extra, marker.as_deref()),
        });
    }
    requires
}

/// `requirement` made conditional on `extra` (when not empty) and on `marker`.
fn with_extra(requirement: &str, extra: &str, marker: Option<&str>) -> String {
    let (requirement, own_marker) = match requirement.split_once(';') {
        Some((requirement, marker)) => (requirement.trim(), Some(marker.trim())),
        None => (requirement.trim(), None),
    };
    let mut conditions: Vec<String> = [own_marker, marker]
        .into_iter()
        .flatten()
        .map(|marker| format!("({marker})"))
        .collect();
    if !extra.is_empty() {
        conditions.push(format!("extra == \"{extra}\""));
    }
    if conditions.is_empty() {
        requirement.to_string()
    } else {
        format!("{requirement} ; {}", conditions.join(" and "))
    }
}

fn strings(value: &toml::Value, key: &str) -> Result<Vec<String>, String> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| format!("`{key}` in its `pyproject.toml` is not a list of strings"))
}

/// Whether an archive member's name points outside the folder it is unpacked into.
fn leaves_the_tree(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || name.get(1..2) == Some(":")
        || name.split(['/', '\\']).any(|part| part == "..")
}

/// Bounds on a mirror archive, checked before anything in it is read or installed: what a
/// zip bomb breaks, what the largest real wheels pass (torch, tensorflow: about 20 000 members,
/// 2 to 4 GiB unpacked, unpacking to 2 to 4 times their size).
#[derive(Debug, Clone, Copy)]
pub(super) struct ArchiveLimits {
    /// Members (files and folders).
    pub members: u64,
    /// Bytes unpacked, all members together.
    pub unpacked: u64,
    /// Bytes unpacked per byte of the archive, once it unpacks to more than
    /// [`Self::ratio_from`] (small archives of repeated bytes pass).
    pub ratio: u64,
    pub ratio_from: u64,
}

/// The limits every mirror file is read with.
const ARCHIVE_LIMITS: ArchiveLimits = ArchiveLimits {
    members: 100_000,
    unpacked: 16 << 30,
    ratio: 100,
    ratio_from: 64 << 20,
};

impl ArchiveLimits {
    /// Checks an archive of `packed` bytes holding `members` members that unpack to
    /// `unpacked` bytes (so far: a tar is read as a stream).
    fn check(&self, members: u64, unpacked: u64, packed: u64) -> Result<(), String> {
        if members > self.members {
            return Err(format!(
                "it has more than {} members (the limit, against archive bombs)",
                self.members
            ));
        }
        if unpacked > self.unpacked {
            return Err(format!(
                "it unpacks to more than {} (the limit, against archive bombs)",
                bytes(self.unpacked)
            ));
        }
        if unpacked > self.ratio_from && unpacked / packed.max(1) > self.ratio {
            return Err(format!(
                "it unpacks to more than {} from {}, more than {} times its size (the limit, \
                 against archive bombs)",
                bytes(unpacked),
                bytes(packed),
                self.ratio
            ));
        }
        Ok(())
    }
}

/// `3 GiB`, `64 MiB`, `512 bytes`: a size as an operator reads it (rounded down).
fn bytes(size: u64) -> String {
    match size {
        size if size >= 1 << 30 => format!("{} GiB", size >> 30),
        size if size >= 1 << 20 => format!("{} MiB", size >> 20),
        size => format!("{size} bytes"),
    }
}

fn read_members(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, String> {
    read_members_within(path, wanted, &ARCHIVE_LIMITS)
}

/// The members of the archive at `path` whose name `wanted` accepts, as text, the archive
/// checked against `limits` first (a zip's central directory says all; a tar is checked entry
/// by entry, before each is read).
fn read_members_within(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
    limits: &ArchiveLimits,
) -> Result<Vec<(String, String)>, String> {
    let name = path.to_string_lossy();
    let file = fs_err::File::open(path).map_err(|err| err.to_string())?;
    let packed = file.metadata().map_err(|err| err.to_string())?.len();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let mut archive =
            zip::ZipArchive::new(file).map_err(|err| format!("not a valid zip archive: {err}"))?;
        let unpacked = (0..archive.len())
            .filter_map(|index| archive.by_index_raw(index).ok().map(|member| member.size()))
            .fold(0_u64, u64::saturating_add);
        limits.check(archive.len() as u64, unpacked, packed)?;
        // An installer unpacks every member under site-packages: one that leaves it (an
        // absolute path, a `..`) would write anywhere. pip refuses it at install; packsync
        // refuses it before anything is built.
        if let Some(outside) = archive.file_names().find(|name| leaves_the_tree(name)) {
            return Err(format!(
                "its member `{outside}` leaves the install folder (an absolute path or `..`)"
            ));
        }
        let names: Vec<String> = archive
            .file_names()
            .filter(|name| wanted(name))
            .map(str::to_string)
            .collect();
        names
            .into_iter()
            .map(|name| {
                let mut text = String::new();
                archive
                    .by_name(&name)
                    .map_err(|err| err.to_string())?
                    .read_to_string(&mut text)
                    .map_err(|err| format!("cannot read `{name}`: {err}"))?;
                Ok((name, text))
            })
            .collect()
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut found = Vec::new();
        let entries = archive
            .entries()
            .map_err(|err| format!("not a valid tar.gz archive: {err}"))?;
        let (mut members, mut unpacked) = (0_u64, 0_u64);
        for entry in entries {
            let mut entry = entry.map_err(|err| format!("not a valid tar.gz archive: {err}"))?;
            members += 1;
            unpacked = unpacked.saturating_add(entry.size());
            limits.check(members, unpacked, packed)?;
            let member = entry.path().map_err(|err| err.to_string())?;
            let member = member
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if wanted(&member) {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|err| format!("cannot read `{member}`: {err}"))?;
                found.push((member, text));
            }
        }
        Ok(found)
    } else {
        Err("packsync reads sdists as .tar.gz or .zip only".to_string())
    }
}

/// The headers of a core metadata file (RFC 822 style, continuation lines indented).
struct Headers(Vec<(String, String)>);

impl Headers {
    fn parse(text: &str) -> Self {
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                break; // the description body follows
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((key, value)) = line.split_once(':') {
                headers.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        Self(headers)
    }

    fn all(&self, key: &str) -> Vec<String> {
        let key = key.to_ascii_lowercase();
        self.0
            .iter()
            .filter(|(name, _)| *name == key)
            .map(|(_, value)| value.clone())
            .collect()
    }

    fn first(&self, key: &str) -> Option<String> {
        self.all(key).into_iter().next()
    }

    /// Whether `Requires-Dist` can be trusted without building: metadata 2.2 or later, and not
    /// listed as `Dynamic` (PEP 643).
    fn static_requires(&self) -> bool {
        let version = self.first("Metadata-Version").unwrap_or_default();
        let (major, minor) = version.split_once('.').unwrap_or((&version, "0"));
        let at_least_2_2 = (
            major.parse::<u32>().unwrap_or(0),
            minor.parse::<u32>().unwrap_or(0),
        ) >= (2, 2);
        at_least_2_2
            && !self
                .all("Dynamic")
                .iter()
                .any(|field| field.eq_ignore_ascii_case("Requires-Dist"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_fold_continuations_and_stop_at_the_body() {
        let headers = Headers::parse(
            "Metadata-Version: 2.1\nName: x\nRequires-Dist: a>=1\nRequires-Dist: b;\n  \
             extra == 'y'\n\nRequires-Dist: not-a-header\n",
        );
        assert_eq!(headers.all("requires-dist"), ["a>=1", "b; extra == 'y'"]);
        assert!(!headers.static_requires());
        assert!(Headers::parse("Metadata-Version: 2.2\n").static_requires());
        assert!(
            !Headers::parse("Metadata-Version: 2.4\nDynamic: Requires-Dist\n").static_requires()
        );
    }

    #[test]
    fn egg_info_sections_become_markers() {
        assert_eq!(
            egg_info_requirements(
                "six\n\n[socks]\nPySocks!=1.5.7\n\n[:python_version < \"3.8\"]\nimportlib-metadata\n\n[ws:sys_platform == \"win32\"]\npywin32\n"
            ),
            [
                "six",
                "PySocks!=1.5.7 ; extra == \"socks\"",
                "importlib-metadata ; (python_version < \"3.8\")",
                "pywin32 ; (sys_platform == \"win32\") and extra == \"ws\"",
            ]
        );
    }

    #[test]
    fn optional_dependencies_keep_their_own_markers() {
        assert_eq!(
            with_extra("a>=1; os_name == 'nt'", "x", None),
            "a>=1 ; (os_name == 'nt') and extra == \"x\""
        );
    }

    /// An sdist `name-1.0.tar.gz` in `dir` holding `members` (path under `name-1.0/`, text).
    fn sdist(dir: &Path, members: &[(&str, &str)]) -> MirrorFile {
        let path = dir.join("name-1.0.tar.gz");
        let file = fs_err::File::create(&path).unwrap();
        let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        for (member, text) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, format!("name-1.0/{member}"), text.as_bytes())
                .unwrap();
        }
        archive.into_inner().unwrap().finish().unwrap();
        MirrorFile {
            file_name: "name-1.0.tar.gz".into(),
            path,
            name: "name".parse().unwrap(),
            version: "1.0".parse().unwrap(),
            kind: DistKind::Sdist,
            tags: Vec::new(),
            size: 0,
            sha256: String::new(),
        }
    }

    /// Issue 16: setuptools writes `requires.txt` only when there are dependencies.
    #[test]
    fn an_egg_info_without_requires_txt_declares_no_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = "Metadata-Version: 2.1\nName: name\nVersion: 1.0\n";
        let none = sdist(
            dir.path(),
            &[("PKG-INFO", legacy), ("name.egg-info/PKG-INFO", legacy)],
        );
        assert_eq!(
            read_sdist(&none).unwrap().requires_dist,
            Vec::<String>::new()
        );
        let in_src = sdist(
            dir.path(),
            &[("PKG-INFO", legacy), ("src/name.egg-info/PKG-INFO", legacy)],
        );
        assert_eq!(
            read_sdist(&in_src).unwrap().requires_dist,
            Vec::<String>::new()
        );
        let some = sdist(
            dir.path(),
            &[
                ("PKG-INFO", legacy),
                ("name.egg-info/PKG-INFO", legacy),
                ("name.egg-info/requires.txt", "six\n"),
            ],
        );
        assert_eq!(read_sdist(&some).unwrap().requires_dist, ["six"]);
        // PKG-INFO 2.1 alone (six's sdist) says nothing about dependencies.
        let unknown = sdist(dir.path(), &[("PKG-INFO", legacy)]);
        assert!(
            read_sdist(&unknown)
                .unwrap_err()
                .starts_with("the sdist declares its dependencies in no file"),
        );
    }

    /// Issue 21: an archive with too many members, one that unpacks to too much, and one that
    /// unpacks to too many times its size are refused before a member is read, zip and tar.
    #[test]
    fn archive_bombs_are_refused_before_anything_is_unpacked() {
        use std::fmt::Write as _;
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let limits = ArchiveLimits {
            members: 3,
            unpacked: 1 << 20,
            ratio: 10,
            ratio_from: 1 << 10,
        };
        let wheel = |name: &str, members: &[(&str, Vec<u8>)]| {
            let path = dir.path().join(name);
            let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
            for (member, data) in members {
                zip.start_file(*member, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(data).unwrap();
            }
            zip.finish().unwrap();
            path
        };
        let metadata = ("x-1.0.dist-info/METADATA", b"Name: x\n".to_vec());
        let read = |path: &Path| read_members_within(path, |_| true, &limits);

        let fine = wheel(
            "fine.whl",
            &[metadata.clone(), ("x.py", b"x = 1\n".to_vec())],
        );
        assert_eq!(read(&fine).unwrap().len(), 2);
        let crowded = wheel(
            "crowded.whl",
            &[
                metadata.clone(),
                ("a.py", Vec::new()),
                ("b.py", Vec::new()),
                ("c.py", Vec::new()),
            ],
        );
        assert_eq!(
            read(&crowded).unwrap_err(),
            "it has more than 3 members (the limit, against archive bombs)"
        );
        let large = wheel(
            "large.whl",
            &[metadata.clone(), ("big.bin", vec![7; 2 << 20])],
        );
        assert_eq!(
            read(&large).unwrap_err(),
            "it unpacks to more than 1 MiB (the limit, against archive bombs)"
        );
        let bomb = wheel("bomb.whl", &[metadata, ("zeros.bin", vec![0; 512 << 10])]);
        let err = read(&bomb).unwrap_err();
        assert!(
            err.starts_with("it unpacks to more than 524296 bytes from ")
                && err.ends_with("more than 10 times its size (the limit, against archive bombs)"),
            "{err}"
        );

        // A tar says each member's size in its header: refused before the member is read.
        // Hex of a pseudo-random stream: no gzip packs it tighter than the ratio.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut noise = || {
            let mut text = String::with_capacity(600 << 10);
            for _ in 0..300 << 10 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let _ = write!(text, "{:02x}", state & 0xff);
            }
            text
        };
        let members: Vec<(String, String)> =
            (0..2).map(|i| (format!("m{i}.txt"), noise())).collect();
        let members: Vec<(&str, &str)> = members
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        let tar = sdist(dir.path(), &members);
        assert_eq!(
            read_members_within(&tar.path, |_| true, &limits).unwrap_err(),
            "it unpacks to more than 1 MiB (the limit, against archive bombs)"
        );
    }

    /// Issue 16: a wheel member that leaves the install folder is refused before any build.
    #[test]
    fn a_wheel_whose_members_leave_the_install_folder_is_refused() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        for (member, refused) in [
            ("evil-1.0.dist-info/METADATA", false),
            ("../evil.py", true),
            ("/etc/cron.d/evil", true),
            ("evil/../../evil.py", true),
            ("C:/evil.py", true),
        ] {
            let path = dir.path().join("evil-1.0-py3-none-any.whl");
            let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
            let options = zip::write::SimpleFileOptions::default();
            zip.start_file("evil-1.0.dist-info/METADATA", options)
                .unwrap();
            zip.write_all(b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n")
                .unwrap();
            if refused {
                zip.start_file(member, options).unwrap();
                zip.write_all(b"x = 1\n").unwrap();
            }
            zip.finish().unwrap();
            let read = read_members(&path, |name| name.ends_with("METADATA"));
            match (read, refused) {
                (Ok(members), false) => assert_eq!(members.len(), 1),
                (Err(err), true) => assert!(err.contains(&format!("`{member}` leaves")), "{err}"),
                (read, _) => panic!("{member}: {read:?}"),
            }
        }
    }
}
