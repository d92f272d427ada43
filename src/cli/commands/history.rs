//! `packsync history`: what packsync changed on this host, newest first.
//!
//! `--json` prints `{"entries": [...]}`; with `--fleet`, `{"rollouts": [...]}`, one per rollout
//! of the fleet with every host's steps.

use std::fmt::Write as _;

use serde::Serialize;

use super::plan::revision_change;
use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, HistoryArgs, Printer};
use crate::config::SiteConfig;
use crate::fleet::{Fleet, FleetError, RolloutStatus};
use crate::state::{HistoryReport, RunnerSwitch, StateStore};

#[derive(Serialize)]
struct FleetHistoryReport<'a> {
    rollouts: &'a [RolloutStatus],
}

/// `history --fleet`: one entry per rollout, with what each host did and when.
fn fleet_history(
    config: &SiteConfig,
    args: &HistoryArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Some(fleet) = Fleet::open(config, &config.host())? else {
        return Err(FleetError::NotConfigured {
            config: config.path.clone(),
        }
        .into());
    };
    let limit = i64::try_from(args.limit).unwrap_or(i64::MAX);
    let rollouts = fleet.rollouts(args.pack.as_ref(), limit)?;
    if global.json {
        printer.json(&FleetHistoryReport {
            rollouts: &rollouts,
        });
        return Ok(ExitStatus::Success);
    }
    let time = |at: &jiff::Timestamp| at.strftime("%H:%M:%S%.3fZ").to_string();
    let mut out = String::new();
    for rollout in &rollouts {
        let started = rollout.started_at.map_or_else(String::new, |at| {
            at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
        });
        let _ = write!(
            out,
            "{started}  {}  {}  {} (attempt {})",
            rollout.pack,
            rollout.release,
            serde_json::to_value(rollout.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            rollout.attempt
        );
        if let Some(by) = &rollout.registered_by {
            let _ = write!(out, ", registered by {by}");
        }
        if let Some(window) = rollout.window_ms {
            let _ = write!(out, ", mixed versions {window} ms");
        }
        out.push('\n');
        if let Some(reason) = &rollout.reason {
            let _ = writeln!(out, "    {reason}");
        }
        let hosts: std::collections::BTreeSet<&String> = rollout
            .prepared
            .keys()
            .chain(rollout.failed.keys())
            .chain(&rollout.participants)
            .collect();
        for host in hosts {
            let mut steps = Vec::new();
            for (step, at) in [
                ("prepared", rollout.prepared.get(host)),
                ("switched", rollout.switched.get(host)),
                ("restarted", rollout.restarted.get(host)),
                ("healthy", rollout.healthy.get(host)),
            ] {
                if let Some(at) = at {
                    steps.push(format!("{step} {}", time(at)));
                }
            }
            if let Some(why) = rollout.failed.get(host) {
                steps.push(format!("failed: {why}"));
            }
            let _ = writeln!(out, "    {host}: {}", steps.join(", "));
        }
    }
    if rollouts.is_empty() {
        out.push_str("No rollout yet");
    }
    printer.data(out.trim_end());
    Ok(ExitStatus::Success)
}

pub(crate) fn history(
    global: &GlobalArgs,
    args: &HistoryArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site { store, config, .. } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    if args.runners {
        return runner_history(store.as_ref(), args, global, printer);
    }
    if args.fleet {
        return fleet_history(&config, args, global, printer);
    }
    let entries = store.history(args.pack.as_ref(), Some(args.limit))?;
    if global.json {
        printer.json(&HistoryReport { entries });
        return Ok(ExitStatus::Success);
    }
    let width = entries
        .iter()
        .map(|e| e.pack.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for entry in &entries {
        let change = revision_change(entry.from.as_ref(), entry.to.as_ref());
        let _ = writeln!(
            out,
            "{}  {:<width$}  {:<11} {:<11}  {change}",
            entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            entry.pack.as_str(),
            entry.operation.as_str(),
            entry.outcome.as_str(),
        );
        if let Some(error) = &entry.error {
            let _ = writeln!(out, "    {error}");
        }
    }
    if entries.is_empty() {
        out.push_str("No history yet");
    }
    printer.data(out.trim_end());
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct RunnerHistoryReport<'a> {
    switches: &'a [RunnerSwitch],
}

/// `history --runners`: the runner set switches, newest first.
fn runner_history(
    store: &dyn StateStore,
    args: &HistoryArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let switches = store.runner_switches(Some(args.limit))?;
    if global.json {
        printer.json(&RunnerHistoryReport {
            switches: &switches,
        });
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    for switch in &switches {
        let from = switch.from.as_ref().map_or("none", |digest| digest.short());
        let _ = writeln!(
            out,
            "{}  runners  {:<11} {:<11}  set {from} -> {}: {}",
            switch.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            switch.operation.as_str(),
            switch.outcome.as_str(),
            switch.to.short(),
            switch.runners.join(", ")
        );
        if let Some(error) = &switch.error {
            let _ = writeln!(out, "    {error}");
        }
    }
    if switches.is_empty() {
        out.push_str("No runner set switched yet");
    }
    printer.data(out.trim_end());
    Ok(ExitStatus::Success)
}
