//! Warnings a guest can cause at will (bad register accesses, malformed requests, host
//! I/O errors it can repeat), counted per kind and logged with a rate limit, so that a
//! guest cannot fill the host's disk through the VMM's log.
//!
//! Each kind logs its first [`BURST`] warnings, then at most one per [`INTERVAL_MS`],
//! which says how many were left out since the last one. Every warning is counted;
//! `vmm run --stats` prints the counts.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Warnings of one kind logged before the rate limit applies.
pub const BURST: u64 = 10;
/// After the burst, at most one warning of a kind per this many milliseconds.
pub const INTERVAL_MS: u64 = 10_000;

/// The counters of one kind of warning.
pub struct GuestErrors {
    /// Short name, for `--stats`.
    pub name: &'static str,
    /// What is counted, for the log ("bad virtio-blk requests").
    pub what: &'static str,
    burst: u64,
    interval_ms: u64,
    count: AtomicU64,
    logged: AtomicU64,
    /// Counted but not logged since the last logged one.
    skipped: AtomicU64,
    /// Milliseconds (of [`now_ms`]) before which nothing more is logged; `u64::MAX` until
    /// the burst is over.
    next_ms: AtomicU64,
}

/// Bad accesses to the virtio-mmio registers and config space.
pub static MMIO: GuestErrors = GuestErrors::new("mmio", "bad virtio-mmio accesses");
/// virtio-blk requests answered with IOERR or UNSUPP for the driver's mistakes.
pub static BLK: GuestErrors = GuestErrors::new("virtio-blk", "bad virtio-blk requests");
/// 9p messages that do not parse, or replies that do not fit.
pub static P9: GuestErrors = GuestErrors::new("9p", "bad 9p messages");
/// Broken descriptor chains and other errors that put a device in DEVICE_NEEDS_RESET.
pub static DEVICE: GuestErrors = GuestErrors::new("needs-reset", "virtio devices needing a reset");
/// Host I/O errors of disk requests (answered with IOERR), and frames the tap refused.
pub static HOST_IO: GuestErrors = GuestErrors::new("host-io", "host I/O errors");
/// virtio-net frames the device dropped for the driver's mistakes (bad length, offloads
/// asked for); logged at debug level only.
pub static NET: GuestErrors = GuestErrors::new("virtio-net", "bad virtio-net frames");

/// Every kind, in the order `--stats` prints them.
pub static ALL: [&GuestErrors; 6] = [&MMIO, &BLK, &P9, &DEVICE, &HOST_IO, &NET];

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What [`GuestErrors::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Log it.
    Log,
    /// Log it, and say that `n` were left out before it.
    LogAfterSkipping(u64),
    /// The last of the burst: log it and say that the limit starts.
    LogLastOfBurst,
    /// Count it only.
    Skip,
}

impl GuestErrors {
    pub const fn new(name: &'static str, what: &'static str) -> Self {
        Self::with_limits(name, what, BURST, INTERVAL_MS)
    }

    /// `burst` must be at least 1.
    pub const fn with_limits(name: &'static str, what: &'static str, burst: u64, interval_ms: u64) -> Self {
        Self {
            name,
            what,
            burst,
            interval_ms,
            count: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            next_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Counts one warning and says whether to log it.
    pub fn admit(&self) -> Admit {
        let n = self.count.fetch_add(1, Relaxed) + 1;
        if n < self.burst {
            self.logged.fetch_add(1, Relaxed);
            return Admit::Log;
        }
        let now = now_ms();
        if n == self.burst {
            self.next_ms.store(now + self.interval_ms, Relaxed);
            self.logged.fetch_add(1, Relaxed);
            return Admit::LogLastOfBurst;
        }
        let next = self.next_ms.load(Relaxed);
        // One thread wins each interval; the others count.
        if now >= next && self.next_ms.compare_exchange(next, now + self.interval_ms, Relaxed, Relaxed).is_ok() {
            self.logged.fetch_add(1, Relaxed);
            return Admit::LogAfterSkipping(self.skipped.swap(0, Relaxed));
        }
        self.skipped.fetch_add(1, Relaxed);
        Admit::Skip
    }

    /// Warnings counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Warnings logged so far.
    pub fn logged(&self) -> u64 {
        self.logged.load(Relaxed)
    }

    /// The interval, in seconds (for the log line that announces the limit).
    pub fn interval_secs(&self) -> u64 {
        self.interval_ms / 1000
    }
}

/// `log::warn!` for a warning the guest can cause: counted in `$kind` (a
/// [`GuestErrors`]) and logged within its rate limit.
#[macro_export]
macro_rules! guest_warn {
    ($kind:expr, $($arg:tt)+) => {{
        let kind: &$crate::devices::guest_errors::GuestErrors = &$kind;
        match kind.admit() {
            $crate::devices::guest_errors::Admit::Skip => {}
            $crate::devices::guest_errors::Admit::Log => log::warn!($($arg)+),
            $crate::devices::guest_errors::Admit::LogLastOfBurst => log::warn!(
                "{} (further {} are logged at most once every {} s; --stats counts them)",
                format_args!($($arg)+), kind.what, kind.interval_secs()
            ),
            $crate::devices::guest_errors::Admit::LogAfterSkipping(n) => {
                log::warn!("{} ({n} more {} not logged)", format_args!($($arg)+), kind.what)
            }
        }
    }};
}

/// One line for `--stats`: each kind's count.
pub fn stats_line() -> String {
    let counts: Vec<String> = ALL.iter().map(|k| format!("{} {}", k.name, k.count())).collect();
    let logged: u64 = ALL.iter().map(|k| k.logged()).sum();
    format!("vmm: warnings: {} ({logged} logged)", counts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_counted_but_logged_a_burst_then_once_per_interval() {
        let kind = GuestErrors::with_limits("t", "test warnings", 5, 60_000);
        let decisions: Vec<Admit> = (0..100_000).map(|_| kind.admit()).collect();
        assert_eq!(kind.count(), 100_000);
        assert_eq!(kind.logged(), 5, "the burst only, within one interval");
        assert!(decisions[..4].iter().all(|d| *d == Admit::Log));
        assert_eq!(decisions[4], Admit::LogLastOfBurst);
        assert!(decisions[5..].iter().all(|d| *d == Admit::Skip));
    }

    #[test]
    fn after_the_interval_one_line_says_how_many_were_left_out() {
        let kind = GuestErrors::with_limits("t", "test warnings", 2, 50);
        for _ in 0..2 {
            assert_ne!(kind.admit(), Admit::Skip);
        }
        for _ in 0..7 {
            assert_eq!(kind.admit(), Admit::Skip);
        }
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(kind.admit(), Admit::LogAfterSkipping(7));
        assert_eq!(kind.admit(), Admit::Skip);
        assert_eq!((kind.count(), kind.logged()), (11, 3));
    }

    #[test]
    fn threads_share_the_limit() {
        let kind = std::sync::Arc::new(GuestErrors::with_limits("t", "test warnings", 3, 60_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let kind = kind.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| kind.admit() != Admit::Skip).count())
            })
            .collect();
        let logged: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(logged, 3);
        assert_eq!(kind.count(), 40_000);
    }
}
