//! A window over the last N outcomes instead of the last N seconds.

use std::{
    fmt,
    sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering},
};

use crate::HealthCounts;

const EMPTY: u8 = 0;
const OK: u8 = 1;
const ERROR: u8 = 2;

/// The health of the last `size` outcomes, recorded from any number of threads without a lock.
///
/// Each outcome overwrites the oldest one in a ring; running totals are adjusted by what was
/// overwritten, so [`health`](Self::health) costs two loads.
///
/// ```
/// use hystrix_core::CountWindow;
///
/// let w = CountWindow::new(3).unwrap();
/// w.record(true); // an error
/// w.record(true);
/// w.record(false); // a success
/// w.record(false); // the first error falls out
/// let h = w.health();
/// assert_eq!((h.total, h.errors), (3, 1));
/// ```
pub struct CountWindow {
    cursor: AtomicU64,
    slots: Box<[AtomicU8]>,
    total: AtomicI64,
    errors: AtomicI64,
}

impl CountWindow {
    /// The largest window.
    pub const MAX_SIZE: u32 = 1 << 20;

    /// A window over the last `size` outcomes (1 to [`MAX_SIZE`](Self::MAX_SIZE)).
    pub fn new(size: u32) -> Option<Self> {
        if size == 0 || size > Self::MAX_SIZE {
            return None;
        }
        Some(Self {
            cursor: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU8::new(EMPTY)).collect(),
            total: AtomicI64::new(0),
            errors: AtomicI64::new(0),
        })
    }

    /// The number of outcomes the window holds.
    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Records one outcome: `true` for an error.
    #[inline]
    pub fn record(&self, error: bool) {
        let pos = self.cursor.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(pos % self.slots.len() as u64) as usize];
        self.replace(slot, if error { ERROR } else { OK });
    }

    /// The counts of the outcomes now in the window.
    pub fn health(&self) -> HealthCounts {
        let total = self.total.load(Ordering::Acquire).max(0) as u64;
        let errors = self.errors.load(Ordering::Acquire).clamp(0, total as i64) as u64;
        HealthCounts { total, errors }
    }

    /// Forgets every outcome.
    pub fn reset(&self) {
        for slot in self.slots.iter() {
            self.replace(slot, EMPTY);
        }
    }

    #[inline]
    fn replace(&self, slot: &AtomicU8, new: u8) {
        let old = slot.swap(new, Ordering::AcqRel);
        let total = i64::from(new != EMPTY) - i64::from(old != EMPTY);
        let errors = i64::from(new == ERROR) - i64::from(old == ERROR);
        if total != 0 {
            self.total.fetch_add(total, Ordering::AcqRel);
        }
        if errors != 0 {
            self.errors.fetch_add(errors, Ordering::AcqRel);
        }
    }
}

impl fmt::Debug for CountWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountWindow")
            .field("size", &self.size())
            .field("health", &self.health())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bounds() {
        assert!(CountWindow::new(0).is_none());
        assert!(CountWindow::new(CountWindow::MAX_SIZE + 1).is_none());
        assert_eq!(CountWindow::new(5).unwrap().size(), 5);
    }

    #[test]
    fn reset_forgets() {
        let w = CountWindow::new(4).unwrap();
        for _ in 0..6 {
            w.record(true);
        }
        assert_eq!(w.health().errors, 4);
        w.reset();
        assert_eq!(w.health(), HealthCounts::default());
        w.record(false);
        assert_eq!(w.health().total, 1);
    }
}
