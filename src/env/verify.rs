//! Proof that a built environment holds exactly its pins: every pinned distribution installed
//! in the environment's own site-packages at its pinned version, no other distribution there,
//! and every file a distribution's `RECORD` hashes present with that sha256.
//!
//! Run after every build, before the completion record is written; the record keeps what was
//! verified, so a no-op run reads it instead of hashing again.

use std::collections::{BTreeMap, HashSet};
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr as _;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::model::Pin;
use crate::store::VerifiedDist;

/// What is installed in `site_packages`, checked against `pins`. `root` is the environment
/// (a `RECORD` path may lead to its `bin/`, never out of it). A file in `linked` is a hard link
/// of a sealed file verified when the store was filled (the same inode): it is not hashed
/// again. Every problem found, or the verified distributions, sorted by name.
pub(super) fn verify(
    site_packages: &Path,
    root: &Path,
    pins: &[Pin],
    linked: &HashSet<PathBuf>,
) -> Result<Vec<VerifiedDist>, Vec<String>> {
    let (mut found, mut problems) = match installed(site_packages) {
        Ok(installed) => installed,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && pins.is_empty() => {
            return Ok(Vec::new());
        }
        Err(err) => return Err(vec![err.to_string()]),
    };

    let mut verified = Vec::new();
    for pin in pins {
        match found.remove(&canonical(&pin.name)) {
            None => problems.push(format!(
                "{}=={} is missing from `{}`",
                pin.name,
                pin.version,
                site_packages.display()
            )),
            Some((name, version, path)) => {
                if !same_version(&version, &pin.version) {
                    problems.push(format!(
                        "{name} {version} is installed where {}=={} is pinned",
                        pin.name, pin.version
                    ));
                    continue;
                }
                match check_record(&path, site_packages, root, linked) {
                    Ok(files) => verified.push(VerifiedDist {
                        name: pin.name.clone(),
                        version,
                        files,
                    }),
                    Err(record_problems) => problems.extend(
                        record_problems
                            .into_iter()
                            .map(|problem| format!("{name} {version}: {problem}")),
                    ),
                }
            }
        }
    }
    for (name, version, _) in found.into_values() {
        problems.push(format!("{name} {version} is installed but not pinned"));
    }
    if problems.is_empty() {
        verified.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(verified)
    } else {
        Err(problems)
    }
}

/// The files in `site_packages` no distribution's `RECORD` names (relative to it), outside
/// `__pycache__` folders (bytecode is compiled after some installers write their RECORD) and
/// but `keep` (files packsync writes itself): what a hand or an intruder dropped in, such as a
/// `.pth` file Python runs at every start.
pub(super) fn unowned(site_packages: &Path, keep: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let (found, _) = installed(site_packages)?;
    let mut owned = HashSet::new();
    for (_, _, dist_info) in found.values() {
        let record = match fs_err::read(dist_info.join("RECORD")) {
            Ok(record) => record,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for line in String::from_utf8_lossy(&record).lines() {
            if let Some(path) = csv_fields(line)
                .first()
                .and_then(|relative| normalize(&site_packages.join(relative)))
            {
                owned.insert(path);
            }
        }
    }
    let mut unowned = Vec::new();
    let mut folders = vec![site_packages.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs_err::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if entry.file_name() != "__pycache__" {
                    folders.push(path);
                }
                continue;
            }
            let relative = path.strip_prefix(site_packages).unwrap_or(&path);
            if !owned.contains(&path) && !keep.iter().any(|keep| relative == Path::new(keep)) {
                unowned.push(relative.to_path_buf());
            }
        }
    }
    unowned.sort();
    Ok(unowned)
}

/// A distribution found installed: its name and version as its metadata says, and its
/// `.dist-info` (or `.egg-info`).
pub(super) type Found = (String, String, PathBuf);

/// Every distribution installed in `site_packages`, by canonical name, and the problems
/// reading them (one installed twice, metadata without a name or version).
pub(super) fn installed(
    site_packages: &Path,
) -> std::io::Result<(BTreeMap<String, Found>, Vec<String>)> {
    let mut problems = Vec::new();
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for entry in fs_err::read_dir(site_packages)? {
        let path = entry?.path();
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let metadata = if file_name.ends_with(".dist-info") {
            path.join("METADATA")
        } else if file_name.ends_with(".egg-info") {
            // An egg-info is a folder holding PKG-INFO, or the PKG-INFO file itself.
            if path.is_dir() {
                path.join("PKG-INFO")
            } else {
                path.clone()
            }
        } else {
            continue;
        };
        match name_and_version(&metadata) {
            Some((name, version)) => {
                let key = canonical(&name);
                if let Some((_, _, other)) = found.get(&key) {
                    problems.push(format!(
                        "{name} is installed twice (`{}` and `{file_name}`)",
                        other.file_name().unwrap_or_default().to_string_lossy()
                    ));
                }
                found.insert(key, (name, version, path));
            }
            None => problems.push(format!(
                "`{file_name}` has no readable name and version in `{}`",
                metadata.display()
            )),
        }
    }
    Ok((found, problems))
}

/// PEP 503: lowercase, runs of `-`, `_`, `.` as one `-`.
pub(super) fn canonical(name: &str) -> String {
    pep508_rs::PackageName::from_str(name)
        .map_or_else(|_| name.to_ascii_lowercase(), |name| name.to_string())
}

fn same_version(installed: &str, pinned: &str) -> bool {
    match (
        pep440_rs::Version::from_str(installed),
        pep440_rs::Version::from_str(pinned),
    ) {
        (Ok(installed), Ok(pinned)) => installed == pinned,
        _ => installed == pinned,
    }
}

/// `Name` and `Version` from the headers of a METADATA or PKG-INFO file.
fn name_and_version(path: &Path) -> Option<(String, String)> {
    let text = fs_err::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.is_empty() {
            break; // The body (the description) starts here.
        }
        if let Some(value) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| value.trim().to_string());
        }
    }
    Some((name?, version?))
}

/// Checks every hashed file of the distribution's `RECORD` (none for an egg-info, which has
/// no RECORD); returns how many files were checked.
fn check_record(
    dist_info: &Path,
    site_packages: &Path,
    root: &Path,
    linked: &HashSet<PathBuf>,
) -> Result<usize, Vec<String>> {
    let record = dist_info.join("RECORD");
    let text = match fs_err::read(&record) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(vec![err.to_string()]),
    };
    let text = String::from_utf8_lossy(&text);
    let mut problems = Vec::new();
    let mut files = 0;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields = csv_fields(line);
        let (Some(relative), Some(hash)) = (fields.first(), fields.get(1)) else {
            problems.push(format!(
                "RECORD line {} is not `path,hash,size`",
                number + 1
            ));
            continue;
        };
        let Some(expected) = hash.strip_prefix("sha256=") else {
            // No hash (the RECORD itself, bytecode) or another algorithm: nothing to compare.
            continue;
        };
        let Some(path) = inside(root, &site_packages.join(relative)) else {
            problems.push(format!(
                "RECORD names `{relative}`, outside the environment"
            ));
            continue;
        };
        if linked.contains(&path) {
            files += 1;
            continue;
        }
        match sha256_base64(&path) {
            Ok(actual) if actual == expected => files += 1,
            Ok(actual) => problems.push(format!(
                "`{relative}` has sha256={actual}, its RECORD says sha256={expected}"
            )),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("`{relative}` is in its RECORD but not installed"));
            }
            Err(err) => problems.push(format!("`{relative}`: {err}")),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

/// `path` with `.` and `..` resolved lexically, when it stays inside `root`.
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    normalize(path).filter(|resolved| resolved.starts_with(root))
}

/// `path` with its `..` taken out; `None` when one leads above its start.
pub(super) fn normalize(path: &Path) -> Option<PathBuf> {
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !resolved.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    Some(resolved)
}

/// The sha256 of a file as a RECORD writes it: URL-safe base64 without padding.
fn sha256_base64(path: &Path) -> std::io::Result<String> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize()))
}

/// The fields of one line of a RECORD, a CSV file in Python's default dialect: a field may be
/// quoted, with `""` for a quote inside it.
pub(super) fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    fn pin(name: &str, version: &str) -> Pin {
        Pin {
            name: name.into(),
            version: version.into(),
            file: String::new(),
            sha256: String::new(),
        }
    }

    /// A site-packages holding `name-version.dist-info` with `files` and their RECORD.
    fn install(root: &Path, name: &str, version: &str, files: &[(&str, &str)]) {
        let site = root.join("lib/python3.11/site-packages");
        let dist_info = site.join(format!("{name}-{version}.dist-info"));
        fs_err::create_dir_all(&dist_info).unwrap();
        fs_err::write(
            dist_info.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: body\n"),
        )
        .unwrap();
        let mut record = String::new();
        for (path, content) in files {
            let full = site.join(path);
            fs_err::create_dir_all(full.parent().unwrap()).unwrap();
            fs_err::write(&full, content).unwrap();
            let hash = sha256_base64(&full).unwrap();
            let _ = writeln!(record, "\"{path}\",sha256={hash},{}", content.len());
        }
        let _ = writeln!(record, "{name}-{version}.dist-info/RECORD,,");
        fs_err::write(dist_info.join("RECORD"), record).unwrap();
    }

    #[test]
    fn exactly_the_pins_with_their_recorded_files_pass() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install(
            root,
            "Tiny_Dep",
            "1.0",
            &[
                ("tiny_dep/__init__.py", "x = 1\n"),
                ("../../../bin/tiny", "#!python\n"),
            ],
        );
        install(root, "other", "2.0.0", &[("other.py", "")]);
        let site = root.join("lib/python3.11/site-packages");
        let pins = [pin("tiny-dep", "1.0"), pin("other", "2.0")];
        let verified = verify(&site, root, &pins, &HashSet::new()).unwrap();
        assert_eq!(
            verified,
            [
                VerifiedDist {
                    name: "other".into(),
                    version: "2.0.0".into(),
                    files: 1
                },
                VerifiedDist {
                    name: "tiny-dep".into(),
                    version: "1.0".into(),
                    files: 2
                },
            ]
        );
    }

    #[test]
    fn missing_extra_other_version_and_changed_files_are_each_named() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install(
            root,
            "tinydep",
            "1.0",
            &[("tinydep.py", "x = 1\n"), ("gone.py", "")],
        );
        install(root, "requests", "2.32.4", &[]);
        install(root, "extra", "3.0", &[]);
        let site = root.join("lib/python3.11/site-packages");
        fs_err::write(site.join("tinydep.py"), "x = 2\n").unwrap();
        fs_err::remove_file(site.join("gone.py")).unwrap();
        let record = site.join("tinydep-1.0.dist-info/RECORD");
        let mut text = fs_err::read_to_string(&record).unwrap();
        text.push_str("../../../../etc/passwd,sha256=AAAA,1\n");
        fs_err::write(&record, text).unwrap();

        let problems = verify(
            &site,
            root,
            &[
                pin("tinydep", "1.0"),
                pin("requests", "2.34.2"),
                pin("six", "1.17.0"),
            ],
            &HashSet::new(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(
            problems[0].starts_with("tinydep 1.0: `tinydep.py` has sha256="),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "tinydep 1.0: `gone.py` is in its RECORD but not installed"
        );
        assert_eq!(
            problems[2],
            "tinydep 1.0: RECORD names `../../../../etc/passwd`, outside the environment"
        );
        assert_eq!(
            problems[3],
            "requests 2.32.4 is installed where requests==2.34.2 is pinned"
        );
        assert!(
            problems[4].starts_with("six==1.17.0 is missing from `"),
            "{problems:?}"
        );
        assert_eq!(problems[5], "extra 3.0 is installed but not pinned");
    }

    #[test]
    fn record_lines_are_read_as_python_csv_writes_them() {
        assert_eq!(csv_fields("a,b,c"), ["a", "b", "c"]);
        assert_eq!(csv_fields("\"a,1\",sha256=x,3"), ["a,1", "sha256=x", "3"]);
        assert_eq!(csv_fields("\"say \"\"hi\"\"\",,"), ["say \"hi\"", "", ""]);
    }

    /// A file linked from the store was hashed when the store was filled: not again.
    #[test]
    fn files_linked_from_the_store_are_not_hashed_again() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install(root, "tinydep", "1.0", &[("tinydep.py", "x = 1\n")]);
        let site = root.join("lib/python3.11/site-packages");
        // Unreadable content: hashing it would fail.
        fs_err::remove_file(site.join("tinydep.py")).unwrap();
        fs_err::create_dir(site.join("tinydep.py")).unwrap();
        let pins = [pin("tinydep", "1.0")];
        assert!(verify(&site, root, &pins, &HashSet::new()).is_err());
        let linked = HashSet::from([site.join("tinydep.py")]);
        assert_eq!(verify(&site, root, &pins, &linked).unwrap()[0].files, 1);
    }
}
