//! The wheel mirror: the one flat folder of wheels and sdists that pack virtualenvs are built
//! from (`pip install --no-index --find-links <dir>`).
//!
//! [`MirrorIndex::scan`] lists what the folder holds, by name, version and sha256 (cached, so
//! that a re-scan reads no unchanged file) and reads its `SHA256SUMS` when it has one;
//! [`resolve::resolve`] picks the file of every distribution an environment gets, dependencies
//! included, from the metadata [`MetadataCache`] reads out of the files.

mod cache;
mod filename;
mod metadata;
pub mod resolve;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::PackageName;

use crate::diagnostics::Diagnose;
use crate::model::Pin;

pub use cache::sha256_file;
pub use filename::{DistKind, FileNameError};
pub use metadata::{DistMetadata, MetadataCache, WheelBuilder};

/// The checksum file of a mirror, in `sha256sum` format, that pins every file it lists.
pub const SHA256SUMS: &str = "SHA256SUMS";

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
    /// A wheel's compatibility tags, expanded (`py3-none-any`); empty for an sdist.
    pub tags: Vec<String>,
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

/// What the wheel mirror folder holds.
#[derive(Debug, Clone)]
pub struct MirrorIndex {
    dir: PathBuf,
    /// Sorted by name, version and file name.
    files: Vec<MirrorFile>,
    /// Sorted by file name.
    skipped: Vec<SkippedFile>,
    /// `SHA256SUMS`, when the mirror has one.
    checksums: Option<Checksums>,
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
    #[error("Cannot read the metadata of the mirror file `{}`: {reason}", path.display())]
    Metadata { path: PathBuf, reason: String },
    #[error("`{}` line {line} is not `<sha256>  <file name>`", path.display())]
    ChecksumLine { path: PathBuf, line: usize },
    #[error("The mirror file `{file_name}` is not listed in `{}`", sums.display())]
    NotListed { file_name: String, sums: PathBuf },
    #[error(
        "The mirror file `{file_name}` has sha256 {actual}, but `{}` line {line} says {expected}",
        sums.display()
    )]
    ChecksumMismatch {
        file_name: String,
        sums: PathBuf,
        line: usize,
        expected: String,
        actual: String,
    },
}

/// "mirror has fxdep 1.0, 1.1", for resolution errors.
fn mirror_holds(name: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("mirror has no distribution named `{name}`")
    } else {
        format!("mirror has {name} {}", available.join(", "))
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
            MirrorError::Metadata { .. } => Some(
                "replace the file with a sound wheel (`pip wheel --no-deps <sdist>` builds one \
                 from an sdist on a machine that can), or remove it from the mirror"
                    .to_string(),
            ),
            MirrorError::ChecksumLine { .. } => Some(
                "write the file with `sha256sum *.whl *.tar.gz > SHA256SUMS` in the mirror folder"
                    .to_string(),
            ),
            MirrorError::NotListed { .. } => Some(
                "check the file, then add its line to SHA256SUMS (`sha256sum FILE >> SHA256SUMS`); \
                 every file used must be listed there"
                    .to_string(),
            ),
            MirrorError::ChecksumMismatch { file_name, .. } => Some(format!(
                "`{file_name}` is not the file SHA256SUMS was written for: restore it, or check \
                 it and update SHA256SUMS"
            )),
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
        let checksums = read_checksums(&dir.join(SHA256SUMS))?;
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
            checksums,
        })
    }

    /// The mirror folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This mirror with the wheels and sdists of the folders `local` on top: a distribution
    /// they have is taken from them only (a runner built from its source).
    pub fn overlaid(&self, local: &[PathBuf]) -> Result<Self, MirrorError> {
        let mut overlay = Vec::new();
        for dir in local {
            overlay.extend(Self::scan(dir, None)?.files);
        }
        let mut files: Vec<MirrorFile> = self
            .files
            .iter()
            .filter(|file| !overlay.iter().any(|local| local.name == file.name))
            .cloned()
            .collect();
        files.extend(overlay);
        files.sort_by(|a, b| {
            (&a.name, &a.version, &a.file_name).cmp(&(&b.name, &b.version, &b.file_name))
        });
        Ok(Self {
            dir: self.dir.clone(),
            files,
            skipped: self.skipped.clone(),
            checksums: self.checksums.clone(),
        })
    }

    /// Checks `file` against `SHA256SUMS` when the mirror has one (a file of an overlay is
    /// not the mirror's).
    pub fn verify_listed(&self, file: &MirrorFile) -> Result<(), MirrorError> {
        let Some(checksums) = &self.checksums else {
            return Ok(());
        };
        if file.path.parent() != Some(self.dir.as_path()) {
            return Ok(());
        }
        let sums = self.dir.join(SHA256SUMS);
        match checksums.get(&file.file_name) {
            None => Err(MirrorError::NotListed {
                file_name: file.file_name.clone(),
                sums,
            }),
            Some((expected, _)) if *expected == file.sha256 => Ok(()),
            Some((expected, line)) => Err(MirrorError::ChecksumMismatch {
                file_name: file.file_name.clone(),
                sums,
                line: *line,
                expected: expected.clone(),
                actual: file.sha256.clone(),
            }),
        }
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
}

/// Whether pre-releases may be chosen for a requirement with `specifiers` among `candidates`:
/// with `--pre`, when a specifier names one, or when the requirement names no version and the
/// distribution has only pre-releases. Unlike the letter of PEP 440, pip (23.2 and 24.2,
/// checked) does not fall back to a pre-release when no final release satisfies a specifier.
pub(crate) fn allows_prereleases<'v>(
    specifiers: &VersionSpecifiers,
    mut candidates: impl Iterator<Item = &'v Version>,
    prereleases: Prereleases,
) -> bool {
    match prereleases {
        Prereleases::Allow => true,
        Prereleases::IfRequested => {
            names_a_prerelease(specifiers)
                || (specifiers.is_empty() && candidates.all(Version::any_prerelease))
        }
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
        tags: dist.tags,
        size: metadata.len(),
        sha256,
    }))
}

/// `SHA256SUMS` read: file name -> sha256 and the line it is on.
type Checksums = BTreeMap<String, (String, usize)>;

/// Reads the mirror's `SHA256SUMS` (`<sha256>  <name>` or `<sha256> *<name>` per line);
/// `None` when there is none.
fn read_checksums(path: &Path) -> Result<Option<Checksums>, MirrorError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MirrorError::ReadFile {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut checksums = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad_line = || MirrorError::ChecksumLine {
            path: path.to_path_buf(),
            line: line_number,
        };
        let (sha256, name) = line.split_once(' ').ok_or_else(bad_line)?;
        let name = name.strip_prefix([' ', '*']).ok_or_else(bad_line)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
            return Err(bad_line());
        }
        checksums.insert(name.to_string(), (sha256.to_ascii_lowercase(), line_number));
    }
    Ok(Some(checksums))
}
