//! What a mirror file's name says: distribution name, version and kind.
//!
//! pip's `--find-links` trusts file names alone, so packsync does too: the archive is never
//! opened to find out what it holds.

use std::str::FromStr;

use pep440_rs::{Version, VersionParseError};
use pep508_rs::{InvalidNameError, PackageName};

/// Whether a mirror file is built (a wheel) or has to be built at install time (an sdist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DistKind {
    Wheel,
    Sdist,
}

/// The name and version a distribution file name carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DistFileName {
    pub(super) name: PackageName,
    pub(super) version: Version,
    pub(super) kind: DistKind,
    /// The compatibility tags of a wheel, expanded (`py2.py3-none-any` is `py2-none-any` and
    /// `py3-none-any`); empty for an sdist.
    pub(super) tags: Vec<String>,
}

/// Why a file with a wheel or sdist extension cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    #[error(
        "A wheel file name has 5 or 6 parts separated by `-`: \
         `name-version(-build)?-python-abi-platform.whl`"
    )]
    WheelParts,
    #[error("The wheel build tag `{tag}` does not start with a digit")]
    WheelBuildTag { tag: String },
    #[error("`{name}` is not a valid distribution name")]
    Name {
        name: String,
        #[source]
        source: InvalidNameError,
    },
    #[error("`{version}` is not a PEP 440 version")]
    Version {
        version: String,
        #[source]
        source: VersionParseError,
    },
    #[error("No `-` splits the sdist file name into a distribution name and a PEP 440 version")]
    SdistVersion,
    #[error("The file name is not valid UTF-8")]
    NotUtf8,
}

/// pip's archive extensions for sdists that packsync recognises.
const SDIST_EXTENSIONS: [&str; 4] = [".tar.gz", ".tgz", ".tar.bz2", ".zip"];

/// Parses `file_name` when its extension marks a wheel or an sdist; `None` for any other file.
pub(super) fn parse(file_name: &str) -> Option<Result<DistFileName, FileNameError>> {
    if let Some(stem) = file_name.strip_suffix(".whl") {
        return Some(parse_wheel(stem));
    }
    SDIST_EXTENSIONS
        .iter()
        .find_map(|extension| file_name.strip_suffix(extension))
        .map(parse_sdist)
}

/// PEP 427: `name-version(-build)?-python-abi-platform`; the name has no `-` (it is escaped to
/// `_`), so the parts are unambiguous.
fn parse_wheel(stem: &str) -> Result<DistFileName, FileNameError> {
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(FileNameError::WheelParts);
    }
    let (name, version, python, abi, platform) = match parts.as_slice() {
        [name, version, python, abi, platform] => (*name, *version, *python, *abi, *platform),
        [name, version, build, python, abi, platform] => {
            if !build.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(FileNameError::WheelBuildTag {
                    tag: (*build).to_string(),
                });
            }
            (*name, *version, *python, *abi, *platform)
        }
        _ => return Err(FileNameError::WheelParts),
    };
    let mut tags = Vec::new();
    for python in python.split('.') {
        for abi in abi.split('.') {
            for platform in platform.split('.') {
                tags.push(format!("{python}-{abi}-{platform}"));
            }
        }
    }
    Ok(DistFileName {
        name: parse_name(name)?,
        version: parse_version(version)?,
        kind: DistKind::Wheel,
        tags,
    })
}

/// `name-version`, where legacy sdists keep the `-` of their name: the first `-` after which
/// the rest is a PEP 440 version splits them, so `python-dateutil-2.8.2` is
/// `python-dateutil` 2.8.2 and `foo-1.0-1` is `foo` 1.0.post1 (a version may contain `-`).
fn parse_sdist(stem: &str) -> Result<DistFileName, FileNameError> {
    stem.match_indices('-')
        .find_map(|(dash, _)| {
            let name = PackageName::from_str(&stem[..dash]).ok()?;
            let version = Version::from_str(&stem[dash + 1..]).ok()?;
            Some(DistFileName {
                name,
                version,
                kind: DistKind::Sdist,
                tags: Vec::new(),
            })
        })
        .ok_or(FileNameError::SdistVersion)
}

fn parse_name(name: &str) -> Result<PackageName, FileNameError> {
    PackageName::from_str(name).map_err(|source| FileNameError::Name {
        name: name.to_string(),
        source,
    })
}

fn parse_version(version: &str) -> Result<Version, FileNameError> {
    Version::from_str(version).map_err(|source| FileNameError::Version {
        version: version.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(file_name: &str) -> (String, String, DistKind) {
        let dist = parse(file_name)
            .expect("a distribution extension")
            .expect("a valid file name");
        (dist.name.to_string(), dist.version.to_string(), dist.kind)
    }

    #[test]
    fn wheel_names_follow_pep_427() {
        assert_eq!(
            parsed("Foo_Bar-1.0-py3-none-any.whl"),
            ("foo-bar".into(), "1.0".into(), DistKind::Wheel)
        );
        assert_eq!(
            parsed("six-1.16.0-1build-py2.py3-none-any.whl"),
            ("six".into(), "1.16.0".into(), DistKind::Wheel)
        );
        assert_eq!(
            parsed("cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
            ("cffi".into(), "1.16.0".into(), DistKind::Wheel)
        );
    }

    #[test]
    fn wheel_tags_are_expanded() {
        let tags = |file_name| parse(file_name).unwrap().unwrap().tags;
        assert_eq!(
            tags("six-1.16.0-py2.py3-none-any.whl"),
            ["py2-none-any", "py3-none-any"]
        );
        assert_eq!(
            tags("cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
            [
                "cp311-cp311-manylinux_2_17_x86_64",
                "cp311-cp311-manylinux2014_x86_64"
            ]
        );
        assert!(tags("python-dateutil-2.8.2.tar.gz").is_empty());
    }

    #[test]
    fn malformed_wheel_names_say_why() {
        let error = |file_name| parse(file_name).expect("a wheel").expect_err("malformed");
        assert_eq!(error("foo-1.0.whl"), FileNameError::WheelParts);
        assert_eq!(error("foo-1.0-py3--any.whl"), FileNameError::WheelParts);
        assert_eq!(
            error("foo-1.0-x-py3-none-any.whl"),
            FileNameError::WheelBuildTag { tag: "x".into() }
        );
        assert!(matches!(
            error("foo-one-py3-none-any.whl"),
            FileNameError::Version { version, .. } if version == "one"
        ));
        assert!(matches!(
            error("foo!-1.0-py3-none-any.whl"),
            FileNameError::Name { name, .. } if name == "foo!"
        ));
    }

    #[test]
    fn sdist_names_split_where_the_version_starts() {
        assert_eq!(
            parsed("python-dateutil-2.8.2.tar.gz"),
            ("python-dateutil".into(), "2.8.2".into(), DistKind::Sdist)
        );
        assert_eq!(
            parsed("zope.interface-6.0.zip"),
            ("zope-interface".into(), "6.0".into(), DistKind::Sdist)
        );
        assert_eq!(
            parsed("foo-1.0-1.tgz"),
            ("foo".into(), "1.0.post1".into(), DistKind::Sdist)
        );
        assert_eq!(
            parsed("backports.ssl-match-hostname-3.7.0.1.tar.bz2"),
            (
                "backports-ssl-match-hostname".into(),
                "3.7.0.1".into(),
                DistKind::Sdist
            )
        );
        assert_eq!(
            parse("README.tar.gz").expect("an sdist extension"),
            Err(FileNameError::SdistVersion)
        );
    }

    #[test]
    fn other_files_are_not_distributions() {
        for file_name in [
            "README",
            "SHA256SUMS",
            "index.html",
            "foo-1.0.tar",
            "x.whl.part",
        ] {
            assert!(parse(file_name).is_none(), "{file_name}");
        }
    }
}
