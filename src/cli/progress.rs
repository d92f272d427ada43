//! What `apply` and `rollback` show while they work, on stderr. `--progress live` (on a terminal
//! by default): a line per pack with its phase, the installer's latest line while its
//! virtualenv is built, and the time it has taken (indicatif). `--progress plain` (off a
//! terminal by default: CI, Puppet, systemd): one line per phase change, as it happens, with
//! the time since the start, never ANSI. `--progress none` and `--quiet`: nothing.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;
use crate::execute::Phase;
use crate::model::PackName;

/// How often a live line is redrawn (its spinner and elapsed time).
const TICK: Duration = Duration::from_millis(120);

pub(crate) struct ProgressView {
    started: Instant,
    output: Output,
}

enum Output {
    None,
    Plain,
    Live {
        bars: MultiProgress,
        packs: Mutex<BTreeMap<PackName, LiveLine>>,
    },
}

/// A pack's live line: its bar, and what it does (which the installer's lines follow).
struct LiveLine {
    bar: ProgressBar,
    doing: String,
}

impl ProgressView {
    pub(crate) fn new(mode: ProgressMode, quiet: bool) -> Self {
        let output = match mode {
            _ if quiet => Output::None,
            ProgressMode::None => Output::None,
            ProgressMode::Plain => Output::Plain,
            ProgressMode::Auto if !std::io::stderr().is_terminal() => Output::Plain,
            ProgressMode::Auto | ProgressMode::Live => Output::Live {
                bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                packs: Mutex::default(),
            },
        };
        Self {
            started: Instant::now(),
            output,
        }
    }

    /// How long since the view was made (the command started its work).
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Shows that `pack` reached `phase`.
    pub(crate) fn show(&self, pack: &PackName, phase: Phase<'_>) {
        match &self.output {
            Output::None => {}
            Output::Plain => self.plain(pack, phase),
            Output::Live { bars, packs } => {
                let mut packs = packs.lock().unwrap_or_else(PoisonError::into_inner);
                let line = packs.entry(pack.clone()).or_insert_with(|| {
                    let bar = bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                            .expect("the template is valid"),
                    );
                    bar.set_prefix(pack.to_string());
                    bar.enable_steady_tick(TICK);
                    LiveLine {
                        bar,
                        doing: String::new(),
                    }
                });
                match phase {
                    Phase::Doing(what) => {
                        line.doing = what.to_string();
                        line.bar.set_message(line.doing.clone());
                    }
                    Phase::Installer(output) => {
                        let message = format!("{}: {}", line.doing, output.trim());
                        line.bar.set_message(message);
                    }
                    Phase::Finished(outcome) => {
                        line.bar.set_style(
                            ProgressStyle::with_template("  {prefix} {wide_msg} {elapsed:>4}")
                                .expect("the template is valid"),
                        );
                        line.bar.finish_with_message(outcome.as_str());
                    }
                }
            }
        }
    }

    fn plain(&self, pack: &PackName, phase: Phase<'_>) {
        #[allow(clippy::print_stderr)]
        let line = |what: &str| {
            eprintln!(
                "[{:>7.1}s] {pack}: {what}",
                self.started.elapsed().as_secs_f64()
            );
        };
        match phase {
            Phase::Doing(what) => line(what),
            // Not a phase: at `-v`, the installer's output is in the log.
            Phase::Installer(_) => {}
            Phase::Finished(outcome) => line(outcome.as_str()),
        }
    }

    /// Takes the live lines off the terminal, before the summary is printed.
    pub(crate) fn clear(&self) {
        if let Output::Live { bars, .. } = &self.output {
            let _ = bars.clear();
        }
    }
}
