//! `vmm run --gdb PORT`: a GDB remote stub (the `gdbstub` crate) on 127.0.0.1:PORT.
//!
//! Each vCPU is a GDB thread (thread N is vCPU N-1). The guest starts stopped, before its
//! first instruction, and runs when GDB continues. While the target is stopped every vCPU
//! thread is parked in [`Debugger::park`] with a snapshot of its registers: GDB reads and
//! writes the snapshot, and a vCPU writes changed registers back, and loads the debug
//! registers, before it runs again. Memory is read and written through the page tables
//! of the vCPU GDB names (its CR3), or as physical addresses while its paging is off.
//!
//! Stopping: a vCPU that takes a debug exit (a breakpoint or a finished step) parks and
//! asks the others to park too (kicked out of KVM_RUN like `Vcpus::stop` does); GDB's
//! Ctrl-C does the same. The stop is reported once every vCPU is parked.
//!
//! Breakpoints, `break` and `hbreak` alike, use the CPU's four debug registers (DR0-DR3,
//! set on every vCPU with KVM_SET_GUEST_DEBUG): at most four at once. No breakpoint writes
//! `int3` into the guest: on PVM-based KVM hosts `int3` in ring 0 ends the guest. A step
//! (`stepi`) runs only the stepped vCPU; the others stay parked (GDB's scheduler locking).
//! Registers read are all of GDB's x86-64 set (x87 and SSE from KVM_GET_FPU); writes may
//! change the general registers, RIP and RFLAGS, and any other change is refused (an
//! error to GDB). There are no watchpoints (GDB is told they are unsupported).

use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{self, BlockingEventLoop};
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps,
    MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, SwBreakpoint, SwBreakpointOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use kvm_bindings::{kvm_fpu, kvm_guest_debug, kvm_regs, kvm_sregs, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Debug registers: hardware breakpoints at once.
const SLOTS: usize = 4;
/// DR6: the single-step bit (BS).
const DR6_BS: u64 = 1 << 14;

/// A vCPU's registers while it is parked.
#[derive(Clone, Copy, Default)]
struct Snapshot {
    regs: kvm_regs,
    sregs: kvm_sregs,
    fpu: kvm_fpu,
    /// GDB changed `regs`: the vCPU loads them before it runs.
    dirty: bool,
}

/// Why the target stopped (reported once all vCPUs are parked).
#[derive(Clone, Copy, Debug)]
enum Stop {
    Breakpoint { vcpu: usize, sw: bool },
    Step(usize),
    Interrupted,
}

/// A breakpoint in a debug register: its address, and whether GDB asked for a software
/// one (reported as such).
#[derive(Clone, Copy)]
struct Slot {
    addr: u64,
    sw: bool,
}

struct State {
    /// vCPUs park at their next chance (a stop is under way or in force).
    halt: bool,
    /// Per vCPU: its snapshot while parked (what GDB sees), the snapshot handed back by
    /// a resume that lets it run, and whether its thread ended.
    parked: Vec<Option<Snapshot>>,
    wake: Vec<Option<Snapshot>>,
    gone: Vec<bool>,
    stop: Option<Stop>,
    slots: [Option<Slot>; SLOTS],
    /// The vCPU the last resume steps (the others stay parked); None: all run.
    step: Option<usize>,
    /// The VM is ending: nobody parks, and the vCPU threads may be joined (never kicked).
    ended: bool,
    /// GDB has gone: nobody parks, and a vCPU still holding breakpoints drops them when
    /// it hits one.
    detached: bool,
    /// The vCPU threads, for kicks out of KVM_RUN.
    threads: Vec<libc::pthread_t>,
}

/// What the vCPU threads and the GDB thread share.
pub struct Debugger {
    state: Mutex<State>,
    changed: Condvar,
    mem: GuestMemoryMmap,
    vcpus: usize,
    kick_signal: libc::c_int,
}

impl Debugger {
    /// A debugger for `vcpus` vCPUs, each parked before its first instruction.
    pub fn new(mem: GuestMemoryMmap, vcpus: usize, kick_signal: libc::c_int) -> Self {
        let state = State {
            halt: true,
            parked: vec![None; vcpus],
            wake: vec![None; vcpus],
            gone: vec![false; vcpus],
            stop: None,
            slots: [None; SLOTS],
            step: None,
            ended: false,
            detached: false,
            threads: Vec::new(),
        };
        Self { state: Mutex::new(state), changed: Condvar::new(), mem, vcpus, kick_signal }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the vCPU threads (to kick them out of KVM_RUN).
    pub fn set_threads(&self, threads: Vec<libc::pthread_t>) {
        self.lock().threads = threads;
    }

    /// The VM is ending: parked vCPUs leave, GDB is told the target exited. Called before
    /// the vCPU threads are joined.
    pub fn end(&self) {
        let mut st = self.lock();
        st.ended = true;
        st.threads.clear();
        self.changed.notify_all();
    }

    /// A vCPU thread left its loop.
    pub fn vcpu_gone(&self, index: usize) {
        self.lock().gone[index] = true;
        self.changed.notify_all();
    }

    /// Asks every vCPU to park (they are kicked out of KVM_RUN).
    fn halt_all(&self, st: &mut State) {
        st.halt = true;
        for &t in &st.threads {
            // SAFETY: the threads are not joined while `ended` is false (`end` clears the
            // list under this lock first), so each pthread_t is valid; the kick signal has
            // a handler that only asks KVM_RUN to return.
            unsafe { libc::pthread_kill(t, self.kick_signal) };
        }
    }

    /// Called by vCPU `index` before each KVM_RUN: parks it while the target is stopped
    /// (but for the vCPU being stepped).
    pub fn checkpoint(&self, index: usize, vcpu: &VcpuFd) {
        let st = self.lock();
        if st.halt && !st.ended && !st.detached && st.step != Some(index) {
            self.park(index, vcpu, st);
        }
    }

    /// vCPU `index` took a debug exit (`dr6` says why): the target stops.
    pub fn debug_exit(&self, index: usize, vcpu: &VcpuFd, dr6: u64) {
        let mut st = self.lock();
        if st.detached {
            // Armed before GDB went away: run on without them.
            if let Err(e) = vcpu.set_guest_debug(&kvm_guest_debug::default()) {
                log::warn!("gdb: vCPU {index}: KVM_SET_GUEST_DEBUG: {e}");
            }
            return;
        }
        if st.stop.is_none() {
            let hit = (0..SLOTS).find(|&i| dr6 & (1 << i) != 0).and_then(|i| st.slots[i]);
            st.stop = Some(match hit {
                Some(slot) if dr6 & DR6_BS == 0 => Stop::Breakpoint { vcpu: index, sw: slot.sw },
                _ => Stop::Step(index),
            });
        }
        self.halt_all(&mut st);
        if !st.ended {
            self.park(index, vcpu, st);
        }
    }

    /// Parks vCPU `index` until a resume lets it run, then loads what GDB changed.
    fn park(&self, index: usize, vcpu: &VcpuFd, mut st: MutexGuard<'_, State>) {
        let regs = vcpu.get_regs().unwrap_or_default();
        let sregs = vcpu.get_sregs().unwrap_or_default();
        let fpu = vcpu.get_fpu().unwrap_or_default();
        st.parked[index] = Some(Snapshot { regs, sregs, fpu, dirty: false });
        self.changed.notify_all();
        while !st.ended && st.wake[index].is_none() {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let snapshot = st.wake[index].take();
        if st.ended {
            return;
        }
        if let Some(s) = snapshot.filter(|s| s.dirty)
            && let Err(e) = vcpu.set_regs(&s.regs)
        {
            log::warn!("gdb: vCPU {index}: KVM_SET_REGS: {e}");
        }
        let mut debug = kvm_guest_debug::default();
        let mut dr7 = 0;
        for (i, slot) in st.slots.iter().enumerate() {
            if let Some(s) = slot {
                debug.arch.debugreg[i] = s.addr;
                dr7 |= 1 << (2 * i); // local enable; RW=00, LEN=00: an instruction fetch
            }
        }
        debug.arch.debugreg[7] = dr7;
        debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
        if st.step == Some(index) {
            debug.control |= KVM_GUESTDBG_SINGLESTEP;
        }
        if let Err(e) = vcpu.set_guest_debug(&debug) {
            log::warn!("gdb: vCPU {index}: KVM_SET_GUEST_DEBUG: {e}");
        }
    }

    /// The stop to report, once every vCPU is parked (or gone).
    fn stopped(&self) -> Option<Stop> {
        let mut st = self.lock();
        let all = (0..self.vcpus).all(|i| st.parked[i].is_some() || st.gone[i]);
        if st.halt && all { Some(st.stop.take().unwrap_or(Stop::Interrupted)) } else { None }
    }

    /// Blocks until every vCPU is parked (the first stop, before GDB asks anything).
    fn wait_all_parked(&self) {
        let mut st = self.lock();
        while !st.ended && !(0..self.vcpus).all(|i| st.parked[i].is_some() || st.gone[i]) {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Lets the parked vCPUs in `runners` (bit N: vCPU N) run, or with `step` that one
    /// alone, for one instruction; the others stay parked.
    fn resume(&self, runners: u64, step: Option<usize>) {
        let mut st = self.lock();
        st.halt = step.is_some();
        st.step = step;
        st.stop = None;
        for i in 0..self.vcpus {
            let runs = match step {
                Some(s) => s == i,
                None => runners & (1 << i) != 0,
            };
            // Only a parked vCPU is woken: one still waking from an earlier resume keeps
            // the snapshot that resume gave it.
            if runs && let Some(snapshot) = st.parked[i].take() {
                st.wake[i] = Some(snapshot);
            }
        }
        self.changed.notify_all();
    }

    fn with_snapshot<R>(&self, tid: Tid, f: impl FnOnce(&mut Snapshot) -> R) -> Option<R> {
        self.lock().parked.get_mut(tid.get() - 1)?.as_mut().map(f)
    }

    /// The guest-physical address of `va` as vCPU `tid` sees it (its CR3), with the bytes
    /// left in its page.
    fn translate(&self, tid: Tid, va: u64) -> Option<(u64, u64)> {
        let sregs = self.with_snapshot(tid, |s| s.sregs)?;
        const PG: u64 = 1 << 31;
        if sregs.cr0 & PG == 0 {
            return Some((va, 0x1000 - (va & 0xfff)));
        }
        let mut table = sregs.cr3 & 0x000f_ffff_ffff_f000;
        for level in (1..=4u32).rev() {
            let shift = 12 + 9 * (level - 1);
            let entry: u64 = self.mem.read_obj(GuestAddress(table + ((va >> shift) & 0x1ff) * 8)).ok()?;
            if entry & 1 == 0 {
                return None;
            }
            let frame = entry & 0x000f_ffff_ffff_f000;
            // A 1 GiB or 2 MiB page (PS) ends the walk early.
            if level == 1 || (level <= 3 && entry & (1 << 7) != 0) {
                let size = 1u64 << shift;
                let base = frame & !(size - 1);
                return Some((base + (va & (size - 1)), size - (va & (size - 1))));
            }
            table = frame;
        }
        None
    }

    /// Calls `f(offset, guest-physical address, bytes)` for each page-sized piece of
    /// `len` bytes at `start` as vCPU `tid` sees them, until a piece does not translate or
    /// `f` fails; returns the bytes done.
    fn each_page(&self, tid: Tid, start: u64, len: usize, mut f: impl FnMut(usize, u64, usize) -> bool) -> usize {
        let mut done = 0;
        while done < len {
            let Some((pa, room)) = self.translate(tid, start.wrapping_add(done as u64)) else { break };
            let n = (len - done).min(room as usize);
            if !f(done, pa, n) {
                break;
            }
            done += n;
        }
        done
    }
}

/// A parked vCPU's registers as GDB's x86-64 description has them. The x87 tag word is
/// rebuilt from KVM's abridged one (a register is valid or empty).
fn core_regs(s: &Snapshot) -> X86_64CoreRegs {
    let (r, sr, f) = (&s.regs, &s.sregs, &s.fpu);
    let mut regs = X86_64CoreRegs {
        regs: [r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15],
        rip: r.rip,
        eflags: r.rflags as u32,
        mxcsr: f.mxcsr,
        ..Default::default()
    };
    let seg = &mut regs.segments;
    (seg.cs, seg.ss, seg.ds, seg.es, seg.fs, seg.gs) =
        (sr.cs.selector.into(), sr.ss.selector.into(), sr.ds.selector.into(), sr.es.selector.into(), sr.fs.selector.into(), sr.gs.selector.into());
    for (st, fpr) in regs.st.iter_mut().zip(&f.fpr) {
        st.copy_from_slice(&fpr[..10]);
    }
    for (xmm, bytes) in regs.xmm.iter_mut().zip(&f.xmm) {
        *xmm = u128::from_le_bytes(*bytes);
    }
    let ftag = (0..8).fold(0u32, |tag, i| tag | if f.ftwx & (1 << i) != 0 { 0 } else { 3 << (2 * i) });
    regs.fpu.fctrl = f.fcw.into();
    regs.fpu.fstat = f.fsw.into();
    regs.fpu.ftag = ftag;
    regs.fpu.fioff = f.last_ip as u32;
    regs.fpu.fooff = f.last_dp as u32;
    regs.fpu.fop = f.last_opcode.into();
    regs
}

/// The GDB side of the debugger: the gdbstub target.
struct DebugTarget {
    dbg: Arc<Debugger>,
    /// Resume actions gathered for the next resume: the vCPUs to continue (bit N: vCPU
    /// N), the one to step, if any, and whether the others stay stopped (GDB's scheduler
    /// locking; without it they run too).
    run: u64,
    step: Option<usize>,
    locked: bool,
}

impl Target for DebugTarget {
    type Arch = X86_64_SSE;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for DebugTarget {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let s = self.dbg.with_snapshot(tid, |s| *s).ok_or(TargetError::NonFatal)?;
        *regs = core_regs(&s);
        Ok(())
    }

    /// The general registers, RIP and RFLAGS; a change to any other (segment, x87, SSE)
    /// is refused, as the stub cannot load it.
    fn write_registers(&mut self, regs: &X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        self.dbg
            .with_snapshot(tid, |s| {
                let mut writable = core_regs(s);
                (writable.regs, writable.rip, writable.eflags) = (regs.regs, regs.rip, regs.eflags);
                if writable != *regs {
                    log::warn!("gdb: only the general registers, RIP and RFLAGS can be written");
                    return Err(TargetError::NonFatal);
                }
                let g = &regs.regs;
                let r = &mut s.regs;
                (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) = (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
                (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) = (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
                r.rip = regs.rip;
                r.rflags = (r.rflags & !0xffff_ffff) | u64::from(regs.eflags);
                s.dirty = true;
                Ok(())
            })
            .ok_or(TargetError::NonFatal)?
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let mem = &self.dbg.mem;
        let done = self.dbg.each_page(tid, start, data.len(), |at, pa, n| mem.read_slice(&mut data[at..at + n], GuestAddress(pa)).is_ok());
        if done == 0 && !data.is_empty() {
            return Err(TargetError::NonFatal);
        }
        Ok(done)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let mem = &self.dbg.mem;
        let done = self.dbg.each_page(tid, start, data.len(), |at, pa, n| mem.write_slice(&data[at..at + n], GuestAddress(pa)).is_ok());
        if done < data.len() {
            return Err(TargetError::NonFatal);
        }
        Ok(())
    }

    fn list_active_threads(&mut self, thread_is_active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for i in 0..self.dbg.vcpus {
            thread_is_active(NonZeroUsize::new(i + 1).expect("i + 1 > 0"));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for DebugTarget {
    fn resume(&mut self) -> Result<(), Self::Error> {
        let run = if self.locked { self.run } else { u64::MAX };
        self.dbg.resume(run, self.step.take());
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        (self.run, self.step, self.locked) = (0, None, false);
        Ok(())
    }

    fn set_resume_action_continue(&mut self, tid: Tid, signal: Option<Signal>) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a vCPU");
        }
        if tid.get() > self.dbg.vcpus {
            return Err("no such thread");
        }
        self.run |= 1 << (tid.get() - 1);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for DebugTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for DebugTarget {
    fn set_resume_action_step(&mut self, tid: Tid, signal: Option<Signal>) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a vCPU");
        }
        if tid.get() > self.dbg.vcpus {
            return Err("no such thread");
        }
        self.step = Some(tid.get() - 1);
        Ok(())
    }
}

impl Breakpoints for DebugTarget {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl DebugTarget {
    /// Takes a debug register for `addr`; false when all four are in use.
    fn add_slot(&mut self, addr: u64, sw: bool) -> bool {
        let mut st = self.dbg.lock();
        match st.slots.iter().position(Option::is_none) {
            Some(i) => {
                st.slots[i] = Some(Slot { addr, sw });
                true
            }
            None => false,
        }
    }

    fn remove_slot(&mut self, addr: u64, sw: bool) -> bool {
        let mut st = self.dbg.lock();
        match st.slots.iter().position(|s| s.is_some_and(|s| s.addr == addr && s.sw == sw)) {
            Some(i) => {
                st.slots[i] = None;
                true
            }
            None => false,
        }
    }
}

/// `break`: served by a debug register too (see the module doc).
impl SwBreakpoint for DebugTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.add_slot(addr, true))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.remove_slot(addr, true))
    }
}

impl HwBreakpoint for DebugTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.add_slot(addr, false))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.remove_slot(addr, false))
    }
}

enum EventLoop {}

impl BlockingEventLoop for EventLoop {
    type Target = DebugTarget;
    type Connection = TcpStream;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Self::Target,
        conn: &mut Self::Connection,
    ) -> Result<run_blocking::Event<Self::StopReason>, run_blocking::WaitForStopReasonError<&'static str, std::io::Error>> {
        loop {
            if target.dbg.lock().ended {
                return Ok(run_blocking::Event::TargetStopped(MultiThreadStopReason::Exited(0)));
            }
            if let Some(stop) = target.dbg.stopped() {
                let tid = |i: usize| NonZeroUsize::new(i + 1).expect("i + 1 > 0");
                return Ok(run_blocking::Event::TargetStopped(match stop {
                    Stop::Breakpoint { vcpu, sw: true } => MultiThreadStopReason::SwBreak(tid(vcpu)),
                    Stop::Breakpoint { vcpu, sw: false } => MultiThreadStopReason::HwBreak(tid(vcpu)),
                    Stop::Step(vcpu) => MultiThreadStopReason::SignalWithThread { tid: tid(vcpu), signal: Signal::SIGTRAP },
                    Stop::Interrupted => MultiThreadStopReason::SignalWithThread { tid: tid(0), signal: Signal::SIGINT },
                }));
            }
            // GDB's next byte (Ctrl-C while running), or a look at the vCPUs every 10 ms.
            let mut pfd = libc::pollfd { fd: conn.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one pollfd on a socket we own, for the duration of the call.
            if unsafe { libc::poll(&mut pfd, 1, 10) } > 0 {
                let byte = ConnectionExt::read(conn).map_err(run_blocking::WaitForStopReasonError::Connection)?;
                return Ok(run_blocking::Event::IncomingData(byte));
            }
        }
    }

    fn on_interrupt(target: &mut Self::Target) -> Result<Option<Self::StopReason>, &'static str> {
        let mut st = target.dbg.lock();
        // A vCPU being stepped parks too (a step that never ends: an AP waiting for its
        // start-up IPI, `cli; hlt`).
        st.step = None;
        target.dbg.halt_all(&mut st);
        Ok(None)
    }
}

/// Listens on 127.0.0.1:`port` (before the guest starts, so that errors come first).
pub fn listen(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port))
}

/// Serves one GDB connection on `listener` (the guest waits parked until it comes). When
/// GDB detaches the guest runs on without it; GDB's `kill` calls `kill` (the VM ends).
pub fn serve(listener: TcpListener, dbg: Arc<Debugger>, kill: impl FnOnce()) {
    eprintln!("vmm: waiting for gdb on {}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let conn = match listener.accept() {
        Ok((conn, _)) => conn,
        Err(e) => {
            log::error!("gdb: accept: {e}");
            return detach(&dbg);
        }
    };
    let _ = conn.set_nodelay(true);
    dbg.wait_all_parked();
    let mut target = DebugTarget { dbg: Arc::clone(&dbg), run: 0, step: None, locked: false };
    let result = GdbStub::new(conn).run_blocking::<EventLoop>(&mut target);
    match result {
        Ok(DisconnectReason::Disconnect) => log::info!("gdb detached; the guest runs on"),
        Ok(DisconnectReason::Kill) => return kill(),
        Ok(reason) => log::info!("gdb session ended: {reason:?}"),
        Err(e) => log::error!("gdb: {e}"),
    }
    detach(&dbg);
}

/// Whatever ended the session, the guest runs on without breakpoints or stops.
fn detach(dbg: &Debugger) {
    {
        let mut st = dbg.lock();
        st.slots = [None; SLOTS];
        st.detached = true;
    }
    dbg.resume(u64::MAX, None);
}
