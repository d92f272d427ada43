//! `[schedule] cron`, read by the `cron` crate and asked in jiff's terms: the crate's chrono
//! types stay in this file, and the rest of packsync keeps one time crate.

use std::str::FromStr;
use std::time::Duration;

/// A cron schedule, seconds first (`0 */15 * * * *`), in UTC.
#[derive(Debug, Clone)]
pub struct Cron(::cron::Schedule);

impl FromStr for Cron {
    type Err = ::cron::error::Error;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        expression.parse().map(Self)
    }
}

impl Cron {
    /// The first time after `now` it fires; none when it never fires again.
    pub fn next_after(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let now = chrono::DateTime::from_timestamp(
            now.as_second(),
            now.subsec_nanosecond().try_into().ok()?,
        )?;
        let next = self.0.after(&now).next()?;
        jiff::Timestamp::new(
            next.timestamp(),
            next.timestamp_subsec_nanos().try_into().ok()?,
        )
        .ok()
    }

    /// The time between its next two runs.
    pub fn period(&self, now: jiff::Timestamp) -> Option<Duration> {
        let first = self.next_after(now)?;
        let second = self.next_after(first)?;
        Duration::try_from(second.duration_since(first)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: &str) -> jiff::Timestamp {
        time.parse().expect("a valid timestamp")
    }

    #[test]
    fn the_next_run_is_the_first_match_after_now() {
        let cron: Cron = "0 */15 * * * *".parse().expect("a valid cron expression");
        assert_eq!(
            cron.next_after(at("2026-12-07T22:07:30.5Z")),
            Some(at("2026-12-07T22:15:00Z"))
        );
        // On a match, the next one.
        assert_eq!(
            cron.next_after(at("2026-12-07T22:15:00Z")),
            Some(at("2026-12-07T22:30:00Z"))
        );
        assert_eq!(
            cron.period(at("2026-12-07T22:07:30Z")),
            Some(Duration::from_mins(15))
        );
    }

    #[test]
    fn a_schedule_that_has_passed_never_fires() {
        let cron: Cron = "0 0 0 1 1 * 2020".parse().expect("a valid cron expression");
        assert_eq!(cron.next_after(at("2026-12-07T00:00:00Z")), None);
        assert_eq!(cron.period(at("2026-12-07T00:00:00Z")), None);
    }
}
