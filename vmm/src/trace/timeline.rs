//! Guest records and VMM events into one Chrome/Perfetto timeline.
//!
//! Tracks ("processes" and "threads" of the trace-event format): one per guest CPU (the
//! task running, interrupts), per guest task (its requests' SQE, prep, issue, poll arming,
//! punt to io-wq, CQE; its io_uring_enter calls), per virtqueue (chains published, kicks,
//! used entries reaped) and per VMM thread (the device workers' events).
//!
//! Requests are followed across the layers by keys both sides know, not by time: a
//! chain's virtqueue (its descriptor table's address), avail-ring position and head from
//! the guest's publish to the VMM's pop; the head to the host I/O and the used entry; the
//! used-ring position and head to the guest reaping it. Each request's events are joined
//! by flow arrows along those causal edges, and it is one async span from SQE to CQE. An
//! event that served several requests (an interrupt decision, an interrupt handler that
//! reaped several used entries) names all of them and has an arrow for each.
//!
//! "CQE seen" is the first `io_uring_enter` of the ring that found the CQ head past the
//! CQE: user space may have read it any time before (it needs no system call to), so this
//! is an upper bound.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Map, Value};

use super::{GuestRecord, Vmm, VmmEvent};

// Guest record kinds (guest-kernel/src/trace.rs `Kind`).
const SQE: u16 = 1;
const PREP: u16 = 2;
const ISSUE: u16 = 3;
const POLL_ARM: u16 = 4;
const PUNT: u16 = 5;
const CQE: u16 = 6;
const CQ_HEAD: u16 = 7;
const PUBLISH: u16 = 8;
const KICK: u16 = 9;
const KICK_SUPPRESSED: u16 = 10;
const IRQ: u16 = 11;
const USED: u16 = 12;
const SWITCH: u16 = 13;

// Track groups ("processes").
const CPUS: u32 = 1;
const TASKS: u32 = 2;
const QUEUES: u32 = 3;
const THREADS: u32 = 4;

/// How guest TSC values become the timeline's (host TSC) values.
pub struct Clock {
    pub khz: u32,
    /// Guest TSC = host TSC + offset.
    pub offset: i64,
    /// What the clock is, for the reader.
    pub note: String,
}

impl Clock {
    fn host(&self, guest_tsc: u64) -> u64 {
        guest_tsc.wrapping_sub(self.offset as u64)
    }

    fn us(&self, ticks: i128) -> f64 {
        ticks as f64 * 1000.0 / f64::from(self.khz)
    }
}

pub struct Summary {
    pub requests: usize,
    /// Requests with every event from SQE to "CQE seen".
    pub complete: usize,
    /// The least time from a guest publish to the VMM's pop of it, and from the VMM's used
    /// entry to the guest reaping it (µs): negative means the clocks disagree.
    pub guest_to_vmm: Option<f64>,
    pub vmm_to_guest: Option<f64>,
}

/// One event of the timeline, before it becomes JSON.
struct Ev {
    tsc: u64,
    pid: u32,
    tid: u64,
    name: &'static str,
    args: Map<String, Value>,
    /// A slice that lasts (a CPU's running task), in TSC ticks; 0: an instant.
    dur: u64,
}

/// What is known of a request.
#[derive(Default)]
struct Req {
    opcode: u8,
    user_data: u64,
    task: u32,
    ring: u64,
    first: Option<usize>,
    /// Its last event so far (where the next edge starts).
    last: Option<usize>,
    vmm_used: Option<usize>,
    /// Its CQE event and CQ index (u32::MAX: overflowed).
    cqe: Option<(usize, u32)>,
    /// Causal edges between its events (flow arrows).
    edges: Vec<(usize, usize)>,
}

#[derive(Default)]
struct Builder {
    evs: Vec<Ev>,
    reqs: HashMap<u64, Req>,
    /// Virtqueue tracks by descriptor-table address.
    queue_tracks: HashMap<u64, u64>,
    guest_to_vmm: Option<f64>,
    vmm_to_guest: Option<f64>,
    /// No VMM events (`vmm trace-import`): a reaped used entry is matched to the chain
    /// with its head published last on its queue (each head is reused only once the
    /// device has returned it), by (queue, head).
    guest_only: bool,
    unreaped: HashMap<(u64, u16), VecDeque<(u64, usize)>>,
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn least(acc: &mut Option<f64>, v: f64) {
    *acc = Some(acc.map_or(v, |a| a.min(v)));
}

impl Builder {
    fn add(&mut self, tsc: u64, pid: u32, tid: u64, name: &'static str, args: Value) -> usize {
        self.evs.push(Ev { tsc, pid, tid, name, args: object(args), dur: 0 });
        self.evs.len() - 1
    }

    fn queue_track(&mut self, queue: u64) -> u64 {
        let n = self.queue_tracks.len() as u64;
        *self.queue_tracks.entry(queue).or_insert(n)
    }

    /// Event `e` names request `id` (a shared event lists every request it served).
    fn tag(&mut self, id: u64, e: usize) {
        self.reqs.entry(id).or_default().first.get_or_insert(e);
        let args = &mut self.evs[e].args;
        match args.get_mut("reqs") {
            Some(Value::Array(list)) => list.push(json!(id)),
            _ => {
                args.insert("req".into(), json!(id));
            }
        }
    }

    /// Event `e` belongs to request `id`, caused by `from` (else by its last event).
    fn link(&mut self, id: u64, e: usize, from: Option<usize>) {
        self.tag(id, e);
        let r = self.reqs.get_mut(&id).expect("tagged");
        if let Some(f) = from.or(r.last) {
            r.edges.push((f, e));
        }
    }

    /// Links `e` to request `id` and makes it the request's last event.
    fn follow(&mut self, id: u64, e: usize) {
        self.link(id, e, None);
        self.reqs.get_mut(&id).expect("linked").last = Some(e);
    }

    /// The guest's submission side, SQE to kick, and the CPU tracks. Returns the chains
    /// published, by (queue, avail position, head), oldest first.
    fn guest_submissions(&mut self, guest: &[GuestRecord], clock: &Clock) -> HashMap<(u64, u16, u16), VecDeque<(u64, usize)>> {
        let mut published: HashMap<(u64, u16, u16), VecDeque<(u64, usize)>> = HashMap::new();
        let mut last_publish: HashMap<u16, (u64, usize)> = HashMap::new();
        let mut running: HashMap<u16, usize> = HashMap::new();
        for g in guest {
            let (tsc, task) = (clock.host(g.tsc), u64::from(g.task));
            match g.kind {
                SQE => {
                    let (opcode, flags, slot) = (g.c as u8, (g.c >> 8) as u8, (g.c >> 16) as u32);
                    let args = json!({"user_data": g.b, "opcode": opcode, "flags": flags, "sq_slot": slot, "cpu": g.cpu});
                    let e = self.add(tsc, TASKS, task, "sqe", args);
                    *self.reqs.entry(g.a).or_default() = Req { opcode, user_data: g.b, task: g.task, ring: g.d, ..Req::default() };
                    self.follow(g.a, e);
                }
                PREP | ISSUE | POLL_ARM | PUNT if self.reqs.contains_key(&g.a) => {
                    let (name, args) = match g.kind {
                        PREP => ("prep", json!({"result": g.b as i64, "cpu": g.cpu})),
                        ISSUE => ("issue", json!({"io_wq": g.b != 0, "cpu": g.cpu})),
                        POLL_ARM => ("poll armed", json!({"cpu": g.cpu})),
                        _ => ("punt io-wq", json!({"cpu": g.cpu})),
                    };
                    let e = self.add(tsc, TASKS, task, name, args);
                    self.follow(g.a, e);
                }
                PUBLISH => {
                    let (head, pos) = (g.d as u16, (g.d >> 16) as u16);
                    let track = self.queue_track(g.b);
                    let e = self.add(tsc, QUEUES, track, "publish", json!({"queue": g.c, "head": head, "avail_pos": pos, "cpu": g.cpu}));
                    published.entry((g.b, pos, head)).or_default().push_back((g.a, e));
                    if self.guest_only {
                        self.unreaped.entry((g.b, head)).or_default().push_back((g.a, e));
                    }
                    last_publish.insert(g.cpu, (g.a, e));
                    if self.reqs.contains_key(&g.a) {
                        self.follow(g.a, e);
                    }
                }
                KICK | KICK_SUPPRESSED => {
                    let name = if g.kind == KICK { "kick" } else { "kick suppressed" };
                    let track = self.queue_track(g.b);
                    let e = self.add(tsc, QUEUES, track, name, json!({"queue": g.c, "avail_idx": g.d, "cpu": g.cpu}));
                    // The decision that follows a publish on the same CPU.
                    if let Some((id, p)) = last_publish.remove(&g.cpu)
                        && self.reqs.contains_key(&id)
                    {
                        self.link(id, e, Some(p));
                    }
                }
                SWITCH => {
                    if let Some(prev) = running.remove(&g.cpu) {
                        self.evs[prev].dur = tsc.saturating_sub(self.evs[prev].tsc);
                    }
                    let name = if g.a == 0 { "idle" } else { "task" };
                    let e = self.add(tsc, CPUS, u64::from(g.cpu), name, json!({"task": g.a}));
                    running.insert(g.cpu, e);
                }
                _ => {}
            }
        }
        // A CPU's last slice lasts to the end of the trace.
        let end = guest.last().map_or(0, |g| clock.host(g.tsc));
        for e in running.into_values() {
            self.evs[e].dur = end.saturating_sub(self.evs[e].tsc);
        }
        published
    }

    /// The VMM's side, in its own order: pop to interrupt decision. Returns the used
    /// entries published, by (queue, used position, head): the request.
    fn vmm(
        &mut self,
        vmm: &[VmmEvent],
        mut published: HashMap<(u64, u16, u16), VecDeque<(u64, usize)>>,
        names: &HashMap<u64, String>,
        clock: &Clock,
    ) -> HashMap<(u64, u16, u16), (u64, usize)> {
        let mut in_flight: HashMap<(u64, u16), u64> = HashMap::new();
        let mut used: HashMap<(u64, u16, u16), (u64, usize)> = HashMap::new();
        let mut undecided: HashMap<u64, Vec<u64>> = HashMap::new();
        for v in vmm {
            let tid = u64::from(v.thread);
            let queue = names.get(&v.queue).cloned().unwrap_or_else(|| format!("{:#x}", v.queue));
            match v.kind {
                Vmm::KickReceived => {
                    self.add(v.tsc, THREADS, tid, "kick received", json!({"queue": queue, "notifications": v.value}));
                }
                Vmm::Pop => {
                    let e = self.add(v.tsc, THREADS, tid, "pop", json!({"queue": queue, "head": v.head, "avail_pos": v.at}));
                    if let Some((id, p)) = published.get_mut(&(v.queue, v.at, v.head)).and_then(VecDeque::pop_front) {
                        least(&mut self.guest_to_vmm, clock.us(i128::from(v.tsc) - i128::from(self.evs[p].tsc)));
                        if self.reqs.contains_key(&id) {
                            in_flight.insert((v.queue, v.head), id);
                            self.link(id, e, Some(p));
                            self.reqs.get_mut(&id).expect("linked").last = Some(e);
                        }
                    }
                }
                Vmm::HostSubmit | Vmm::HostComplete | Vmm::Used => {
                    let (name, args) = match v.kind {
                        Vmm::HostSubmit => ("host submit", json!({"queue": queue, "head": v.head})),
                        Vmm::HostComplete => ("host complete", json!({"queue": queue, "head": v.head, "result": v.value, "synchronous": v.at == 1})),
                        _ => ("used", json!({"queue": queue, "head": v.head, "used_pos": v.at})),
                    };
                    let e = self.add(v.tsc, THREADS, tid, name, args);
                    let Some(&id) = in_flight.get(&(v.queue, v.head)) else { continue };
                    self.follow(id, e);
                    if v.kind == Vmm::Used {
                        self.reqs.get_mut(&id).expect("linked").vmm_used = Some(e);
                        in_flight.remove(&(v.queue, v.head));
                        undecided.entry(v.queue).or_default().push(id);
                        used.insert((v.queue, v.at, v.head), (id, e));
                    }
                }
                Vmm::Irq | Vmm::IrqSuppressed => {
                    let name = if v.kind == Vmm::Irq { "irq inject" } else { "irq suppressed" };
                    let e = self.add(v.tsc, THREADS, tid, name, json!({"queue": queue, "reqs": []}));
                    // One decision for every used entry published since the last one.
                    for id in undecided.remove(&v.queue).unwrap_or_default() {
                        let from = self.reqs[&id].vmm_used;
                        self.link(id, e, from);
                    }
                }
            }
        }
        used
    }

    /// The guest's completion side: interrupt, used entry reaped, CQE; then "CQE seen".
    fn guest_completions(&mut self, guest: &[GuestRecord], used: &HashMap<(u64, u16, u16), (u64, usize)>, clock: &Clock) {
        let mut in_irq: HashMap<u16, usize> = HashMap::new();
        let mut cq_heads: HashMap<u64, Vec<(usize, u32)>> = HashMap::new();
        for g in guest {
            let tsc = clock.host(g.tsc);
            match g.kind {
                IRQ => {
                    let e = self.add(tsc, CPUS, u64::from(g.cpu), "irq", json!({"gsi": g.a, "reqs": []}));
                    in_irq.insert(g.cpu, e);
                }
                SWITCH => {
                    in_irq.remove(&g.cpu);
                }
                USED => {
                    let (head, pos, polled) = (g.d as u16, (g.d >> 16) as u16, (g.d >> 32) & 1 != 0);
                    let track = self.queue_track(g.b);
                    let args = json!({"queue": g.c, "head": head, "used_pos": pos, "polled": polled, "cpu": g.cpu});
                    let e = self.add(tsc, QUEUES, track, "used seen", args);
                    let (id, u) = match used.get(&(g.b, pos, head)) {
                        Some(&(id, u)) => {
                            least(&mut self.vmm_to_guest, clock.us(i128::from(tsc) - i128::from(self.evs[u].tsc)));
                            (id, u)
                        }
                        None if self.guest_only => match self.unreaped.get_mut(&(g.b, head)).and_then(VecDeque::pop_front) {
                            Some((id, p)) if self.reqs.contains_key(&id) => (id, p),
                            _ => continue,
                        },
                        None => continue,
                    };
                    self.link(id, e, Some(u));
                    // Reaped by an interrupt handler: that interrupt leads to it too.
                    if let (false, Some(&irq)) = (polled, in_irq.get(&g.cpu)) {
                        self.tag(id, irq);
                        self.reqs.get_mut(&id).expect("tagged").edges.push((irq, e));
                    }
                    self.reqs.get_mut(&id).expect("linked").last = Some(e);
                }
                CQE if self.reqs.contains_key(&g.a) => {
                    let at = (g.d >> 32) as u32;
                    let task = u64::from(self.reqs[&g.a].task);
                    let e = self.add(tsc, TASKS, task, "cqe", json!({"user_data": g.b, "res": g.c as i32, "cq_index": at, "cpu": g.cpu}));
                    self.follow(g.a, e);
                    self.reqs.get_mut(&g.a).expect("linked").cqe = Some((e, at));
                }
                CQ_HEAD => {
                    let e = self.add(tsc, TASKS, u64::from(g.task), "cq head", json!({"cq_head": g.b as u32, "cpu": g.cpu}));
                    cq_heads.entry(g.a).or_default().push((e, g.b as u32));
                }
                _ => {}
            }
        }
        let mut ids: Vec<u64> = self.reqs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let r = &self.reqs[&id];
            let Some((cqe, at)) = r.cqe.filter(|&(_, at)| at != u32::MAX) else { continue };
            let cqe_tsc = self.evs[cqe].tsc;
            let seen = cq_heads.get(&r.ring).and_then(|heads| {
                heads.iter().find(|&&(e, head)| self.evs[e].tsc >= cqe_tsc && head.wrapping_sub(at) as i32 > 0)
            });
            if let Some(&(e, _)) = seen {
                let (tsc, tid) = (self.evs[e].tsc, self.evs[e].tid);
                let s = self.add(tsc, TASKS, tid, "cqe seen", json!({"upper_bound": true}));
                self.link(id, s, Some(cqe));
            }
        }
    }

    /// Whether request `r` has every event from SQE to "CQE seen".
    fn complete(&self, r: &Req) -> bool {
        let mut names: Vec<&str> = r.edges.iter().flat_map(|&(a, b)| [self.evs[a].name, self.evs[b].name]).collect();
        names.sort_unstable();
        names.dedup();
        let guest = ["sqe", "prep", "issue", "publish", "used seen", "cqe", "cqe seen"];
        let vmm = ["pop", "host complete", "used"];
        guest.iter().chain(if self.guest_only { &[][..] } else { &vmm[..] }).all(|n| names.contains(n))
    }

    fn json(&self, threads: &[String], queue_names: &HashMap<u64, String>, clock: &Clock, dropped: u64) -> Value {
        let t0 = self.evs.iter().map(|e| e.tsc).min().unwrap_or(0);
        let ts = |tsc: u64| clock.us(i128::from(tsc.saturating_sub(t0)));
        let mut out: Vec<Value> = Vec::new();
        for (pid, name) in [(CPUS, "guest CPUs"), (TASKS, "guest tasks"), (QUEUES, "virtqueues"), (THREADS, "VMM threads")] {
            out.push(json!({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}}));
            out.push(json!({"ph": "M", "pid": pid, "name": "process_sort_index", "args": {"sort_index": pid}}));
        }
        let mut tracks: Vec<(u32, u64, String)> = Vec::new();
        for e in &self.evs {
            match e.pid {
                CPUS => tracks.push((CPUS, e.tid, format!("CPU {}", e.tid))),
                TASKS => tracks.push((TASKS, e.tid, if e.tid == 0 { "no task (idle)".to_owned() } else { format!("task {}", e.tid) })),
                _ => {}
            }
        }
        for (q, &tid) in &self.queue_tracks {
            tracks.push((QUEUES, tid, queue_names.get(q).cloned().unwrap_or_else(|| format!("queue {q:#x}"))));
        }
        for (i, name) in threads.iter().enumerate() {
            tracks.push((THREADS, i as u64, name.clone()));
        }
        tracks.sort();
        tracks.dedup();
        for (pid, tid, name) in tracks {
            out.push(json!({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}));
        }
        for e in &self.evs {
            let mut args = e.args.clone();
            args.insert("kind".into(), json!(e.name));
            let name = match (e.name, e.args.get("task")) {
                ("task", Some(t)) => format!("task {t}"),
                _ => e.name.to_owned(),
            };
            // Instants are 1 ns slices, so flow arrows can bind to them.
            let dur = if e.dur > 0 { clock.us(i128::from(e.dur)) } else { 0.001 };
            let cat = if e.pid == THREADS { "vmm" } else { "guest" };
            out.push(json!({"ph": "X", "name": name, "cat": cat, "ts": ts(e.tsc), "dur": dur, "pid": e.pid, "tid": e.tid, "args": args}));
        }
        let mut ids: Vec<&u64> = self.reqs.keys().collect();
        ids.sort_unstable();
        let mut flow = 0u64;
        for id in ids {
            let r = &self.reqs[id];
            if let (Some(first), Some((cqe, _))) = (r.first, r.cqe) {
                let name = format!("{} #{id}", opcode_name(r.opcode));
                let span = |ph: &str, tsc: u64| json!({"ph": ph, "cat": "request", "name": name, "id": id, "ts": ts(tsc), "pid": TASKS, "tid": r.task, "args": {"user_data": r.user_data}});
                out.push(span("b", self.evs[first].tsc));
                out.push(span("e", self.evs[cqe].tsc));
            }
            for &(a, b) in &r.edges {
                flow += 1;
                let (ea, eb) = (&self.evs[a], &self.evs[b]);
                out.push(json!({"ph": "s", "cat": "request", "name": "request", "id": flow, "ts": ts(ea.tsc), "pid": ea.pid, "tid": ea.tid}));
                out.push(json!({"ph": "f", "bp": "e", "cat": "request", "name": "request", "id": flow, "ts": ts(eb.tsc), "pid": eb.pid, "tid": eb.tid}));
            }
        }
        json!({
            "traceEvents": out,
            "displayTimeUnit": "ns",
            "otherData": {
                "clock": clock.note,
                "cqe_seen": "an upper bound: the first io_uring_enter that found the CQ head past the CQE",
                "dropped_guest_events": dropped.to_string(),
            }
        })
    }
}

/// The timeline of `guest` records (in time order) and `vmm` events, as trace-event JSON.
pub fn build(guest: &[GuestRecord], vmm: &[VmmEvent], threads: &[String], queue_names: &HashMap<u64, String>, clock: &Clock, dropped: u64) -> (Value, Summary) {
    let mut b = Builder { guest_only: vmm.is_empty(), ..Builder::default() };
    let published = b.guest_submissions(guest, clock);
    let used = b.vmm(vmm, published, queue_names, clock);
    b.guest_completions(guest, &used, clock);
    let complete = b.reqs.values().filter(|r| b.complete(r)).count();
    let summary = Summary { requests: b.reqs.len(), complete, guest_to_vmm: b.guest_to_vmm, vmm_to_guest: b.vmm_to_guest };
    (b.json(threads, queue_names, clock, dropped), summary)
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

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u64 = 0x7000;

    fn g(tsc: u64, kind: u16, a: u64, b: u64, c: u64, d: u64) -> GuestRecord {
        GuestRecord { tsc, kind, cpu: 0, task: 1, a, b, c, d }
    }

    fn v(tsc: u64, kind: Vmm, head: u16, at: u16) -> VmmEvent {
        VmmEvent { tsc, thread: 0, kind, queue: Q, head, at, value: 0 }
    }

    /// One READ through every layer; the guest clock runs 1000 ticks ahead of the host's.
    fn one_read(offset: u64) -> (Vec<GuestRecord>, Vec<VmmEvent>) {
        let o = offset;
        let guest = vec![
            g(o + 10, SQE, 7, 0xabc, 22, 0x5000),
            g(o + 11, PREP, 7, 0, 0, 0),
            g(o + 12, ISSUE, 7, 0, 0, 0),
            g(o + 13, PUBLISH, 7, Q, 0, 3 | 5 << 16),
            g(o + 14, KICK, 0, Q, 0, 6),
            g(o + 40, IRQ, 12, 0, 0, 0),
            g(o + 41, USED, 0, Q, 0, 3 | 9 << 16),
            g(o + 42, CQE, 7, 0xabc, 4096, 0x5000 | 2 << 32),
            g(o + 50, CQ_HEAD, 0x5000, 3, 0, 0),
        ];
        let vmm = vec![v(20, Vmm::Pop, 3, 5), v(21, Vmm::HostSubmit, 3, 0), v(30, Vmm::HostComplete, 3, 0), v(31, Vmm::Used, 3, 9), v(32, Vmm::Irq, 0, 0)];
        (guest, vmm)
    }

    #[test]
    fn a_read_is_followed_through_every_layer() {
        let (guest, vmm) = one_read(1000);
        let clock = Clock { khz: 1000, offset: 1000, note: String::new() };
        let (json, summary) = build(&guest, &vmm, &["worker".into()], &HashMap::new(), &clock, 0);
        assert_eq!((summary.requests, summary.complete), (1, 1));
        assert_eq!(summary.guest_to_vmm, Some(7.0)); // pop at 20 - publish at 13, in µs at 1 MHz
        assert_eq!(summary.vmm_to_guest, Some(10.0)); // seen at 41 - used at 31
        let events = json["traceEvents"].as_array().unwrap();
        let named = |n: &str| events.iter().filter(|e| e["ph"] == "X" && e["name"] == n).count();
        for n in ["sqe", "prep", "issue", "publish", "kick", "pop", "host submit", "host complete", "used", "irq inject", "irq", "used seen", "cqe", "cqe seen"] {
            assert_eq!(named(n), 1, "{n}");
        }
        // Every event of the request names it, and the flows never run backwards.
        assert!(events.iter().filter(|e| e["ph"] == "X" && e["name"] != "cq head").all(|e| e["args"]["req"] == 7 || e["args"]["reqs"] == json!([7])));
        let starts: Vec<f64> = events.iter().filter(|e| e["ph"] == "s").map(|e| e["ts"].as_f64().unwrap()).collect();
        let ends: Vec<f64> = events.iter().filter(|e| e["ph"] == "f").map(|e| e["ts"].as_f64().unwrap()).collect();
        assert_eq!(starts.len(), 13, "13 causal edges among the 14 events");
        assert!(starts.iter().zip(&ends).all(|(s, f)| s <= f));
    }

    #[test]
    fn a_wrong_clock_shows_as_a_negative_gap() {
        let (guest, vmm) = one_read(1000);
        let clock = Clock { khz: 1000, offset: 0, note: String::new() };
        let (_, summary) = build(&guest, &vmm, &[], &HashMap::new(), &clock, 0);
        assert!(summary.guest_to_vmm.unwrap() < 0.0);
    }

    #[test]
    fn records_from_a_confused_guest_do_not_panic() {
        let junk: Vec<GuestRecord> = (0..200u64).map(|i| GuestRecord { tsc: i, kind: (i % 15) as u16, cpu: (i % 3) as u16, task: i as u32, a: i % 4, b: i * 7, c: u64::MAX - i, d: i << 16 }).collect();
        let vmm: Vec<VmmEvent> = (0..50u64).map(|i| v(i, [Vmm::Pop, Vmm::Used, Vmm::Irq, Vmm::HostComplete][(i % 4) as usize], (i % 5) as u16, i as u16)).collect();
        let clock = Clock { khz: 1, offset: -5, note: String::new() };
        let (json, _) = build(&junk, &vmm, &[], &HashMap::new(), &clock, 3);
        assert!(json["traceEvents"].as_array().is_some_and(|e| !e.is_empty()));
    }
}
