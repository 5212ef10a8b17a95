//! A spinlock that also keeps interrupts off while held, so interrupt handlers can take
//! the same locks as the code they interrupt, on this CPU or another.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::arch::cpu;

pub struct SpinLock<T> {
    /// 0 when free, else the holder's CPU index + 1 (so a CPU that finds itself the
    /// holder knows it is a re-entrant use, a deadlock, and says so).
    owner: AtomicU32,
    value: UnsafeCell<T>,
}

/// Spin locks held now on each CPU: code that would sleep checks it is 0 (a holder must
/// not sleep: the next task to take the lock would find it taken).
static HELD: [AtomicU32; cpu::MAX_CPUS] = [const { AtomicU32::new(0) }; cpu::MAX_CPUS];

/// How many spin locks this CPU holds now.
pub fn spinlocks_held() -> u32 {
    HELD[cpu::index()].load(Ordering::Relaxed)
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        Self { owner: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    #[track_caller]
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let irq_was_on = cpu::disable_interrupts();
        let me = cpu::index();
        // Acquire pairs with the Release in `SpinGuard::drop` of the previous holder.
        if let Err(owner) = self.owner.compare_exchange(0, me as u32 + 1, Ordering::Acquire, Ordering::Relaxed) {
            self.spin(owner, me, core::panic::Location::caller());
        }
        HELD[me].fetch_add(1, Ordering::Relaxed);
        SpinGuard { lock: self, irq_was_on, cpu: me as u32 }
    }

    /// Waits for another CPU to release the lock (reading only, so the holder's line is
    /// not stolen), then takes it. Held by this CPU, which has interrupts off, it can never
    /// be released: a re-entrant use, a kernel bug worth a clear panic rather than a hang.
    #[cold]
    #[inline(never)]
    fn spin(&self, mut owner: u32, me: usize, at: &core::panic::Location) {
        loop {
            if owner == me as u32 + 1 {
                taken_twice(at);
            }
            while self.owner.load(Ordering::Relaxed) != 0 {
                cpu::relax();
            }
            match self.owner.compare_exchange(0, me as u32 + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return,
                Err(o) => owner = o,
            }
        }
    }

    /// Takes the lock if it is free (the shrinker, which may run inside a holder's
    /// allocation, skips what it cannot take).
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        let irq_was_on = cpu::disable_interrupts();
        let me = cpu::index();
        if self.owner.compare_exchange(0, me as u32 + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            if irq_was_on {
                cpu::enable_interrupts();
            }
            return None;
        }
        HELD[me].fetch_add(1, Ordering::Relaxed);
        Some(SpinGuard { lock: self, irq_was_on, cpu: me as u32 })
    }
}

/// Out of line, so `lock` stays small enough to inline.
#[cold]
#[inline(never)]
fn taken_twice(at: &core::panic::Location) -> ! {
    panic!("spinlock taken twice (deadlock) at {at}");
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    irq_was_on: bool,
    /// The holder's CPU (interrupts stay off while held: the task cannot move).
    cpu: u32,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release pairs with the Acquire in `SpinLock::lock` of the next holder.
        self.lock.owner.store(0, Ordering::Release);
        HELD[self.cpu as usize].fetch_sub(1, Ordering::Relaxed);
        if self.irq_was_on {
            cpu::enable_interrupts();
        }
    }
}

/// A sleeping lock (Linux's `struct mutex`): a holder may block while holding it, and
/// other tasks wanting it sleep until it is released. Never taken in interrupt handlers.
/// Used where a lock must span a sleep, such as a file position across a device read
/// (Linux's `f_pos_lock`); a [`SpinLock`] held across a sleep is a bug. Uncontended, it
/// is one compare-and-swap to take and one store to release.
pub struct Mutex<T> {
    locked: AtomicBool,
    /// Tasks waiting for it (the releaser wakes them only if there are any).
    sleepers: core::sync::atomic::AtomicUsize,
    waiters: crate::task::wait::WaitQueue,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            sleepers: core::sync::atomic::AtomicUsize::new(0),
            waiters: crate::task::wait::WaitQueue::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, sleeping (uninterruptibly) while another task holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            // SeqCst with the release path: either the releaser sees us counted and
            // wakes us, or we see the lock free in our wait condition.
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            self.waiters.wait_uninterruptible(|| !self.locked.load(Ordering::SeqCst));
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Takes the lock if it is free now (the nonblocking path of io_uring's issue).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // Acquire pairs with the Release (SeqCst) store in `MutexGuard::drop`.
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).ok()?;
        Some(MutexGuard { lock: self })
    }
}

pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::SeqCst);
        if self.lock.sleepers.load(Ordering::SeqCst) != 0 {
            self.lock.waiters.wake_all();
        }
    }
}
