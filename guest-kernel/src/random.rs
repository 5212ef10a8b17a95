//! Kernel randomness for `getrandom`, `/dev/urandom` and AT_RANDOM: a xorshift generator
//! seeded from the TSC (and RDRAND when the CPU has it). Not cryptographic.

use crate::sync::SpinLock;

static STATE: SpinLock<u64> = SpinLock::new(0);

fn seed() -> u64 {
    let mut s = crate::time::rdtsc() | 1;
    if crate::arch::cpu::cpuid(1, 0)[2] & (1 << 30) != 0 {
        let mut r: u64;
        let ok: u8;
        // SAFETY: RDRAND exists (CPUID.1:ECX.30) and only writes registers.
        unsafe { core::arch::asm!("rdrand {}", "setc {}", out(reg) r, out(reg_byte) ok, options(nomem, nostack)) };
        if ok != 0 {
            s ^= r;
        }
    }
    s
}

fn next(state: &mut u64) -> u64 {
    if *state == 0 {
        *state = seed();
    }
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    let mut state = STATE.lock();
    for chunk in buf.chunks_mut(8) {
        let bytes = next(&mut state).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}
