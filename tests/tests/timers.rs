//! Kernel timers: one-shot deadlines in one ordered structure, removed when the request
//! that armed them ends, with microsecond resolution; under `vmm run` (KVM, LAPIC in
//! TSC-deadline mode where offered) and QEMU (TCG, one-shot mode).

use tests::{boot, boot_rootfs, on_both_platforms, Platform};

/// The number right after the first occurrence of `prefix` in stdout.
fn number_after(out: &tests::Outcome, prefix: &str) -> u64 {
    let at = out.stdout.find(prefix).unwrap_or_else(|| panic!("stdout lacks {prefix:?}\n{out}"));
    let digits: String = out.stdout[at + prefix.len()..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {prefix:?}\n{out}"))
}

on_both_platforms!(kernel_timers_are_cancelled_and_fire_in_deadline_order, |p| {
    // Kernel instructions are slow under this host's KVM: fewer timers there.
    let n = match p {
        Platform::Vmm => 256,
        Platform::QemuTcg => 4096,
    };
    let out = boot(p, &format!("test=timers:{n}"), &[]);
    out.assert_status(0)
        .assert_stdout(&format!("ktest timers: 10 rounds of {n} armed and cancelled, count back to 0"))
        .assert_stdout("ktest timers: fired in order [1, 2, 4, 5], cancelled one removed")
        .assert_stdout("ktest timers: 0 pending before init");
    let late = number_after(&out, "ktest timers: a 100 us timer fired after ");
    let bound = if p == Platform::Vmm { 10_000 } else { 2_000 };
    assert!((100..bound).contains(&late), "100 us timer fired after {late} us\n{out}");
});

on_both_platforms!(one_shot_mode_when_tsc_deadline_is_refused, |p| {
    let out = boot(p, "lapic=notscdeadline test=timer,timers:64", &[]);
    out.assert_status(0)
        .assert_stdout("ktest timers: LAPIC timer in one-shot mode")
        .assert_stdout("ktest timer: 10 ticks")
        .assert_stdout("ktest timers: fired in order [1, 2, 4, 5], cancelled one removed");
});

on_both_platforms!(cancelled_io_uring_timeouts_leave_no_timer_behind, |p| {
    let (n, rounds) = match p {
        Platform::Vmm => (256, 4),
        Platform::QemuTcg => (4096, 10),
    };
    let out = boot_rootfs(p, &format!("test=timers:16 init=/bin/timertest -- uring {n} {rounds}"));
    out.assert_stdout(&format!("timertest: uring: {rounds} rounds of {n} timeouts submitted and cancelled"))
        .assert_stdout(&format!("timertest: uring: {n} counted timeouts completed by one NOP"))
        .assert_init_status(p, 0);
    // The count before init runs, and as it exits with its ring still open (its files
    // close after that line, which would drop any timers the ring still had).
    let before = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ktest timers: ")?.strip_suffix(" pending before init")?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no count before init\n{out}"));
    out.assert_stdout(&format!("ktest timers: {before} pending before init"))
        .assert_stdout(&format!("ktest timers: pid 1 exits with {before} timers pending"));
});

on_both_platforms!(a_100_us_sleep_takes_microseconds_not_a_tick, |p| {
    // Median of 40 sleeps. Under this host's KVM each kernel instruction costs ~2 us, and
    // the sleep's kernel path alone takes about 2 ms.
    let max_us = match p {
        Platform::Vmm => 8_000,
        Platform::QemuTcg => 2_000,
    };
    let out = boot_rootfs(p, &format!("init=/bin/timertest -- sleep 100 40 {max_us}"));
    out.assert_stdout("timertest: sleep 100 us x 40: min ").assert_init_status(p, 0);
});
