//! The one way anything packsync deploys goes live: stage -> gate -> switch -> register ->
//! settle, and back to what was live before when registration fails.
//!
//! A pack (`execute::step`) and a runner set (`runners`) are both units: built from Git and
//! the mirror into an immutable release, gated, made live by one link, registered with
//! StackStorm. What differs between them (where the release and its link live, what the gate
//! and registration run, what follows registration) is what a [`Unit`] says; the order, and
//! how to go back, is [`roll_out`]'s alone, so a third kind of unit needs no new path.

/// One kind of deployable thing, for one [`roll_out`].
pub trait Unit {
    /// What the unit's link points at: a pack's release id, a runner set's folder.
    type Release;
    type Error;

    /// The sealed release to go live: found on disk, or built now.
    fn stage(&mut self) -> Result<Self::Release, Self::Error>;
    /// Checks the staged release before anything is switched (a pack's `test`, the runners'
    /// health check); a release that fails never goes live.
    fn gate(&mut self, release: &Self::Release) -> Result<(), Self::Error>;
    /// What is live now, to go back to.
    fn live(&mut self) -> Result<Option<Self::Release>, Self::Error>;
    /// Makes `release` live: one atomic link rename.
    fn switch(&mut self, release: &Self::Release) -> Result<(), Self::Error>;
    /// Takes the link away: going back when nothing was live before.
    fn unlink(&mut self) -> Result<(), Self::Error>;
    /// Registers what is live with StackStorm.
    fn register(&mut self) -> Result<(), Self::Error>;
    /// What follows a registration that worked (a pack's purge, the runners' restart);
    /// `direction` says whether `live` is the new release or the previous one gone back to.
    fn settle(&mut self, live: &Self::Release, direction: Direction) -> Result<(), Self::Error>;
}

/// Which way a [`roll_out`] switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To the new release.
    Forward,
    /// Back to what was live before, after the new release failed to register.
    Back,
}

/// How a [`roll_out`] ended.
#[derive(Debug)]
pub enum RollOut<R, E> {
    /// The release is live and registered; `settled` is what followed registration.
    Live { settled: Result<(), E> },
    /// Staging, the gate or the switch failed.
    Failed(E),
    /// Registration failed and `previous` (or nothing) is linked again; `again` is its
    /// registration and settling (`Ok` when nothing was live before).
    Reverted {
        previous: Option<R>,
        register: E,
        again: Result<(), E>,
    },
    /// Registration failed, and linking what was live before failed too.
    Stuck {
        previous: Option<R>,
        register: E,
        undo: E,
    },
}

/// Takes `unit` live: stage -> gate -> switch -> register -> settle; when registration fails,
/// switches back to what was live before and registers that again.
pub fn roll_out<U: Unit>(unit: &mut U) -> RollOut<U::Release, U::Error> {
    let prepared = (|| {
        let release = unit.stage()?;
        unit.gate(&release)?;
        let previous = unit.live()?;
        unit.switch(&release)?;
        Ok((release, previous))
    })();
    let (release, previous) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return RollOut::Failed(err),
    };
    let register = match unit.register() {
        Ok(()) => {
            return RollOut::Live {
                settled: unit.settle(&release, Direction::Forward),
            };
        }
        Err(register) => register,
    };
    let relinked = match &previous {
        Some(previous) => unit.switch(previous),
        None => unit.unlink(),
    };
    if let Err(undo) = relinked {
        return RollOut::Stuck {
            previous,
            register,
            undo,
        };
    }
    let again = match &previous {
        Some(previous) => unit
            .register()
            .and_then(|()| unit.settle(previous, Direction::Back)),
        None => Ok(()),
    };
    RollOut::Reverted {
        previous,
        register,
        again,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit that logs what the pipeline asks of it and fails where told.
    #[derive(Default)]
    struct Logged {
        log: Vec<String>,
        live: Option<u32>,
        /// Which registrations fail, counted from 1.
        failing_registrations: Vec<usize>,
        registrations: usize,
        failing_gate: bool,
        failing_relink: bool,
    }

    impl Unit for Logged {
        type Release = u32;
        type Error = String;

        fn stage(&mut self) -> Result<u32, String> {
            self.log.push("stage 2".into());
            Ok(2)
        }
        fn gate(&mut self, release: &u32) -> Result<(), String> {
            self.log.push(format!("gate {release}"));
            if self.failing_gate {
                return Err("gate".into());
            }
            Ok(())
        }
        fn live(&mut self) -> Result<Option<u32>, String> {
            Ok(self.live)
        }
        fn switch(&mut self, release: &u32) -> Result<(), String> {
            if self.failing_relink && *release != 2 {
                return Err("relink".into());
            }
            self.log.push(format!("switch {release}"));
            self.live = Some(*release);
            Ok(())
        }
        fn unlink(&mut self) -> Result<(), String> {
            self.log.push("unlink".into());
            self.live = None;
            Ok(())
        }
        fn register(&mut self) -> Result<(), String> {
            self.registrations += 1;
            self.log.push(format!("register {:?}", self.live));
            if self.failing_registrations.contains(&self.registrations) {
                return Err(format!("register {}", self.registrations));
            }
            Ok(())
        }
        fn settle(&mut self, live: &u32, direction: Direction) -> Result<(), String> {
            self.log.push(format!("settle {live} {direction:?}"));
            Ok(())
        }
    }

    #[test]
    fn a_registered_release_is_settled() {
        let mut unit = Logged {
            live: Some(1),
            ..Logged::default()
        };
        assert!(matches!(
            roll_out(&mut unit),
            RollOut::Live { settled: Ok(()) }
        ));
        assert_eq!(
            unit.log,
            [
                "stage 2",
                "gate 2",
                "switch 2",
                "register Some(2)",
                "settle 2 Forward"
            ]
        );
    }

    #[test]
    fn a_release_that_fails_its_gate_is_never_switched() {
        let mut unit = Logged {
            live: Some(1),
            failing_gate: true,
            ..Logged::default()
        };
        assert!(matches!(roll_out(&mut unit), RollOut::Failed(err) if err == "gate"));
        assert_eq!(unit.log, ["stage 2", "gate 2"]);
        assert_eq!(unit.live, Some(1));
    }

    #[test]
    fn a_failed_registration_goes_back_to_the_previous_release_and_registers_it() {
        let mut unit = Logged {
            live: Some(1),
            failing_registrations: vec![1],
            ..Logged::default()
        };
        assert!(matches!(
            roll_out(&mut unit),
            RollOut::Reverted { previous: Some(1), register, again: Ok(()) } if register == "register 1"
        ));
        assert_eq!(
            unit.log,
            [
                "stage 2",
                "gate 2",
                "switch 2",
                "register Some(2)",
                "switch 1",
                "register Some(1)",
                "settle 1 Back"
            ]
        );
    }

    #[test]
    fn a_failed_registration_with_nothing_live_before_unlinks() {
        let mut unit = Logged {
            failing_registrations: vec![1],
            ..Logged::default()
        };
        assert!(matches!(
            roll_out(&mut unit),
            RollOut::Reverted {
                previous: None,
                again: Ok(()),
                ..
            }
        ));
        assert_eq!(unit.live, None);
        assert_eq!(unit.log.last().map(String::as_str), Some("unlink"));
    }

    #[test]
    fn both_registrations_failing_are_both_told() {
        let mut unit = Logged {
            live: Some(1),
            failing_registrations: vec![1, 2],
            ..Logged::default()
        };
        assert!(matches!(
            roll_out(&mut unit),
            RollOut::Reverted { previous: Some(1), register, again: Err(again) }
                if register == "register 1" && again == "register 2"
        ));
        assert_eq!(unit.live, Some(1));
    }

    #[test]
    fn a_failed_relink_is_stuck() {
        let mut unit = Logged {
            live: Some(1),
            failing_registrations: vec![1],
            failing_relink: true,
            ..Logged::default()
        };
        assert!(matches!(
            roll_out(&mut unit),
            RollOut::Stuck { previous: Some(1), undo, .. } if undo == "relink"
        ));
    }
}
