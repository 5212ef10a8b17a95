//! `vmm` command line: parse, build a [`VmConfig`], run, map the outcome to an exit code.
//!
//! Exit codes: the guest's own status when it writes to the exit device (port 0xf4; 255
//! for a status above 255); 0 after Ctrl-A x (or gdb's kill); 124 when `--timeout` stops it; 2 for bad
//! input; 1 for everything else (KVM unavailable, the guest crashed, a vCPU vanished).
//! A guest may itself exit with 1, 2 or 124: `--exit-status-file` tells them apart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vmm::config::{self, DiskConfig, NetConfig, ShareConfig, VmConfig};
use vmm::vm::{self, VmExit};

/// A KVM micro-VMM that boots PVH ELF kernels.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot IMAGE (a PVH ELF kernel) and run it until it exits.
    ///
    /// The guest console (COM1) is printed on stdout and reads stdin (a terminal in raw
    /// mode; Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A). Each --disk, --share and --net is
    /// a virtio-mmio device in a QEMU-microvm slot (the first at 0xfeb00e00, GSI 12, then
    /// downwards, in that order), announced on the kernel command line as
    /// virtio_mmio.device=512@BASE:GSI.
    ///
    /// Exit codes: the status the guest writes to port 0xf4 (255 for a status above 255;
    /// QEMU's isa-debug-exit gives (status << 1) | 1 instead); 0 after Ctrl-A x or gdb's kill; 124 when
    /// --timeout stopped the guest; 2 for bad input (arguments, image, disks, shares, the
    /// tap); 1
    /// for other errors (KVM unavailable, the guest crashed, a vCPU thread vanished). A
    /// guest can exit with 1, 2 or 124 too: --exit-status-file tells which it was.
    Run(Box<RunArgs>),
    /// Make a timeline (as `run --trace` writes) from a guest's memory saved in a file.
    ///
    /// For guests run elsewhere: QEMU with its RAM in a file (-object
    /// memory-backend-file,...,share=on) booting our kernel with trace=SIZE, which takes a
    /// trace ring of SIZE bytes per CPU from RAM (`QEMU_TRACE=FILE.json scripts/qemu.sh`
    /// does all this). The timeline has the guest's events only, on the guest's TSC
    /// (under TCG a virtual clock), and each CPU's first records (the ring is not read
    /// while the guest runs: what did not fit is counted as dropped).
    TraceImport {
        /// The guest's memory, as QEMU's memory-backend-file left it.
        memory: PathBuf,
        /// Where the timeline goes.
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The kernel: an x86-64 ELF with a PVH entry note.
    image: PathBuf,
    /// Guest memory: a number of MiB, or a size with K, M or G.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_mem)]
    mem: u64,
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(config::MAX_VCPUS)))]
    vcpus: u8,
    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = "")]
    cmdline: String,
    /// A file to load as the initrd (PVH module 0).
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Stop the guest after this many seconds and exit with 124. Also bounds how long
    /// console output may then take to drain into a stdout that blocks.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Write the guest's exit status here (decimal, a newline, all 32 bits) when the guest
    /// exits through port 0xf4. The file is created (emptied) at start and stays empty
    /// when vmm ends any other way (timeout, Ctrl-A x, an error).
    #[arg(long, value_name = "PATH")]
    exit_status_file: Option<PathBuf>,
    /// Print the number of VM exits by kind (port I/O, of which the console's, MMIO, other)
    /// on stderr at the end; with disks, shares and --net, their queue notifications (kicks,
    /// which KVM serves through ioeventfds: not in the exits above), with disks
    /// busy-polling rounds; with
    /// direct=on disks, how many requests needed a bounce buffer; with --net, frames
    /// received, sent and dropped; and the warnings the guest
    /// caused, by kind (bad MMIO accesses, bad virtio-blk requests, bad 9p messages,
    /// devices needing a reset, host I/O errors, bad virtio-net frames), which the log
    /// shows rate-limited.
    #[arg(long)]
    stats: bool,
    /// The KVM device to open.
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
    kvm_device: PathBuf,
    /// A virtio-blk disk backed by FILE (read-only with ,ro). Repeatable: the first is
    /// /dev/vda in a Linux guest. engine= picks the host I/O: uring (the host's io_uring,
    /// the guest's requests in flight together; the default when the host allows
    /// io_uring) or sync (pread/pwrite/fdatasync, one request at a time; the fallback).
    /// direct=on opens FILE with O_DIRECT, bypassing the host's page cache (QEMU's
    /// cache=none), with either engine; requests whose guest buffers O_DIRECT cannot take
    /// are copied through aligned buffers. direct=off (the default) uses the page cache.
    /// For tests only: engine=volatile (writes kept in memory until a flush) and
    /// eio=FIRST-LAST (I/O on those sectors fails with EIO); see the README.
    #[arg(long, value_name = "FILE[,ro][,engine=sync|uring][,direct=on|off]", value_parser = parse_disk)]
    disk: Vec<DiskConfig>,
    /// Busy polling by virtio-blk devices, in microseconds (0: off; at most 1000000): after
    /// serving a queue whose driver reaps by polling (it set VRING_AVAIL_F_NO_INTERRUPT:
    /// the guest's io_uring IOPOLL queue), the device keeps watching its available ring
    /// for this long after the last request instead of sleeping, with the driver's kicks
    /// suppressed (VRING_USED_F_NO_NOTIFY, or avail_event with EVENT_IDX), as vhost's
    /// busyloop_timeout. With IOPOLL+SQPOLL the guest then needs no kick and no interrupt.
    /// Costs one host thread spinning up to N us after the last polled request; queues
    /// that take interrupts are never polled.
    #[arg(long, value_name = "N", default_value_t = config::DEFAULT_BLK_POLL_US,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(config::MAX_BLK_POLL_US)))]
    blk_poll_us: u32,
    /// A virtio-9p share of host directory DIR (9P2000.L; read-only with ,ro). Repeatable;
    /// the first share's tag defaults to "share", the others need tag=NAME.
    #[arg(long, value_name = "DIR[,tag=NAME][,ro]", value_parser = parse_share)]
    share: Vec<ShareConfig>,
    /// A virtio-net device on the host tap interface NAME (one at most). The tap is opened
    /// if it exists (create it for your user with `ip tuntap add dev NAME mode tap user
    /// $USER`, then `ip link set NAME up`), else created, which takes CAP_NET_ADMIN. mac=
    /// sets the guest's MAC address (default 52:54:00:12:34:56). The device offers no
    /// checksum or segmentation offloads: the host hands the guest complete frames of at
    /// most the tap's MTU.
    #[arg(long, value_name = "tap=NAME[,mac=XX:XX:XX:XX:XX:XX]", value_parser = parse_net)]
    net: Vec<NetConfig>,
    /// Run without the seccomp filters. By default each thread (main, vCPUs, stdin,
    /// device workers) may make only the system calls its code makes, and any other kills
    /// vmm with SIGSYS; the host io_uring rings accept only the opcodes the disk engine
    /// uses either way.
    #[arg(long)]
    no_seccomp: bool,
    /// Serve a GDB remote stub on 127.0.0.1:PORT: the guest waits, stopped before its
    /// first instruction, until GDB connects (`target remote :PORT`; `make gdb`). Each
    /// vCPU is a GDB thread. Breakpoints (break and hbreak) use the CPU's four debug
    /// registers, so four at most; stepping runs only the stepped vCPU. The seccomp filters
    /// are off with --gdb (the stub's socket and debug ioctls are outside them).
    #[arg(long, value_name = "PORT")]
    gdb: Option<u16>,
    /// Write a timeline of the run to FILE.json (Chrome/Perfetto trace-event format: open
    /// it in ui.perfetto.dev). The guest kernel's tracepoints are turned on (`trace=` is
    /// added to its command line) and merged with vmm's device events on one clock: each
    /// io_uring request from SQE to CQE, through the virtqueue, the host I/O and the
    /// interrupt. The seccomp filters are off with --trace.
    #[arg(long, value_name = "FILE.json")]
    trace: Option<PathBuf>,
}

fn parse_mem(s: &str) -> Result<u64, String> {
    let bytes = config::parse_mem_size(s).map_err(|e| e.to_string())?;
    if bytes < config::MIN_MEM {
        return Err(format!("at least {} MiB are needed", config::MIN_MEM >> 20));
    }
    if bytes > config::MAX_MEM {
        return Err(format!("at most {} GiB are supported", config::MAX_MEM >> 30));
    }
    Ok(bytes)
}

fn parse_disk(s: &str) -> Result<DiskConfig, String> {
    config::parse_disk(s).map_err(|e| e.to_string())
}

fn parse_share(s: &str) -> Result<ShareConfig, String> {
    config::parse_share(s).map_err(|e| e.to_string())
}

fn parse_net(s: &str) -> Result<NetConfig, String> {
    config::parse_net(s).map_err(|e| e.to_string())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, not clap's usage block: "vmm: invalid value '1x' for '--mem <SIZE>': ...".
            let text = e.render().to_string();
            let first = text.split("\n\n").next().unwrap_or("bad arguments");
            let line = first.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("vmm: {} (see vmm --help)", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let mut args = match cli.command {
        Command::Run(args) => *args,
        Command::TraceImport { memory, out } => {
            return match vmm::trace::import(&memory, &out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vmm: trace-import: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    if let Err(e) = config::resolve_share_tags(&mut args.share).and_then(|()| config::check_share_overlap(&args.share)) {
        eprintln!("vmm: {e}");
        return ExitCode::from(2);
    }
    let net = match config::single_net(std::mem::take(&mut args.net)) {
        Ok(net) => net,
        Err(e) => {
            eprintln!("vmm: {e}");
            return ExitCode::from(2);
        }
    };
    // Created (emptied) first: a stale status must never be taken for this run's. It
    // stays open, so the main thread needs no open(2) at the end (its seccomp filter).
    let mut status_file = match &args.exit_status_file {
        None => None,
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("vmm: --exit-status-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let args_stats = args.stats;
    let config = VmConfig {
        kernel: args.image,
        mem_bytes: args.mem,
        vcpus: args.vcpus,
        cmdline: args.cmdline,
        initrd: args.initrd,
        timeout: args.timeout,
        kvm_device: args.kvm_device,
        disks: args.disk,
        shares: args.share,
        blk_poll: Duration::from_micros(u64::from(args.blk_poll_us)),
        seccomp: !args.no_seccomp && args.gdb.is_none() && args.trace.is_none(),
        gdb: args.gdb,
        trace: args.trace,
        net,
    };
    let stats = args_stats;
    let result = vm::run(&config);
    if stats {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &vm::EXITS;
        let (io, mmio, other) = (e.io.load(Relaxed), e.mmio.load(Relaxed), e.other.load(Relaxed));
        let console = e.console.load(Relaxed);
        eprintln!("vmm: exits: {} total, {io} port I/O ({console} of them the console), {mmio} MMIO, {other} other", io + mmio + other);
        if !config.disks.is_empty() {
            let p = &vmm::devices::virtio::poll::BLK_STATS;
            let (kicks, by_mmio) = (p.kicks.load(Relaxed), p.kicks_by_mmio.load(Relaxed));
            let (rounds, polled) = (p.rounds.load(Relaxed), p.polled.load(Relaxed));
            eprintln!(
                "vmm: virtio-blk: {kicks} kicks, {} by ioeventfd (exits KVM served itself, not counted above); {rounds} polling rounds, {polled} requests taken while polling",
                kicks.saturating_sub(by_mmio)
            );
            let (requests, per_queue) = p.requests();
            let per_queue: Vec<String> = per_queue.iter().map(u64::to_string).collect();
            eprintln!(
                "vmm: virtio-blk requests: {requests} (by queue: {}), {} interrupts",
                per_queue.join(" "),
                p.interrupts.load(Relaxed)
            );
        }
        if !config.shares.is_empty() {
            let p = &vmm::devices::virtio::poll::P9_STATS;
            let (kicks, by_mmio) = (p.kicks.load(Relaxed), p.kicks_by_mmio.load(Relaxed));
            eprintln!("vmm: virtio-9p: {kicks} kicks, {} by ioeventfd (exits KVM served itself, not counted above)", kicks.saturating_sub(by_mmio));
            eprintln!("vmm: virtio-9p requests: {}, {} interrupts", p.requests().0, p.interrupts.load(Relaxed));
        }
        if config.net.is_some() {
            let p = &vmm::devices::virtio::poll::NET_STATS;
            let (kicks, by_mmio) = (p.kicks.load(Relaxed), p.kicks_by_mmio.load(Relaxed));
            eprintln!("vmm: virtio-net: {kicks} kicks, {} by ioeventfd (exits KVM served itself, not counted above)", kicks.saturating_sub(by_mmio));
            let n = &vmm::devices::virtio::net::STATS;
            eprintln!(
                "vmm: virtio-net frames: {} received ({} bytes), {} dropped; {} sent ({} bytes), {} dropped; {} interrupts",
                n.rx_frames.load(Relaxed),
                n.rx_bytes.load(Relaxed),
                n.rx_dropped.load(Relaxed),
                n.tx_frames.load(Relaxed),
                n.tx_bytes.load(Relaxed),
                n.tx_dropped.load(Relaxed),
                p.interrupts.load(Relaxed)
            );
        }
        eprintln!("{}", vmm::devices::guest_errors::stats_line());
        if config.disks.iter().any(|d| d.direct) {
            let d = &vmm::devices::virtio::block::direct::STATS;
            let (n, bounced, buffered) = (d.requests.load(Relaxed), d.bounced.load(Relaxed), d.buffered.load(Relaxed));
            eprintln!("vmm: direct I/O: {n} requests, {bounced} through a bounce buffer, {buffered} without O_DIRECT (misaligned range)");
        }
    }
    if let (Ok(VmExit::Exited(status)), Some(file), Some(path)) = (&result, &mut status_file, &args.exit_status_file)
        && let Err(e) = std::io::Write::write_all(file, format!("{status}\n").as_bytes())
    {
        eprintln!("vmm: --exit-status-file {}: {e}", path.display());
        return ExitCode::from(1);
    }
    match result {
        Ok(VmExit::Exited(status)) => ExitCode::from(u8::try_from(status).unwrap_or(u8::MAX)),
        Ok(VmExit::Quit) => {
            eprintln!("vmm: quit (C-a x)");
            ExitCode::SUCCESS
        }
        Ok(VmExit::Killed) => {
            eprintln!("vmm: killed from gdb");
            ExitCode::SUCCESS
        }
        Ok(VmExit::TimedOut) => {
            let secs = config.timeout.map_or(0.0, |t| t.as_secs_f64());
            eprintln!("vmm: timeout: guest stopped after {secs} s");
            ExitCode::from(124)
        }
        Err(e) => {
            eprintln!("vmm: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}
