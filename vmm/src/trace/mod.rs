//! `vmm run --trace FILE.json`: one timeline of a run, in the Chrome/Perfetto trace-event
//! format (ui.perfetto.dev and chrome://tracing open it).
//!
//! Two sources meet here:
//! - the guest kernel's tracepoints, which it writes into a ring per CPU in memory this
//!   VMM reserved (`trace=SIZE@BASE` on its command line; the layout is in
//!   `guest-kernel/src/trace.rs`). A thread reads the rings while the guest runs, and once
//!   more at the end;
//! - this VMM's own events (virtio workers: kick received, chain popped, host I/O
//!   submitted and completed, used entry published, interrupt injected or not), recorded
//!   with the host TSC.
//!
//! One clock: KVM runs the guest's TSC at host TSC + the offset it reports
//! (KVM_VCPU_TSC_OFFSET), so guest times become host times by subtracting it. Every trace
//! checks it: a chain the VMM popped must come after the guest published it, and a used
//! entry the guest reaped after the VMM published it; the least such gaps are printed
//! (negative would mean the clocks disagree).
//!
//! [`timeline`] follows each request across the layers and writes the JSON.
//! `vmm trace-import` ([`import`]) makes a guest-only timeline from a memory image instead
//! (QEMU, whose side is not traced).

mod timeline;

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Bytes of trace ring per vCPU (43,000 records).
pub const PER_CPU: u64 = 2 << 20;
/// How often the rings are read while the guest runs.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

// The ring layout of guest-kernel/src/trace.rs: a 64-byte header (magic and record size,
// head, tail, dropped, capacity, TSC kHz), then 48-byte records.
const MAGIC: u32 = u32::from_le_bytes(*b"TRC1");
const HEADER: u64 = 64;
const RECORD: u64 = 48;

/// What a VMM event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmm {
    /// The worker woke for a queue's notification (value: notifications counted).
    KickReceived,
    /// A chain taken from the avail ring (at: its avail-ring position).
    Pop,
    /// Its host I/O submitted.
    HostSubmit,
    /// Its host I/O finished (value: bytes or -errno; at 1: served at once, synchronously).
    HostComplete,
    /// Its used entry published (at: its used-ring position).
    Used,
    /// The driver asked for an interrupt: injected (irqfd written).
    Irq,
    /// The driver did not ask (EVENT_IDX's used_event, or NO_INTERRUPT): none.
    IrqSuppressed,
}

#[derive(Clone, Copy, Debug)]
struct VmmEvent {
    tsc: u64,
    thread: u16,
    kind: Vmm,
    /// The virtqueue: its descriptor table's guest address (the guest names it so too).
    queue: u64,
    head: u16,
    at: u16,
    value: i64,
}

/// A guest trace record (guest-kernel/src/trace.rs `Kind` says what `a`..`d` mean).
#[derive(Clone, Copy, Debug, Default)]
struct GuestRecord {
    tsc: u64,
    kind: u16,
    cpu: u16,
    task: u32,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
}

struct Recorder {
    events: Mutex<Vec<VmmEvent>>,
    threads: Mutex<Vec<String>>,
    /// Virtqueues by descriptor-table address: their names.
    queues: Mutex<HashMap<u64, String>>,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

thread_local! {
    /// This thread's index in `Recorder::threads` (u16::MAX: not yet named).
    static THREAD: Cell<u16> = const { Cell::new(u16::MAX) };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this run is traced (one load when it is not).
#[inline]
pub fn on() -> bool {
    RECORDER.get().is_some()
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records a VMM event about chain `head` of the virtqueue at `queue`.
pub fn event(kind: Vmm, queue: u64, head: u16, at: u16, value: i64) {
    let Some(rec) = RECORDER.get() else { return };
    let tsc = rdtsc();
    let thread = THREAD.with(|t| {
        if t.get() == u16::MAX {
            let mut names = lock(&rec.threads);
            names.push(std::thread::current().name().unwrap_or("vmm").to_owned());
            t.set((names.len() - 1) as u16);
        }
        t.get()
    });
    lock(&rec.events).push(VmmEvent { tsc, thread, kind, queue, head, at, value });
}

/// Names a virtqueue for the timeline ("virtio-blk@0xfeb00e00 q1").
pub fn name_queue(queue: u64, name: String) {
    if let Some(rec) = RECORDER.get() {
        lock(&rec.queues).insert(queue, name);
    }
}

fn parse_record(buf: &[u8]) -> GuestRecord {
    let w = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let word0 = w(1);
    GuestRecord { tsc: w(0), kind: word0 as u16, cpu: (word0 >> 16) as u16, task: (word0 >> 32) as u32, a: w(2), b: w(3), c: w(4), d: w(5) }
}

/// The guest's trace rings, read while the guest runs.
struct GuestRings {
    mem: GuestMemoryMmap,
    base: u64,
    cpus: u64,
    records: Vec<GuestRecord>,
}

impl GuestRings {
    fn word(&self, cpu: u64, offset: u64) -> u64 {
        self.mem.load::<u64>(GuestAddress(self.base + cpu * PER_CPU + offset), Ordering::Acquire).unwrap_or(0)
    }

    /// Takes what every CPU's ring holds, then hands the space back (publishes `tail`).
    /// The guest is not trusted: a ring whose header makes no sense is not read.
    fn drain(&mut self) {
        for cpu in 0..self.cpus {
            if self.word(cpu, 0) != u64::from(MAGIC) | RECORD << 32 {
                continue; // not (yet) set up by the guest
            }
            let (head, tail, cap) = (self.word(cpu, 8), self.word(cpu, 16), self.word(cpu, 32));
            if cap == 0 || cap > (PER_CPU - HEADER) / RECORD || head.wrapping_sub(tail) > cap {
                continue;
            }
            let hdr = self.base + cpu * PER_CPU;
            let mut buf = [0u8; RECORD as usize];
            for n in tail..head {
                if self.mem.read_slice(&mut buf, GuestAddress(hdr + HEADER + (n % cap) * RECORD)).is_err() {
                    break;
                }
                self.records.push(parse_record(&buf));
            }
            let _ = self.mem.store(head, GuestAddress(hdr + 16), Ordering::Release);
        }
    }

    fn dropped(&self) -> u64 {
        (0..self.cpus).map(|cpu| self.word(cpu, 24)).sum()
    }
}

/// Where the trace memory goes: `vcpus` rings ending at `end` (the top of low RAM);
/// (base, bytes).
pub fn region(end: u64, vcpus: u8) -> (u64, u64) {
    let bytes = PER_CPU * u64::from(vcpus);
    (end.saturating_sub(bytes), bytes)
}

/// The kernel command-line word that turns the guest's tracepoints on.
pub fn cmdline_word(base: u64) -> String {
    format!("trace={PER_CPU}@{base:#x}")
}

/// A traced run: the rings' reader, and where the timeline goes.
pub struct Session {
    rings: Arc<Mutex<GuestRings>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    path: PathBuf,
    tsc_khz: u32,
    tsc_offset: i64,
}

impl Session {
    /// Starts recording VMM events and reading the guest's rings at `base`.
    pub fn start(mem: &GuestMemoryMmap, base: u64, vcpus: u8, path: &Path) -> std::io::Result<Self> {
        // Fail before the guest runs when the file cannot be written.
        std::fs::File::create(path)?;
        let _ = RECORDER.set(Recorder { events: Mutex::default(), threads: Mutex::default(), queues: Mutex::default() });
        let rings = Arc::new(Mutex::new(GuestRings { mem: mem.clone(), base, cpus: u64::from(vcpus), records: Vec::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&rings), Arc::clone(&stop));
        let reader = std::thread::Builder::new().name("trace".into()).spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(DRAIN_EVERY);
                lock(&r).drain();
            }
        })?;
        Ok(Self { rings, stop, reader: Some(reader), path: path.to_owned(), tsc_khz: 0, tsc_offset: 0 })
    }

    /// The guest's TSC rate and its offset from the host's (from vCPU 0).
    pub fn set_clock(&mut self, tsc_khz: u32, tsc_offset: i64) {
        self.tsc_khz = tsc_khz;
        self.tsc_offset = tsc_offset;
    }

    /// After the guest stopped: reads the rings a last time, merges, writes the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut rings = lock(&self.rings);
        rings.drain();
        let dropped = rings.dropped();
        let guest = std::mem::take(&mut rings.records);
        let rec = RECORDER.get().expect("started");
        let vmm = std::mem::take(&mut *lock(&rec.events));
        let threads = lock(&rec.threads).clone();
        let queues = lock(&rec.queues).clone();
        let clock = timeline::Clock {
            khz: self.tsc_khz.max(1),
            offset: self.tsc_offset,
            note: format!("host TSC at {} kHz; guest events at guest TSC - {} (KVM's TSC offset)", self.tsc_khz, self.tsc_offset),
        };
        let t = write(&self.path, guest, &vmm, &threads, &queues, &clock, dropped)?;
        let gap = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} us"));
        let negative = t.guest_to_vmm.is_some_and(|v| v < 0.0) || t.vmm_to_guest.is_some_and(|v| v < 0.0);
        eprintln!(
            "trace: one clock (guest TSC - KVM offset {}): least guest-to-VMM gap {}, least VMM-to-guest gap {}{}",
            self.tsc_offset,
            gap(t.guest_to_vmm),
            gap(t.vmm_to_guest),
            if negative { " (NEGATIVE: the clocks disagree)" } else { "" }
        );
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Merges, writes the timeline to `path`, and says what is in it.
fn write(
    path: &Path,
    mut guest: Vec<GuestRecord>,
    vmm: &[VmmEvent],
    threads: &[String],
    queues: &HashMap<u64, String>,
    clock: &timeline::Clock,
    dropped: u64,
) -> std::io::Result<timeline::Summary> {
    guest.sort_by_key(|r| r.tsc);
    let (json, summary) = timeline::build(&guest, vmm, threads, queues, clock, dropped);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    serde_json::to_writer(&mut out, &json)?;
    out.flush()?;
    eprintln!(
        "trace: {} guest and {} VMM events, {} requests ({} complete chains), {dropped} dropped -> {}",
        guest.len(),
        vmm.len(),
        summary.requests,
        summary.complete,
        path.display()
    );
    Ok(summary)
}

/// `vmm trace-import MEMORY OUT.json`: the timeline of a run whose guest memory was kept
/// in a file (QEMU's `memory-backend-file`) and whose kernel took its trace rings from RAM
/// (`trace=SIZE`). The rings are found by their magic on page boundaries; nobody read them
/// while the guest ran, so each holds its CPU's first records (the rest are counted as
/// dropped). Guest events only, on the guest's TSC (under TCG a virtual clock).
pub fn import(memory: &Path, out: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(memory)?;
    let len = file.metadata()?.len();
    let (mut guest, mut rings, mut dropped, mut khz) = (Vec::new(), 0, 0, 0);
    let mut chunk = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = file.read_at(&mut chunk, at)?;
        if n == 0 {
            break;
        }
        for page in (0..n.saturating_sub(HEADER as usize - 1)).step_by(4096) {
            let w = |i: usize| u64::from_le_bytes(chunk[page + i * 8..page + i * 8 + 8].try_into().expect("8 bytes"));
            let (head, cap, hdr) = (w(1), w(4), at + page as u64);
            if w(0) != u64::from(MAGIC) | RECORD << 32 || cap == 0 || head > cap || hdr + HEADER + cap * RECORD > len {
                continue;
            }
            let mut records = vec![0u8; (head * RECORD) as usize];
            file.read_exact_at(&mut records, hdr + HEADER)?;
            guest.extend(records.chunks_exact(RECORD as usize).map(parse_record));
            rings += 1;
            dropped += w(3);
            khz = w(5);
        }
        at += n as u64;
    }
    if rings == 0 {
        return Err(std::io::Error::other(format!("{}: no trace rings (was the guest booted with trace=SIZE?)", memory.display())));
    }
    let clock = timeline::Clock {
        khz: u32::try_from(khz).unwrap_or(u32::MAX).max(1),
        offset: 0,
        note: format!("guest TSC at {khz} kHz, from {rings} rings in guest memory; guest events only (under TCG the TSC is a virtual clock)"),
    };
    write(out, guest, &[], &[], &HashMap::new(), &clock, dropped)?;
    Ok(())
}

/// The offset KVM adds to the host TSC to make this vCPU's (KVM_VCPU_TSC_OFFSET; 0 when
/// KVM cannot say, as before Linux 5.16).
pub fn tsc_offset(vcpu: &kvm_ioctls::VcpuFd) -> i64 {
    use std::os::fd::AsRawFd;
    let mut offset: u64 = 0;
    let attr = kvm_bindings::kvm_device_attr {
        flags: 0,
        group: kvm_bindings::KVM_VCPU_TSC_CTRL,
        attr: u64::from(kvm_bindings::KVM_VCPU_TSC_OFFSET),
        addr: &raw mut offset as u64,
    };
    // KVM_GET_DEVICE_ATTR, _IOW(KVMIO, 0xe2, struct kvm_device_attr): kvm-ioctls has it
    // for VM and device fds only.
    const KVM_GET_DEVICE_ATTR: libc::c_ulong = 0x4018_aee2;
    // SAFETY: a vCPU fd, a valid kvm_device_attr, and `addr` points at a u64 that lives
    // across the call (the attribute is 8 bytes).
    let ret = unsafe { libc::ioctl(vcpu.as_raw_fd(), KVM_GET_DEVICE_ATTR, &attr) };
    if ret != 0 {
        log::warn!("--trace: KVM cannot tell the guest's TSC offset ({}); taking 0", std::io::Error::last_os_error());
        return 0;
    }
    offset as i64
}
