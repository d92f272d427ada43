//! `packsync verify`: every live release checked against what it was built from.
//!
//! `--json` prints the verification as recorded in `state_dir/verify.json`: `{"at", "packs":
//! [{"pack", "release", "tampered", "files": {"added", "removed", "changed"}, "env"?,
//! "error"?}]}`. Exit 1 when a release was found tampered.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Site, open_site};
use crate::cli::{ExitStatus, GlobalArgs, Printer, VerifyArgs};

pub(crate) fn verify(
    global: &GlobalArgs,
    args: &VerifyArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Site {
        config,
        store,
        _lock,
    } = match open_site(global, Some(&args.lock), printer)? {
        Ok(site) => site,
        Err(status) => return Ok(status),
    };
    let only: Option<BTreeSet<_>> =
        (!args.packs.is_empty()).then(|| args.packs.iter().cloned().collect());
    let verification = crate::verify::verify(&config, store.as_ref(), only.as_ref())?;
    let tampered = verification.tampered().count();
    if global.json {
        printer.json(&verification);
    } else {
        let mut out = String::new();
        for found in &verification.packs {
            let word = if found.tampered { "tampered" } else { "ok" };
            let _ = writeln!(out, "{word:<9} {}  {}", found.pack, found.release);
            for (what, paths) in [
                ("changed", &found.files.changed),
                ("added", &found.files.added),
                ("removed", &found.files.removed),
            ] {
                for path in paths {
                    let _ = writeln!(out, "    {what:<8} {}", path.display());
                }
            }
            for problem in &found.env {
                let _ = writeln!(out, "    env      {problem}");
            }
            if let Some(error) = &found.error {
                let _ = writeln!(out, "    error    {error}");
            }
        }
        let _ = write!(
            out,
            "Verify: {} live release(s), {tampered} tampered",
            verification.packs.len()
        );
        if tampered > 0 {
            out.push_str(
                " (`packsync apply` moves each aside under `state_dir/tampered/` and builds it \
                 again from Git)",
            );
        }
        printer.data(out);
    }
    Ok(if tampered > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
