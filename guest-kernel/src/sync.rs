//! A spinlock that also keeps interrupts off while held, so interrupt handlers can take
//! the same locks as the code they interrupt (the kernel runs on one CPU).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::cpu;

pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    #[track_caller]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let irq_was_on = cpu::disable_interrupts();
        // Acquire pairs with the Release in `SpinGuard::drop` of the previous holder. With
        // one CPU and interrupts off, a held lock can never be released while we spin: it
        // is a re-entrant use, a kernel bug worth a clear panic rather than a hang.
        if self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            panic!("spinlock taken twice (deadlock) at {}", core::panic::Location::caller());
        }
        SpinGuard { lock: self, irq_was_on }
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    irq_was_on: bool,
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
    fn drop(&mut self) {
        // Release pairs with the Acquire in `SpinLock::lock` of the next holder.
        self.lock.locked.store(false, Ordering::Release);
        if self.irq_was_on {
            cpu::enable_interrupts();
        }
    }
}
