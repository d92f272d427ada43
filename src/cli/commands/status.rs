//! `packsync status`: per pack the desired ref, the live release, its state and last change;
//! with `--all-hosts`, what the other hosts sharing the store have recorded.
//!
//! `--json` prints `{"host": ..., "packs": [...]}`, plus `"other_hosts": [{"host": ...,
//! "packs": [...]}]` with `--all-hosts`, and `"fleet": {"name", "hosts", "packs": [{"pack",
//! "hosts": {host: release}}], "rollouts": [...]}` with `--fleet`.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, Printer, StatusArgs};
use crate::execute::{
    self, ActiveStatus, FleetStatus, HostStatus, Include, PackState, PackStatus, RecordedStatus,
    RunnerSetStatus, StatusReport,
};

pub(crate) fn status(
    global: &GlobalArgs,
    args: &StatusArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let report = execute::report(
        &config,
        store.as_ref(),
        Include {
            other_hosts: args.all_hosts,
            fleet: args.fleet,
        },
    )?;
    if global.json {
        printer.json(&report);
        return Ok(ExitStatus::Success);
    }
    let StatusReport {
        host,
        host_suspended,
        packs,
        verified_at,
        runners,
        other_hosts,
        fleet,
    } = &report;
    let mut out = render(packs);
    if let Some(at) = verified_at {
        let _ = write!(out, "\nLast `packsync verify`: {}", at.strftime(MINUTE_UTC));
    }
    if let Some(host) = host_suspended {
        let _ = write!(
            out,
            "\nThis host is suspended since {} ({}): nothing changes until `packsync resume`",
            host.at.strftime(MINUTE_UTC),
            host.reason
        );
    }
    if let Some(runners) = runners {
        out.push_str(&render_runners(runners));
    }
    if let Some(others) = other_hosts {
        let _ = write!(out, "\n\nHost {host} (this host): {} packs", packs.len());
        if others.is_empty() {
            let _ = write!(
                out,
                "\nNo other host records its state in {}",
                store.describe()
            );
        }
        for HostStatus { host, packs } in others {
            let _ = write!(out, "\n\nHost {host}\n{}", render_recorded(packs));
        }
    }
    if let Some(fleet) = fleet {
        out.push_str(&render_fleet(fleet));
    }
    printer.data(out);
    Ok(ExitStatus::Success)
}

/// `Fleet st2-prod`: a table of each pack's live release per host, then the rollouts.
fn render_fleet(fleet: &FleetStatus) -> String {
    let mut out = format!("\n\nFleet {} ({} hosts)", fleet.name, fleet.hosts.len());
    let mut rows = vec![
        std::iter::once("PACK".to_string())
            .chain(fleet.hosts.iter().cloned())
            .collect::<Vec<_>>(),
    ];
    for pack in &fleet.packs {
        rows.push(
            std::iter::once(pack.pack.clone())
                .chain(fleet.hosts.iter().map(|host| {
                    pack.hosts
                        .get(host)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "-".to_string())
                }))
                .collect(),
        );
    }
    out.push('\n');
    out.push_str(&grid(&rows));
    if !fleet.rollouts.is_empty() {
        out.push_str("\nRollouts (newest first)");
    }
    for rollout in &fleet.rollouts {
        let _ = write!(
            out,
            "\n  {} {}: {} (attempt {}), prepared {}/{}, switched {}/{}",
            rollout.pack,
            rollout.release,
            json_word(rollout.phase),
            rollout.attempt,
            rollout.prepared.len(),
            fleet.hosts.len(),
            rollout.switched.len(),
            rollout.participants.len(),
        );
        if let Some(by) = &rollout.registered_by {
            let _ = write!(out, ", registered by {by}");
        }
        if let Some(window) = rollout.window_ms {
            let _ = write!(out, ", mixed versions {window} ms");
        }
        if let Some(reason) = &rollout.reason {
            let _ = write!(out, "\n    {reason}");
        }
    }
    out
}

/// `Runners: ok, set 3f2a9c1d4e5f (clush-runner 1.2.0)`, and what is pending or failed.
fn render_runners(runners: &RunnerSetStatus) -> String {
    let mut out = format!("\n\nRunners: {}", runners.state.as_str());
    match &runners.active {
        Some(set) => {
            let _ = write!(
                out,
                ", set {} ({})",
                set.short(),
                runners.runners.join(", ")
            );
        }
        None => out.push_str(", no set live"),
    }
    if let Some(pending) = &runners.pending {
        let _ = write!(
            out,
            "\n  pending: set {} (`packsync plan` says why)",
            pending.short()
        );
    }
    if let Some(switch) = runners.last_switch.as_ref().filter(|s| s.error.is_some()) {
        let _ = write!(
            out,
            "\n  last switch to set {} {}: {}",
            switch.to.short(),
            switch.outcome.as_str(),
            switch.error.as_deref().unwrap_or_default()
        );
    }
    out
}

/// `1.8.1-3f2a9c1-e4b1c2d8 (v1.8.1) env 7a8a9fcae232`: the release id says the version and
/// the commit.
fn active_cell(active: Option<&ActiveStatus>) -> String {
    active.map_or_else(
        || "-".to_string(),
        |a| format!("{} ({}) env {}", a.release, a.git_ref, a.env.short()),
    )
}

/// The rows under a header, each column as wide as its widest cell.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let lines: Vec<Vec<String>> = std::iter::once(header.map(String::from).to_vec())
        .chain(rows.iter().map(|row| row.to_vec()))
        .collect();
    grid(&lines)
}

/// Lines of cells, each column as wide as its widest cell.
fn grid(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .filter_map(|line| line.get(i).map(String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn render_recorded(packs: &[RecordedStatus]) -> String {
    let rows: Vec<[String; 4]> = packs
        .iter()
        .map(|p| {
            [
                p.pack.to_string(),
                json_word(p.state),
                active_cell(p.active.as_ref()),
                p.active
                    .as_ref()
                    .and_then(|a| a.since)
                    .map_or_else(|| "-".to_string(), |t| t.strftime(MINUTE_UTC).to_string()),
            ]
        })
        .collect();
    let mut out = table(["PACK", "STATE", "LIVE", "SINCE"], &rows);
    for p in packs {
        if let Some(f) = &p.last_failure {
            let _ = writeln!(out, "{}: {} failed: {}", p.pack, f.operation, f.error);
        }
    }
    out.trim_end().to_string()
}

/// A state as its JSON word (`ok`, `failed`, ...).
fn json_word(state: impl Serialize) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A time to the minute, with its zone: packsync records UTC, whatever the host's zone.
const MINUTE_UTC: &str = "%Y-%m-%d %H:%M UTC";

fn render(packs: &[PackStatus]) -> String {
    let rows: Vec<[String; 5]> = packs
        .iter()
        .map(|p| {
            let state = match (p.state, p.pending, &p.suspended) {
                (PackState::Pending, Some(action), _) => format!("pending ({action})"),
                (PackState::Suspended, _, Some(reason)) => format!("suspended ({reason})"),
                (state, _, _) => state.as_str().to_string(),
            };
            let desired = match (&p.desired, p.enabled) {
                (None, _) => "(not in config)".to_string(),
                (Some(desired), true) => desired.clone(),
                (Some(desired), false) => format!("{desired} (disabled)"),
            };
            let active = active_cell(p.active.as_ref());
            let last = p.last_change.as_ref().map_or_else(
                || "-".to_string(),
                |e| {
                    format!(
                        "{} {} {}",
                        e.at.strftime(MINUTE_UTC),
                        e.operation,
                        e.outcome.as_str()
                    )
                },
            );
            [p.pack.to_string(), state, desired, active, last]
        })
        .collect();
    let mut out = table(["PACK", "STATE", "DESIRED", "LIVE", "LAST CHANGE"], &rows);
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
    for p in packs {
        if let Some(problem) = &p.problem {
            let _ = writeln!(out, "{}: cannot be read: {problem}", p.pack);
        }
        if let Some(failed) = &p.failed_build {
            let _ = writeln!(
                out,
                "{}: failed build, retry after {} (`apply --retry-failed` tries now): {}",
                p.pack,
                failed.retry_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
                failed.cause
            );
        }
        if let Some(tampered) = &p.tampered {
            let _ = writeln!(
                out,
                "{}: tampered: {}; `packsync apply` builds it again from Git (`packsync verify` \
                 lists the files)",
                p.pack,
                tampered.summary()
            );
        }
        if p.state == PackState::Broken {
            let _ = writeln!(
                out,
                "{}: broken: its live virtualenv is incomplete (no completion record); \
                 `packsync apply` builds it again",
                p.pack
            );
        }
    }
    for p in packs {
        let Some(engine) = p.engine.as_ref().filter(|e| e.drift) else {
            continue;
        };
        let registered = engine
            .registered
            .as_ref()
            .map_or_else(|| "nothing".to_string(), |r| r.version.clone());
        let live = p
            .active
            .as_ref()
            .map_or_else(|| "nothing".to_string(), |a| a.version.clone());
        let _ = writeln!(
            out,
            "{}: engine drift: StackStorm has {registered} registered, {live} is live (was \
             `st2 pack install` run by hand? run the `[stackstorm] register` command again)",
            p.pack
        );
    }
    out.trim_end().to_string()
}
