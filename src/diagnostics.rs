//! How errors reach a human: the message, its causes, the place in a file with a caret, and a
//! `hint:` where the fix is known.
//!
//! Library errors stay typed (`thiserror`); the ones that know a fix or a file position
//! implement [`Diagnose`], and [`Report`] walks an error's `source()` chain to collect them.

use std::error::Error;
use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::model::PackName;

/// What an error can add beyond its message.
pub trait Diagnose {
    /// How to fix it, when that is known.
    fn hint(&self) -> Option<String> {
        None
    }

    /// Where in a file the problem is.
    fn location(&self) -> Option<&Location> {
        None
    }

    /// The end of what a failed command printed: the reason is usually there.
    fn output(&self) -> Option<&str> {
        None
    }
}

/// A position in a file, with the offending line for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// What names the file: a path, or `repo@commit:path` for a file read from Git.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The line with a caret under the span.
    #[serde(skip)]
    pub snippet: String,
}

impl Location {
    /// The location of byte `span` in `text`.
    pub fn at(file: impl fmt::Display, text: &str, span: Range<usize>) -> Self {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let width = text[start..span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        let snippet = format!(
            "{pad} |\n{number} | {line_text}\n{pad} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width)
        );
        Self {
            file: file.to_string(),
            line,
            column,
            snippet,
        }
    }

    /// The location of the first line of `text` that starts with `key:` (a top-level YAML key),
    /// or of the first line when there is none.
    pub fn of_yaml_key(file: impl fmt::Display, text: &str, key: &str) -> Self {
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
            {
                return Self::at(file, text, offset..offset + key.len());
            }
            offset += line.len();
        }
        Self::at(file, text, 0..0)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How many lines of a failed command's output an error keeps.
const OUTPUT_TAIL_LINES: usize = 20;
/// How many of them a one-line record (history, `status`) keeps.
const ONE_LINE_OUTPUT_LINES: usize = 3;

/// The end of what a child process printed, for an error: its last lines, stdout then stderr
/// (where the reason for a failure usually is), without trailing blank lines.
pub fn output_tail(output: &std::process::Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let mut lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim_end)
        .collect();
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n")
}

/// Finds the [`Diagnose`] side of an error in the chain, for every error type that has one.
fn as_diagnose<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a dyn Diagnose> {
    macro_rules! try_types {
        ($($ty:ty),* $(,)?) => {
            $(if let Some(err) = err.downcast_ref::<$ty>() {
                return Some(err);
            })*
        };
    }
    try_types!(
        crate::config::ConfigError,
        crate::source::SourceError,
        crate::pack::PackError,
        crate::mirror::MirrorError,
        crate::mirror::resolve::ResolveError,
        crate::python::PythonError,
        crate::state::StateError,
        crate::plan::PlanError,
        crate::store::StoreError,
        crate::activate::ActivateError,
        crate::engine::EngineError,
        crate::env::EnvError,
        crate::lock::LockError,
        crate::runners::RunnerError,
        crate::execute::ExecuteError,
        crate::execute::StepError,
    );
    None
}

// Here rather than in `plan`, which imports nothing but the model.
impl Diagnose for crate::plan::PlanError {
    fn hint(&self) -> Option<String> {
        match self {
            crate::plan::PlanError::DependencyCycle(_) => Some(
                "remove one of the `dependencies` in these packs' `pack.yaml` to break the cycle"
                    .to_string(),
            ),
        }
    }
}

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The pack (or the whole site config) cannot be planned.
    Error,
    /// Worth fixing; nothing is refused because of it.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A finding of `check` (or of reading the desired state): a report and its severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    #[serde(flatten)]
    pub report: Report,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.report.render(self.severity.as_str(), f)
    }
}

/// An error made ready for display: message, causes, location, hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackName>,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The last lines a failed command printed (`output_tail`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl Report {
    pub fn new(err: &(dyn Error + 'static)) -> Self {
        let mut causes = Vec::new();
        let mut location = None;
        let mut hint = None;
        let mut output = None;
        let chain = std::iter::successors(Some(err), |err| (*err).source());
        for (depth, err) in chain.enumerate() {
            if depth > 0 {
                causes.push(err.to_string());
            }
            if let Some(diagnose) = as_diagnose(err) {
                location = location.or_else(|| diagnose.location().cloned());
                hint = hint.or_else(|| diagnose.hint());
                output = output.or_else(|| diagnose.output().map(str::to_string));
            }
        }
        Self {
            pack: None,
            message: err.to_string(),
            causes,
            location,
            hint,
            output: output.filter(|output| !output.is_empty()),
        }
    }
}

impl Report {
    /// The message and its causes on one line, for records (history, JSON outcomes), with the
    /// last lines of a failed command's output.
    pub fn one_line(&self) -> String {
        let mut line = std::iter::once(self.message.as_str())
            .chain(self.causes.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(": ");
        if let Some(output) = &self.output {
            let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
            let last = &lines[lines.len().saturating_sub(ONE_LINE_OUTPUT_LINES)..];
            line.push_str(" (output: ");
            line.push_str(&last.join(" | "));
            line.push(')');
        }
        line
    }
}

impl fmt::Display for Report {
    /// `error: <message>`, a `Caused by:` line per cause, the file snippet, then `hint:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render("error", f)
    }
}

impl Report {
    /// Renders with another heading than `error`, e.g. `warning`.
    pub fn render(&self, severity: &str, f: &mut impl fmt::Write) -> fmt::Result {
        write!(f, "{severity}: ")?;
        if let Some(pack) = &self.pack {
            write!(f, "[{pack}] ")?;
        }
        writeln!(f, "{}", self.message)?;
        for cause in &self.causes {
            writeln!(f, "  Caused by: {cause}")?;
        }
        if let Some(output) = &self.output {
            writeln!(f, "  Output (last lines):")?;
            for line in output.lines() {
                writeln!(f, "    | {line}")?;
            }
        }
        if let Some(location) = &self.location {
            writeln!(f, "  --> {location}")?;
            writeln!(f, "{}", location.snippet)?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_points_at_the_span() {
        let text = "[agent]\nstate_dir = 3\n";
        let loc = Location::at("site.toml", text, 20..21);
        assert_eq!((loc.line, loc.column), (2, 13));
        assert_eq!(loc.to_string(), "site.toml:2:13");
        assert_eq!(loc.snippet, "  |\n2 | state_dir = 3\n  |             ^");
    }

    #[test]
    fn yaml_key_location_finds_top_level_keys_only() {
        let text = "name: x\nmeta:\n  version: 1\nversion: 0.2\n";
        let loc = Location::of_yaml_key("pack.yaml", text, "version");
        assert_eq!((loc.line, loc.column), (4, 1));
        let missing = Location::of_yaml_key("pack.yaml", text, "author");
        assert_eq!((missing.line, missing.column), (1, 1));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn report_lists_causes_after_the_message() {
        let err = Outer(std::io::Error::other("inner"));
        let report = Report::new(&err);
        assert_eq!(report.message, "Outer");
        assert_eq!(report.causes, vec!["inner".to_string()]);
        assert_eq!(report.to_string(), "error: Outer\n  Caused by: inner\n");
    }
}
