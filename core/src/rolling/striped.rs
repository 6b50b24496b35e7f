//! Cumulative totals striped over cache lines, so that threads counting at once do not write
//! the same line: Java's `LongAdder`, which Hystrix's counters are built on, does the same.
//!
//! Each thread is given a stripe, round robin, the first time it counts; a total is the sum
//! of its stripes. Every stripe only grows, so a sum read later is never smaller than one read
//! earlier, which is all the rolling counter's snapshots need.

use std::{
    cell::Cell,
    sync::{
        OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

/// The most stripes a set of totals has.
const MAX_STRIPES: usize = 8;
const PER_LINE: usize = 8;

#[repr(align(64))]
struct Line([AtomicU64; PER_LINE]);

/// `count` cumulative totals, each striped over up to [`MAX_STRIPES`] cache lines.
pub(crate) struct Totals {
    lines: Box<[Line]>,
    /// Lines per stripe.
    stride: usize,
    /// A power of two.
    stripes: usize,
}

impl Totals {
    pub(crate) fn new(count: usize) -> Self {
        let stride = count.div_ceil(PER_LINE).max(1);
        let stripes = stripes();
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
        count.div_ceil(PER_LINE).max(1) * stripes() * std::mem::size_of::<Line>()
    }

    /// Adds `n` to total `i` (less than `count`), on this thread's stripe.
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        let stripe = this_thread() & (self.stripes - 1);
        let at = stripe * self.stride * PER_LINE + i;
        self.lines[at / PER_LINE].0[at % PER_LINE].fetch_add(n, Ordering::Relaxed);
    }

    /// Total `i`: the sum of its stripes.
    pub(crate) fn load(&self, i: usize) -> u64 {
        (0..self.stripes).fold(0u64, |sum, stripe| {
            let at = stripe * self.stride * PER_LINE + i;
            sum.wrapping_add(self.lines[at / PER_LINE].0[at % PER_LINE].load(Ordering::Acquire))
        })
    }
}

/// Stripes per set of totals: the machine's parallelism, rounded up to a power of two, at
/// most [`MAX_STRIPES`].
fn stripes() -> usize {
    static STRIPES: OnceLock<usize> = OnceLock::new();
    *STRIPES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .next_power_of_two()
            .min(MAX_STRIPES)
    })
}

/// This thread's stripe number, below [`MAX_STRIPES`] (the totals mask it to their own
/// number of stripes); `usize::MAX` in the cell means not given yet.
#[inline]
fn this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        let mut s = stripe.get();
        if s == usize::MAX {
            s = NEXT.fetch_add(1, Ordering::Relaxed) % MAX_STRIPES;
            stripe.set(s);
        }
        s
    })
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

    #[test]
    fn stripes_do_not_share_a_line() {
        let totals = Totals::new(19);
        assert_eq!(totals.stride, 3);
        assert_eq!(totals.lines.len(), 3 * totals.stripes);
        assert_eq!(std::mem::align_of::<Line>(), 64);
        assert_eq!(Totals::heap_bytes(19), totals.lines.len() * 64);
    }
}
