//! How errors reach a human: the message, its causes, the place in a file with a caret, and a
//! `hint:` where the fix is known.
//!
//! Library errors stay typed (`thiserror`) and implement [`Diagnose`]: what they know beyond
//! their message (a fix, a file position, a command's output), and the error of another module
//! they wrap ([`Diagnose::diagnostic_source`]). [`Report`] walks that chain for the hint and
//! the place, and the `source()` chain for the causes, so this module needs no list of the
//! crate's error types: it imports only the model and the plan (whose errors, pure data, get
//! their hint here).

use std::error::Error;
use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::model::PackName;

/// What an error can add beyond its message.
pub trait Diagnose: Error {
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

    /// The error of another module this one wraps, whose hint and place count too.
    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        None
    }
}

/// An error of another module kept as a cause, when the wrapping error cannot name its type:
/// its message, causes, hint and place all stay reachable.
#[derive(Debug)]
pub struct Cause(pub Box<dyn Diagnose + Send + Sync>);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl Diagnose for Cause {
    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        Some(&*self.0)
    }
}

impl Cause {
    pub fn new(err: impl Diagnose + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
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

/// Where each line of a text starts: many locations in one text (a site config of a thousand
/// packs) each find their line by a binary search, not by counting from the start.
#[derive(Debug, Clone)]
pub struct LineStarts(Vec<usize>);

impl LineStarts {
    pub fn of(text: &str) -> Self {
        Self(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }
}

impl Location {
    /// The location of byte `span` in `text`.
    pub fn at(file: impl fmt::Display, text: &str, span: Range<usize>) -> Self {
        Self::at_line(file, text, &LineStarts::of(text), span)
    }

    /// [`at`](Self::at), with the line starts of `text` found once.
    pub fn at_line(
        file: impl fmt::Display,
        text: &str,
        lines: &LineStarts,
        span: Range<usize>,
    ) -> Self {
        let start = span.start.min(text.len());
        // The number of line starts at or before `start`: the 1-based line.
        let line = lines.0.partition_point(|&line_start| line_start <= start);
        let line_start = lines.0[line - 1];
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
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
    /// The report of an error that says nothing beyond its message and causes.
    pub fn plain(err: &(dyn Error + 'static)) -> Self {
        Self {
            pack: None,
            message: err.to_string(),
            causes: std::iter::successors(err.source(), |err| (*err).source())
                .map(ToString::to_string)
                .collect(),
            location: None,
            hint: None,
            output: None,
        }
    }

    /// The report of an error, with what it and the errors it wraps know beyond the messages.
    pub fn new(err: &(dyn Diagnose + 'static)) -> Self {
        Self::plain(err).diagnosed(err)
    }

    /// Adds what `diagnose` (the error reported, or one of its causes) and the errors it wraps
    /// know: the first hint, place and output found, outermost first.
    #[must_use]
    pub fn diagnosed(mut self, diagnose: &dyn Diagnose) -> Self {
        for diagnose in std::iter::successors(Some(diagnose), |err| err.diagnostic_source()) {
            self.location = self.location.or_else(|| diagnose.location().cloned());
            self.hint = self.hint.or_else(|| diagnose.hint());
            self.output = self.output.or_else(|| {
                diagnose
                    .output()
                    .filter(|output| !output.is_empty())
                    .map(str::to_string)
            });
        }
        self
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

    impl Diagnose for Outer {}

    #[test]
    fn report_lists_causes_after_the_message() {
        let err = Outer(std::io::Error::other("inner"));
        let report = Report::new(&err);
        assert_eq!(report.message, "Outer");
        assert_eq!(report.causes, vec!["inner".to_string()]);
        assert_eq!(report.to_string(), "error: Outer\n  Caused by: inner\n");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Inner")]
    struct Inner(#[source] std::io::Error);

    impl Diagnose for Inner {
        fn hint(&self) -> Option<String> {
            Some("fix the inner thing".to_string())
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Wrapping")]
    struct Wrapping(#[source] Cause);

    impl Diagnose for Wrapping {
        fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
            Some(&self.0)
        }
    }

    #[test]
    fn report_takes_the_hint_of_a_wrapped_error_and_every_cause() {
        let err = Wrapping(Cause::new(Inner(std::io::Error::other("root"))));
        let report = Report::new(&err);
        assert_eq!(report.message, "Wrapping");
        assert_eq!(report.causes, vec!["Inner".to_string(), "root".to_string()]);
        assert_eq!(report.hint.as_deref(), Some("fix the inner thing"));
    }
}
