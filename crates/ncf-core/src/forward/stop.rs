//! One way to stop: the invocation's time nearly up, the command interrupted, or the object's
//! lease lost. Each is a [`StopReason`]; [`Stop::reason`] is the one place that looks for them.
//! A delivery that stops starts no new batch: the puts in flight finish, the progress is
//! recorded, and the next attempt resumes there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Stop starting new batches when the Lambda has less than this left: in-flight puts finish,
/// the progress is recorded, and the next attempt resumes there. (At most a quarter of the
/// time an invocation starts with, so that short timeouts still make progress.)
pub const TIME_RESERVE: Duration = Duration::from_secs(20);

/// The moment after which no new batch is started, for an invocation that must end by
/// `deadline`.
pub fn stop_by(deadline: Instant, now: Instant) -> Instant {
    let left = deadline.saturating_duration_since(now);
    deadline - TIME_RESERVE.min(left / 4)
}

/// Why a delivery stopped starting batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The invocation's time is nearly up ([`stop_by`] passed).
    Deadline,
    /// The command was interrupted (ctrl-c; the Lambda never is).
    Interrupted,
    /// Another delivery took this object's lease over (it had expired: renewals failed).
    LeaseLost,
}

/// When the objects of one run (an invocation, a backfill) stop.
#[derive(Clone, Default)]
pub struct Stop {
    /// When to stop starting batches (from the Lambda deadline, see [`stop_by`]), if ever.
    pub by: Option<Instant>,
    /// The Lambda's deadline, if any: no lease outlasts it.
    pub deadline: Option<Instant>,
    /// Set by a local command on ctrl-c: like `by` reached, no new batch starts and what is
    /// confirmed is recorded (the Lambda never sets it).
    pub interrupted: Arc<AtomicBool>,
}

impl Stop {
    /// Why no new batch may start now, if it may not; `lease_lost` is the object's lease's
    /// flag, if it holds one.
    pub fn reason(&self, lease_lost: Option<&AtomicBool>) -> Option<StopReason> {
        if self.by.is_some_and(|by| Instant::now() >= by) {
            Some(StopReason::Deadline)
        } else if self.interrupted.load(Ordering::SeqCst) {
            Some(StopReason::Interrupted)
        } else if lease_lost.is_some_and(|l| l.load(Ordering::SeqCst)) {
            Some(StopReason::LeaseLost)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_by_keeps_a_reserve_but_never_most_of_a_short_timeout() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(stop_by(now + s(300), now), now + s(280));
        assert_eq!(stop_by(now + s(40), now), now + s(30));
        assert_eq!(stop_by(now + s(4), now), now + s(3));
        assert_eq!(stop_by(now, now), now);
    }

    #[test]
    fn the_deadline_comes_first_then_the_interrupt_then_the_lease() {
        let lost = AtomicBool::new(true);
        let mut stop = Stop::default();
        assert_eq!(stop.reason(None), None);
        assert_eq!(stop.reason(Some(&AtomicBool::new(false))), None);
        assert_eq!(stop.reason(Some(&lost)), Some(StopReason::LeaseLost));
        stop.interrupted.store(true, Ordering::SeqCst);
        assert_eq!(stop.reason(Some(&lost)), Some(StopReason::Interrupted));
        stop.by = Some(Instant::now());
        assert_eq!(stop.reason(Some(&lost)), Some(StopReason::Deadline));
        stop.by = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(stop.reason(None), Some(StopReason::Interrupted));
    }
}
