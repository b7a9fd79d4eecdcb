//! The one clock of a delivery: wall-clock milliseconds since the Unix epoch, injected (tests pin
//! it, production reads the system clock). Nothing else in `forward/` or the handler reads the
//! system's wall clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; tests pin it, production reads the system clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// Now, in milliseconds since the Unix epoch, by the system clock (only [`system_clock`] and
/// tests read it).
pub(crate) fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time (the number itself when out of range).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}
