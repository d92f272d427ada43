//! The one place that writes to the terminal: data on stdout, everything else on stderr.
#![allow(clippy::print_stderr)]

use std::fmt::Display;

use crate::diagnostics::{Problem, Severity};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    /// Data: the plan, a JSON document, a status table.
    pub fn data(self, text: impl Display) {
        use std::io::Write as _;
        // A closed pipe (`packsync plan | head`) is the reader's choice, not an error.
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// A JSON document on stdout.
    pub fn json(self, value: &impl serde::Serialize) {
        let text = serde_json::to_string_pretty(value).expect("packsync's output types serialize");
        self.data(text);
    }

    /// A problem on stderr; warnings are dropped with `--quiet`.
    pub fn problem(self, problem: &Problem) {
        if self.quiet && problem.severity == Severity::Warning {
            return;
        }
        eprint!("{problem}");
    }

    /// A note for the human on stderr, dropped with `--quiet`.
    pub fn note(self, text: impl Display) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}
