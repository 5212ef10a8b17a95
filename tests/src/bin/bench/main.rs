//! `make bench`: figures side by side with their baselines, measured in one run.
//!
//! 1. Boot: launch-to-exit of a guest that exits at once, under `vmm run` (KVM), QEMU
//!    microvm with KVM and with TCG: one warm-up round, then `BOOT_ROUNDS` rounds that
//!    launch each platform in turn.
//! 2. I/O: `uring-bench` (guest-user/uring/bench.c), the same static binary with the same
//!    arguments, on the host's Linux and in our guest under `vmm run` and QEMU TCG: 4 KiB
//!    random reads by sync pread, io_uring QD1, QD32, and QD32 with READ_FIXED on a
//!    registered file and buffers; on a disk (the same image file everywhere, read with
//!    O_DIRECT everywhere: `--direct` on the host, `--disk ...,direct=on` under vmm with
//!    each of its engines, `cache=none` under QEMU) and on a file of a 9p share (its first
//!    MiB, in the page cache everywhere); NOPs in batches of 1 and 32; a null syscall.
//!
//!    Then the page cache: 4 KiB reads (pread, io_uring QD1 and QD32) of one 8 MiB file
//!    on 9p and on ext2, cached, uncached (every read a miss) and O_DIRECT, beside the
//!    host reading the same file on its own file system the same way.
//!
//!    Then sockets: an echo server over 64 AF_UNIX connections on epoll and on io_uring
//!    (multishot RECV from a provided-buffer ring, SENDs), host Linux and our guest.
//!
//!    Then scaling with CPUs: NOPs, and QD32 disk reads, from one thread, from one pinned
//!    thread per CPU with a ring each, and through an SQ poller on its own CPU (reads:
//!    with and without IOPOLL), under `vmm run` with 1, 2 and 4 vCPUs and QEMU
//!    multi-threaded TCG with 1, 2 and 4 CPUs.
//! 3. VM exits per operation under `vmm run`, from the same runs, less those of a run that
//!    does no operation: the exits KVM_RUN returns to the VMM (but the console's output:
//!    the result line alone takes ~100), the queue notifications (kicks) KVM serves
//!    itself through an ioeventfd and the interrupts injected through an irqfd, all from
//!    `--stats`; kicks also on their own. The polled-disk section adds our guest under `vmm run` with the VMM's
//!    busy polling of the polled queue (`--blk-poll-us`, its default) beside the runs
//!    without it (`--blk-poll-us 0`).
//!
//! Method: every figure is measured in `ROUNDS` rounds after a warm-up run of each
//! platform (and inside each run, `--warmup` untimed operations first). One run is one
//! process (one VM) measuring one figure; a round runs every figure of a platform in
//! turn, so sync and io_uring alternate (pread, QD1, QD32, fixed, pread, ...). Each figure
//! shows the median and the range of its rounds; each ratio is taken within a round (the
//! figure and its baseline measured back to back) and shows the median and range of
//! those. Every guest boots with `tsc_khz=` set to the host's TSC rate
//! ([`host_tsc_khz`]), so that all boots keep the same time.
//!
//! `BENCH_ROUNDS=N` changes the number of rounds; `BENCH_ONLY=SECTION[,SECTION]` runs only
//! those sections (`boot`, `disk`, `polled disk`, `9p file`, `9p uncached`,
//! `9p O_DIRECT`, `ext2 cached`, `ext2 uncached`, `ext2 O_DIRECT`, `syscalls`, `unix echo`,
//! `tcp echo`, `tcp ping-pong`, `scaling`, `scaling disk`), for a
//! quick look.
//!
//! Any failed run (a non-zero exit, a missing `bench` line, a guest that did not finish)
//! is reported and fails `make bench` (exit 1) after the tables.
//!
//! The tables are also written as `bench.csv`, with SVG charts (per-op costs of the
//! syscalls and disk sections; speed-up with CPUs), into `target/bench` (`BENCH_OUT=DIR`
//! elsewhere); `bench --plot RUN.csv` draws the charts again from such a CSV.
//!
//! Our KVM hosts emulate guest ring 0 (~2 us an instruction): guest figures there are
//! dominated by kernel instructions; compare ratios, not absolute times, across platforms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod plot;

use tests::{guest_elf, qemu_command, qemu_command_smp, root, rootfs, scratch_dir, try_run, vmm_bin};

/// Measured rounds of every figure (`BENCH_ROUNDS=N` overrides it, for a quick look).
const ROUNDS: usize = 5;
const BOOT_ROUNDS: usize = 11;
const BOOT_CMDLINE: &str = "loglevel=warn test=exit:0";
const IMAGE_BYTES: usize = 8 << 20;
/// Longest any one run may take; `vmm run --timeout` stops a guest a little earlier.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const VMM_TIMEOUT_SECS: &str = "100";
const READS: [&str; 5] = ["pread", "uring_qd1", "uring_qd32", "uring_qd32_fixed", "uring_qd32_pbuf"];
/// Polled reads need a disk with a polled queue: our guest's (the host's has none).
const POLLED: [&str; 4] = ["pread", "uring_qd32", "uring_qd32_iopoll", "uring_qd32_iopoll_sqpoll"];
const CALLS: [&str; 5] = ["getppid", "nop_batch1", "nop_batch32", "clock_syscall", "clock_vdso"];
/// NOPs on one ring from one thread, on one ring per CPU from a thread pinned to each,
/// and through an SQ poller on its own CPU (uring-bench's `nop_threads`, `nop_sqpoll_aff`).
const SCALING: [&str; 3] = ["nop_batch32", "nop_threads", "nop_sqpoll_aff"];
/// QD32 disk reads from one thread, from a pinned thread per CPU with a ring each, and
/// through an SQ poller on the last CPU, with and without IOPOLL.
const SCALING_DISK: [&str; 4] = ["uring_qd32", "read_threads", "read_sqpoll_aff", "read_iopoll_sqpoll_aff"];

/// Where uring-bench runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    Host,
    /// Our guest under `vmm run`, disks with this host engine; `--blk-poll-us` if given
    /// (else vmm's default).
    Vmm(&'static str, Option<u32>),
    Qemu,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Disk,
    /// bench.dat on a 9p share (the host reads the share's file).
    Share(Cache),
    /// bench.dat on an ext2 disk, mounted by `root=/dev/vda ro` (the host reads the
    /// share's copy, on its own file system).
    Ext2(Cache),
}

/// How a file is read: through the page cache once it holds the file (`Warm`: its first
/// MiB, read once first: uring-bench --warm --size 1M), with every read a miss (`Cold`:
/// uring-bench --cold), or around the cache (`Direct`: O_DIRECT).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    Warm,
    Cold,
    Direct,
}

struct Platform {
    name: &'static str,
    at: Where,
    /// CPUs of the guest (`vmm run --vcpus`, QEMU `-smp` with multi-threaded TCG); the
    /// host has what it has.
    cpus: u32,
    /// Timed operations per run (the guest's kernel is emulated on our KVM hosts: fewer
    /// there); a tenth as many untimed first.
    ops: u32,
}

/// What one run gave.
#[derive(Default, Clone, Copy)]
struct Sample {
    ns_per_op: f64,
    /// VM exits of the whole run (`vmm run --stats`): those the VMM saw, the kicks KVM
    /// served through an ioeventfd and the interrupts injected through an irqfd.
    exits: Option<u64>,
    /// Kicks of the whole run (queue notifications of the disks and shares).
    kicks: Option<u64>,
    /// Direct-I/O requests and those of them that went through a bounce buffer.
    direct: Option<(u64, u64)>,
}

struct Bench {
    dir: PathBuf,
    rounds: usize,
    /// `BENCH_ONLY=boot,disk,...`: the sections to run (all when unset).
    only: Option<Vec<String>>,
    /// The host's TSC rate, given to every guest (`tsc_khz=`).
    tsc_khz: u64,
    failures: Vec<String>,
    /// Every table row so far, for the CSV and the charts.
    rows: Vec<plot::Row>,
}

/// The first and last lines of a transcript, for an error message.
fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let pick: Vec<&str> = if lines.len() <= 12 { lines } else { [&lines[..4], &["..."], &lines[lines.len() - 8..]].concat() };
    pick.iter().map(|l| format!("      | {l}\n")).collect()
}

/// `bench NAME ops=N total_ns=T ns_per_op=X` -> (N, X) for `name`, if exactly one line.
fn bench_line(stdout: &str, name: &str) -> Result<(u64, f64), String> {
    let lines: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("bench ")).filter(|l| l.split_whitespace().next() == Some(name)).collect();
    let [line] = lines[..] else {
        return Err(format!("{} `bench {name}` lines, expected 1", lines.len()));
    };
    let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key));
    let ops = field("ops=").and_then(|v| v.parse().ok());
    let ns = field("ns_per_op=").and_then(|v| v.parse().ok());
    match (ops, ns) {
        (Some(ops), Some(ns)) => Ok((ops, ns)),
        _ => Err(format!("unreadable line `bench {line}`")),
    }
}

impl Bench {
    /// The disk image every disk figure reads (`BENCH_IMAGE=PATH` names another: a test
    /// gives a missing one to see the bench fail).
    fn image(&self) -> PathBuf {
        std::env::var_os("BENCH_IMAGE").map(PathBuf::from).unwrap_or_else(|| self.dir.join("disk.img"))
    }

    fn share(&self) -> PathBuf {
        self.dir.join("share")
    }

    fn ext2_image(&self) -> PathBuf {
        self.dir.join("ext2.img")
    }

    /// The command that runs uring-bench with `args` on `target` at `at`, and the exit
    /// code that means success.
    fn command(&self, at: Where, cpus: u32, target: Target, args: &[String]) -> (Command, i32) {
        let cache = match target {
            Target::Disk => Cache::Direct,
            Target::Share(c) | Target::Ext2(c) => c,
        };
        let flag = match cache {
            Cache::Warm => " --warm --size 1048576",
            Cache::Cold => " --cold",
            Cache::Direct => " --direct",
        };
        match at {
            Where::Host => {
                let mut cmd = Command::new(root().join("target/guest-c/uring-bench"));
                match target {
                    Target::Disk => cmd.arg(self.image()),
                    Target::Share(_) | Target::Ext2(_) => cmd.arg(self.share().join("bench.dat")),
                };
                cmd.args(flag.split_whitespace());
                cmd.args(args);
                (cmd, 0)
            }
            Where::Vmm(..) | Where::Qemu => {
                let (root_disk, path) = match target {
                    Target::Disk => ("", "/dev/vda"),
                    Target::Share(_) => ("", "/mnt/share/bench.dat"),
                    Target::Ext2(_) => ("root=/dev/vda ro ", "/mnt/root/bench.dat"),
                };
                let cmdline = format!("loglevel=warn tsc_khz={} {root_disk}init=/bin/uring-bench -- {path}{flag} {}", self.tsc_khz, args.join(" "));
                if let Where::Vmm(engine, poll) = at {
                    let mut cmd = Command::new(vmm_bin());
                    cmd.arg("run").arg(guest_elf()).arg("--initrd").arg(rootfs()).arg("--stats").arg("--vcpus").arg(cpus.to_string());
                    if let Some(us) = poll {
                        cmd.arg("--blk-poll-us").arg(us.to_string());
                    }
                    match target {
                        Target::Disk => cmd.arg("--disk").arg(format!("{},ro,engine={engine},direct=on", self.image().display())),
                        Target::Ext2(_) => cmd.arg("--disk").arg(format!("{},ro,engine={engine},direct=on", self.ext2_image().display())),
                        Target::Share(_) => cmd.arg("--share").arg(self.share()),
                    };
                    cmd.args(["--cmdline", &cmdline, "--timeout", VMM_TIMEOUT_SECS]);
                    (cmd, 0)
                } else {
                    // Multi-threaded TCG: one host thread per vCPU (QEMU's default for an
                    // x86 guest on an x86 host, named here).
                    let mut cmd = qemu_command_smp(&guest_elf(), &cmdline, "tcg,thread=multi", &cpus.to_string());
                    cmd.arg("-initrd").arg(rootfs());
                    match target {
                        Target::Disk | Target::Ext2(_) => {
                            let image = if target == Target::Disk { self.image() } else { self.ext2_image() };
                            let drive = format!("id=d0,file={},format=raw,if=none,readonly=on,cache=none", image.display());
                            cmd.arg("-drive").arg(drive).arg("-device").arg(format!("virtio-blk-device,drive=d0,num-queues={}", cpus + 1))
                        }
                        Target::Share(_) => {
                            let fsdev = format!("local,id=fs0,path={},security_model=none", self.share().display());
                            cmd.arg("-fsdev").arg(fsdev).args(["-device", "virtio-9p-device,fsdev=fs0,mount_tag=share"])
                        }
                    };
                    // isa-debug-exit: status 0 is exit code (0 << 1) | 1.
                    (cmd, 1)
                }
            }
        }
    }

    /// One run of uring-bench measuring the figures `only` (`none`: a run without
    /// operations, a baseline for VM exits) with `ops` timed and `warmup` untimed
    /// operations each: the sample of `only`'s first figure, or why the run failed.
    fn run(&self, p: &Platform, target: Target, only: &[&str], ops: u32, warmup: u32) -> Result<Sample, String> {
        let list = if only.is_empty() { "none".to_owned() } else { only.join(",") };
        let args = ["--ops".to_owned(), ops.to_string(), "--warmup".to_owned(), warmup.to_string(), "--only".to_owned(), list];
        let (cmd, expect) = self.command(p.at, p.cpus, target, &args);
        let (code, stdout, stderr) = try_run(cmd, RUN_TIMEOUT)?;
        let transcript = || format!("    stdout:\n{}    stderr:\n{}", excerpt(&stdout), excerpt(&stderr));
        if code != Some(expect) {
            let why = match (p.at, code) {
                (Where::Vmm(..), Some(124)) => "the guest did not finish (vmm --timeout)".to_owned(),
                (_, Some(c)) => format!("exit code {c}, expected {expect}"),
                (_, None) => "killed by a signal".to_owned(),
            };
            return Err(format!("{why}\n{}", transcript()));
        }
        let mut sample = Sample::default();
        for (k, name) in only.iter().enumerate() {
            let (n, ns) = bench_line(&stdout, name).map_err(|e| format!("{e}\n{}", transcript()))?;
            if n != u64::from(ops) {
                return Err(format!("`bench {name}` reports {n} ops, expected {ops}\n{}", transcript()));
            }
            if k == 0 {
                sample.ns_per_op = ns;
            }
        }
        if let Where::Vmm(..) = p.at {
            // "vmm: exits: T total, P port I/O (C of them the console), M MMIO, O other":
            // T less C (the console's output is not I/O work; the result line alone is
            // ~100 exits).
            let exits = stderr.lines().find_map(|l| l.strip_prefix("vmm: exits: ")).and_then(|l| {
                let n: Vec<u64> = l.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
                Some(n.first()?.saturating_sub(*n.get(2)?))
            });
            let exits = exits.ok_or_else(|| format!("no readable `vmm: exits:` line (--stats)\n{}", transcript()))?;
            // "vmm: virtio-blk: K kicks, I by ioeventfd (...); ..." when there is a disk, and
            // "vmm: virtio-9p: K kicks, I by ioeventfd (...)" when there is a share.
            let (kicks, by_ioeventfd) = stderr
                .lines()
                .filter_map(|l| l.strip_prefix("vmm: virtio-blk: ").or_else(|| l.strip_prefix("vmm: virtio-9p: ")))
                .map(|l| {
                    let n: Vec<u64> = l.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
                    (n.first().copied().unwrap_or(0), n.get(1).copied().unwrap_or(0))
                })
                .fold((0, 0), |(k, i), (k2, i2)| (k + k2, i + i2));
            // "vmm: virtio-blk requests: N (by queue: ...), I interrupts" and "vmm: virtio-9p
            // requests: N, I interrupts": the irqfd injections.
            let interrupts: u64 = stderr
                .lines()
                .filter_map(|l| l.strip_prefix("vmm: virtio-blk requests: ").or_else(|| l.strip_prefix("vmm: virtio-9p requests: ")))
                .filter_map(|l| l.strip_suffix(" interrupts")?.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            sample.exits = Some(exits + by_ioeventfd + interrupts);
            sample.kicks = Some(kicks);
            sample.direct = stderr.lines().find_map(|l| l.strip_prefix("vmm: direct I/O: ")).and_then(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                Some((words.first()?.parse().ok()?, words.get(2)?.parse().ok()?))
            });
        }
        Ok(sample)
    }

    /// Runs every figure of every platform on `target` for `self.rounds` rounds (after one
    /// warm-up run of each platform) and prints the table.
    fn wanted(&self, short: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|s| s == short))
    }

    fn section(&mut self, short: &str, title: &str, target: Target, platforms: &[Platform], figures: &[&str], ratios: &[(&str, &str, &str)]) {
        if !self.wanted(short) {
            return;
        }
        // samples[platform][figure] = one per round; None for a platform once it failed.
        let mut samples: Vec<Option<BTreeMap<Option<&str>, Vec<Sample>>>> = platforms.iter().map(|_| Some(BTreeMap::new())).collect();
        let vmm_baseline = |p: &Platform| matches!(p.at, Where::Vmm(..));
        for (i, p) in platforms.iter().enumerate() {
            if let Err(e) = self.run(p, target, figures, p.ops / 10, 0) {
                self.fail(short, p.name, "warm-up", &e);
                samples[i] = None;
            }
        }
        for _round in 0..self.rounds {
            for (i, p) in platforms.iter().enumerate() {
                let mut runs: Vec<Option<&str>> = figures.iter().map(|&f| Some(f)).collect();
                if vmm_baseline(p) {
                    runs.push(None);
                }
                for figure in runs {
                    let Some(series) = samples[i].as_mut() else { break };
                    match self.run(p, target, figure.as_slice(), p.ops, p.ops / 10) {
                        Ok(s) => series.entry(figure).or_default().push(s),
                        Err(e) => {
                            self.fail(short, p.name, figure.unwrap_or("run without operations"), &e);
                            samples[i] = None;
                        }
                    }
                }
            }
        }

        println!("\n{title}");
        let ops: Vec<String> = platforms.iter().map(|p| format!("{} {}", p.name, p.ops)).collect();
        println!(
            "  {} round{} after a warm-up run; operations per run (each after a tenth as many untimed): {}",
            self.rounds,
            if self.rounds == 1 { "" } else { "s" },
            ops.join(", ")
        );
        println!(
            "  {:<20} {:<24} {:>28} {:>9} {:>9}   ratios within each round: median [min-max]",
            "where", "figure", "per op: median [min-max]", "exits/op", "kicks/op"
        );
        let mut direct = (0u64, 0u64);
        for (p, series) in platforms.iter().zip(&samples) {
            let Some(series) = series else {
                println!("  {:<20} FAILED (see the end)", p.name);
                continue;
            };
            for (k, &figure) in figures.iter().enumerate() {
                let runs = &series[&Some(figure)];
                let ns: Vec<f64> = runs.iter().map(|s| s.ns_per_op).collect();
                // Per operation, over the rounds; None without a baseline run (not vmm),
                // Some(None) when a count is missing.
                let per_op = |count: fn(&Sample) -> Option<u64>| {
                    series.get(&None).map(|base| {
                        let per: Vec<f64> = runs
                            .iter()
                            .zip(base)
                            .filter_map(|(r, b)| Some(count(r)?.saturating_sub(count(b)?) as f64 / f64::from(p.ops + p.ops / 10)))
                            .collect();
                        (!per.is_empty()).then(|| median(&per))
                    })
                };
                let cell = |v: Option<Option<f64>>| match v {
                    Some(Some(x)) => format!("{x:.2}"),
                    Some(None) => "-".to_owned(),
                    None => String::new(),
                };
                let (exits_op, kicks_op) = (per_op(|s| s.exits), per_op(|s| s.kicks));
                let (exits, kicks) = (cell(exits_op), cell(kicks_op));
                self.rows.push(plot::Row {
                    section: short.to_owned(),
                    platform: p.name.to_owned(),
                    cpus: p.cpus,
                    figure: figure.to_owned(),
                    median_ns: median(&ns),
                    min_ns: ns.iter().copied().fold(f64::INFINITY, f64::min),
                    max_ns: ns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    exits: exits_op.flatten(),
                    kicks: kicks_op.flatten(),
                });
                let mut cells = Vec::new();
                // With more CPUs: the same figure on one CPU of the same kind, round by round.
                let one_cpu = platforms.iter().zip(&samples).find(|(q, _)| q.cpus == 1 && same_kind(q.at, p.at));
                if let (true, Some((_, Some(base)))) = (p.cpus > 1, one_cpu) {
                    let per_round: Vec<f64> = base[&Some(figure)].iter().zip(runs).map(|(b, r)| b.ns_per_op / r.ns_per_op).collect();
                    cells.push(format!("1cpu/this {}", spread(&per_round, |x| format!("{x:.2}"), "x")));
                }
                for &(_, base, label) in ratios.iter().filter(|r| r.0 == figure) {
                    let per_round: Vec<f64> = series[&Some(base)].iter().zip(runs).map(|(b, r)| b.ns_per_op / r.ns_per_op).collect();
                    cells.push(format!("{label} {}", spread(&per_round, |x| format!("{x:.2}"), "x")));
                }
                for s in runs {
                    if let Some((n, b)) = s.direct {
                        direct = (direct.0 + n, direct.1 + b);
                    }
                }
                let name = if k == 0 { p.name } else { "" };
                let line = format!("  {name:<20} {figure:<24} {:>28} {exits:>9} {kicks:>9}   {}", fmt_ns_spread(&ns), cells.join("   "));
                println!("{}", line.trim_end());
            }
        }
        if target == Target::Disk && direct.0 > 0 {
            println!("  (vmm, direct=on: {} of {} requests went through a bounce buffer)", direct.1, direct.0);
        }
    }

    fn fail(&mut self, section: &str, platform: &str, what: &str, why: &str) {
        let msg = format!("{section}, {platform}, {what}: {why}");
        eprintln!("make bench: FAILED run: {msg}");
        self.failures.push(msg);
    }
}

/// Our guest with 1, 2 and 4 CPUs under `vmm run` and QEMU multi-threaded TCG, with
/// `vmm_ops` and `qemu_ops` operations per run (the scaling sections).
fn cpu_platforms(vmm_ops: u32, qemu_ops: u32) -> Vec<Platform> {
    let vmm = [("vmm 1 vCPU", 1), ("vmm 2 vCPUs", 2), ("vmm 4 vCPUs", 4)];
    let qemu = [("QEMU MTTCG 1 CPU", 1), ("QEMU MTTCG 2 CPUs", 2), ("QEMU MTTCG 4 CPUs", 4)];
    let vmm = vmm.map(|(name, cpus)| Platform { name, at: Where::Vmm("uring", None), cpus, ops: vmm_ops });
    let qemu = qemu.map(|(name, cpus)| Platform { name, at: Where::Qemu, cpus, ops: qemu_ops });
    vmm.into_iter().chain(qemu).collect()
}

/// Whether two platforms differ only in their CPUs (the scaling sections' "1cpu/this").
fn same_kind(a: Where, b: Where) -> bool {
    match (a, b) {
        (Where::Vmm(e1, p1), Where::Vmm(e2, p2)) => e1 == e2 && p1 == p2,
        _ => a == b,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// `median [min-max]unit`, each number by `fmt`.
fn spread(v: &[f64], fmt: impl Fn(f64) -> String, unit: &str) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}{unit} [{}-{}]", fmt(median(v)), fmt(min), fmt(max))
}

/// Nanoseconds in the unit of their median.
fn fmt_ns_spread(ns: &[f64]) -> String {
    let m = median(ns);
    let (div, unit) = if m >= 1e6 { (1e6, "ms") } else if m >= 1e3 { (1e3, "us") } else { (1.0, "ns") };
    let digits = |x: f64| if x / div >= 100.0 { 0 } else if x / div >= 10.0 { 1 } else { 2 };
    let d = digits(m);
    let min = ns.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.d$} {unit} [{:.d$}-{:.d$}]", m / div, min / div, max / div)
}

fn boot_section(bench: &mut Bench) {
    let kernel = guest_elf();
    let vmm = || {
        let mut cmd = Command::new(vmm_bin());
        cmd.arg("run").arg(&kernel).args(["--cmdline", BOOT_CMDLINE, "--timeout", VMM_TIMEOUT_SECS]);
        cmd
    };
    // QEMU's isa-debug-exit turns status 0 into exit code 1.
    type Launcher<'a> = Box<dyn Fn() -> Command + 'a>;
    let platforms: [(&str, Launcher, i32); 3] = [
        ("vmm run (KVM)", Box::new(vmm), 0),
        ("qemu microvm (KVM)", Box::new(|| qemu_command(&kernel, BOOT_CMDLINE, "kvm")), 1),
        ("qemu microvm (TCG)", Box::new(|| qemu_command(&kernel, BOOT_CMDLINE, "tcg")), 1),
    ];
    let mut times: Vec<Option<Vec<f64>>> = platforms.iter().map(|_| Some(Vec::new())).collect();
    // Round 0 is the warm-up.
    for round in 0..=BOOT_ROUNDS {
        for (i, (name, make, expect)) in platforms.iter().enumerate() {
            if times[i].is_none() {
                continue;
            }
            let start = Instant::now();
            let result = try_run(make(), RUN_TIMEOUT);
            let elapsed = start.elapsed().as_secs_f64() * 1e9;
            let error = match result {
                Ok((code, _, _)) if code == Some(*expect) => None,
                Ok((code, stdout, stderr)) => Some(format!(
                    "exit code {code:?}, expected {expect}\n    stdout:\n{}    stderr:\n{}",
                    excerpt(&stdout),
                    excerpt(&stderr)
                )),
                Err(e) => Some(e),
            };
            match error {
                None if round > 0 => times[i].as_mut().expect("not failed").push(elapsed),
                None => {}
                Some(e) => {
                    bench.fail("boot", name, "launch", &e);
                    times[i] = None;
                }
            }
        }
    }
    println!("boot: launch to exit of a guest that exits at once; a warm-up round, then {BOOT_ROUNDS} rounds, platforms in turn");
    println!("  {:<22} {:>28}   ratio to vmm within each round: median [min-max]", "platform", "median [min-max]");
    for (i, (name, _, _)) in platforms.iter().enumerate() {
        match (&times[i], &times[0]) {
            (Some(t), Some(base)) => {
                let ratio: Vec<f64> = t.iter().zip(base).map(|(a, b)| a / b).collect();
                println!("  {name:<22} {:>28}   {}", fmt_ns_spread(t), spread(&ratio, |x| format!("{x:.2}"), "x"));
            }
            (Some(t), None) => println!("  {name:<22} {:>28}   -", fmt_ns_spread(t)),
            (None, _) => println!("  {name:<22} {:>28}", "FAILED (see the end)"),
        }
    }
}

/// vmm's default `--blk-poll-us`, as `vmm run --help` gives it ("[default: N]").
fn vmm_default_poll_us() -> String {
    let help = Command::new(vmm_bin()).args(["run", "--help"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    help.split("--blk-poll-us")
        .nth(1)
        .and_then(|rest| rest.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .unwrap_or("?")
        .to_owned()
}

/// The host's TSC rate in kHz: the median of three 50 ms measurements against the
/// monotonic clock.
///
/// The guest kernel otherwise measures its TSC at boot against the LAPIC timer over 2 ms;
/// on a busy host a preempted vCPU can skew that by any factor, differently at each boot,
/// and one run here is one boot. The guest's TSC is the host's under KVM (the VMM sets no
/// TSC scaling) and under QEMU TCG (without -icount).
fn host_tsc_khz() -> u64 {
    let mut khz: Vec<u64> = (0..3)
        .map(|_| {
            // SAFETY: rdtsc only reads the time-stamp counter.
            let c0 = unsafe { std::arch::x86_64::_rdtsc() };
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: as above.
            let c1 = unsafe { std::arch::x86_64::_rdtsc() };
            let ns = t0.elapsed().as_nanos().max(1);
            (u128::from(c1.wrapping_sub(c0)) * 1_000_000 / ns) as u64
        })
        .collect();
    khz.sort();
    khz[1]
}

fn make_files(dir: &Path) {
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
    // The ext2 image: the same file, in a file system e2fsprogs made.
    std::fs::create_dir(dir.join("ext2")).expect("ext2 tree");
    std::fs::write(dir.join("ext2/bench.dat"), &bytes).expect("write ext2 file");
    let out = Command::new("/usr/sbin/mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "4096", "-d"])
        .arg(dir.join("ext2"))
        .arg(dir.join("ext2.img"))
        .arg("16M")
        .output()
        .expect("run mke2fs (scripts/install-deps.sh installs e2fsprogs)");
    assert!(out.status.success(), "mke2fs: {}", String::from_utf8_lossy(&out.stderr));
}

fn main() {
    // `bench --plot RUN.csv`: the charts again from a run's CSV, beside it.
    if let [_, flag, csv] = &std::env::args().collect::<Vec<_>>()[..]
        && flag == "--plot"
    {
        let path = Path::new(csv);
        let rows = std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| plot::from_csv(&t));
        let written = rows.and_then(|rows| plot::write_all(&rows, path.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string()));
        match written {
            Ok(paths) => println!("written: {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")),
            Err(e) => {
                eprintln!("bench --plot {csv}: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(ROUNDS).max(1);
    let start = Instant::now();
    let load = || std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_owned)).unwrap_or_default();
    let load_before = load();
    let dir = scratch_dir("bench");
    make_files(&dir);
    let only = std::env::var("BENCH_ONLY").ok().map(|v| v.split(',').map(str::to_owned).collect());
    let mut bench = Bench { dir, rounds, only, tsc_khz: host_tsc_khz(), failures: Vec::new(), rows: Vec::new() };
    if rounds < ROUNDS {
        println!("(BENCH_ROUNDS={rounds}: fewer than {ROUNDS} rounds, a quick look rather than figures to quote)\n");
    }

    if bench.wanted("boot") {
        boot_section(&mut bench);
    }

    println!(
        "\nEvery guest below boots with tsc_khz={} (the host's TSC rate, measured now), so that each boot's clock counts alike.",
        bench.tsc_khz
    );
    let host = Platform { name: "host Linux", at: Where::Host, cpus: 1, ops: 2000 };
    let qemu = Platform { name: "QEMU (TCG)", at: Where::Qemu, cpus: 1, ops: 2000 };
    let read_ratios = [
        ("uring_qd1", "pread", "pread/this"),
        ("uring_qd32", "pread", "pread/this"),
        ("uring_qd32_fixed", "pread", "pread/this"),
        ("uring_qd32_fixed", "uring_qd32", "uring_qd32/this"),
        ("uring_qd32_pbuf", "uring_qd32_fixed", "fixed/this"),
    ];
    let disk_platforms = [
        host,
        Platform { name: "vmm engine=sync", at: Where::Vmm("sync", None), cpus: 1, ops: 200 },
        Platform { name: "vmm engine=uring", at: Where::Vmm("uring", None), cpus: 1, ops: 200 },
        qemu,
    ];
    bench.section(
        "disk",
        "io: 4 KiB random reads from a disk, O_DIRECT on the host everywhere\n  (host Linux: the image file, uring-bench --direct; \
         our guest on vmm and QEMU: virtio-blk /dev/vda, vmm --disk IMAGE,ro,engine=sync|uring,direct=on, QEMU cache=none)",
        Target::Disk,
        &disk_platforms,
        &READS,
        &read_ratios,
    );
    let polled_platforms = [
        Platform { name: "vmm sync, no poll", at: Where::Vmm("sync", Some(0)), cpus: 1, ops: 200 },
        Platform { name: "vmm uring, no poll", at: Where::Vmm("uring", Some(0)), cpus: 1, ops: 200 },
        Platform { name: "vmm uring, busy poll", at: Where::Vmm("uring", None), cpus: 1, ops: 200 },
        Platform { name: "QEMU (TCG)", at: Where::Qemu, cpus: 1, ops: 2000 },
    ];
    let poll_us = vmm_default_poll_us();
    let polled_title = format!(
        "io: 4 KiB random reads from a disk, QD32, IOPOLL (the polled virtqueue, no interrupts) and IOPOLL+SQPOLL (no syscalls\n  \
         either: the SQ poller submits and reaps, the program waits for CQEs in user space), beside interrupt-driven io_uring and pread\n  \
         (our guest only: the host's disk has no poll queues; devices as above). vmm without busy polling (--blk-poll-us 0), and with\n  \
         it (vmm's default, --blk-poll-us {poll_us}): the VMM watches the polled queue, kicks suppressed, so IOPOLL+SQPOLL needs no exit",
    );
    bench.section(
        "polled disk",
        &polled_title,
        Target::Disk,
        &polled_platforms,
        &POLLED,
        &[
            ("uring_qd32_iopoll", "uring_qd32", "uring_qd32/this"),
            ("uring_qd32_iopoll_sqpoll", "uring_qd32", "uring_qd32/this"),
            ("uring_qd32_iopoll", "pread", "pread/this"),
            ("uring_qd32_iopoll_sqpoll", "pread", "pread/this"),
        ],
    );
    let share_platforms = [
        Platform { name: "host Linux", at: Where::Host, cpus: 1, ops: 2000 },
        Platform { name: "vmm (KVM)", at: Where::Vmm("uring", None), cpus: 1, ops: 200 },
        Platform { name: "QEMU (TCG)", at: Where::Qemu, cpus: 1, ops: 2000 },
    ];
    bench.section(
        "9p file",
        "io: 4 KiB random reads from a 9p file, cached (its first MiB, read once first)\n  (host Linux: the file; our guest on vmm and QEMU: /mnt/share/bench.dat, through the guest's page cache)",
        Target::Share(Cache::Warm),
        &share_platforms,
        &READS,
        &read_ratios,
    );
    // The page cache: the same 8 MiB file on 9p and on ext2, read cached, with every
    // read a miss, and with O_DIRECT.
    let file_ratios = [("uring_qd1", "pread", "pread/this"), ("uring_qd32", "pread", "pread/this")];
    let file_figures = ["pread", "uring_qd1", "uring_qd32"];
    let ext2_platforms = [
        Platform { name: "host Linux", at: Where::Host, cpus: 1, ops: 2000 },
        Platform { name: "vmm (KVM)", at: Where::Vmm("uring", None), cpus: 1, ops: 200 },
        Platform { name: "QEMU (TCG)", at: Where::Qemu, cpus: 1, ops: 2000 },
    ];
    for (short, fs, target_of, platforms) in [
        ("9p", "a 9p file (/mnt/share/bench.dat; the host's page cache under it)", Target::Share as fn(Cache) -> Target, &share_platforms),
        ("ext2", "an ext2 file (/mnt/root/bench.dat, root=/dev/vda ro; the disk direct=on under vmm, cache=none under QEMU)", Target::Ext2 as fn(Cache) -> Target, &ext2_platforms),
    ] {
        for (mode, cache, how) in [
            ("cached", Cache::Warm, "through the page cache, holding them (the file's first MiB, read once first)"),
            ("uncached", Cache::Cold, "every read a page-cache miss (uring-bench --cold: DONTNEED, RANDOM, distinct blocks)"),
            ("O_DIRECT", Cache::Direct, "O_DIRECT, around the page cache"),
        ] {
            if short == "9p" && cache == Cache::Warm {
                continue; // the "9p file" section above
            }
            let title = format!("io: 4 KiB reads of {fs},\n  {how}; the host reads the same bytes from its own file system");
            bench.section(&format!("{short} {mode}"), &title, target_of(cache), platforms, &file_figures, &file_ratios);
        }
    }
    bench.section(
        "syscalls",
        "syscalls, the rings and the vDSO, per operation (host Linux, and our guest on vmm and QEMU)",
        Target::Disk,
        &share_platforms,
        &CALLS,
        &[
            ("nop_batch1", "getppid", "getppid/this"),
            ("nop_batch32", "getppid", "getppid/this"),
            ("nop_batch32", "nop_batch1", "nop_batch1/this"),
            ("clock_vdso", "clock_syscall", "syscall/this"),
        ],
    );
    bench.section(
        "unix echo",
        "sockets: an echo server over 64 AF_UNIX stream connections, per message echoed (16 bytes; the client ends written and read\n  \
         with plain syscalls alike): the server on epoll (epoll_wait, recv, send) and on io_uring (a multishot RECV per connection\n  \
         from a provided-buffer ring, the replies as SENDs, one io_uring_enter per round); host Linux, and our guest on vmm and QEMU",
        Target::Disk,
        &share_platforms,
        &["unix_echo_epoll", "unix_echo_uring"],
        &[("unix_echo_uring", "unix_echo_epoll", "epoll/this")],
    );
    // TCP over 127.0.0.1: our guest's is smoltcp's, each segment many kernel instructions,
    // so fewer operations under vmm's emulated ring 0.
    let tcp_platforms = [
        Platform { name: "host Linux", at: Where::Host, cpus: 1, ops: 2000 },
        Platform { name: "vmm (KVM)", at: Where::Vmm("uring", None), cpus: 1, ops: 100 },
        Platform { name: "QEMU (TCG)", at: Where::Qemu, cpus: 1, ops: 2000 },
    ];
    bench.section(
        "tcp echo",
        "sockets: an echo server over 64 TCP connections on 127.0.0.1, per message echoed (16 bytes, TCP_NODELAY; the client ends\n  \
         written and read with plain syscalls alike): the server on epoll (accept4; epoll_wait, recv, send) and on io_uring (one\n  \
         multishot ACCEPT; a multishot RECV per connection from a provided-buffer ring, the replies as SENDs, one io_uring_enter per\n  \
         round); host Linux, and our guest on vmm and QEMU",
        Target::Disk,
        &tcp_platforms,
        &["tcp_echo_epoll", "tcp_echo_uring"],
        &[("tcp_echo_uring", "tcp_echo_epoll", "epoll/this")],
    );
    bench.section(
        "tcp ping-pong",
        "sockets: TCP ping-pong on one connection over 127.0.0.1, per round trip of 16 bytes (the client writes, the server end\n  \
         echoes, the client reads): the server end by recv and send, or by a multishot RECV from a provided-buffer ring and a SEND\n  \
         (one io_uring_enter per reply); host Linux, and our guest on vmm and QEMU",
        Target::Disk,
        &tcp_platforms,
        &["tcp_pingpong_sync", "tcp_pingpong_uring"],
        &[("tcp_pingpong_uring", "tcp_pingpong_sync", "sync/this")],
    );
    let mut scaling_platforms = vec![Platform { name: "host Linux", at: Where::Host, cpus: 1, ops: 20000 }];
    scaling_platforms.extend(cpu_platforms(2000, 20000));
    bench.section(
        "scaling",
        "scaling with CPUs: io_uring NOPs in batches of 32 from one thread on one ring, from one thread per CPU (each pinned, a ring\n  \
         each: ns/op is wall time over all NOPs, so batch32/this is the speed-up over one thread), and through an SQ poller bound to\n  \
         the last CPU (SQ_AFF) fed by a thread on the first without syscalls (the host: all its CPUs; this host has 2 cores, so 4\n  \
         vCPUs share them)",
        Target::Disk,
        &scaling_platforms,
        &SCALING,
        &[("nop_threads", "nop_batch32", "batch32/this"), ("nop_sqpoll_aff", "nop_batch32", "batch32/this")],
    );
    let disk_scaling_platforms = cpu_platforms(200, 2000);
    bench.section(
        "scaling disk",
        "scaling with CPUs: 4 KiB random disk reads at QD32 (O_DIRECT, devices as in the disk section, a request queue per CPU),\n  \
         from one thread, from one thread per CPU (each pinned, a ring each: ns/op is wall time over all reads), and through an SQ\n  \
         poller bound to the last CPU (SQ_AFF) fed by a thread on the first waiting for CQEs in user space, interrupt-driven and\n  \
         with IOPOLL (the polled queue); our guest only (the host's disk has no poll queues)",
        Target::Disk,
        &disk_scaling_platforms,
        &SCALING_DISK,
        &[
            ("read_threads", "uring_qd32", "qd32/this"),
            ("read_sqpoll_aff", "uring_qd32", "qd32/this"),
            ("read_iopoll_sqpoll_aff", "uring_qd32", "qd32/this"),
        ],
    );
    println!("\n(a ratio a/this above 1: this is faster than a; 1cpu/this: the same figure with one CPU. exits/op: VM exits per operation under vmm, less those of a run");
    println!(" without operations: those KVM_RUN returned to vmm but the console's output, the virtqueue notifications (kicks)");
    println!(" KVM served through an ioeventfd, and the interrupts injected through an irqfd; kicks/op: the kicks alone. The");
    println!(" host's other load shows in the ranges.)");
    println!("make bench: {:.0} s; host load average (1 min) {load_before} before, {} after", start.elapsed().as_secs_f64(), load());
    let _ = std::fs::remove_dir_all(&bench.dir);
    // The tables as CSV and charts (`BENCH_OUT=DIR`; default target/bench).
    let out = std::env::var_os("BENCH_OUT").map(PathBuf::from).unwrap_or_else(|| root().join("target/bench"));
    match plot::write_all(&bench.rows, &out) {
        Ok(paths) => println!("written: {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")),
        Err(e) => bench.fail("output", "-", &format!("writing {}", out.display()), &e.to_string()),
    }
    if !bench.failures.is_empty() {
        eprintln!("\nmake bench: {} run(s) FAILED:", bench.failures.len());
        for f in &bench.failures {
            eprintln!("  - {}", f.lines().next().unwrap_or(f));
        }
        std::process::exit(1);
    }
}
