//! `packsync state import`: copies this host's embedded store into the MongoDB store.
//!
//! `--json` prints `{"from": ..., "into": ..., "records": n, "history": n, "runs": n,
//! "runner_switches": n}`.

use serde::Serialize;

use super::{load_config, take_lock};
use crate::cli::{ExitStatus, GlobalArgs, ImportArgs, Printer};
use crate::config::StateConfig;
use crate::diagnostics::{Problem, Report, Severity};
use crate::state::{FileStore, Imported, MongoStore, StateError, StateStore as _};
use crate::store::Layout;

#[derive(Serialize)]
struct ImportReport<'a> {
    from: String,
    into: String,
    #[serde(flatten)]
    imported: &'a Imported,
}

pub(crate) fn import_state(
    global: &GlobalArgs,
    args: &ImportArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let Some(config) = load_config(global, printer) else {
        return Ok(ExitStatus::Failure);
    };
    let StateConfig::MongoDb(mongo) = &config.state else {
        printer.problem(&Problem {
            severity: Severity::Error,
            report: Report::new(&StateError::NoDatabase {
                config: config.path.clone(),
            }),
        });
        return Ok(ExitStatus::Failure);
    };
    let _lock = match take_lock(&config, &args.lock, printer)? {
        Ok(lock) => lock,
        Err(status) => return Ok(status),
    };
    let from = FileStore::new(args.from.as_ref().unwrap_or(&config.agent.state_dir));
    let into = MongoStore::connect(mongo, &config.host(), Layout::new(&config))?;
    let imported = into.import(&from)?;
    if global.json {
        printer.json(&ImportReport {
            from: from.describe(),
            into: into.describe(),
            imported: &imported,
        });
    } else {
        printer.data(format_args!(
            "Imported from {} into {}: {} pack records, {} history entries, {} runs, {} runner \
             switches (entries, runs and switches already there were skipped)",
            from.describe(),
            into.describe(),
            imported.records,
            imported.history,
            imported.runs,
            imported.runner_switches
        ));
    }
    Ok(ExitStatus::Success)
}
