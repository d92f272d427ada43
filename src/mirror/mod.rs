//! The wheel mirror: the one flat folder of wheels and sdists that pack virtualenvs are built
//! from (`pip install --no-index --find-links <dir>`).
//!
//! [`MirrorIndex::scan`] lists what the folder holds, by name, version and sha256 (cached, so
//! that a re-scan reads no unchanged file), and [`MirrorIndex::select`] picks the version a
//! direct requirement gets, with pip's rules for pre-releases. Resolving dependencies of
//! dependencies and wheel tags is the resolver's job, not this module's.

mod cache;
mod filename;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{PackageName, Requirement, VersionOrUrl};

use crate::diagnostics::Diagnose;
use crate::model::Pin;

pub use filename::{DistKind, FileNameError};

/// One wheel or sdist of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFile {
    /// The file name in the mirror folder.
    pub file_name: String,
    pub path: PathBuf,
    /// PEP 503 normalised distribution name.
    pub name: PackageName,
    pub version: Version,
    pub kind: DistKind,
    /// In bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
}

impl MirrorFile {
    /// The pin an env records for this file.
    pub fn pin(&self) -> Pin {
        Pin {
            name: self.name.to_string(),
            version: self.version.to_string(),
            file: self.file_name.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

/// A file with a wheel or sdist extension that pip could not use either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    pub file_name: String,
    pub reason: FileNameError,
}

/// When a pre-release may be selected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Prereleases {
    /// pip's default: only when the requirement names one with `==`, `===`, `~=`, `>=` or `<=`
    /// (`fxdep>=2.0b1`), or names no version at all and the mirror has only pre-releases of
    /// the distribution. Unlike the letter of PEP 440, pip (23.2 and 24.2, checked) does not
    /// fall back to a pre-release when no final release satisfies a version specifier.
    #[default]
    IfRequested,
    /// pip's `--pre`: any version that satisfies the requirement.
    Allow,
}

/// The version of a distribution a requirement gets, and the mirror files of that version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'a> {
    pub version: Version,
    /// Every wheel and sdist of that version, by file name.
    pub files: Vec<&'a MirrorFile>,
}

impl<'a> Selection<'a> {
    /// The file an env pins for this selection: a wheel before the sdist, since pip prefers
    /// wheels. Which wheel fits the interpreter's tags is the full resolver's job.
    pub fn preferred_file(&self) -> &'a MirrorFile {
        self.files
            .iter()
            .find(|file| file.kind == DistKind::Wheel)
            .or(self.files.first())
            .expect("a selection holds at least one file")
    }
}

/// What the wheel mirror folder holds.
#[derive(Debug, Clone)]
pub struct MirrorIndex {
    dir: PathBuf,
    /// Sorted by name, version and file name.
    files: Vec<MirrorFile>,
    /// Sorted by file name.
    skipped: Vec<SkippedFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("Cannot read the wheel mirror folder `{}`", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot read the mirror file `{}`", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "Requirement `{requirement}` points at a URL, but packs install only from the wheel mirror"
    )]
    UrlRequirement { requirement: String },
    #[error(
        "No file in the mirror satisfies `{requirement}`: {}",
        mirror_holds(name, available)
    )]
    Unsatisfied {
        requirement: String,
        /// The normalised distribution name.
        name: String,
        /// Every version of the distribution the mirror has, oldest first.
        available: Vec<String>,
        /// The versions that satisfy the specifiers but are pre-releases pip would not pick.
        prereleases: Vec<String>,
        mirror: PathBuf,
    },
}

/// "the mirror has fxdep 1.0, 1.1", for the unsatisfied error.
fn mirror_holds(name: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("the mirror has no distribution named `{name}`")
    } else {
        format!("the mirror has {name} {}", available.join(", "))
    }
}

impl Diagnose for MirrorError {
    fn hint(&self) -> Option<String> {
        match self {
            MirrorError::ReadDir { .. } => Some(
                "check `[mirror] path` in the site config: it is the folder of wheels and sdists \
                 pip installs from with `--find-links`"
                    .to_string(),
            ),
            MirrorError::ReadFile { .. } => Some(
                "every file in the mirror folder must be readable by packsync, as pip reads them \
                 too"
                .to_string(),
            ),
            MirrorError::UrlRequirement { .. } => Some(
                "put the wheel into the mirror folder and require the distribution by name and \
                 version, e.g. `name>=1.0`"
                    .to_string(),
            ),
            MirrorError::Unsatisfied {
                requirement,
                name,
                prereleases,
                mirror,
                ..
            } => {
                let prerelease_note = match prereleases.last() {
                    Some(newest) => format!(
                        "; {name} {} would satisfy it, but pip installs a pre-release only when \
                         the requirement names one, e.g. `{name}=={newest}`",
                        prereleases.join(", ")
                    ),
                    None => String::new(),
                };
                Some(format!(
                    "Add a wheel of `{name}` that satisfies `{requirement}` to the mirror folder \
                     `{}`{prerelease_note}",
                    mirror.display()
                ))
            }
        }
    }
}

impl MirrorIndex {
    /// Indexes every wheel and sdist directly in `dir` (pip's `--find-links` does not recurse).
    ///
    /// Hashes come from the cache file at `cache` for files whose size and mtime did not
    /// change; the cache is rewritten when the scan changed it.
    pub fn scan(dir: &Path, cache: Option<&Path>) -> Result<Self, MirrorError> {
        let dir_error = |source| MirrorError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let entries = fs_err::read_dir(dir).map_err(dir_error)?;
        let mut hashes = cache::HashCache::load(cache, dir);
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for entry in entries {
            let entry = entry.map_err(dir_error)?;
            let path = entry.path();
            match index_file(&path, &entry.file_name(), &mut hashes)? {
                Indexed::File(file) => files.push(file),
                Indexed::Skipped(skip) => skipped.push(skip),
                Indexed::Ignored => {}
            }
        }
        hashes.save();
        files.sort_by(|a, b| {
            (&a.name, &a.version, &a.file_name).cmp(&(&b.name, &b.version, &b.file_name))
        });
        skipped.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        tracing::debug!(
            dir = %dir.display(),
            files = files.len(),
            skipped = skipped.len(),
            "mirror indexed"
        );
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            skipped,
        })
    }

    /// Every wheel and sdist, sorted by name, version and file name.
    pub fn files(&self) -> &[MirrorFile] {
        &self.files
    }

    /// Files with a wheel or sdist extension whose name says no distribution and version.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }

    /// The files of the distribution `name`.
    pub fn files_of(&self, name: &PackageName) -> &[MirrorFile] {
        let start = self.files.partition_point(|file| file.name < *name);
        let len = self.files[start..].partition_point(|file| file.name == *name);
        &self.files[start..start + len]
    }

    /// The versions of the distribution `name` the mirror has, oldest first.
    pub fn versions_of(&self, name: &PackageName) -> Vec<&Version> {
        let mut versions: Vec<&Version> = self
            .files_of(name)
            .iter()
            .map(|file| &file.version)
            .collect();
        versions.dedup();
        versions
    }

    /// The newest version of the mirror that satisfies a direct `requirement`, pre-releases
    /// following `prereleases`. Markers are not evaluated: whether the requirement applies to
    /// the interpreter is the caller's decision.
    pub fn select(
        &self,
        requirement: &Requirement,
        prereleases: Prereleases,
    ) -> Result<Selection<'_>, MirrorError> {
        let any_version = VersionSpecifiers::empty();
        let specifiers = match &requirement.version_or_url {
            None => &any_version,
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers,
            Some(VersionOrUrl::Url(_)) => {
                return Err(MirrorError::UrlRequirement {
                    requirement: requirement.to_string(),
                });
            }
        };
        let candidates = self.files_of(&requirement.name);
        let allow_prereleases = match prereleases {
            Prereleases::Allow => true,
            Prereleases::IfRequested => {
                names_a_prerelease(specifiers)
                    || (specifiers.is_empty()
                        && candidates.iter().all(|file| file.version.any_prerelease()))
            }
        };
        let mut satisfying: Vec<&Version> = candidates
            .iter()
            .map(|file| &file.version)
            .filter(|version| specifiers.contains(version))
            .collect();
        satisfying.dedup();
        let chosen = satisfying
            .iter()
            .rev()
            .find(|version| allow_prereleases || !version.any_prerelease());
        let Some(&version) = chosen else {
            return Err(MirrorError::Unsatisfied {
                requirement: requirement.to_string(),
                name: requirement.name.to_string(),
                available: self
                    .versions_of(&requirement.name)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                prereleases: satisfying.iter().map(ToString::to_string).collect(),
                mirror: self.dir.clone(),
            });
        };
        let mut files: Vec<&MirrorFile> = candidates
            .iter()
            .filter(|file| file.version == *version)
            .collect();
        files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        Ok(Selection {
            version: version.clone(),
            files,
        })
    }
}

/// Whether a specifier asks for a pre-release: packaging's `Specifier.prereleases`, which pip
/// uses, counts only the inclusive operators (`<2.0b2` does not let 2.0b1 in).
fn names_a_prerelease(specifiers: &VersionSpecifiers) -> bool {
    specifiers.iter().any(|specifier| {
        matches!(
            specifier.operator(),
            Operator::Equal
                | Operator::EqualStar
                | Operator::ExactEqual
                | Operator::TildeEqual
                | Operator::GreaterThanEqual
                | Operator::LessThanEqual
        ) && specifier.version().any_prerelease()
    })
}

/// What a directory entry of the mirror is.
enum Indexed {
    File(MirrorFile),
    Skipped(SkippedFile),
    /// Not a wheel or sdist (README, SHA256SUMS, index.html, folders).
    Ignored,
}

fn index_file(
    path: &Path,
    os_file_name: &OsStr,
    hashes: &mut cache::HashCache,
) -> Result<Indexed, MirrorError> {
    let lossy_name = os_file_name.to_string_lossy();
    let Some(parsed) = filename::parse(&lossy_name) else {
        return Ok(Indexed::Ignored);
    };
    let file_error = |source| MirrorError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    // Follows symlinks, as pip does.
    let metadata = match fs_err::metadata(path) {
        Ok(metadata) => metadata,
        // Removed since the folder was listed: the mirror is being updated.
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            tracing::debug!(%error, "mirror file vanished during the scan");
            return Ok(Indexed::Ignored);
        }
        Err(error) => return Err(file_error(error)),
    };
    if !metadata.is_file() {
        return Ok(Indexed::Ignored);
    }
    let skip = |reason| {
        Ok(Indexed::Skipped(SkippedFile {
            file_name: lossy_name.to_string(),
            reason,
        }))
    };
    let Some(file_name) = os_file_name.to_str() else {
        return skip(FileNameError::NotUtf8);
    };
    let dist = match parsed {
        Ok(dist) => dist,
        Err(reason) => return skip(reason),
    };
    let sha256 = hashes
        .sha256(file_name, path, &metadata)
        .map_err(file_error)?;
    Ok(Indexed::File(MirrorFile {
        file_name: file_name.to_string(),
        path: path.to_path_buf(),
        name: dist.name,
        version: dist.version,
        kind: dist.kind,
        size: metadata.len(),
        sha256,
    }))
}
