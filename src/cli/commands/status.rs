//! `packsync status`: per pack the desired ref, the live release, its state and last change.
//!
//! `--json` prints `{"host": ..., "packs": [...]}`.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Site, host, open_site};
use crate::cli::{ExitStatus, GlobalArgs, Printer};
use crate::execute::{self, PackState, PackStatus};

#[derive(Serialize)]
struct StatusReport<'a> {
    host: String,
    packs: &'a [PackStatus],
}

pub(crate) fn status(global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let packs = execute::status(&config, store.as_ref())?;
    if global.json {
        printer.json(&StatusReport {
            host: host(&config),
            packs: &packs,
        });
    } else {
        printer.data(render(&packs));
    }
    Ok(ExitStatus::Success)
}

fn render(packs: &[PackStatus]) -> String {
    let rows: Vec<[String; 5]> = packs
        .iter()
        .map(|p| {
            let state = match (p.state, p.pending) {
                (PackState::Pending, Some(action)) => format!("pending ({action})"),
                (state, _) => serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            let desired = match (&p.desired, p.enabled) {
                (None, _) => "(not in config)".to_string(),
                (Some(desired), true) => desired.clone(),
                (Some(desired), false) => format!("{desired} (disabled)"),
            };
            let active = p.active.as_ref().map_or_else(
                || "-".to_string(),
                |a| format!("{} ({} @ {}) env {}", a.version, a.git_ref, a.commit, a.env),
            );
            let last = p.last_change.as_ref().map_or_else(
                || "-".to_string(),
                |e| {
                    format!(
                        "{} {} {}",
                        e.at.strftime("%Y-%m-%d %H:%M"),
                        e.operation,
                        e.outcome.as_str()
                    )
                },
            );
            [p.pack.to_string(), state, desired, active, last]
        })
        .collect();
    let header = ["PACK", "STATE", "DESIRED", "ACTIVE", "LAST CHANGE"].map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let failures: Vec<String> = packs
        .iter()
        .filter_map(|p| {
            p.last_failure
                .as_ref()
                .map(|f| format!("{}: {} failed: {}", p.pack, f.operation, f.error))
        })
        .collect();
    for failure in failures {
        let _ = writeln!(out, "{failure}");
    }
    out.trim_end().to_string()
}
