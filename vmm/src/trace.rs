//! `vmm run --trace FILE.json`: one timeline of a run, in the Chrome/Perfetto trace-event
//! format (ui.perfetto.dev and chrome://tracing open it).
//!
//! Two sources meet here:
//! - the guest kernel's tracepoints, which it writes into a ring per CPU in memory this
//!   VMM reserved (`trace=SIZE@BASE` on its command line; layout in
//!   `guest-kernel/src/trace.rs`). A thread reads the rings while the guest runs, and
//!   once more at the end;
//! - this VMM's own events (virtio workers: kick received, chain popped, host I/O
//!   submitted and completed, used entry published, interrupt injected or not), recorded
//!   with the host TSC.
//!
//! One clock: KVM runs the guest's TSC at host TSC + the offset it reports
//! (KVM_VCPU_TSC_OFFSET), so guest times become host times by subtracting it. The result
//! is checked on every trace: a chain popped by the VMM must come after the guest
//! published it, and a used entry the guest reaps after the VMM published it; the smallest
//! such gaps are printed (negative would mean the clocks disagree).
//!
//! Requests are followed across the layers by keys both sides know, not by time: the
//! virtqueue (its descriptor table's address), the avail-ring position and head of a
//! chain, and the used-ring position. Each request's events are linked by flow arrows
//! from its SQE to its CQE; an interrupt decision that served several requests carries
//! all of them.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Bytes of trace ring per vCPU (43,000 records).
pub const PER_CPU: u64 = 2 << 20;
/// How often the rings are read while the guest runs.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

// The ring layout and record kinds of guest-kernel/src/trace.rs.
const MAGIC: u32 = u32::from_le_bytes(*b"TRC1");
const HEADER: u64 = 64;
const RECORD: u64 = 48;
mod guest {
    pub const SQE: u16 = 1;
    pub const PREP: u16 = 2;
    pub const ISSUE: u16 = 3;
    pub const POLL_ARM: u16 = 4;
    pub const PUNT: u16 = 5;
    pub const CQE: u16 = 6;
    pub const CQ_HEAD: u16 = 7;
    pub const PUBLISH: u16 = 8;
    pub const KICK: u16 = 9;
    pub const KICK_SUPPRESSED: u16 = 10;
    pub const IRQ: u16 = 11;
    pub const USED: u16 = 12;
    pub const SWITCH: u16 = 13;
}

/// What a VMM event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmm {
    /// The worker woke for a queue's notification (value: notifications counted).
    KickReceived,
    /// A chain taken from the avail ring (at: its avail position).
    Pop,
    /// Its host I/O submitted (io_uring_enter on the host).
    HostSubmit,
    /// Its host I/O finished (value: bytes or -errno; at 1: served synchronously).
    HostComplete,
    /// Its used entry published (at: its used position).
    Used,
    /// The driver asked for an interrupt: injected (irqfd written).
    Irq,
    /// The driver did not ask (EVENT_IDX used_event, or NO_INTERRUPT): none.
    IrqSuppressed,
}

impl Vmm {
    fn name(self) -> &'static str {
        match self {
            Vmm::KickReceived => "kick received",
            Vmm::Pop => "pop",
            Vmm::HostSubmit => "host submit",
            Vmm::HostComplete => "host complete",
            Vmm::Used => "used",
            Vmm::Irq => "irq inject",
            Vmm::IrqSuppressed => "irq suppressed",
        }
    }
}

#[derive(Clone, Copy)]
struct VmmEvent {
    tsc: u64,
    thread: u16,
    kind: Vmm,
    queue: u64,
    head: u16,
    at: u16,
    value: i64,
}

#[derive(Clone, Copy, Debug)]
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

/// Whether this run is traced (one load when it is not).
#[inline]
pub fn on() -> bool {
    RECORDER.get().is_some()
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records a VMM event about queue `queue` (its descriptor-table address), chain `head`.
pub fn event(kind: Vmm, queue: u64, head: u16, at: u16, value: i64) {
    let Some(rec) = RECORDER.get() else { return };
    let tsc = rdtsc();
    let thread = THREAD.with(|t| {
        if t.get() == u16::MAX {
            let mut names = rec.threads.lock().unwrap_or_else(|e| e.into_inner());
            names.push(std::thread::current().name().unwrap_or("vmm").to_owned());
            t.set((names.len() - 1) as u16);
        }
        t.get()
    });
    let ev = VmmEvent {
        tsc,
        thread,
        kind,
        queue,
        head,
        at,
        value,
    };
    rec.events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ev);
}

/// Names a virtqueue for the timeline ("virtio-blk0 q1").
pub fn name_queue(queue: u64, name: String) {
    if let Some(rec) = RECORDER.get() {
        rec.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(queue, name);
    }
}

/// The guest's trace rings, read while the guest runs.
struct GuestRings {
    mem: GuestMemoryMmap,
    base: u64,
    cpus: u64,
    records: Vec<GuestRecord>,
    dropped: u64,
}

impl GuestRings {
    /// Takes what every CPU's ring holds, then hands the space back (publishes `tail`).
    fn drain(&mut self) {
        for cpu in 0..self.cpus {
            let hdr = self.base + cpu * PER_CPU;
            let word = |off: u64| {
                self.mem
                    .load::<u64>(GuestAddress(hdr + off), Ordering::Acquire)
                    .unwrap_or(0)
            };
            if word(0) as u32 != MAGIC || word(0) >> 32 != RECORD {
                continue; // not (yet) set up by the guest
            }
            let head = word(8);
            let tail = word(16);
            let cap = word(32);
            if cap == 0 || cap > (PER_CPU - HEADER) / RECORD || head.wrapping_sub(tail) > cap {
                continue; // the guest wrote nonsense: read nothing
            }
            let mut buf = [0u8; RECORD as usize];
            for n in tail..head {
                let at = hdr + HEADER + (n % cap) * RECORD;
                if self.mem.read_slice(&mut buf, GuestAddress(at)).is_err() {
                    break;
                }
                let w = |i: usize| {
                    u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
                };
                let word0 = w(1);
                self.records.push(GuestRecord {
                    tsc: w(0),
                    kind: word0 as u16,
                    cpu: (word0 >> 16) as u16,
                    task: (word0 >> 32) as u32,
                    a: w(2),
                    b: w(3),
                    c: w(4),
                    d: w(5),
                });
            }
            let _ = self
                .mem
                .store(head, GuestAddress(hdr + 16), Ordering::Release);
        }
    }

    fn dropped(&self) -> u64 {
        (0..self.cpus)
            .map(|cpu| {
                self.mem
                    .load::<u64>(
                        GuestAddress(self.base + cpu * PER_CPU + 24),
                        Ordering::Relaxed,
                    )
                    .unwrap_or(0)
            })
            .sum()
    }
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

/// Where the trace memory goes: `vcpus` rings ending at `end` (the top of low RAM).
pub fn region(end: u64, vcpus: u8) -> (u64, u64) {
    let bytes = PER_CPU * u64::from(vcpus);
    (end - bytes, bytes)
}

/// The kernel command-line word that turns the guest's tracepoints on.
pub fn cmdline_word(base: u64) -> String {
    format!("trace={PER_CPU}@{base:#x}")
}

impl Session {
    /// Starts recording VMM events and reading the guest's rings at `base`.
    pub fn start(
        mem: &GuestMemoryMmap,
        base: u64,
        vcpus: u8,
        path: &Path,
    ) -> std::io::Result<Self> {
        // Fail before the guest runs when the file cannot be written.
        std::fs::File::create(path)?;
        let _ = RECORDER.set(Recorder {
            events: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            queues: Mutex::new(HashMap::new()),
        });
        let rings = Arc::new(Mutex::new(GuestRings {
            mem: mem.clone(),
            base,
            cpus: u64::from(vcpus),
            records: Vec::new(),
            dropped: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&rings), Arc::clone(&stop));
        let reader = std::thread::Builder::new()
            .name("trace".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(DRAIN_EVERY);
                    r.lock().unwrap_or_else(|e| e.into_inner()).drain();
                }
            })?;
        Ok(Self {
            rings,
            stop,
            reader: Some(reader),
            path: path.to_owned(),
            tsc_khz: 0,
            tsc_offset: 0,
        })
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
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.drain();
        rings.dropped = rings.dropped();
        let rec = RECORDER.get().expect("started");
        let vmm = std::mem::take(&mut *rec.events.lock().unwrap_or_else(|e| e.into_inner()));
        let threads = rec
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let queues = rec.queues.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut guest = std::mem::take(&mut rings.records);
        guest.sort_by_key(|r| r.tsc);
        let clock = Clock {
            khz: self.tsc_khz.max(1),
            offset: self.tsc_offset,
        };
        let timeline = merge(&guest, &vmm, &threads, &queues, clock, rings.dropped);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&self.path)?);
        serde_json::to_writer(&mut out, &timeline.json)?;
        out.flush()?;
        let lag = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} us"));
        eprintln!(
            "trace: {} guest and {} VMM events, {} requests ({} complete chains), {} dropped -> {}",
            guest.len(),
            vmm.len(),
            timeline.requests,
            timeline.complete,
            rings.dropped,
            self.path.display()
        );
        eprintln!(
            "trace: one clock (guest TSC - KVM offset {}): least guest-to-VMM gap {}, least VMM-to-guest gap {}{}",
            self.tsc_offset,
            lag(timeline.guest_to_vmm),
            lag(timeline.vmm_to_guest),
            if timeline.guest_to_vmm.is_some_and(|v| v < 0.0)
                || timeline.vmm_to_guest.is_some_and(|v| v < 0.0)
            {
                " (NEGATIVE: the clocks disagree)"
            } else {
                ""
            }
        );
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
struct Clock {
    khz: u32,
    offset: i64,
}

impl Clock {
    /// A guest TSC on the host's TSC.
    fn host(self, guest_tsc: u64) -> u64 {
        guest_tsc.wrapping_sub(self.offset as u64)
    }
}

/// Chrome trace "processes" (groups of tracks).
const CPUS: u32 = 1;
const TASKS: u32 = 2;
const QUEUES: u32 = 3;
const THREADS: u32 = 4;

struct Timeline {
    json: Value,
    requests: usize,
    complete: usize,
    guest_to_vmm: Option<f64>,
    vmm_to_guest: Option<f64>,
}

/// One event of the timeline, before it becomes JSON.
struct Ev {
    tsc: u64,
    pid: u32,
    tid: u64,
    name: String,
    args: serde_json::Map<String, Value>,
    /// The requests it belongs to.
    reqs: Vec<u64>,
    /// A slice that lasts (the CPU tracks' running tasks), in TSC ticks.
    dur: u64,
}

/// What is known of a request.
#[derive(Default)]
struct Req {
    opcode: u8,
    user_data: u64,
    task: u32,
    ring: u64,
    /// Its events (indices into the event list), and the causal edges between them.
    events: Vec<usize>,
    edges: Vec<(usize, usize)>,
    /// Last event of the submission side, of the VMM side; its CQE and CQ index.
    last: Option<usize>,
    publish: Option<usize>,
    vmm_used: Option<usize>,
    cqe: Option<(usize, u32)>,
}

fn merge(
    guest: &[GuestRecord],
    vmm: &[VmmEvent],
    threads: &[String],
    queue_names: &HashMap<u64, String>,
    clock: Clock,
    dropped: u64,
) -> Timeline {
    let mut evs: Vec<Ev> = Vec::new();
    let mut reqs: HashMap<u64, Req> = HashMap::new();
    let mut queue_track: HashMap<u64, u64> = HashMap::new();
    let mut track_of = |q: u64| -> u64 {
        let n = queue_track.len() as u64;
        *queue_track.entry(q).or_insert(n)
    };
    let new_ev =
        |evs: &mut Vec<Ev>, tsc: u64, pid: u32, tid: u64, name: &str, args: Value| -> usize {
            let args = match args {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            evs.push(Ev {
                tsc,
                pid,
                tid,
                name: name.to_owned(),
                args,
                reqs: Vec::new(),
                dur: 0,
            });
            evs.len() - 1
        };
    // Links event `e` into request `id`'s chain after `from` (its last event by default).
    fn link(reqs: &mut HashMap<u64, Req>, evs: &mut [Ev], id: u64, e: usize, from: Option<usize>) {
        let r = reqs.entry(id).or_default();
        if let Some(f) = from.or(r.last) {
            r.edges.push((f, e));
        }
        r.events.push(e);
        evs[e].reqs.push(id);
    }

    // Pass 1, guest submission side (time order): SQE to kick, and the CPU tracks.
    let mut published: HashMap<(u64, u16, u16), VecDeque<(u64, usize)>> = HashMap::new();
    let mut last_publish: HashMap<u16, (u64, usize)> = HashMap::new();
    let mut running: HashMap<u16, usize> = HashMap::new();
    for g in guest {
        let tsc = clock.host(g.tsc);
        match g.kind {
            guest::SQE => {
                let (op, flags, slot) = (g.c as u8, (g.c >> 8) as u8, (g.c >> 16) as u32);
                let e = new_ev(
                    &mut evs,
                    tsc,
                    TASKS,
                    u64::from(g.task),
                    "sqe",
                    json!({"req": g.a, "user_data": g.b, "opcode": op, "flags": flags, "sq_slot": slot, "cpu": g.cpu}),
                );
                let r = reqs.entry(g.a).or_default();
                (r.opcode, r.user_data, r.task, r.ring) = (op, g.b, g.task, g.d);
                link(&mut reqs, &mut evs, g.a, e, None);
                reqs.get_mut(&g.a).expect("just made").last = Some(e);
            }
            guest::PREP | guest::ISSUE | guest::POLL_ARM | guest::PUNT if g.a != 0 => {
                let (name, args) = match g.kind {
                    guest::PREP => (
                        "prep",
                        json!({"req": g.a, "result": g.b as i64, "cpu": g.cpu}),
                    ),
                    guest::ISSUE => (
                        "issue",
                        json!({"req": g.a, "io_wq": g.b != 0, "cpu": g.cpu}),
                    ),
                    guest::POLL_ARM => ("poll armed", json!({"req": g.a, "cpu": g.cpu})),
                    _ => ("punt io-wq", json!({"req": g.a, "cpu": g.cpu})),
                };
                let e = new_ev(&mut evs, tsc, TASKS, u64::from(g.task), name, args);
                link(&mut reqs, &mut evs, g.a, e, None);
                reqs.get_mut(&g.a).expect("linked").last = Some(e);
            }
            guest::PUBLISH => {
                let (head, pos) = (g.d as u16, (g.d >> 16) as u16);
                let tid = track_of(g.b);
                let e = new_ev(
                    &mut evs,
                    tsc,
                    QUEUES,
                    tid,
                    "publish",
                    json!({"req": g.a, "queue": g.c, "head": head, "avail_pos": pos, "cpu": g.cpu}),
                );
                published
                    .entry((g.b, pos, head))
                    .or_default()
                    .push_back((g.a, e));
                last_publish.insert(g.cpu, (g.a, e));
                if g.a != 0 {
                    link(&mut reqs, &mut evs, g.a, e, None);
                    let r = reqs.get_mut(&g.a).expect("linked");
                    r.publish = Some(e);
                    r.last = Some(e);
                }
            }
            guest::KICK | guest::KICK_SUPPRESSED => {
                let name = if g.kind == guest::KICK {
                    "kick"
                } else {
                    "kick suppressed"
                };
                let tid = track_of(g.b);
                let e = new_ev(
                    &mut evs,
                    tsc,
                    QUEUES,
                    tid,
                    name,
                    json!({"queue": g.c, "avail_idx": g.d, "cpu": g.cpu}),
                );
                // The decision right after a publish, on the same CPU.
                if let Some((id, p)) = last_publish.remove(&g.cpu)
                    && id != 0
                {
                    evs[e].args.insert("req".into(), json!(id));
                    link(&mut reqs, &mut evs, id, e, Some(p));
                }
            }
            guest::SWITCH => {
                if let Some(prev) = running.remove(&g.cpu) {
                    evs[prev].dur = tsc.saturating_sub(evs[prev].tsc);
                }
                let name = if g.a == 0 {
                    "idle".to_owned()
                } else {
                    format!("task {}", g.a)
                };
                let e = new_ev(
                    &mut evs,
                    tsc,
                    CPUS,
                    u64::from(g.cpu),
                    &name,
                    json!({"task": g.a}),
                );
                running.insert(g.cpu, e);
            }
            _ => {}
        }
    }

    // Pass 2, the VMM (its own order): pop to interrupt decision.
    let mut in_flight: HashMap<(u64, u16), u64> = HashMap::new();
    let mut used_at: HashMap<(u64, u16, u16), (u64, usize)> = HashMap::new();
    let mut undecided: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut guest_to_vmm: Option<f64> = None;
    let us = |ticks: i128| ticks as f64 * 1000.0 / f64::from(clock.khz);
    for v in vmm {
        let tid = u64::from(v.thread);
        let qname = queue_names
            .get(&v.queue)
            .cloned()
            .unwrap_or_else(|| format!("{:#x}", v.queue));
        let mut args = json!({"queue": qname, "head": v.head});
        let e = match v.kind {
            Vmm::KickReceived => {
                args = json!({"queue": qname, "notifications": v.value});
                new_ev(&mut evs, v.tsc, THREADS, tid, v.kind.name(), args)
            }
            Vmm::Pop => {
                args["avail_pos"] = json!(v.at);
                let e = new_ev(&mut evs, v.tsc, THREADS, tid, v.kind.name(), args);
                let from = published
                    .get_mut(&(v.queue, v.at, v.head))
                    .and_then(VecDeque::pop_front);
                if let Some((id, p)) = from {
                    let gap = us(i128::from(v.tsc) - i128::from(evs[p].tsc));
                    guest_to_vmm = Some(guest_to_vmm.map_or(gap, |g| g.min(gap)));
                    if id != 0 {
                        in_flight.insert((v.queue, v.head), id);
                        evs[e].args.insert("req".into(), json!(id));
                        link(&mut reqs, &mut evs, id, e, Some(p));
                        reqs.get_mut(&id).expect("linked").last = Some(e);
                    }
                }
                e
            }
            Vmm::HostSubmit | Vmm::HostComplete | Vmm::Used => {
                if v.kind == Vmm::HostComplete {
                    args["result"] = json!(v.value);
                    args["synchronous"] = json!(v.at == 1);
                }
                if v.kind == Vmm::Used {
                    args["used_pos"] = json!(v.at);
                }
                let e = new_ev(&mut evs, v.tsc, THREADS, tid, v.kind.name(), args);
                if let Some(&id) = in_flight.get(&(v.queue, v.head)) {
                    evs[e].args.insert("req".into(), json!(id));
                    link(&mut reqs, &mut evs, id, e, None);
                    let r = reqs.get_mut(&id).expect("linked");
                    r.last = Some(e);
                    if v.kind == Vmm::Used {
                        r.vmm_used = Some(e);
                        in_flight.remove(&(v.queue, v.head));
                        undecided.entry(v.queue).or_default().push(id);
                        used_at.insert((v.queue, v.at, v.head), (id, e));
                    }
                }
                e
            }
            Vmm::Irq | Vmm::IrqSuppressed => {
                let e = new_ev(
                    &mut evs,
                    v.tsc,
                    THREADS,
                    tid,
                    v.kind.name(),
                    json!({"queue": qname}),
                );
                // One decision for every request whose used entry came since the last one.
                let served = undecided.remove(&v.queue).unwrap_or_default();
                for &id in &served {
                    let from = reqs.get(&id).and_then(|r| r.vmm_used);
                    link(&mut reqs, &mut evs, id, e, from);
                }
                evs[e].args.insert("reqs".into(), json!(served));
                e
            }
        };
        let _ = e;
    }

    // Pass 3, guest completion side (time order): interrupt, used entry reaped, CQE, seen.
    let mut in_irq: HashMap<u16, usize> = HashMap::new();
    let mut cq_heads: HashMap<u64, Vec<(usize, u32)>> = HashMap::new();
    let mut vmm_to_guest: Option<f64> = None;
    for g in guest {
        let tsc = clock.host(g.tsc);
        match g.kind {
            guest::IRQ => {
                let e = new_ev(
                    &mut evs,
                    tsc,
                    CPUS,
                    u64::from(g.cpu),
                    "irq",
                    json!({"gsi": g.a}),
                );
                evs[e].args.insert("reqs".into(), json!([]));
                in_irq.insert(g.cpu, e);
            }
            guest::SWITCH => {
                in_irq.remove(&g.cpu);
            }
            guest::USED => {
                let (head, pos, polled) = (g.d as u16, (g.d >> 16) as u16, (g.d >> 32) & 1 != 0);
                let tid = track_of(g.b);
                let e = new_ev(
                    &mut evs,
                    tsc,
                    QUEUES,
                    tid,
                    "used seen",
                    json!({"queue": g.c, "head": head, "used_pos": pos, "polled": polled, "cpu": g.cpu}),
                );
                if let Some(&(id, u)) = used_at.get(&(g.b, pos, head)) {
                    let gap = us(i128::from(tsc) - i128::from(evs[u].tsc));
                    vmm_to_guest = Some(vmm_to_guest.map_or(gap, |v| v.min(gap)));
                    evs[e].args.insert("req".into(), json!(id));
                    link(&mut reqs, &mut evs, id, e, Some(u));
                    if let (false, Some(&irq)) = (polled, in_irq.get(&g.cpu)) {
                        // Reaped in this interrupt's handler: the interrupt leads to it.
                        let r = reqs.get_mut(&id).expect("linked");
                        r.events.push(irq);
                        r.edges.push((irq, e));
                        evs[irq].reqs.push(id);
                        if let Some(Value::Array(list)) = evs[irq].args.get_mut("reqs") {
                            list.push(json!(id));
                        }
                    }
                    reqs.get_mut(&id).expect("linked").last = Some(e);
                }
            }
            guest::CQE => {
                let Some(task) = reqs.get(&g.a).map(|r| r.task) else {
                    continue;
                };
                let at = (g.d >> 32) as u32;
                let e = new_ev(
                    &mut evs,
                    tsc,
                    TASKS,
                    u64::from(task),
                    "cqe",
                    json!({"req": g.a, "user_data": g.b, "res": g.c as i64 as i32, "cq_index": at, "cpu": g.cpu}),
                );
                link(&mut reqs, &mut evs, g.a, e, None);
                let r = reqs.get_mut(&g.a).expect("linked");
                r.cqe = Some((e, at));
                r.last = Some(e);
            }
            guest::CQ_HEAD => {
                let e = new_ev(
                    &mut evs,
                    tsc,
                    TASKS,
                    u64::from(g.task),
                    "cq head",
                    json!({"cq_head": g.b as u32, "cpu": g.cpu}),
                );
                cq_heads.entry(g.a).or_default().push((e, g.b as u32));
            }
            _ => {}
        }
    }
    // "CQE seen": the first io_uring_enter that found the CQ head past it. User space may
    // have read it any time before: an upper bound.
    let mut complete = 0;
    let ids: Vec<u64> = reqs.keys().copied().collect();
    for id in &ids {
        let r = &reqs[id];
        let Some((cqe, at)) = r.cqe else { continue };
        if at == u32::MAX {
            continue;
        }
        let seen = cq_heads.get(&r.ring).and_then(|heads| {
            heads
                .iter()
                .find(|&&(e, head)| evs[e].tsc >= evs[cqe].tsc && head.wrapping_sub(at) as i32 > 0)
        });
        if let Some(&(e, _)) = seen {
            let (tsc, tid) = (evs[e].tsc, evs[e].tid);
            let s = new_ev(
                &mut evs,
                tsc,
                TASKS,
                tid,
                "cqe seen",
                json!({"req": id, "upper_bound": true}),
            );
            link(&mut reqs, &mut evs, *id, s, Some(cqe));
            complete += 1;
        }
    }
    // The CPU tracks' last slices end with the trace.
    let end = evs.iter().map(|e| e.tsc).max().unwrap_or(0);
    for (_, e) in running {
        evs[e].dur = end.saturating_sub(evs[e].tsc);
    }

    let t0 = evs.iter().map(|e| e.tsc).min().unwrap_or(0);
    let ts = |tsc: u64| (tsc.saturating_sub(t0)) as f64 * 1000.0 / f64::from(clock.khz);
    let mut out: Vec<Value> = Vec::new();
    let meta = |out: &mut Vec<Value>, pid: u32, name: &str, sort: u32| {
        out.push(json!({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}}));
        out.push(json!({"ph": "M", "pid": pid, "name": "process_sort_index", "args": {"sort_index": sort}}));
    };
    meta(&mut out, CPUS, "guest CPUs", 1);
    meta(&mut out, TASKS, "guest tasks", 2);
    meta(&mut out, QUEUES, "virtqueues", 3);
    meta(&mut out, THREADS, "VMM threads", 4);
    let thread_name = |out: &mut Vec<Value>, pid: u32, tid: u64, name: String| {
        out.push(json!({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}));
    };
    let mut cpus: Vec<u64> = evs
        .iter()
        .filter(|e| e.pid == CPUS)
        .map(|e| e.tid)
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    for cpu in cpus {
        thread_name(&mut out, CPUS, cpu, format!("CPU {cpu}"));
    }
    let mut tasks: Vec<u64> = evs
        .iter()
        .filter(|e| e.pid == TASKS)
        .map(|e| e.tid)
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    for t in tasks {
        thread_name(
            &mut out,
            TASKS,
            t,
            if t == 0 {
                "interrupt/idle".to_owned()
            } else {
                format!("task {t}")
            },
        );
    }
    for (q, tid) in &queue_track {
        thread_name(
            &mut out,
            QUEUES,
            *tid,
            queue_names
                .get(q)
                .cloned()
                .unwrap_or_else(|| format!("queue {q:#x}")),
        );
    }
    for (i, name) in threads.iter().enumerate() {
        thread_name(&mut out, THREADS, i as u64, name.clone());
    }
    for e in &evs {
        let mut args = e.args.clone();
        args.insert("kind".into(), json!(e.name));
        let dur = if e.dur > 0 {
            e.dur as f64 * 1000.0 / f64::from(clock.khz)
        } else {
            0.001
        };
        out.push(
            json!({"ph": "X", "name": e.name, "cat": if e.pid == THREADS { "vmm" } else { "guest" },
            "ts": ts(e.tsc), "dur": dur, "pid": e.pid, "tid": e.tid, "args": args}),
        );
    }
    // Each request: an async span from its SQE to its CQE, and a flow arrow per edge.
    let mut flow = 0u64;
    let mut sorted: Vec<&u64> = reqs.keys().collect();
    sorted.sort_unstable();
    for id in sorted {
        let r = &reqs[id];
        if let (Some(&first), Some((cqe, _))) = (r.events.first(), r.cqe) {
            let name = format!("{} #{id}", opcode_name(r.opcode));
            out.push(json!({"ph": "b", "cat": "request", "name": name, "id": id, "ts": ts(evs[first].tsc), "pid": TASKS, "tid": r.task,
                "args": {"user_data": r.user_data}}));
            out.push(json!({"ph": "e", "cat": "request", "name": name, "id": id, "ts": ts(evs[cqe].tsc), "pid": TASKS, "tid": r.task}));
        }
        for &(a, b) in &r.edges {
            flow += 1;
            let (ea, eb) = (&evs[a], &evs[b]);
            out.push(json!({"ph": "s", "cat": "req", "name": "request", "id": flow, "ts": ts(ea.tsc), "pid": ea.pid, "tid": ea.tid}));
            out.push(json!({"ph": "f", "bp": "e", "cat": "req", "name": "request", "id": flow, "ts": ts(eb.tsc), "pid": eb.pid, "tid": eb.tid}));
        }
    }
    let json = json!({
        "traceEvents": out,
        "displayTimeUnit": "ns",
        "otherData": {
            "clock": format!("host TSC at {} kHz; guest events at guest TSC - {} (KVM's TSC offset)", clock.khz, clock.offset),
            "cqe_seen": "upper bound: the first io_uring_enter that found the CQ head past the CQE",
            "dropped_guest_events": dropped.to_string(),
        }
    });
    Timeline {
        json,
        requests: reqs.len(),
        complete,
        guest_to_vmm,
        vmm_to_guest,
    }
}

/// io_uring opcode names for the request spans (the common ones; others by number).
fn opcode_name(op: u8) -> String {
    let name = match op {
        0 => "NOP",
        1 => "READV",
        2 => "WRITEV",
        3 => "FSYNC",
        4 => "READ_FIXED",
        5 => "WRITE_FIXED",
        6 => "POLL_ADD",
        22 => "READ",
        23 => "WRITE",
        _ => return format!("op {op}"),
    };
    name.to_owned()
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
        log::warn!(
            "--trace: KVM cannot tell the guest's TSC offset ({}); taking 0",
            std::io::Error::last_os_error()
        );
        return 0;
    }
    offset as i64
}
