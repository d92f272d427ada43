//! The plan: a pure function of what should be installed and what is.
//!
//! [`plan`] reads no file, no Git, no clock. Changes are decided on content digests (pack tree,
//! env, config), never on commit ids: a new commit that leaves all three alone is `unchanged`,
//! with the commit noted. Packs come after the site packs they depend on; ties go by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{
    Action, Change, Desired, DesiredPack, EnvInputs, Installed, InstalledPack, PackName, Plan,
    Prune, Reason, Revision, RunnerChange,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("Packs depend on each other in a cycle: {}", Cycle(.0))]
    DependencyCycle(Vec<PackName>),
}

/// `a -> b -> a`
struct Cycle<'a>(&'a [PackName]);

impl fmt::Display for Cycle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(PackName::as_str).collect();
        write!(f, "{}", names.join(" -> "))?;
        if let Some(first) = self.0.first() {
            write!(f, " -> {first}")?;
        }
        Ok(())
    }
}

/// Computes the ordered changes that take `installed` to `desired`.
pub fn plan(desired: &Desired, installed: &Installed, prune: Prune) -> Result<Plan, PlanError> {
    let by_name: BTreeMap<&PackName, &DesiredPack> = desired
        .packs
        .iter()
        .map(|pack| (&pack.name, pack))
        .collect();
    let mut changes = Vec::with_capacity(desired.packs.len() + desired.disabled.len());
    for name in dependency_order(&by_name)? {
        let pack = by_name[name];
        let change = match installed.packs.get(name) {
            Some(current) => compare(pack, current),
            None => install(pack, installed),
        };
        changes.push(
            match (desired.suspended.get(name), desired.failed_builds.get(name)) {
                (Some(reason), _) => hold(change, |held| Reason::Suspended {
                    reason: reason.clone(),
                    held,
                }),
                (None, Some(failed)) => hold(change, |held| Reason::BuildFailed {
                    failed: failed.clone(),
                    held,
                }),
                (None, None) => change,
            },
        );
    }
    for name in &desired.disabled {
        let revision = installed.packs.get(name).map(|pack| pack.revision.clone());
        changes.push(Change {
            pack: name.clone(),
            action: Action::Unchanged,
            from: revision.clone(),
            to: revision,
            reasons: vec![Reason::Disabled],
        });
    }
    let in_config: BTreeSet<&PackName> = by_name
        .keys()
        .copied()
        .chain(&desired.disabled)
        .chain(&desired.unresolved)
        .collect();
    for (name, pack) in &installed.packs {
        if in_config.contains(name) {
            continue;
        }
        let (action, reason) = match prune {
            Prune::On => (Action::Remove, Reason::LeftConfig),
            Prune::Off => (Action::Orphan, Reason::LeftConfigPruneOff),
        };
        let change = Change {
            pack: name.clone(),
            action,
            from: Some(pack.revision.clone()),
            to: None,
            reasons: vec![reason],
        };
        changes.push(match desired.suspended.get(name) {
            Some(reason) => hold(change, |held| Reason::Suspended {
                reason: reason.clone(),
                held,
            }),
            None => change,
        });
    }
    Ok(Plan {
        changes,
        runners: plan_runners(
            desired.runners.as_ref(),
            installed.runners.as_ref(),
            installed.runners_unhooked,
        ),
    })
}

/// Names in an order where every pack comes after the site packs it depends on; among packs
/// whose dependencies are all placed, the smallest name goes first.
fn dependency_order<'a>(
    packs: &BTreeMap<&'a PackName, &'a DesiredPack>,
) -> Result<Vec<&'a PackName>, PlanError> {
    let site_deps = |pack: &'a DesiredPack| {
        pack.dependencies
            .iter()
            .filter(|dep| packs.contains_key(dep) && **dep != pack.name)
    };
    let mut waiting_on: BTreeMap<&PackName, usize> = packs
        .iter()
        .map(|(name, pack)| (*name, site_deps(pack).count()))
        .collect();
    let mut dependents: BTreeMap<&PackName, Vec<&PackName>> = BTreeMap::new();
    for (name, pack) in packs {
        for dep in site_deps(pack) {
            dependents.entry(dep).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&PackName> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut order = Vec::with_capacity(packs.len());
    while let Some(name) = ready.pop_first() {
        order.push(name);
        for dependent in dependents.get(name).into_iter().flatten() {
            let count = waiting_on
                .get_mut(dependent)
                .expect("every dependent is a site pack");
            *count -= 1;
            if *count == 0 {
                ready.insert(dependent);
            }
        }
    }
    if order.len() < packs.len() {
        let placed: BTreeSet<&PackName> = order.iter().copied().collect();
        return Err(PlanError::DependencyCycle(find_cycle(packs, &placed)));
    }
    Ok(order)
}

/// A cycle among the packs that could not be placed: every one of them waits on another one.
fn find_cycle(
    packs: &BTreeMap<&PackName, &DesiredPack>,
    placed: &BTreeSet<&PackName>,
) -> Vec<PackName> {
    let unplaced = |name: &&PackName| !placed.contains(name) && packs.contains_key(name);
    let mut path: Vec<&PackName> = Vec::new();
    let mut current = packs.keys().copied().find(|name| unplaced(name));
    while let Some(name) = current {
        if let Some(start) = path.iter().position(|seen| *seen == name) {
            return path[start..].iter().map(|name| (*name).clone()).collect();
        }
        path.push(name);
        current = packs[name]
            .dependencies
            .iter()
            .find(|dep| unplaced(dep) && *dep != name);
    }
    path.into_iter().cloned().collect()
}

fn install(pack: &DesiredPack, installed: &Installed) -> Change {
    let reason = match installed.unmanaged.get(&pack.name) {
        Some(unmanaged) => Reason::Adopts {
            path: unmanaged.path.clone(),
            version: unmanaged.version.clone(),
        },
        None => Reason::NotInstalled,
    };
    Change {
        pack: pack.name.clone(),
        action: Action::Install,
        from: None,
        to: Some(pack.revision.clone()),
        reasons: vec![reason],
    }
}

fn compare(pack: &DesiredPack, current: &InstalledPack) -> Change {
    let (to, from) = (&pack.revision, &current.revision);
    let mut reasons = Vec::new();
    let action = if to.tree != from.tree {
        match to.version.cmp(&from.version) {
            std::cmp::Ordering::Greater => {
                reasons.push(version_change(from, to));
                Action::Upgrade
            }
            std::cmp::Ordering::Less => {
                reasons.push(version_change(from, to));
                Action::Downgrade
            }
            std::cmp::Ordering::Equal => {
                reasons.push(Reason::TreeChangedSameVersion {
                    version: to.version.clone(),
                });
                Action::Upgrade
            }
        }
    } else if to.env != from.env {
        Action::Rebuild
    } else if let Some(env) = &current.broken_env {
        reasons.push(Reason::EnvBroken { env: env.clone() });
        Action::Rebuild
    } else if let Some(what) = &current.tampered {
        reasons.push(Reason::Tampered { what: what.clone() });
        Action::Rebuild
    } else if to.config != from.config {
        Action::Reconfigure
    } else if !current.broken_links.is_empty() {
        reasons.push(Reason::LinksBroken {
            links: current.broken_links.clone(),
        });
        Action::Repair
    } else if let Some(repair) = &current.engine_repair {
        reasons.push(Reason::EngineRepair(repair.clone()));
        Action::Repair
    } else {
        Action::Unchanged
    };
    if to.env != from.env {
        reasons.extend(env_reasons(current.env_inputs.as_ref(), &pack.env_inputs));
    }
    if to.config != from.config {
        reasons.push(Reason::ConfigChanged);
    }
    if to.git_ref != from.git_ref {
        reasons.push(Reason::RefChanged {
            from: from.git_ref.clone(),
            to: to.git_ref.clone(),
        });
    }
    if action == Action::Unchanged && to.commit != from.commit {
        reasons.push(Reason::CommitOnly {
            from: from.commit.clone(),
            to: to.commit.clone(),
        });
    }
    Change {
        pack: pack.name.clone(),
        action,
        from: Some(from.clone()),
        to: Some(to.clone()),
        reasons,
    }
}

fn version_change(from: &Revision, to: &Revision) -> Reason {
    Reason::VersionChanged {
        from: from.version.clone(),
        to: to.version.clone(),
    }
}

/// A held change (a suspended pack, a virtualenv that failed to build from these inputs):
/// nothing happens, and the reason `why` gives for the held action says what waits.
fn hold(change: Change, why: impl FnOnce(Action) -> Reason) -> Change {
    if !change.action.changes_host() {
        return change;
    }
    Change {
        action: Action::Unchanged,
        to: change.from.clone(),
        reasons: vec![why(change.action)],
        ..change
    }
}

/// The runner set to switch to: the desired one when it differs from the active one, or the
/// same again when StackStorm no longer loads it. Runners that left the site config stay as
/// they are (StackStorm has them registered).
fn plan_runners(
    desired: Option<&EnvInputs>,
    installed: Option<&EnvInputs>,
    unhooked: bool,
) -> Option<RunnerChange> {
    let to = desired?;
    if installed.is_some_and(|installed| installed.digest() == to.digest()) {
        return unhooked.then(|| RunnerChange {
            from: Some(to.digest()),
            to: to.clone(),
            reasons: vec![Reason::RunnerHookMissing],
        });
    }
    Some(RunnerChange {
        from: installed.map(EnvInputs::digest),
        to: to.clone(),
        reasons: installed.map_or_else(
            || {
                let built = to.pins.iter().filter_map(|pin| {
                    Some(Reason::PinAdded {
                        name: pin.name.clone(),
                        version: pin.version.clone(),
                        origin: Some(built_origin(to, pin)?),
                    })
                });
                to.requirements
                    .iter()
                    .map(|line| Reason::RequirementAdded(line.clone()))
                    .chain(built)
                    .collect()
            },
            |installed| env_reasons(Some(installed), to),
        ),
    })
}

/// Where `pin` of `inputs` comes from when it is not the mirror: the setting
/// `built <name> <version> from <where>` (a runner built from its Git repo) says
/// `built from <where>`.
fn built_origin(inputs: &EnvInputs, pin: &crate::model::Pin) -> Option<String> {
    let prefix = format!(
        "{}{} {} ",
        crate::model::BUILT_SETTING,
        pin.name,
        pin.version
    );
    inputs
        .settings
        .iter()
        .find_map(|setting| setting.strip_prefix(&prefix))
        .map(|origin| format!("built {origin}"))
}

/// What changed between two sets of env inputs; a generic reason when the old ones are unknown.
fn env_reasons(from: Option<&EnvInputs>, to: &EnvInputs) -> Vec<Reason> {
    let Some(from) = from else {
        return vec![Reason::EnvChanged];
    };
    let mut reasons = Vec::new();
    if from.python != to.python {
        reasons.push(Reason::PythonChanged {
            from: from.python.clone(),
            to: to.python.clone(),
        });
    }
    if from.settings != to.settings {
        reasons.push(Reason::EnvSettingsChanged {
            from: from.settings.clone(),
            to: to.settings.clone(),
        });
    }
    let (old, new): (BTreeSet<&String>, BTreeSet<&String>) = (
        from.requirements.iter().collect(),
        to.requirements.iter().collect(),
    );
    reasons.extend(
        new.difference(&old)
            .map(|line| Reason::RequirementAdded((*line).clone())),
    );
    reasons.extend(
        old.difference(&new)
            .map(|line| Reason::RequirementRemoved((*line).clone())),
    );
    let old_pins: BTreeMap<&str, _> = from.pins.iter().map(|p| (p.name.as_str(), p)).collect();
    let new_pins: BTreeMap<&str, _> = to.pins.iter().map(|p| (p.name.as_str(), p)).collect();
    for (name, pin) in &new_pins {
        match old_pins.get(name) {
            None => reasons.push(Reason::PinAdded {
                name: (*name).to_string(),
                version: pin.version.clone(),
                origin: built_origin(to, pin),
            }),
            Some(old) if old.version != pin.version => reasons.push(Reason::PinChanged {
                name: (*name).to_string(),
                from: old.version.clone(),
                to: pin.version.clone(),
                origin: built_origin(to, pin),
            }),
            Some(old) if old.sha256 != pin.sha256 || old.file != pin.file => {
                reasons.push(Reason::PinFileChanged {
                    name: (*name).to_string(),
                    version: pin.version.clone(),
                });
            }
            Some(_) => {}
        }
    }
    for (name, pin) in &old_pins {
        if !new_pins.contains_key(name) {
            reasons.push(Reason::PinRemoved {
                name: (*name).to_string(),
                version: pin.version.clone(),
            });
        }
    }
    if reasons.is_empty() {
        reasons.push(Reason::EnvChanged);
    }
    reasons
}

#[cfg(test)]
mod tests;
