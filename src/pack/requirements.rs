//! `requirements.txt` as pip reads it, limited to what installs offline from the wheel mirror:
//! PEP 508 requirements by name, `-r`/`-c` includes inside the pack, `--hash` pins and a few
//! harmless global options. Anything that would make pip reach the network or a file outside
//! the mirror (URLs, VCS, paths, archives, indexes, find-links, editables) is refused with the
//! file and line, as is any option packsync does not know.

use std::collections::HashSet;
use std::ops::Range;
use std::str::FromStr;

use pep508_rs::{Requirement, VersionOrUrl};

use super::PackError;
use crate::diagnostics::{Cause, Diagnose, Location};

/// File names pip installs as local distributions rather than looking up by name.
const ARCHIVE_SUFFIXES: &[&str] = &[
    ".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar",
];

/// Version-control schemes pip clones from.
const VCS_PREFIXES: &[&str] = &["git+", "hg+", "svn+", "bzr+"];

/// Everything a pack's requirements files ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub requirements: Vec<RequirementLine>,
    /// From `-c` files: they limit versions but install nothing by themselves.
    pub constraints: Vec<RequirementLine>,
    /// Global options in a canonical spelling, e.g. `--pre` or `--only-binary=:all:`.
    pub options: Vec<String>,
}

/// One requirement and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementLine {
    pub requirement: Requirement,
    /// `--hash` values as written, e.g. `sha256:<hex>`.
    pub hashes: Vec<String>,
    /// The label of the file it is in.
    pub file: String,
    /// 1-based; the first line of a continued line.
    pub line: usize,
}

/// Why a requirements line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementProblem {
    #[error("not a valid requirement: {0}")]
    Invalid(String),
    #[error("`{0}` points at a URL")]
    Url(String),
    #[error("`{0}` is a version-control URL")]
    Vcs(String),
    #[error("`{0}` is a local path")]
    LocalPath(String),
    #[error("`{0}` is a distribution file")]
    LocalArchive(String),
    #[error("`{0}` installs from a source tree")]
    Editable(String),
    #[error("the option `{0}` makes pip look beyond the wheel mirror")]
    Network(String),
    #[error("the option `{0}` is not supported")]
    UnsupportedOption(String),
    #[error("the option `{0}` needs a value")]
    MissingValue(String),
    #[error("`{0}` is not a `sha256`, `sha384` or `sha512` hash in lower-case hex")]
    Hash(String),
    #[error("the included file `{0}` is outside the pack")]
    IncludeOutsidePack(String),
    #[error("the included file `{0}` does not exist")]
    IncludeMissing(String),
    #[error("including `{0}` again makes a cycle")]
    IncludeCycle(String),
}

impl RequirementProblem {
    pub fn hint(&self) -> String {
        match self {
            Self::Url(_)
            | Self::Vcs(_)
            | Self::LocalPath(_)
            | Self::LocalArchive(_)
            | Self::Editable(_)
            | Self::Network(_) => "packsync installs offline from the wheel mirror only: put the \
                                   distribution in the mirror and require it by name, e.g. \
                                   `clustershell==1.9.2`"
                .to_owned(),
            Self::Invalid(_) => {
                "write a PEP 508 requirement, e.g. `requests>=2.31,<3 ; python_version >= \"3.8\"`"
                    .to_owned()
            }
            Self::UnsupportedOption(_) | Self::MissingValue(_) => {
                "supported options: `-r <file>`, `-c <file>`, `--hash=<algo>:<hex>`, `--pre`, \
                 `--prefer-binary`, `--only-binary <names>`, `--no-binary <names>`, \
                 `--require-hashes` and `--no-index`"
                    .to_owned()
            }
            Self::Hash(_) => {
                "write it as `pip hash` prints it: `--hash=sha256:<64 hex digits>`".to_owned()
            }
            Self::IncludeOutsidePack(_) => {
                "keep included files in the pack, named relative to the including file".to_owned()
            }
            Self::IncludeMissing(_) => {
                "commit the file, or fix its path (relative to the including file)".to_owned()
            }
            Self::IncludeCycle(_) => {
                "remove one of the `-r`/`-c` lines that include each other".to_owned()
            }
        }
    }
}

/// Parses the requirements file at pack-relative `path` and the files it includes.
///
/// `read` returns a file's text by pack-relative path, `None` when it does not exist (a pack
/// without `path` has no requirements); `file_label_of` names a path in errors.
pub fn parse_requirements<E>(
    path: &str,
    file_label_of: impl Fn(&str) -> String,
    mut read: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Requirements, PackError>
where
    E: Diagnose + Send + Sync + 'static,
{
    let mut read = |path: &str| read(path).map_err(Cause::new);
    let mut parser = Parser {
        label_of: &file_label_of,
        read: &mut read,
        stack: Vec::new(),
        done: HashSet::new(),
        out: Requirements::default(),
    };
    parser.file(path, Kind::Requirement, None)?;
    Ok(parser.out)
}

impl Requirements {
    /// The requirements in a canonical form for a digest: one string per requirement (its
    /// PEP 508 form with sorted extras and specifiers, then its sorted hashes), constraint
    /// (prefixed `-c `) and option, sorted and deduplicated. Comments, spacing, order and file
    /// layout do not change it; any change of meaning does.
    pub fn normalized(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .requirements
            .iter()
            .map(RequirementLine::canonical)
            .chain(
                self.constraints
                    .iter()
                    .map(|constraint| format!("-c {}", constraint.canonical())),
            )
            .chain(self.options.iter().cloned())
            .collect();
        lines.sort();
        lines.dedup();
        lines
    }
}

impl RequirementLine {
    fn canonical(&self) -> String {
        let mut requirement = self.requirement.clone();
        requirement.extras.sort();
        requirement.extras.dedup();
        if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url {
            let mut sorted = specifiers.to_vec();
            sorted.sort();
            sorted.dedup();
            requirement.version_or_url =
                Some(VersionOrUrl::VersionSpecifier(sorted.into_iter().collect()));
        }
        let mut hashes = self.hashes.clone();
        hashes.sort();
        hashes.dedup();
        std::iter::once(requirement.to_string())
            .chain(hashes.iter().map(|hash| format!("--hash={hash}")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Requirement,
    Constraint,
}

type ReadResult = Result<Option<String>, Cause>;

struct Parser<'a> {
    label_of: &'a dyn Fn(&str) -> String,
    read: &'a mut dyn FnMut(&str) -> ReadResult,
    /// The files being parsed, outermost first, to detect cycles.
    stack: Vec<String>,
    /// Files already parsed: a file included twice adds nothing new.
    done: HashSet<(String, Kind)>,
    out: Requirements,
}

/// A place in a requirements file, for errors.
struct Site<'t> {
    file: &'t str,
    text: &'t str,
    span: Range<usize>,
}

impl Site<'_> {
    fn error(&self, problem: RequirementProblem) -> PackError {
        let location = Location::at(self.file, self.text, self.span.clone());
        PackError::Requirements {
            file: self.file.to_owned(),
            // The physical line, which differs from the logical one inside a continued line.
            line: location.line,
            problem,
            location: Box::new(location),
        }
    }
}

impl Parser<'_> {
    fn file(
        &mut self,
        path: &str,
        kind: Kind,
        included_at: Option<&Site>,
    ) -> Result<(), PackError> {
        if let Some(site) = included_at
            && self.stack.iter().any(|parsing| parsing == path)
        {
            return Err(site.error(RequirementProblem::IncludeCycle(path.to_owned())));
        }
        if !self.done.insert((path.to_owned(), kind)) {
            return Ok(());
        }
        let label = (self.label_of)(path);
        let text = match (self.read)(path) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return match included_at {
                    None => Ok(()),
                    Some(site) => {
                        Err(site.error(RequirementProblem::IncludeMissing(path.to_owned())))
                    }
                };
            }
            Err(source) => {
                return Err(PackError::Read {
                    file: label,
                    source,
                });
            }
        };
        self.stack.push(path.to_owned());
        for line in logical_lines(&text) {
            self.line(&line, path, kind, &label, &text)?;
        }
        self.stack.pop();
        Ok(())
    }

    fn line(
        &mut self,
        line: &LogicalLine,
        path: &str,
        kind: Kind,
        label: &str,
        text: &str,
    ) -> Result<(), PackError> {
        let content = strip_comment(&line.text);
        let tokens = tokens(content);
        let Some(&(first_at, first)) = tokens.first() else {
            return Ok(());
        };
        let site = |span: Range<usize>| Site {
            file: label,
            text,
            span: line.file_offset(span.start)..line.file_offset(span.end),
        };
        let token_site = |(at, token): (usize, &str)| site(at..at + token.len());

        if first.starts_with('-') {
            let mut options = Options::new(&tokens);
            while let Some((name, token)) = options.next_name() {
                match name {
                    "-r" | "--requirement" | "-c" | "--constraint" => {
                        let (at, value) = options
                            .value(name)
                            .map_err(|p| token_site(token).error(p))?;
                        let included = resolve(path, value);
                        let site = site(at..at + value.len());
                        let included = included.map_err(|problem| site.error(problem))?;
                        let kind = if matches!(name, "-r" | "--requirement") {
                            Kind::Requirement
                        } else {
                            Kind::Constraint
                        };
                        self.file(&included, kind, Some(&site))?;
                    }
                    "--pre" | "--prefer-binary" | "--require-hashes" | "--no-index" => {
                        if options.has_inline_value() {
                            let problem = RequirementProblem::UnsupportedOption(token.1.to_owned());
                            return Err(token_site(token).error(problem));
                        }
                        self.out.options.push(name.to_owned());
                    }
                    "--only-binary" | "--no-binary" => {
                        let (_, value) = options
                            .value(name)
                            .map_err(|p| token_site(token).error(p))?;
                        self.out.options.push(format!("{name}={value}"));
                    }
                    other => return Err(token_site(token).error(refusal(other))),
                }
            }
            return Ok(());
        }

        let options_at = tokens
            .iter()
            .position(|(_, token)| token.starts_with('-'))
            .unwrap_or(tokens.len());
        let spec_end = tokens[options_at - 1].0 + tokens[options_at - 1].1.len();
        let spec = &content[first_at..spec_end];
        let requirement = parse_requirement(spec).map_err(|(problem, span)| {
            site(first_at + span.start..first_at + span.end).error(problem)
        })?;
        let mut hashes = Vec::new();
        let mut options = Options::new(&tokens[options_at..]);
        while let Some((name, token)) = options.next_name() {
            if name != "--hash" {
                return Err(token_site(token).error(refusal(name)));
            }
            let (at, hash) = options
                .value(name)
                .map_err(|p| token_site(token).error(p))?;
            if !is_valid_hash(hash) {
                return Err(
                    site(at..at + hash.len()).error(RequirementProblem::Hash(hash.to_owned()))
                );
            }
            hashes.push(hash.to_owned());
        }
        let parsed = RequirementLine {
            requirement,
            hashes,
            file: label.to_owned(),
            line: line.number,
        };
        match kind {
            Kind::Requirement => self.out.requirements.push(parsed),
            Kind::Constraint => self.out.constraints.push(parsed),
        }
        Ok(())
    }
}

/// The problem with an option packsync does not accept.
fn refusal(option: &str) -> RequirementProblem {
    match option {
        "-e" | "--editable" => RequirementProblem::Editable(option.to_owned()),
        "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" | "--trusted-host" => {
            RequirementProblem::Network(option.to_owned())
        }
        other => RequirementProblem::UnsupportedOption(other.to_owned()),
    }
}

/// Option tokens, pip style: `--name=value`, `--name value`, `-xvalue` or `-x value`.
struct Options<'t> {
    tokens: &'t [(usize, &'t str)],
    next: usize,
    /// The value written in the last name's own token, with its offset.
    inline: Option<(usize, &'t str)>,
}

impl<'t> Options<'t> {
    fn new(tokens: &'t [(usize, &'t str)]) -> Self {
        Self {
            tokens,
            next: 0,
            inline: None,
        }
    }

    /// The next option name and its token.
    fn next_name(&mut self) -> Option<(&'t str, (usize, &'t str))> {
        let token @ (at, text) = *self.tokens.get(self.next)?;
        self.next += 1;
        let (name, inline) = if text.starts_with("--") {
            match text.split_once('=') {
                Some((name, value)) => (name, Some((at + name.len() + 1, value))),
                None => (text, None),
            }
        } else if text.starts_with('-') && text.len() > 2 && text.is_char_boundary(2) {
            (&text[..2], Some((at + 2, &text[2..])))
        } else {
            (text, None)
        };
        self.inline = inline;
        Some((name, token))
    }

    /// Whether the last name came with a value in its own token, e.g. `--pre=yes`.
    fn has_inline_value(&self) -> bool {
        self.inline.is_some()
    }

    /// The value of option `name`: inline, or the next token.
    fn value(&mut self, name: &str) -> Result<(usize, &'t str), RequirementProblem> {
        if let Some(inline) = self.inline.take().filter(|(_, value)| !value.is_empty()) {
            return Ok(inline);
        }
        let value = self
            .tokens
            .get(self.next)
            .filter(|(_, value)| !value.starts_with('-'))
            .ok_or_else(|| RequirementProblem::MissingValue(name.to_owned()))?;
        self.next += 1;
        Ok(*value)
    }
}

/// Refuses what pip would fetch or read from outside the mirror, then parses PEP 508. The error
/// carries the span of `spec` it is about.
fn parse_requirement(spec: &str) -> Result<Requirement, (RequirementProblem, Range<usize>)> {
    let whole = 0..spec.len();
    let lower = spec.to_ascii_lowercase();
    if VCS_PREFIXES.iter().any(|prefix| lower.starts_with(prefix)) {
        return Err((RequirementProblem::Vcs(spec.to_owned()), whole));
    }
    if lower.contains("://") || lower.starts_with("file:") {
        return Err((RequirementProblem::Url(spec.to_owned()), whole));
    }
    let before_marker = spec.split(';').next().unwrap_or_default();
    if before_marker.starts_with(['.', '/', '~']) || before_marker.contains(['/', '\\']) {
        return Err((RequirementProblem::LocalPath(spec.to_owned()), whole));
    }
    let name = before_marker
        .split(|c: char| c.is_whitespace() || "[<>=!~@(".contains(c))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ARCHIVE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        return Err((RequirementProblem::LocalArchive(spec.to_owned()), whole));
    }
    match Requirement::from_str(spec) {
        Err(err) => {
            let start = err.start.min(spec.len());
            Err((
                RequirementProblem::Invalid(err.message.to_string()),
                start..(start + err.len).min(spec.len()),
            ))
        }
        Ok(requirement) if matches!(requirement.version_or_url, Some(VersionOrUrl::Url(_))) => {
            Err((RequirementProblem::Url(spec.to_owned()), whole))
        }
        Ok(requirement) => Ok(requirement),
    }
}

/// `sha256:<64 hex>`, `sha384:<96 hex>` or `sha512:<128 hex>`: the strong hashes pip accepts,
/// in the lower case pip compares against.
fn is_valid_hash(hash: &str) -> bool {
    let Some((algorithm, hex)) = hash.split_once(':') else {
        return false;
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == length
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pack-relative path of `included`, named relative to the folder of `from`.
fn resolve(from: &str, included: &str) -> Result<String, RequirementProblem> {
    if included.contains("://") {
        return Err(RequirementProblem::Url(included.to_owned()));
    }
    if included.starts_with(['/', '~']) {
        return Err(RequirementProblem::IncludeOutsidePack(included.to_owned()));
    }
    let folder = from.rsplit_once('/').map_or("", |(folder, _)| folder);
    let mut parts: Vec<&str> = Vec::new();
    for part in folder.split('/').chain(included.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(RequirementProblem::IncludeOutsidePack(included.to_owned()));
                }
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// A line after pip joins `\` continuations, with the file offsets of its pieces.
#[derive(Debug)]
struct LogicalLine {
    /// 1-based number of its first physical line.
    number: usize,
    text: String,
    /// For each joined piece: its offset in `text` and in the file.
    pieces: Vec<(usize, usize)>,
}

impl LogicalLine {
    fn file_offset(&self, at: usize) -> usize {
        let (text_start, file_start) = self
            .pieces
            .iter()
            .rev()
            .find(|(text_start, _)| *text_start <= at)
            .copied()
            .unwrap_or((0, 0));
        file_start + (at - text_start)
    }
}

/// Joins lines ending in `\` with the next one, as pip does; a comment line ends a continued
/// line instead of continuing it.
fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut lines = Vec::new();
    let mut pending: Option<LogicalLine> = None;
    let mut offset = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let physical = raw.trim_end_matches('\n').trim_end_matches('\r');
        let comment = physical.trim_start().starts_with('#');
        let continued = physical.ends_with('\\') && !comment;
        let piece = if continued {
            physical.trim_end_matches('\\')
        } else {
            physical
        };
        let mut line = pending.take().unwrap_or_else(|| LogicalLine {
            number: index + 1,
            text: String::new(),
            pieces: Vec::new(),
        });
        if comment && !line.text.is_empty() {
            // Keeps the comment a comment once joined, as pip's leading space does.
            line.text.push(' ');
        }
        line.pieces.push((line.text.len(), start));
        line.text.push_str(piece);
        if continued {
            pending = Some(line);
        } else {
            lines.push(line);
        }
    }
    lines.extend(pending);
    lines
}

/// Cuts a `#` comment that starts the line or follows whitespace (pip's `(^|\s+)#.*$`).
fn strip_comment(line: &str) -> &str {
    let cut = line
        .char_indices()
        .find(|&(at, c)| {
            c == '#'
                && line[..at]
                    .chars()
                    .next_back()
                    .is_none_or(char::is_whitespace)
        })
        .map_or(line.len(), |(at, _)| at);
    &line[..cut]
}

/// Whitespace-separated tokens with their byte offsets.
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (at, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                tokens.push((from, &line[from..at]));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    tokens
}

#[cfg(test)]
mod tests;
