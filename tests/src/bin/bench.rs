//! `make bench`: figures side by side with their baselines, measured in one run.
//!
//! 1. Boot: launch-to-exit of a guest that exits at once, under `vmm run` (KVM), QEMU
//!    microvm with KVM and with TCG (median of `BOOT_RUNS`).
//! 2. I/O: `uring-bench` (guest-user/uring/bench.c), the same static binary, on the host's
//!    Linux and in our guest under `vmm run` and QEMU TCG: 4 KiB random reads by sync
//!    pread, io_uring QD1, QD32, QD32 with registered file and buffers, on a disk
//!    (guest: virtio-blk; host: the same image with O_DIRECT) and on a file of a 9p share
//!    (host: the same file); NOPs in batches of 1 and 32; a null syscall. Each kernel's
//!    io_uring/sync ratio is printed next to the others.
//! 3. VM exits per I/O under `vmm run` (KVM_RUN returns to the VMM, by `--stats`).
//!
//! Our KVM hosts emulate guest ring 0 (~2 us an instruction): guest figures there are
//! dominated by kernel instructions; compare ratios, not absolute times, across platforms.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{guest_elf, qemu_command, root, rootfs, run, scratch_dir, vmm_bin};

const BOOT_RUNS: usize = 15;
const BOOT_CMDLINE: &str = "loglevel=warn test=exit:0";
const IMAGE_BYTES: usize = 8 << 20;
const READS: [&str; 4] = ["pread", "uring_qd1", "uring_qd32", "uring_qd32_fixed"];

/// Median wall time of `BOOT_RUNS` launches, or why it could not be measured.
fn measure(make: impl Fn() -> Command, expect: i32) -> Result<Duration, String> {
    let mut times = Vec::with_capacity(BOOT_RUNS);
    for _ in 0..BOOT_RUNS {
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
    Ok(times[BOOT_RUNS / 2])
}

fn boot_section() {
    let kernel = guest_elf();
    let vmm = || {
        let mut cmd = Command::new(vmm_bin());
        cmd.arg("run").arg(&kernel).args(["--cmdline", BOOT_CMDLINE]);
        cmd
    };
    // QEMU's isa-debug-exit turns status 0 into exit code 1.
    let rows = [
        ("vmm run (KVM)", measure(vmm, 0)),
        ("qemu microvm (KVM)", measure(|| qemu_command(&kernel, BOOT_CMDLINE, "kvm"), 1)),
        ("qemu microvm (TCG)", measure(|| qemu_command(&kernel, BOOT_CMDLINE, "tcg"), 1)),
    ];
    let base = rows[0].1.as_ref().ok().copied();
    println!("boot: launch to exit of a guest that exits at once, median of {BOOT_RUNS} runs");
    println!("  {:<22} {:>12} {:>14}", "platform", "median", "ratio to vmm");
    for (name, result) in &rows {
        match (result, base) {
            (Ok(t), Some(b)) => {
                println!("  {name:<22} {:>9.1} ms {:>13.2}x", t.as_secs_f64() * 1e3, t.as_secs_f64() / b.as_secs_f64())
            }
            (Ok(t), None) => println!("  {name:<22} {:>9.1} ms {:>14}", t.as_secs_f64() * 1e3, "n/a"),
            (Err(e), _) => println!("  {name:<22} {:>12} ({e})", "failed"),
        }
    }
}

/// `bench NAME ... ns_per_op=X` lines -> NAME: X.
fn parse(stdout: &str) -> BTreeMap<String, f64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("bench "))
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let ns = l.split_whitespace().find_map(|w| w.strip_prefix("ns_per_op="))?.parse().ok()?;
            Some((name.to_owned(), ns))
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Where {
    Host,
    Vmm,
    Qemu,
}

/// Runs uring-bench on `target` (`disk` or `share`) and returns its figures, and for the
/// VMM the number of VM exits.
fn uring_bench(at: Where, target: &str, dir: &Path, ops: u32, only: Option<&str>) -> (BTreeMap<String, f64>, Option<u64>) {
    let image = dir.join("disk.img");
    let share = dir.join("share");
    let mut args = vec!["--ops".to_owned(), ops.to_string()];
    if let Some(o) = only {
        args.extend(["--only".to_owned(), o.to_owned()]);
    }
    match at {
        Where::Host => {
            let mut cmd = Command::new(root().join("target/guest-c/uring-bench"));
            match target {
                "disk" => cmd.arg(&image).arg("--direct"),
                _ => cmd.arg(share.join("bench.dat")),
            };
            cmd.args(&args);
            let (_, stdout, stderr) = run(cmd);
            if !stderr.is_empty() {
                eprintln!("host uring-bench: {stderr}");
            }
            (parse(&stdout), None)
        }
        Where::Vmm | Where::Qemu => {
            let path = if target == "disk" { "/dev/vda" } else { "/mnt/share/bench.dat" };
            let cmdline = format!("loglevel=warn init=/bin/uring-bench -- {path} {}", args.join(" "));
            let (code, stdout, stderr) = if let Where::Vmm = at {
                let mut cmd = Command::new(vmm_bin());
                cmd.arg("run").arg(guest_elf()).arg("--initrd").arg(rootfs()).arg("--stats");
                cmd.arg("--disk").arg(&image).arg("--share").arg(&share).args(["--cmdline", &cmdline, "--timeout", "600"]);
                run(cmd)
            } else {
                let mut cmd = qemu_command(&guest_elf(), &cmdline, "tcg");
                cmd.arg("-initrd").arg(rootfs());
                cmd.arg("-drive").arg(format!("id=d0,file={},format=raw,if=none", image.display()));
                cmd.args(["-device", "virtio-blk-device,drive=d0"]);
                cmd.arg("-fsdev").arg(format!("local,id=fs0,path={},security_model=none", share.display()));
                cmd.args(["-device", "virtio-9p-device,fsdev=fs0,mount_tag=share"]);
                run(cmd)
            };
            let exits = stderr
                .lines()
                .find_map(|l| l.strip_prefix("vmm: exits: "))
                .and_then(|l| l.split_whitespace().next()?.parse().ok());
            if !stdout.contains("bench ") && only != Some("none") {
                eprintln!("guest uring-bench failed (exit {code:?}):\n{stdout}\n{stderr}");
            }
            (parse(&stdout), exits)
        }
    }
}

fn fmt_ns(ns: Option<&f64>) -> String {
    match ns {
        Some(&ns) if ns >= 100_000.0 => format!("{:.2} ms", ns / 1e6),
        Some(&ns) if ns >= 1000.0 => format!("{:.1} us", ns / 1e3),
        Some(&ns) => format!("{ns:.0} ns"),
        None => "-".to_owned(),
    }
}

fn ratio(a: Option<&f64>, b: Option<&f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if *b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}

fn io_section() {
    let dir = scratch_dir("bench");
    let mut bytes = vec![0u8; IMAGE_BYTES];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(dir.join("disk.img"), &bytes).expect("write image");
    std::fs::create_dir(dir.join("share")).expect("share dir");
    std::fs::write(dir.join("share/bench.dat"), &bytes).expect("write share file");

    // Guest kernel code is emulated on our KVM hosts: fewer operations there.
    let platforms = [("host Linux", Where::Host, 2000), ("guest, vmm (KVM)", Where::Vmm, 200), ("guest, QEMU (TCG)", Where::Qemu, 2000)];
    for target in ["disk", "share"] {
        let what = if target == "disk" {
            "disk (guest: virtio-blk /dev/vda; host: the image file, O_DIRECT)"
        } else {
            "9p file (guest: /mnt/share/bench.dat; host: the same file)"
        };
        println!("\nio: 4 KiB random reads from a {what}");
        println!(
            "  {:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "kernel", "pread", "qd1", "qd32", "qd32 fixed", "qd1/sync", "qd32/sync", "fixed/sync"
        );
        for (name, at, ops) in platforms {
            let (r, _) = uring_bench(at, target, &dir, ops, Some("pread,uring_qd1,uring_qd32,uring_qd32_fixed"));
            let p = r.get("pread");
            println!(
                "  {name:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                fmt_ns(p),
                fmt_ns(r.get("uring_qd1")),
                fmt_ns(r.get("uring_qd32")),
                fmt_ns(r.get("uring_qd32_fixed")),
                ratio(p, r.get("uring_qd1")),
                ratio(p, r.get("uring_qd32")),
                ratio(p, r.get("uring_qd32_fixed")),
            );
        }
    }
    println!("  (ratios: sync time per read / io_uring time per read; higher is better)");

    println!("\nsyscalls and the rings (per operation)");
    println!("  {:<20} {:>10} {:>10} {:>10} {:>14}", "kernel", "getppid", "nop x1", "nop x32", "getppid/nop32");
    for (name, at, ops) in platforms {
        let (r, _) = uring_bench(at, "disk", &dir, ops, Some("nop_batch1,nop_batch32,getppid"));
        println!(
            "  {name:<20} {:>10} {:>10} {:>10} {:>14}",
            fmt_ns(r.get("getppid")),
            fmt_ns(r.get("nop_batch1")),
            fmt_ns(r.get("nop_batch32")),
            ratio(r.get("getppid"), r.get("nop_batch32"))
        );
    }

    println!("\nVM exits to the VMM per read under vmm run (KVM_RUN returns; notifications use ioeventfd)");
    let ops = 200;
    let (_, base) = uring_bench(Where::Vmm, "disk", &dir, ops, Some("none"));
    for mode in READS {
        let (_, exits) = uring_bench(Where::Vmm, "disk", &dir, ops, Some(mode));
        let per = match (exits, base) {
            (Some(e), Some(b)) => format!("{:.2}", e.saturating_sub(b) as f64 / f64::from(ops)),
            _ => "-".to_owned(),
        };
        println!("  {mode:<20} {per:>10}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    boot_section();
    io_section();
}
