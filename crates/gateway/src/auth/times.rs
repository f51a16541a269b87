//! When a token is valid, to the sub-second: from `nbf` − leeway until `exp` + leeway.
//!
//! "Now" is the wall clock with its fraction: counted in whole seconds, a connection would be
//! closed up to a second late. A connection's close timer is set for `exp` + leeway − now
//! (saturating, so a token already inside its leeway gets only what is left of it), and never
//! further ahead than [`LONGEST_TIMER`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::AuthError;

/// The furthest ahead a close timer is set (about ten years; a token that outlives it keeps its
/// connection until the next `refresh` or reconnect resets the timer). Keeps every deadline far
/// inside what `Instant` and the runtime's timer can hold.
pub const LONGEST_TIMER: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Now, as time since the Unix epoch, with its fraction.
pub(super) fn now() -> Duration {
    // A clock before 1970 is broken; treat it as the epoch rather than fail every token.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Checks `exp` and `nbf` (Unix seconds) against `now`, both with `leeway`.
pub(super) fn check(exp: u64, nbf: Option<u64>, leeway: Duration, now: Duration) -> Result<(), AuthError> {
    if now >= Duration::from_secs(exp).saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = nbf
        && Duration::from_secs(nbf) > now.saturating_add(leeway)
    {
        let wait = Duration::from_secs(nbf).saturating_sub(now).as_secs();
        return Err(AuthError::Invalid(format!("token not valid before its nbf ({nbf}, {wait} s from now)")));
    }
    Ok(())
}

/// How long after `now` a connection whose token expires at `exp` may go on: until `exp` +
/// `leeway`, at least zero, at most [`LONGEST_TIMER`].
pub fn time_left_at(exp: u64, leeway: Duration, now: Duration) -> Duration {
    Duration::from_secs(exp).saturating_add(leeway).saturating_sub(now).min(LONGEST_TIMER)
}

/// [`time_left_at`] from the current time.
pub fn time_left(exp: u64, leeway: Duration) -> Duration {
    time_left_at(exp, leeway, now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_deadline_is_exp_plus_leeway_to_the_millisecond() {
        let now = S(1000) + Duration::from_millis(750);
        // 3 s past exp with a 5 s leeway: 2 s are left of the leeway, not 5.
        assert_eq!(time_left_at(997, S(5), S(1000)), S(2));
        // A fraction of a second into the second counts.
        assert_eq!(time_left_at(1001, Duration::ZERO, now), Duration::from_millis(250));
        assert_eq!(time_left_at(900, S(5), now), Duration::ZERO);
    }

    #[test]
    fn no_time_overflows_and_timers_are_clamped() {
        for exp in [u64::MAX, super::super::claims::LATEST] {
            assert_eq!(time_left_at(exp, S(5), now()), LONGEST_TIMER);
            assert_eq!(time_left_at(exp, Duration::MAX, Duration::ZERO), LONGEST_TIMER);
            // Only that nothing panics: extreme leeways and clocks.
            let _ = check(exp, Some(exp), Duration::MAX, Duration::MAX);
            let _ = check(exp, Some(u64::MAX), S(5), Duration::ZERO);
        }
        assert_eq!(time_left_at(0, Duration::ZERO, Duration::MAX), Duration::ZERO);
    }

    #[test]
    fn exp_and_nbf_both_get_the_leeway() {
        let now = S(1000) + Duration::from_millis(100);
        assert!(check(996, None, S(5), now).is_ok(), "4.1 s past exp, inside a 5 s leeway");
        assert_eq!(check(995, None, S(5), now), Err(AuthError::Expired));
        assert!(check(2000, Some(1005), S(5), now).is_ok(), "4.9 s before nbf, inside the leeway");
        let err = check(9000, Some(4600), S(5), now).unwrap_err();
        assert_eq!(err, AuthError::Invalid("token not valid before its nbf (4600, 3599 s from now)".into()));
    }
}
