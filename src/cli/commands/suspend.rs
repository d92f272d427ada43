//! `packsync suspend` and `packsync resume`: hold back the changes of a pack or of the host,
//! persisted in the state store, so that `apply` and the agent leave it alone.
//!
//! `--json` prints `{"pack": ..., "suspended": bool, "reason": ...}`.

use serde::Serialize;

use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, Printer, ResumeArgs, SuspendArgs};
use crate::model::{PackName, Suspension};

#[derive(Serialize)]
struct SuspendReport<'a> {
    pack: Option<&'a PackName>,
    suspended: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// "pack `clush`", or "this host".
fn subject(pack: Option<&PackName>) -> String {
    pack.map_or_else(|| "this host".to_string(), |pack| format!("pack `{pack}`"))
}

pub(crate) fn suspend(
    global: &GlobalArgs,
    args: &SuspendArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site { store, .. } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    store.suspend(&Suspension {
        pack: args.pack.clone(),
        reason: args.reason.clone(),
        at: crate::model::now(),
    })?;
    if global.json {
        printer.json(&SuspendReport {
            pack: args.pack.as_ref(),
            suspended: true,
            reason: Some(&args.reason),
        });
    } else {
        printer.data(format_args!(
            "Suspended {} ({}): `apply` and the agent leave it as it is until `packsync resume`",
            subject(args.pack.as_ref()),
            args.reason
        ));
    }
    Ok(ExitStatus::Success)
}

pub(crate) fn resume(
    global: &GlobalArgs,
    args: &ResumeArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site { store, .. } = match open_site(global, None, printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let was = store.resume(args.pack.as_ref())?;
    if global.json {
        printer.json(&SuspendReport {
            pack: args.pack.as_ref(),
            suspended: false,
            reason: None,
        });
    } else if was {
        printer.data(format_args!("Resumed {}", subject(args.pack.as_ref())));
    } else {
        printer.data(format_args!(
            "{} was not suspended",
            subject(args.pack.as_ref())
        ));
    }
    Ok(ExitStatus::Success)
}
