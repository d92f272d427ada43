//! One pack's step: build (export, virtualenv, config) -> gate -> seal -> switch -> register,
//! with the switch undone when registration fails; and the removal of a pack.
//!
//! Every step ends in a record: the pack's new record and a history entry. A step only ever
//! touches its own pack.

use std::error::Error as _;
use std::time::Instant;

use serde::Serialize;

use super::{Context, StepReport, elapsed_ms};
use crate::activate::{self, Adoption};
use crate::config::PackConfig;
use crate::diagnostics::Report;
use crate::engine::{self, Hook, Placeholders};
use crate::env::EnvOutcome;
use crate::model::{DesiredPack, PackName, ReleaseId, Revision};
use crate::source::Repo;
use crate::state::{ActiveRelease, Failure, HistoryEntry, Operation, Outcome, ReleaseRecord};
use crate::store::{self, ReleaseManifest, ReleasePaths};

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
    #[error("Release `{release}` of pack `{pack}` is not on disk any more")]
    ReleaseGone { pack: PackName, release: ReleaseId },
    /// Registration failed and so did going back; both are told.
    #[error("{register}; switching back to `{previous}` failed too: {undo}")]
    RollbackFailed {
        register: Box<StepError>,
        previous: String,
        undo: Box<StepError>,
    },
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

/// What the pack was before the switch, to go back to it.
enum Previous {
    Release(ReleaseId),
    /// Not live before; `adoptions` are what the switch moved aside.
    Nothing,
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
        let result = self
            .release(pack, desired, &id, &mut report)
            .and_then(|_| self.go_live(&pack.name, &id, &mut report));
        if let Err(err) = result {
            report.error = Some(Report::new(&err));
        }
        report.duration_ms = elapsed_ms(started);
        self.record(&report, Some(&desired.revision), Some(&desired.env_inputs));
        report
    }

    /// The sealed release `id`: found on disk, or built, gated and sealed now.
    fn release(
        &self,
        pack: &PackConfig,
        desired: &DesiredPack,
        id: &ReleaseId,
        report: &mut StepReport,
    ) -> Result<ReleasePaths, StepError> {
        if let Some(existing) = store::find(&self.layout, &pack.name, id) {
            // Its virtualenv is complete, or (broken by a crash) built again in place.
            report.env = Some(match self.ensure_env(&pack.name, desired)? {
                EnvReport::Reused => EnvReport::ReleaseReused,
                built => built,
            });
            return Ok(existing);
        }
        let staged = store::stage(&self.layout, &pack.name, id)?;
        let built = self.build(pack, desired, &staged, report);
        let gated = built.and_then(|()| self.gate(&pack.name, &staged));
        match gated {
            Ok(()) => {
                let manifest = ReleaseManifest {
                    pack: pack.name.clone(),
                    id: id.clone(),
                    revision: desired.revision.clone(),
                    env_inputs: desired.env_inputs.clone(),
                    built_at: crate::model::now(),
                };
                Ok(store::seal(&self.layout, staged, &manifest)?)
            }
            Err(err) => {
                if let Err(cleanup) = store::discard(&staged) {
                    tracing::warn!(pack = %pack.name, error = %cleanup, "cannot remove the staged release; the next run removes it");
                }
                Err(err)
            }
        }
    }

    /// Exports the pack tree, makes sure its virtualenv exists, writes the config.
    fn build(
        &self,
        pack: &PackConfig,
        desired: &DesiredPack,
        staged: &ReleasePaths,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
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
        (self.progress)(pack, "building its virtualenv");
        Ok(match self.builder.ensure(&env_dir, &desired.env_inputs)? {
            EnvOutcome::Built { pip: true } => EnvReport::Built,
            EnvOutcome::Built { pip: false } => EnvReport::BuiltEmpty,
            EnvOutcome::Reused => EnvReport::Reused,
        })
    }

    /// `[stackstorm] test` on the staged release.
    fn gate(&self, pack: &PackName, staged: &ReleasePaths) -> Result<(), StepError> {
        let Some(test) = &self.config.stackstorm.test else {
            return Ok(());
        };
        (self.progress)(pack, "testing the new release");
        let values = Placeholders {
            pack: pack.clone(),
            pack_dir: self.layout.pack_link(pack),
            release_dir: staged.pack.clone(),
            venv_dir: staged.venv.clone(),
            config_file: staged.config.clone(),
        };
        Ok(engine::run(
            Hook::Test,
            test,
            &values,
            self.config.stackstorm.command_timeout,
        )?)
    }

    /// Switches `pack` to the sealed release `id` and registers it; when registration fails,
    /// goes back to what was live before and registers that again.
    pub(super) fn go_live(
        &self,
        pack: &PackName,
        id: &ReleaseId,
        report: &mut StepReport,
    ) -> Result<(), StepError> {
        let previous = match activate::active(&self.layout, pack)? {
            Some(previous) => Previous::Release(previous),
            None => Previous::Nothing,
        };
        let has_config = self.layout.release(pack, id).config.exists();
        activate::switch(&self.layout, pack, id)?;
        report.adopted = activate::link(&self.layout, pack, has_config)?;
        let Err(register) = self.register(pack) else {
            report.outcome = Outcome::Applied;
            return Ok(());
        };
        tracing::info!(%pack, release = %id, error = %register, "registration failed; switching back");
        let undo = self.switch_back(pack, &previous, &report.adopted);
        report.outcome = Outcome::RolledBack;
        match undo {
            Ok(()) => Err(register),
            Err(undo) => Err(StepError::RollbackFailed {
                register: Box::new(register),
                previous: match &previous {
                    Previous::Release(previous) => previous.to_string(),
                    Previous::Nothing => "nothing".to_string(),
                },
                undo: Box::new(undo),
            }),
        }
    }

    fn switch_back(
        &self,
        pack: &PackName,
        previous: &Previous,
        adopted: &[Adoption],
    ) -> Result<(), StepError> {
        match previous {
            Previous::Release(previous) => {
                let has_config = self.layout.release(pack, previous).config.exists();
                activate::switch(&self.layout, pack, previous)?;
                activate::link(&self.layout, pack, has_config)?;
                self.register(pack)
            }
            Previous::Nothing => {
                // What `st2 pack install` had there goes back; then the pack's links go.
                activate::restore(adopted)?;
                activate::unlink(&self.layout, pack)?;
                Ok(())
            }
        }
    }

    /// `[stackstorm] register` for the live release of `pack`.
    pub(super) fn register(&self, pack: &PackName) -> Result<(), StepError> {
        let Some(register) = &self.config.stackstorm.register else {
            return Ok(());
        };
        (self.progress)(pack, "registering");
        Ok(engine::run(
            Hook::Register,
            register,
            &self.live_placeholders(pack),
            self.config.stackstorm.command_timeout,
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
        report
    }

    fn unregister(&self, pack: &PackName) -> Result<(), StepError> {
        let Some(unregister) = &self.config.stackstorm.unregister else {
            return Ok(());
        };
        (self.progress)(pack, "unregistering");
        Ok(engine::run(
            Hook::Unregister,
            unregister,
            &self.live_placeholders(pack),
            self.config.stackstorm.command_timeout,
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
        match report.outcome {
            Outcome::Applied => {
                record.last_failure = None;
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
            Outcome::Failed | Outcome::RolledBack => {
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
            tracing::error!(pack = %report.pack, error = %err, cause = ?err.source().map(ToString::to_string), "cannot record the step; the next run repairs the record from disk");
        }
        self.records
            .lock()
            .expect("no step panics while holding the records")
            .insert(report.pack.clone(), record);
    }
}
