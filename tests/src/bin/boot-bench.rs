//! `make bench` (boot part): launch-to-exit wall time of a guest that exits at once,
//! under `vmm run` (KVM), QEMU microvm with KVM and QEMU microvm with TCG, measured in one
//! run, median of `RUNS` launches each, printed as a table with ratios to `vmm`.

use std::process::Command;
use std::time::{Duration, Instant};

use tests::{guest_elf, qemu_command, run, vmm_bin};

const RUNS: usize = 15;
const CMDLINE: &str = "loglevel=warn test=exit:0";

/// Median wall time of `RUNS` launches, or why it could not be measured.
fn measure(make: impl Fn() -> Command, expect: i32) -> Result<Duration, String> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let (code, _, stderr) = run(make());
        let elapsed = start.elapsed();
        if code != Some(expect) {
            let why = stderr.lines().next().unwrap_or("").to_owned();
            return Err(format!("exit code {code:?}, expected {expect}: {why}"));
        }
        times.push(elapsed);
    }
    times.sort();
    Ok(times[RUNS / 2])
}

fn main() {
    let kernel = guest_elf();
    let vmm = || {
        let mut cmd = Command::new(vmm_bin());
        cmd.arg("run").arg(&kernel).args(["--cmdline", CMDLINE]);
        cmd
    };
    // QEMU's isa-debug-exit turns status 0 into exit code 1.
    let rows = [
        ("vmm run (KVM)", measure(vmm, 0)),
        ("qemu microvm (KVM)", measure(|| qemu_command(&kernel, CMDLINE, "kvm"), 1)),
        ("qemu microvm (TCG)", measure(|| qemu_command(&kernel, CMDLINE, "tcg"), 1)),
    ];
    let base = rows[0].1.as_ref().ok().copied();
    println!("boot: launch to exit of a guest that exits at once, median of {RUNS} runs");
    println!("{:<22} {:>12} {:>14}", "platform", "median", "ratio to vmm");
    for (name, result) in &rows {
        match (result, base) {
            (Ok(t), Some(b)) => println!(
                "{name:<22} {:>9.1} ms {:>13.2}x",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() / b.as_secs_f64()
            ),
            (Ok(t), None) => println!("{name:<22} {:>9.1} ms {:>14}", t.as_secs_f64() * 1e3, "n/a"),
            (Err(e), _) => println!("{name:<22} {:>12} ({e})", "failed"),
        }
    }
}
