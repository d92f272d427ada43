//! One pack's step: build (export, virtualenv, config) -> gate -> seal -> switch -> register,
//! with the switch undone when registration fails; and the removal of a pack.
//!
//! Every step ends in a record: the pack's new record and a history entry. A step only ever
//! touches its own pack.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{Context, Phase, StepReport, elapsed_ms};
use crate::activate;
use crate::config::PackConfig;
use crate::diagnostics::{Diagnose, Report};
use crate::engine::{self, Hook, Placeholders};
use crate::env::EnvOutcome;
use crate::fleet::{Registration, Rollout};
use crate::fsx;
use crate::model::{DesiredPack, PackName, ReleaseId, Revision};
use crate::pack::content::Resource;
use crate::source::Repo;
use crate::state::{ActiveRelease, Failure, HistoryEntry, Operation, Outcome, ReleaseRecord};
use crate::store::{self, ReleaseManifest, ReleasePaths};
use crate::unit::{self, Direction, RollOut, Unit};

/// Why a step failed; the wrapped module error names the path or the command.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Activate(#[from] activate::ActivateError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    #[error("Release `{release}` of pack `{pack}` is not on disk any more")]
    ReleaseGone { pack: PackName, release: ReleaseId },
    /// The test gate wrote into the release it tested (as root, read-only modes stop nothing).
    #[error("The `test` command for pack `{pack}` wrote into the release it tested: {}", paths.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", "))]
    GateWrote { pack: PackName, paths: Vec<PathBuf> },
    /// Registration failed and what was live before is live again.
    #[error("Registration failed, so {previous} is live again")]
    Reverted {
        /// "release `1.0.0-...`", or "nothing (the pack was not live before)".
        previous: String,
        #[source]
        register: Box<StepError>,
    },
    /// Registration failed and so did going back; both are told.
    #[error("{register}; switching back to `{previous}` failed too: {undo}")]
    RollbackFailed {
        register: Box<StepError>,
        previous: String,
        undo: Box<StepError>,
    },
}

impl Diagnose for StepError {
    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        self.inner()
    }
}

impl StepError {
    /// The module error this one wraps (transparently, or the registration that failed), which
    /// knows the hint and the command's output.
    fn inner(&self) -> Option<&dyn Diagnose> {
        match self {
            StepError::Source(err) => Some(err),
            StepError::Store(err) => Some(err),
            StepError::Env(err) => Some(err),
            StepError::Engine(err) => Some(err),
            StepError::Activate(err) => Some(err),
            StepError::State(err) => Some(err),
            StepError::Fleet(err) => Some(err),
            StepError::Reverted { register, .. } | StepError::RollbackFailed { register, .. } => {
                Some(register.as_ref())
            }
            StepError::ReleaseGone { .. } | StepError::GateWrote { .. } => None,
        }
    }
}

/// How the release's virtualenv came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvReport {
    /// Built now, with pip.
    Built,
    /// Built now; no requirements, so no pip.
    BuiltEmpty,
    /// Another release (or pack) already had it.
    Reused,
    /// The whole release already existed (same tree, env and config): nothing was built.
    ReleaseReused,
}

/// A pack as a [`Unit`]: its release is a sealed tree under `releases/<pack>/` with its
/// virtualenv and config, its link `current/<pack>` (and the links StackStorm reads), its
/// registration `[stackstorm] register`, and what follows registration the purge.
struct PackUnit<'c, 'r> {
    context: &'c Context<'c>,
    pack: &'c PackName,
    id: &'c ReleaseId,
    /// What to build the release from; `None`: it is kept on disk already (a rollback).
    build: Option<(&'c PackConfig, &'c DesiredPack)>,
    /// The release built by this step, gated before it can go live (one found on disk passed
    /// its gate when it was built).
    built: Option<ReleasePaths>,
    report: &'r mut StepReport,
}

/// Rolls a release out: how it went, and the step's error.
fn roll_out_release<U>(mut unit: U) -> (Outcome, Option<StepError>)
where
    U: Unit<Release = ReleaseId, Error = StepError>,
{
    let (previous, register, undo) = match unit::roll_out(&mut unit) {
        RollOut::Live { settled } => return (Outcome::Applied, settled.err()),
        RollOut::Failed(err) => return (Outcome::Failed, Some(err)),
        RollOut::Reverted {
            previous,
            register,
            again: Ok(()),
        } => {
            tracing::info!(error = %register, "registration failed; switched back");
            let error = StepError::Reverted {
                previous: previous.map_or_else(
                    || "nothing (the pack was not live before)".to_string(),
                    |previous| format!("release `{previous}`"),
                ),
                register: Box::new(register),
            };
            return (Outcome::Reverted, Some(error));
        }
        // Going back failed: relinking, or registering what was live before.
        RollOut::Reverted {
            previous,
            register,
            again: Err(undo),
        }
        | RollOut::Stuck {
            previous,
            register,
            undo,
        } => (previous, register, undo),
    };
    let error = StepError::RollbackFailed {
        register: Box::new(register),
        previous: previous.map_or_else(|| "nothing".to_string(), |p| p.to_string()),
        undo: Box::new(undo),
    };
    (Outcome::Reverted, Some(error))
}

/// A pack on a fleet host: a [`PackUnit`] whose gate waits for the fleet's go, whose
/// registration (and purge) runs on one host for the whole fleet, and which restarts
/// StackStorm's services on every host once the release is live.
struct FleetUnit<'c, 'r, 'f> {
    pack: PackUnit<'c, 'r>,
    rollout: Rollout<'f>,
    /// Registrations asked for so far: the second is going back.
    registrations: usize,
}

impl Unit for FleetUnit<'_, '_, '_> {
    type Release = ReleaseId;
    type Error = StepError;

    fn stage(&mut self) -> Result<ReleaseId, StepError> {
        self.pack
            .stage()
            .inspect_err(|err| self.rollout.fail(&Report::new(err).one_line()))
    }

    fn gate(&mut self, release: &ReleaseId) -> Result<(), StepError> {
        self.pack
            .gate(release)
            .inspect_err(|err| self.rollout.fail(&Report::new(err).one_line()))?;
        (self.pack.context.progress)(self.pack.pack, Phase::Doing("waiting for the fleet"));
        self.rollout.prepared_await_go()?;
        Ok(())
    }

    fn live(&mut self) -> Result<Option<ReleaseId>, StepError> {
        self.pack.live()
    }

    fn switch(&mut self, release: &ReleaseId) -> Result<(), StepError> {
        self.pack.switch(release)?;
        self.rollout.switched(release == self.pack.id);
        Ok(())
    }

    fn unlink(&mut self) -> Result<(), StepError> {
        self.pack.unlink()?;
        self.rollout.switched(false);
        Ok(())
    }

    fn register(&mut self) -> Result<(), StepError> {
        self.registrations += 1;
        if self.registrations > 1 {
            // Going back: the host that registered the release registers what was live before.
            return if self.rollout.registered_here() {
                self.pack.register()
            } else {
                Ok(())
            };
        }
        let pack = &mut self.pack;
        match self.rollout.registration(|| pack.register())? {
            Registration::Registered => Ok(()),
            Registration::FailedHere(err) => Err(err),
        }
    }

    /// The purge on the host that registered; `[stackstorm] restart`, then `health`, on every
    /// host once the release is live.
    fn settle(&mut self, live: &ReleaseId, direction: Direction) -> Result<(), StepError> {
        if self.rollout.registered_here() {
            self.pack.settle(live, direction)?;
        }
        let context = self.pack.context;
        if let (Direction::Forward, Some(restart)) = (direction, &context.config.stackstorm.restart)
        {
            (context.progress)(
                self.pack.pack,
                Phase::Doing("restarting StackStorm's services"),
            );
            engine::restart_for(self.pack.pack, restart, &context.config.stackstorm)?;
            self.rollout.restarted();
        }
        if direction == Direction::Back {
            return Ok(());
        }
        // The next wave waits for this host's word on the release.
        let health = match &context.config.stackstorm.health {
            Some(health) => {
                (context.progress)(self.pack.pack, Phase::Doing("checking its health"));
                engine::run(
                    Hook::Health,
                    health,
                    &context.live_placeholders(self.pack.pack),
                    &context.config.stackstorm,
                )
            }
            None => Ok(()),
        };
        self.rollout.health(
            health
                .as_ref()
                .map_err(|err| Report::new(err).one_line())
                .copied(),
        );
        Ok(health?)
    }
}

impl Unit for PackUnit<'_, '_> {
    type Release = ReleaseId;
    type Error = StepError;

    fn stage(&mut self) -> Result<ReleaseId, StepError> {
        let (context, name, id) = (self.context, self.pack, self.id);
        let Some((pack, desired)) = self.build else {
            return match store::find(&context.layout, name, id) {
                Some(_) => Ok(id.clone()),
                None => Err(StepError::ReleaseGone {
                    pack: name.clone(),
                    release: id.clone(),
                }),
            };
        };
        if let Some(found) = store::tampered(context.verification.as_ref(), name, id) {
            context.set_aside(name, id, &desired.revision, &found)?;
        }
        if store::find(&context.layout, name, id).is_some() {
            // Its virtualenv is complete, or (broken by a crash) built again in place.
            self.report.env = Some(match context.ensure_env(name, desired)? {
                EnvReport::Reused => EnvReport::ReleaseReused,
                built => built,
            });
            return Ok(id.clone());
        }
        let staged = store::stage(&context.layout, name, id)?;
        if let Err(err) = context.build(pack, desired, &staged, self.report) {
            if let Err(cleanup) = store::discard(&staged) {
                tracing::warn!(pack = %name, error = %cleanup, "cannot remove the staged release; the next run removes it");
            }
            return Err(err);
        }
        let manifest = ReleaseManifest {
            pack: name.clone(),
            id: id.clone(),
            revision: desired.revision.clone(),
            env_inputs: desired.env_inputs.clone(),
            built_at: crate::model::now(),
        };
        // Sealed first, then gated: what the tests see is what goes live, and nothing they
        // write can end up in the release.
        self.built = Some(store::seal(&context.layout, staged, &manifest)?);
        Ok(id.clone())
    }

    fn gate(&mut self, id: &ReleaseId) -> Result<(), StepError> {
        let Some(sealed) = self.built.take() else {
            return Ok(());
        };
        let gated = self.context.gate(self.pack, &sealed);
        if gated.is_err()
            && let Err(cleanup) = store::remove_release(&self.context.layout, self.pack, id)
        {
            tracing::warn!(pack = %self.pack, error = %cleanup, "cannot remove the release that failed its gate");
        }
        gated
    }

    fn live(&mut self) -> Result<Option<ReleaseId>, StepError> {
        Ok(activate::active(&self.context.layout, self.pack)?)
    }

    fn switch(&mut self, id: &ReleaseId) -> Result<(), StepError> {
        (self.context.progress)(self.pack, Phase::Doing("switching it live"));
        let layout = &self.context.layout;
        let has_config = layout.release(self.pack, id).config.exists();
        activate::switch(layout, self.pack, id)?;
        // What `st2 pack install` had at the links: moved aside the first time only.
        let adopted = activate::link(layout, self.pack, has_config)?;
        self.report.adopted.extend(adopted);
        Ok(())
    }

    fn unlink(&mut self) -> Result<(), StepError> {
        // What `st2 pack install` had there goes back; then the pack's links go.
        activate::restore(&self.report.adopted)?;
        activate::unlink(&self.context.layout, self.pack)?;
        Ok(())
    }

    fn register(&mut self) -> Result<(), StepError> {
        self.context.register(self.pack)
    }

    /// Registered first, purged after: nothing that stays is ever missing. A purge that
    /// fails leaves the release live, and the next run registers and purges again; after going
    /// back, what the failed registration left in StackStorm (the resources sorted before the
    /// one that failed) is purged.
    fn settle(&mut self, live: &ReleaseId, _: Direction) -> Result<(), StepError> {
        self.context.purge_into(self.pack, live, self.report);
        Ok(())
    }
}

impl Context<'_> {
    /// Install, upgrade, downgrade, rebuild or reconfigure `pack` to `desired`.
    pub(super) fn deploy(
        &self,
        operation: Operation,
        pack: &PackConfig,
        desired: &DesiredPack,
        from: Option<&Revision>,
    ) -> StepReport {
        let started = Instant::now();
        let id = ReleaseId::of(&desired.revision);
        let mut report = StepReport::new(
            pack.name.clone(),
            operation,
            from.cloned(),
            Some(desired.revision.clone()),
            Some(id.clone()),
        );
        let unit = PackUnit {
            context: self,
            pack: &pack.name,
            id: &id,
            build: Some((pack, desired)),
            built: None,
            report: &mut report,
        };
        let (outcome, error) = match &self.fleet {
            None => roll_out_release(unit),
            Some(fleet) => match fleet.begin(&pack.name, &id) {
                Ok(rollout) => roll_out_release(FleetUnit {
                    pack: unit,
                    rollout,
                    registrations: 0,
                }),
                Err(err) => (Outcome::Failed, Some(StepError::Fleet(err))),
            },
        };
        report.outcome = outcome;
        // The step's failure wins over a purge's, which the report keeps as `unpurged`.
        if let Some(err) = error {
            report.error = Some(Report::new(&err));
        }
        report.duration_ms = elapsed_ms(started);
        self.record(&report, Some(&desired.revision), Some(&desired.env_inputs));
        (self.progress)(&pack.name, Phase::Finished(report.outcome));
        report
    }

    /// Moves the tampered release `id` of `pack` aside (with its virtualenv when that was
    /// tampered too, once for every pack sharing it), so that it is built again from Git.
    fn set_aside(
        &self,
        pack: &PackName,
        id: &ReleaseId,
        revision: &Revision,
        found: &store::PackVerification,
    ) -> Result<(), StepError> {
        let env = self.layout.env(&revision.env);
        let env = (!found.env.is_empty()
            && self
                .envs_set_aside
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(env.clone()))
        .then_some(env);
        let aside = store::set_aside(&self.layout, pack, id, env.as_deref())?;
        tracing::info!(%pack, release = %id, aside = %aside.display(), "the tampered release is moved aside and built again from Git");
        (self.progress)(pack, Phase::Doing("moving the tampered release aside"));
        Ok(())
    }

    /// Makes the kept release `id` of `pack` live again (a rollback), through the same
    /// switch and registration as a deploy.
    pub(super) fn reactivate(&self, pack: &PackName, id: &ReleaseId, report: &mut StepReport) {
        let (outcome, error) = roll_out_release(PackUnit {
            context: self,
            pack,
            id,
            build: None,
            built: None,
            report,
        });
        report.outcome = outcome;
        if let Some(err) = error {
            report.error = Some(Report::new(&err));
        }
        (self.progress)(pack, Phase::Finished(outcome));
    }

    /// Exports the pack tree, makes sure its virtualenv exists, writes the config.
    fn build(
        &self,
        pack: &PackConfig,
        desired: &DesiredPack,
        staged: &ReleasePaths,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        (self.progress)(&pack.name, Phase::Doing("exporting its tree from Git"));
        let repo = Repo::open(&pack.repo)?;
        repo.pack_tree(&desired.revision.commit, pack.subdir.as_deref())?
            .export(&staged.pack)?;
        report.env = Some(self.ensure_env(&pack.name, desired)?);
        store::link_env(staged, &self.layout.env(&desired.revision.env))?;
        if !pack.values.is_empty() {
            store::write_config(staged, &pack.values)?;
        }
        Ok(())
    }

    /// Makes sure the virtualenv of `desired` is there complete.
    fn ensure_env(&self, pack: &PackName, desired: &DesiredPack) -> Result<EnvReport, StepError> {
        let env_dir = self.layout.env(&desired.revision.env);
        (self.progress)(pack, Phase::Doing("building its virtualenv"));
        let installer = |line: &str| (self.progress)(pack, Phase::Installer(line));
        Ok(
            match self
                .builder
                .ensure(&env_dir, &desired.env_inputs, &installer)?
            {
                EnvOutcome::Built { pip: true } => EnvReport::Built,
                EnvOutcome::Built { pip: false } => EnvReport::BuiltEmpty,
                EnvOutcome::Reused => EnvReport::Reused,
            },
        )
    }

    /// `[stackstorm] test` on the sealed release, before it goes live: `{release_dir}` is its
    /// pack tree, `{venv_dir}` its virtualenv. What the release and its virtualenv look like is
    /// compared before and after: a gate that wrote into either fails (its virtualenv loses its
    /// completion record, so whatever uses it is rebuilt).
    fn gate(&self, pack: &PackName, sealed: &ReleasePaths) -> Result<(), StepError> {
        let Some(test) = &self.config.stackstorm.test else {
            return Ok(());
        };
        (self.progress)(pack, Phase::Doing("testing the new release"));
        let values = Placeholders {
            pack: pack.clone(),
            pack_dir: self.layout.pack_link(pack),
            release_dir: sealed.pack.clone(),
            venv_dir: sealed.venv.clone(),
            config_file: sealed.config.clone(),
        };
        let env = fs_err::canonicalize(&sealed.venv).map_err(|source| store::StoreError::Io {
            action: "resolve",
            path: sealed.venv.clone(),
            source,
        })?;
        let look = |root: &Path| {
            fsx::stamps(root).map_err(|source| store::StoreError::Io {
                action: "read",
                path: root.to_path_buf(),
                source,
            })
        };
        let (release_before, env_before) = (look(&sealed.dir)?, look(&env)?);
        engine::run(Hook::Test, test, &values, &self.config.stackstorm)?;
        let mut paths: Vec<PathBuf> = fsx::changed_paths(&release_before, &look(&sealed.dir)?)
            .into_iter()
            .map(|path| sealed.dir.join(path))
            .collect();
        let env_paths = fsx::changed_paths(&env_before, &look(&env)?);
        if !env_paths.is_empty() {
            store::invalidate_env(&env)?;
            paths.extend(env_paths.into_iter().map(|path| env.join(path)));
        }
        if paths.is_empty() {
            Ok(())
        } else {
            Err(StepError::GateWrote {
                pack: pack.clone(),
                paths,
            })
        }
    }

    /// Purges, into the step's report: what was removed, and a failure as the step's error
    /// (kept after any earlier one) with the pack marked `unpurged` for the next run.
    pub(super) fn purge_into(&self, pack: &PackName, live: &ReleaseId, report: &mut StepReport) {
        let (purged, failure) = self.purge(pack, live);
        for resource in &purged {
            tracing::info!(%pack, resource = %resource, "purged");
        }
        report.purged.extend(purged);
        if let Some(err) = failure {
            report.unpurged = true;
            if report.error.is_none() {
                report.error = Some(Report::new(&err));
            }
        }
    }

    /// Removes from StackStorm what it holds for `pack` that the live release `live` does not
    /// carry (`[stackstorm] registered`, then `purge` per resource); what it removed, and why it
    /// stopped when it did.
    fn purge(&self, pack: &PackName, live: &ReleaseId) -> (Vec<Resource>, Option<StepError>) {
        let Some((registered, purge)) = self.config.stackstorm.purging() else {
            return (Vec::new(), None);
        };
        let values = self.live_placeholders(pack);
        let stackstorm = &self.config.stackstorm;
        let stale = engine::registered(registered, &values, stackstorm)
            .map_err(StepError::from)
            .and_then(|held| {
                let carried = store::release_content(pack, &self.layout.release(pack, live).pack)?;
                Ok(held.difference(&carried).cloned().collect::<Vec<_>>())
            });
        let stale = match stale {
            Ok(stale) => stale,
            Err(err) => return (Vec::new(), Some(err)),
        };
        let mut purged = Vec::new();
        for resource in stale {
            (self.progress)(pack, Phase::Doing(&format!("purging {resource}")));
            if let Err(err) = engine::purge(purge, &values, &resource, stackstorm) {
                return (purged, Some(err.into()));
            }
            purged.push(resource);
        }
        (purged, None)
    }

    /// `[stackstorm] register` for the live release of `pack`.
    pub(super) fn register(&self, pack: &PackName) -> Result<(), StepError> {
        let Some(register) = &self.config.stackstorm.register else {
            return Ok(());
        };
        (self.progress)(pack, Phase::Doing("registering"));
        Ok(engine::run(
            Hook::Register,
            register,
            &self.live_placeholders(pack),
            &self.config.stackstorm,
        )?)
    }

    /// The placeholders of a live pack: the stable paths StackStorm reads.
    fn live_placeholders(&self, pack: &PackName) -> Placeholders {
        let current = self.layout.current(pack);
        Placeholders {
            pack: pack.clone(),
            pack_dir: self.layout.pack_link(pack),
            release_dir: ReleasePaths::at(current, pack).pack,
            venv_dir: self.layout.venv_link(pack),
            config_file: self.layout.config_link(pack),
        }
    }

    /// Takes `pack` offline: `[stackstorm] unregister`, then its links. Releases stay until gc.
    pub(super) fn remove(&self, pack: &PackName, from: Option<&Revision>) -> StepReport {
        let started = Instant::now();
        let mut report =
            StepReport::new(pack.clone(), Operation::Remove, from.cloned(), None, None);
        let result = self.unregister(pack).and_then(|()| {
            activate::unlink(&self.layout, pack)?;
            Ok(())
        });
        match result {
            Ok(()) => report.outcome = Outcome::Applied,
            Err(err) => report.error = Some(Report::new(&err)),
        }
        report.duration_ms = elapsed_ms(started);
        self.record(&report, None, None);
        (self.progress)(pack, Phase::Finished(report.outcome));
        report
    }

    fn unregister(&self, pack: &PackName) -> Result<(), StepError> {
        let Some(unregister) = &self.config.stackstorm.unregister else {
            return Ok(());
        };
        (self.progress)(pack, Phase::Doing("unregistering"));
        Ok(engine::run(
            Hook::Unregister,
            unregister,
            &self.live_placeholders(pack),
            &self.config.stackstorm,
        )?)
    }

    /// Writes the pack's record and history entry for a finished step. A store that cannot
    /// be written is logged: disk already says what is live, and the next run repairs the
    /// record from it.
    pub(super) fn record(
        &self,
        report: &StepReport,
        target: Option<&Revision>,
        env_inputs: Option<&crate::model::EnvInputs>,
    ) {
        let now = crate::model::now();
        let mut record = self
            .records
            .lock()
            .expect("no step panics while holding the records")
            .get(&report.pack)
            .cloned()
            .unwrap_or_default();
        record.unpurged = report.unpurged;
        match report.outcome {
            Outcome::Applied => {
                // Live and registered; when what follows (the purge, on a fleet the restart or
                // the health check) failed, that is the failure, and the next run retries a
                // purge.
                record.last_failure = report.error.as_ref().map(|error| Failure {
                    at: now,
                    operation: report.operation,
                    revision: target.cloned(),
                    error: error.one_line(),
                });
                match (&report.release, target, env_inputs) {
                    (Some(id), Some(revision), Some(env_inputs)) => {
                        if record.release(id).is_none() {
                            record.releases.insert(
                                0,
                                ReleaseRecord {
                                    id: id.clone(),
                                    revision: revision.clone(),
                                    env_inputs: env_inputs.clone(),
                                    built_at: now,
                                },
                            );
                        } else {
                            // Newest first: a release gone back to moves to the front.
                            let index = record
                                .releases
                                .iter()
                                .position(|r| &r.id == id)
                                .expect("found above");
                            let again = record.releases.remove(index);
                            record.releases.insert(0, again);
                        }
                        record.releases.truncate(self.config.agent.keep_releases);
                        record.active = Some(ActiveRelease {
                            id: id.clone(),
                            since: now,
                        });
                    }
                    _ => record.active = None,
                }
                record.adopted.extend(report.adopted.iter().cloned());
            }
            Outcome::Failed | Outcome::Reverted => {
                record.last_failure = Some(Failure {
                    at: now,
                    operation: report.operation,
                    revision: target.cloned(),
                    error: report
                        .error
                        .as_ref()
                        .map_or_else(String::new, Report::one_line),
                });
            }
        }
        let entry = HistoryEntry {
            at: now,
            run: self.run.id.clone(),
            host: self.run.host.clone(),
            pack: report.pack.clone(),
            operation: report.operation,
            from: report.from.clone(),
            to: report.to.clone(),
            release: report.release.clone(),
            outcome: report.outcome,
            error: report.error.as_ref().map(Report::one_line),
            duration_ms: report.duration_ms,
        };
        if let Err(err) = self.store.save(&report.pack, &record, Some(&entry)) {
            let write = crate::state::Held::Save {
                pack: report.pack.clone(),
                record: record.clone(),
                entry: Some(Box::new(entry)),
            };
            match crate::state::hold(&self.layout.state_dir, &write) {
                Ok(()) => {
                    tracing::error!(pack = %report.pack, error = %err, cause = err.source().map(ToString::to_string).unwrap_or_default(), "cannot record the step; held for the next run to write");
                }
                Err(not_held) => {
                    tracing::error!(pack = %report.pack, error = %err, not_held = %not_held, "cannot record the step, nor hold it; the next run repairs the record from disk");
                }
            }
        }
        self.records
            .lock()
            .expect("no step panics while holding the records")
            .insert(report.pack.clone(), record);
    }
}
