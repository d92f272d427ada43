//! Carrying out a plan: per pack, stage -> gate -> switch -> register -> record, independent
//! packs in parallel, one pack's failure never touching another.
//!
//! [`plan`] is the one way both `plan` and `apply` compute what to do, so the two always agree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::SiteConfig;
use crate::desired::{self, Resolution, WorkTrees};
use crate::diagnostics::Diagnose;
use crate::model::{PackName, Plan};
use crate::plan::PlanError;
use crate::state::{self, Observed, PackRecord, StateError, StateStore};
use crate::store::Layout;

/// The desired state, what is live, and the plan between them.
#[derive(Debug)]
pub struct Planned {
    pub resolution: Resolution,
    pub records: BTreeMap<PackName, PackRecord>,
    pub observed: Observed,
    pub plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("No pack `{pack}` in the site config `{}` nor installed", config.display())]
    UnknownPack { pack: PackName, config: PathBuf },
    #[error("Failed to read the installed state")]
    State(#[from] StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl Diagnose for ExecuteError {}

/// Reads the desired state (of every pack, or of those in `only`), the store's record and what
/// disk says is live, and plans.
pub fn plan(
    config: &SiteConfig,
    store: &dyn StateStore,
    only: Option<&BTreeSet<PackName>>,
) -> Result<Planned, ExecuteError> {
    let layout = Layout::new(config);
    let records = store.load()?;
    let mut observed = state::read_installed(
        &layout,
        &records,
        config.packs.iter().map(|pack| &pack.name),
    )?;
    if let Some(only) = only {
        for pack in only {
            let known = config.packs.iter().any(|p| &p.name == pack)
                || observed.installed.packs.contains_key(pack);
            if !known {
                return Err(ExecuteError::UnknownPack {
                    pack: pack.clone(),
                    config: config.path.clone(),
                });
            }
        }
        observed
            .installed
            .packs
            .retain(|name, _| only.contains(name));
    }
    let resolution = desired::resolve(config, only, WorkTrees::Ignore);
    let plan = crate::plan::plan(&resolution.desired, &observed.installed, config.agent.prune)?;
    Ok(Planned {
        resolution,
        records,
        observed,
        plan,
    })
}
