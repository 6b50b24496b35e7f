//! Cumulative totals striped over cache lines, so that threads counting at once do not write
//! the same line: Java's `LongAdder`, which Hystrix's counters are built on, does the same.
//!
//! A thread that counts claims a stripe of its own the first time, and gives it back when it
//! exits; a thread that finds none free counts on the one stripe they share. A total is the sum
//! of its stripes. Every stripe only grows, so a sum read later is never smaller than one read
//! earlier, which is all the rolling counter's snapshots need.
//!
//! A stripe of its own is written by one thread only, so its owner adds with a load and a
//! store rather than a locked read-modify-write: the write every counted event costs is then an
//! ordinary one. The shared stripe is added to with `fetch_add`. Ownership passes from a thread
//! that exits to the next that claims the stripe through a release store and an acquiring
//! compare-exchange, so the new owner starts from every count the old one made.

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

/// The most stripes a thread can own.
const MAX_OWNED: usize = 8;
const PER_LINE: usize = 8;

#[repr(align(64))]
struct Line([AtomicU64; PER_LINE]);

/// `count` cumulative totals, each striped over the owned stripes and the shared one.
pub(crate) struct Totals {
    lines: Box<[Line]>,
    /// Lines per stripe.
    stride: usize,
    /// Owned stripes, then the shared one.
    stripes: usize,
}

impl Totals {
    pub(crate) fn new(count: usize) -> Self {
        let stride = count.div_ceil(PER_LINE).max(1);
        let stripes = owned_stripes() + 1;
        Self {
            lines: (0..stride * stripes)
                .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            stride,
            stripes,
        }
    }

    /// Bytes of heap the totals of `count` events take.
    pub(crate) fn heap_bytes(count: usize) -> usize {
        count.div_ceil(PER_LINE).max(1) * (owned_stripes() + 1) * std::mem::size_of::<Line>()
    }

    /// Adds `n` to total `i` (less than `count`), on this thread's stripe.
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        let stripe = this_thread();
        let at = stripe.min(self.stripes - 1) * self.stride * PER_LINE + i;
        let total = &self.lines[at / PER_LINE].0[at % PER_LINE];
        if stripe < self.stripes - 1 {
            // This thread's own: nobody else writes it.
            total.store(
                total.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            total.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Total `i`: the sum of its stripes.
    pub(crate) fn load(&self, i: usize) -> u64 {
        (0..self.stripes).fold(0u64, |sum, stripe| {
            let at = stripe * self.stride * PER_LINE + i;
            sum.wrapping_add(self.lines[at / PER_LINE].0[at % PER_LINE].load(Ordering::Acquire))
        })
    }
}

/// Stripes a thread can own: the machine's parallelism, at least 2, at most [`MAX_OWNED`].
fn owned_stripes() -> usize {
    static OWNED: OnceLock<usize> = OnceLock::new();
    *OWNED.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(2, MAX_OWNED)
    })
}

/// Which stripes are owned by a live thread.
static CLAIMED: [AtomicBool; MAX_OWNED] = [const { AtomicBool::new(false) }; MAX_OWNED];

/// A thread's stripe: one it owns, given back when the thread exits, or `SHARED`.
struct Claim(usize);

/// Above every owned stripe: the totals place it on their shared stripe.
const SHARED: usize = usize::MAX;

impl Claim {
    fn take() -> Self {
        let owned = owned_stripes();
        Self(
            CLAIMED[..owned]
                .iter()
                .position(|c| {
                    c.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                })
                .unwrap_or(SHARED),
        )
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(claimed) = CLAIMED.get(self.0) {
            claimed.store(false, Ordering::Release);
        }
    }
}

/// This thread's stripe: below [`owned_stripes`] if it owns one, else [`SHARED`] (also while
/// the thread's locals are being destroyed).
#[inline]
fn this_thread() -> usize {
    thread_local! {
        static CLAIM: Claim = Claim::take();
    }
    CLAIM.try_with(|c| c.0).unwrap_or(SHARED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_counting_at_once_sum_exactly() {
        let totals = Totals::new(19);
        std::thread::scope(|s| {
            for t in 0..6u64 {
                let totals = &totals;
                s.spawn(move || {
                    for i in 0..1_000 {
                        totals.add((i % 19) as usize, t + 1);
                    }
                });
            }
        });
        // Each thread added its `t + 1` to each total about 1000 / 19 times.
        let expected = |i: usize| {
            let per_thread = (0..1_000).filter(|k| k % 19 == i).count() as u64;
            per_thread * (1..=6).sum::<u64>()
        };
        for i in 0..19 {
            assert_eq!(totals.load(i), expected(i), "total {i}");
        }
    }

    /// Stripes pass from threads that exit to threads that start, in waves of more threads
    /// than there are stripes to own: no count is lost on the way.
    #[test]
    fn stripes_handed_on_by_exiting_threads_keep_every_count() {
        let totals = Totals::new(3);
        for wave in 0..20u64 {
            std::thread::scope(|s| {
                for t in 0..(owned_stripes() as u64 + 2) {
                    let totals = &totals;
                    s.spawn(move || {
                        for i in 0..30_000u64 {
                            totals.add((i % 3) as usize, wave + t);
                        }
                    });
                }
            });
        }
        let threads = owned_stripes() as u64 + 2;
        let per_wave = |wave: u64| (0..threads).map(|t| (wave + t) * 10_000).sum::<u64>();
        for i in 0..3 {
            assert_eq!(
                totals.load(i),
                (0..20).map(per_wave).sum::<u64>(),
                "total {i}"
            );
        }
    }

    #[test]
    fn stripes_do_not_share_a_line() {
        let totals = Totals::new(19);
        assert_eq!(totals.stride, 3);
        assert_eq!(totals.stripes, owned_stripes() + 1);
        assert_eq!(totals.lines.len(), 3 * totals.stripes);
        assert_eq!(std::mem::align_of::<Line>(), 64);
        assert_eq!(Totals::heap_bytes(19), totals.lines.len() * 64);
    }
}
