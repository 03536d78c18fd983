//! Spreading waiters and writers that collided, so they do not come back
//! together: a counter, not a random source, is all that takes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A pause of `min_ms` plus up to `spread_ms` more, different for each
/// caller: writers or waiters that collided do not come back together.
/// (A counter, not a random source: spreading is all it needs.)
pub(crate) fn spread(min_ms: u64, spread_ms: u64) -> Duration {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let offset = NEXT.fetch_add(37, Ordering::Relaxed) % spread_ms.max(1);
    Duration::from_millis(min_ms + offset)
}

/// `pause`, give or take a quarter.
pub(crate) fn jittered(pause: Duration) -> Duration {
    let quarter = (pause.as_millis() as u64 / 4).max(1);
    spread(pause.as_millis() as u64 - quarter, 2 * quarter)
}
