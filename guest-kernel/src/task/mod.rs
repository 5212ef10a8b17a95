//! Processes and threads.
//!
//! A [`Process`] owns what its threads share: the address space, the file table, the
//! working directory, signal dispositions, and the bookkeeping its parent waits on. A
//! [`Task`] is one thread: a kernel stack, saved registers, FPU state and TLS base.
//! Exit happens in two steps, as in Linux: each thread exits ([`exit_thread`]); the last
//! one makes the process a zombie with its wait status, and the parent reaps it (`wait4`).

pub mod attrs;
pub mod cred;
pub mod exec;
pub mod exit;
pub mod itimer;
pub mod rlimit;
pub mod sched;
pub mod signal;
pub mod sigqueue;
pub mod wait;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::arch::interrupts::TrapFrame;
use crate::arch::switch::{self, FpuState};
use crate::errno::{KResult, ENOMEM};
use crate::fs::FdTable;
use crate::mm::user::UserSpace;
use crate::mm::{paging, uaccess, USER_END};
use crate::sync::SpinLock;
use signal::{SigAction, SIGSEGV};
use wait::WaitQueue;

pub type Pid = u32;

const KSTACK_SIZE: usize = 16 * 1024;
/// How long a task may run in user mode before other runnable tasks get the CPU.
pub const TIME_SLICE_NS: u64 = 20_000_000;

#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TaskState {
    New = 0,
    Runnable = 1,
    Blocked = 2,
    Dead = 3,
}

pub type Mm = Arc<SpinLock<UserSpace>>;

pub struct Process {
    pub pid: Pid,
    pub ppid: AtomicU32,
    /// Process group (inherited at fork; setpgid, setsid).
    pub pgid: AtomicU32,
    /// Session (inherited at fork; setsid). Init leads session 1.
    pub sid: AtomicU32,
    /// The signal the parent gets when this process ends (clone's CSIGNAL; 0: none).
    pub exit_signal: AtomicU32,
    mm: SpinLock<Option<Mm>>,
    pub files: SpinLock<FdTable>,
    pub cwd: SpinLock<String>,
    pub name: SpinLock<String>,
    threads: SpinLock<Vec<Arc<Task>>>,
    /// Wait status the process exits with once its threads are gone; -1 while running.
    group_exit: AtomicI32,
    /// Set when the last thread has exited: the status `wait4` reports.
    pub zombie: SpinLock<Option<i32>>,
    pub children: SpinLock<Vec<Arc<Process>>>,
    /// The parent sleeps here in `wait4`; children wake it when they exit.
    pub child_exited: WaitQueue,
    pub sigactions: SpinLock<[SigAction; 64]>,
    /// Signals sent to the process, not yet taken by a thread.
    pub pending: sigqueue::SigQueue,
    /// setitimer's three timers (not inherited by fork; kept across execve).
    pub itimers: itimer::ITimers,
    /// CPU time its tasks have used, up to their last switch away (`sched`).
    pub cpu_ns: AtomicU64,
    /// The alternate signal stack (`stack_t`: sp, flags, size).
    pub altstack: SpinLock<[u64; 3]>,
    /// Woken when one of its threads has left (execve waits here for the others).
    pub threads_gone: WaitQueue,
    /// Woken when a vfork child execs or exits.
    pub vfork_done: WaitQueue,
    pub vfork_released: core::sync::atomic::AtomicBool,
    /// Resource limits (`rlimit`).
    pub rlimits: rlimit::Rlimits,
    /// prctl's and membarrier's settings.
    pub attrs: attrs::ProcessAttrs,
}

/// Linux's default RLIMIT_MEMLOCK (8 MiB since 5.16).
pub const MEMLOCK_DEFAULT: u64 = 8 << 20;

pub struct Task {
    pub tid: Pid,
    pub process: Arc<Process>,
    kstack: Box<[u8]>,
    saved_rsp: UnsafeCell<u64>,
    pub state: AtomicU8,
    /// Queued to run or running (`sched`: changed under the run queue's lock).
    pub on_rq: core::sync::atomic::AtomicBool,
    /// A CPU is on its kernel stack (`sched`: set by the CPU switching to it, cleared by
    /// that CPU once it has switched away).
    pub on_cpu: core::sync::atomic::AtomicBool,
    /// The CPU it runs on, or ran on last.
    pub cpu: AtomicU32,
    /// When it was last switched in (monotonic ns).
    pub run_start: AtomicU64,
    /// The CPUs it may run on (bit N: CPU N), `sched_setaffinity`.
    pub affinity: AtomicU64,
    pub fpu: UnsafeCell<FpuState>,
    pub fs_base: AtomicU64,
    pub clear_child_tid: AtomicU64,
    pub sigmask: AtomicU64,
    /// Signals sent to this thread alone, not yet delivered.
    pub pending: sigqueue::SigQueue,
    /// CPU time this task has used, up to its last switch away (`sched`).
    pub cpu_ns: AtomicU64,
    /// A syscall a signal interrupted, and how it may start again (`syscall::restart`);
    /// 0: none. Set on its way out, taken on the same return to user mode.
    pub restart: AtomicU64,
    /// The mask from before rt_sigtimedwait unblocked the signals it waits for (Linux's
    /// `real_blocked`); 0 otherwise.
    pub real_blocked: AtomicU64,
    /// The io_uring request it works for, while it is switched out (`trace`).
    pub trace_request: AtomicU64,
    /// Set when another thread execs: this thread ends on its way back to user mode.
    pub killed: core::sync::atomic::AtomicBool,
    /// User accesses may not read file pages in (`mm::uaccess::NoFill`), nested count.
    pub no_fill: core::sync::atomic::AtomicU32,
    /// Runs kernel code only (a kernel thread, or a process's io_uring SQ poller or
    /// io-wq worker).
    kernel_only: bool,
    /// Blocked in an interruptible wait (`WaitQueue::wait_until`): queued task work may
    /// wake it.
    pub interruptible: core::sync::atomic::AtomicBool,
    /// io_uring work is queued for this task (Linux: TIF_NOTIFY_SIGNAL with task_work).
    pub task_work: core::sync::atomic::AtomicBool,
    /// The task's io_uring context (Linux: `task_struct::io_uring`): its task work list,
    /// its io-wq and the rings it submitted to. Made on first use.
    pub io_uring: SpinLock<Option<Arc<crate::io_uring::tctx::Tctx>>>,
    /// The mask to restore once a signal unblocked by a syscall's temporary mask has been
    /// delivered (Linux: TIF_RESTORE_SIGMASK with `saved_sigmask`; `io_uring_enter`'s
    /// EXT_ARG sigmask, as ppoll's).
    pub saved_sigmask: SpinLock<Option<u64>>,
    /// `saved_sigmask` holds a mask (checked without the lock on every return).
    pub restore_sigmask: core::sync::atomic::AtomicBool,
    /// Name, nice value, scheduling policy, timer slack.
    pub attrs: attrs::ThreadAttrs,
    /// Its credentials (`cred`): its creator's to begin with.
    pub cred: SpinLock<Arc<cred::Cred>>,
}

// SAFETY: the UnsafeCell fields (saved rsp, FPU area) are touched only by the CPU that
// runs the task or switches away from it, or, for a task that is not running, by the one
// CPU that took it off the run queue (`sched`'s `on_cpu` hand-over orders the two).
unsafe impl Sync for Task {}
// SAFETY: as above.
unsafe impl Send for Task {}

static NEXT_PID: AtomicU32 = AtomicU32::new(1);
static PROCESSES: SpinLock<BTreeMap<Pid, Arc<Process>>> = SpinLock::new(BTreeMap::new());
static TASKS: SpinLock<BTreeMap<Pid, Arc<Task>>> = SpinLock::new(BTreeMap::new());

/// The status init exited with, once it has (the VM then ends with it).
pub static INIT_EXIT: SpinLock<Option<i32>> = SpinLock::new(None);

fn alloc_pid() -> Pid {
    NEXT_PID.fetch_add(1, Ordering::Relaxed)
}

impl Process {
    /// A new process, findable by pid (for kill and wait4).
    fn new(pid: Pid, ppid: Pid, mm: Mm, files: FdTable, cwd: String, name: String) -> Arc<Self> {
        let p = Self::build(pid, ppid, Some(mm), files, cwd, name);
        PROCESSES.lock().insert(pid, Arc::clone(&p));
        p
    }

    fn build(pid: Pid, ppid: Pid, mm: Option<Mm>, files: FdTable, cwd: String, name: String) -> Arc<Self> {
        Arc::new(Self {
            pid,
            ppid: AtomicU32::new(ppid),
            pgid: AtomicU32::new(pid),
            sid: AtomicU32::new(pid),
            exit_signal: AtomicU32::new(signal::SIGCHLD),
            mm: SpinLock::new(mm),
            files: SpinLock::new(files),
            cwd: SpinLock::new(cwd),
            name: SpinLock::new(name),
            threads: SpinLock::new(Vec::new()),
            group_exit: AtomicI32::new(-1),
            zombie: SpinLock::new(None),
            children: SpinLock::new(Vec::new()),
            child_exited: WaitQueue::new(),
            sigactions: SpinLock::new([SigAction::default(); 64]),
            altstack: SpinLock::new([0, 2, 0]),
            pending: sigqueue::SigQueue::new(),
            itimers: itimer::ITimers::default(),
            cpu_ns: AtomicU64::new(0),
            threads_gone: WaitQueue::new(),
            vfork_done: WaitQueue::new(),
            vfork_released: core::sync::atomic::AtomicBool::new(false),
            rlimits: rlimit::Rlimits::new(),
            attrs: attrs::ProcessAttrs::new(),
        })
    }

    pub fn mm(&self) -> Option<Mm> {
        self.mm.lock().clone()
    }

    pub fn set_mm(&self, mm: Mm) -> Option<Mm> {
        self.mm.lock().replace(mm)
    }

    /// Whether the process is dying (exit_group or a fatal signal).
    pub fn exiting(&self) -> bool {
        self.group_exit.load(Ordering::Relaxed) >= 0
    }

    /// Starts the exit of the whole process with wait status `status` (first one wins),
    /// waking every thread so it notices on its way out of the kernel.
    pub fn begin_exit(&self, status: i32) {
        if self.group_exit.compare_exchange(-1, status, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            for t in self.threads.lock().iter() {
                sched::wake(t);
            }
        }
    }

    pub fn thread_count(&self) -> usize {
        self.threads.lock().len()
    }

    pub fn threads(&self) -> Vec<Arc<Task>> {
        self.threads.lock().clone()
    }

    /// Ends every thread but the caller and waits until they are gone (execve, as
    /// Linux's de_thread).
    pub fn kill_other_threads(&self) {
        let me = sched::current();
        for t in self.threads().iter().filter(|t| !Arc::ptr_eq(t, &me)) {
            t.killed.store(true, Ordering::Relaxed);
            sched::wake(t);
        }
        // Each thread that leaves wakes `threads_gone` (`exit_thread`).
        self.threads_gone.wait_uninterruptible(|| self.thread_count() <= 1);
    }
}

/// Whether process group `pgrp` of session `sid` is orphaned: no live member has a
/// parent in another group of the same session (POSIX; Linux's will_become_orphaned_pgrp).
/// The terminal's job control and the stop signals SIGTSTP, SIGTTIN and SIGTTOU spare
/// such a group: nothing would be left to continue it.
pub fn pgrp_orphaned(pgrp: Pid, sid: Pid) -> bool {
    let all = all_processes();
    !all.iter().filter(|p| p.pgid.load(Ordering::Relaxed) == pgrp && p.zombie.lock().is_none()).any(|p| {
        let ppid = p.ppid.load(Ordering::Relaxed);
        all.iter().any(|q| q.pid == ppid && q.pgid.load(Ordering::Relaxed) != pgrp && q.sid.load(Ordering::Relaxed) == sid)
    })
}

pub fn find_process(pid: Pid) -> Option<Arc<Process>> {
    PROCESSES.lock().get(&pid).cloned()
}

/// Prints every task: its state, where it runs, and the kernel code addresses found on
/// its saved kernel stack (innermost first; `addr2line -e guest.elf` turns them into
/// lines). For hunting hangs (`taskdump=SECS`); a running task's stack is not read.
pub fn dump_tasks() {
    unsafe extern "C" {
        static __text_start: u8;
        static __text_end: u8;
    }
    let text = (&raw const __text_start) as u64..(&raw const __text_end) as u64;
    let tasks: Vec<Arc<Task>> = TASKS.lock().values().cloned().collect();
    crate::kprintln!("{}", crate::time::debug_state());
    for t in tasks {
        let on_cpu = t.on_cpu.load(Ordering::Relaxed);
        let mut line = alloc::format!(
            "task {} ({}) state {} on_rq {} on_cpu {} cpu {} intr {} work {}:",
            t.tid,
            t.process.name.lock().as_str(),
            t.state.load(Ordering::Relaxed),
            t.on_rq.load(Ordering::Relaxed),
            on_cpu,
            t.cpu.load(Ordering::Relaxed),
            t.interruptible.load(Ordering::Relaxed),
            t.task_work.load(Ordering::Relaxed),
        );
        if !on_cpu {
            // SAFETY: the task is not running, so its saved rsp is stable; the words read
            // lie between it and the top of the task's own stack.
            let mut sp = unsafe { *t.saved_rsp.get() };
            let mut found = 0;
            while sp + 8 <= t.kstack_top() && found < 16 {
                // SAFETY: as above.
                let word = unsafe { (sp as *const u64).read() };
                if text.contains(&word) {
                    line.push_str(&alloc::format!(" {word:#x}"));
                    found += 1;
                }
                sp += 8;
            }
        }
        crate::kprintln!("{line}");
    }
}

pub fn find_task(tid: Pid) -> Option<Arc<Task>> {
    TASKS.lock().get(&tid).cloned()
}

pub fn all_processes() -> Vec<Arc<Process>> {
    PROCESSES.lock().values().cloned().collect()
}

impl Task {
    fn new(tid: Pid, process: &Arc<Process>, frame: &TrapFrame, fpu: FpuState) -> KResult<Arc<Self>> {
        Self::create(tid, process, frame, fpu, false)
    }

    /// A task of `process`; `kernel_only` ones are not counted among its threads (they
    /// neither keep it alive nor receive its signals).
    fn create(tid: Pid, process: &Arc<Process>, frame: &TrapFrame, fpu: FpuState, kernel_only: bool) -> KResult<Arc<Self>> {
        let mut kstack = Vec::new();
        kstack.try_reserve_exact(KSTACK_SIZE).map_err(|_| ENOMEM)?;
        // SAFETY: capacity reserved above; a kernel stack needs no initial contents.
        unsafe { kstack.set_len(KSTACK_SIZE) };
        let task = Arc::new(Self {
            tid,
            process: Arc::clone(process),
            kstack: kstack.into_boxed_slice(),
            saved_rsp: UnsafeCell::new(0),
            state: AtomicU8::new(TaskState::New as u8),
            on_rq: core::sync::atomic::AtomicBool::new(false),
            on_cpu: core::sync::atomic::AtomicBool::new(false),
            cpu: AtomicU32::new(0),
            run_start: AtomicU64::new(0),
            // Inherited, as Linux's cpus_mask is at fork.
            affinity: AtomicU64::new(sched::try_current().map_or(u64::MAX, |me| me.affinity.load(Ordering::Relaxed))),
            fpu: UnsafeCell::new(fpu),
            fs_base: AtomicU64::new(0),
            clear_child_tid: AtomicU64::new(0),
            sigmask: AtomicU64::new(0),
            pending: sigqueue::SigQueue::new(),
            real_blocked: AtomicU64::new(0),
            trace_request: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            restart: AtomicU64::new(0),
            killed: core::sync::atomic::AtomicBool::new(false),
            no_fill: core::sync::atomic::AtomicU32::new(0),
            kernel_only,
            interruptible: core::sync::atomic::AtomicBool::new(false),
            task_work: core::sync::atomic::AtomicBool::new(false),
            io_uring: SpinLock::new(None),
            saved_sigmask: SpinLock::new(None),
            restore_sigmask: core::sync::atomic::AtomicBool::new(false),
            attrs: attrs::ThreadAttrs::new(&process.name.lock()),
            // Kernel threads are root whoever starts them.
            cred: SpinLock::new(match sched::try_current() {
                Some(me) if process.pid != KERNEL_PID => me.cred.lock().clone(),
                _ => cred::Cred::root(),
            }),
        });
        // SAFETY: the stack belongs to the new task, which has never run.
        unsafe { *task.saved_rsp.get() = switch::prepare_stack(task.kstack_top(), frame) };
        if !kernel_only {
            process.threads.lock().push(Arc::clone(&task));
        }
        TASKS.lock().insert(tid, Arc::clone(&task));
        Ok(task)
    }

    pub fn kstack_top(&self) -> u64 {
        (self.kstack.as_ptr() as u64 + KSTACK_SIZE as u64) & !15
    }

    /// Whether the task runs user code (kernel threads have no FPU state to switch).
    pub fn has_user(&self) -> bool {
        !self.kernel_only
    }

    /// Loads this task's page tables.
    pub fn activate_memory(&self) {
        match self.process.mm() {
            Some(mm) => mm.lock().pt.activate(),
            None => paging::activate_kernel(),
        }
    }

    /// Whether a signal should interrupt what the task waits for. A kernel-mode task
    /// (SQ poller, io-wq worker) takes no signals: only being told to stop wakes it.
    pub fn signal_pending(&self) -> bool {
        if self.kernel_only {
            return self.killed.load(Ordering::Relaxed);
        }
        let pending = signal::pending_for(self);
        self.process.exiting() || self.killed.load(Ordering::Relaxed) || pending & !self.sigmask.load(Ordering::Relaxed) != 0
    }
}

impl Task {
    /// Whether io_uring work waits to run in this task's context.
    pub fn task_work_pending(&self) -> bool {
        self.task_work.load(Ordering::Acquire)
    }

}

/// Runs the io_uring work queued for `me` (the current task).
pub fn run_task_work(me: &Arc<Task>) {
    crate::io_uring::tctx::run(me);
}

/// The current task's process.
pub fn current_process() -> Arc<Process> {
    Arc::clone(&sched::current().process)
}

/// Runs `f` on the current process's address space (again after reading in a file page
/// it needed: see `uaccess::with_user`).
pub fn with_mm<R>(f: impl FnMut(&mut UserSpace) -> KResult<R>) -> KResult<R> {
    let mm = current_process().mm().ok_or(crate::errno::EFAULT)?;
    uaccess::with_user(&mm, f)
}

/// Copies to user memory of the current process.
pub fn copy_to_user(dst: u64, src: &[u8]) -> KResult<()> {
    let mm = current_process().mm().ok_or(crate::errno::EFAULT)?;
    uaccess::copy_out(&mm, dst, src)
}

/// Copies from user memory of the current process.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> KResult<()> {
    let mm = current_process().mm().ok_or(crate::errno::EFAULT)?;
    uaccess::copy_in(&mm, dst, src)
}

pub fn read_user<T: uaccess::Pod>(addr: u64) -> KResult<T> {
    with_mm(|mm| uaccess::read(mm, addr))
}

pub fn write_user<T: uaccess::Pod>(addr: u64, value: &T) -> KResult<()> {
    with_mm(|mm| uaccess::write(mm, addr, value))
}

/// The process kernel threads belong to (no address space, no files).
pub const KERNEL_PID: Pid = 0;

static KERNEL_PROCESS: SpinLock<Option<Arc<Process>>> = SpinLock::new(None);

/// Starts a kernel thread running `entry(arg)`; it ends when `entry` returns.
pub fn spawn_kernel_thread(entry: extern "C" fn(usize), arg: usize) -> KResult<Pid> {
    let process = KERNEL_PROCESS
        .lock()
        .get_or_insert_with(|| {
            // Not in the process table: no signal or wait4 can reach kernel threads.
            Process::build(KERNEL_PID, 0, None, FdTable::with_console(), String::from("/"), String::from("kthreadd"))
        })
        .clone();
    spawn_worker(&process, entry, arg)
}

/// Starts a kernel-mode task of `process` running `entry(arg)`: it sees the process's
/// files and memory (as an io_uring SQ poller must) but is not one of its threads.
pub fn spawn_worker(process: &Arc<Process>, entry: extern "C" fn(usize), arg: usize) -> KResult<Pid> {
    spawn_worker_on(process, entry, arg, None)
}

/// As [`spawn_worker`], on the CPUs in `affinity` (None: its creator's).
pub fn spawn_worker_on(process: &Arc<Process>, entry: extern "C" fn(usize), arg: usize, affinity: Option<u64>) -> KResult<Pid> {
    let tid = alloc_pid();
    let task = Task::create(tid, process, &TrapFrame::default(), FpuState::initial(), true)?;
    if let Some(mask) = affinity {
        task.affinity.store(mask, Ordering::Relaxed);
    }
    // SAFETY: the task has never run; its stack is its own.
    unsafe { *task.saved_rsp.get() = switch::prepare_kernel_stack(task.kstack_top(), entry, arg) };
    sched::spawn(task);
    Ok(tid)
}

/// Where a kernel thread goes when its function returns.
pub extern "C" fn kthread_exit() -> ! {
    let me = sched::current();
    me.process.threads.lock().retain(|t| !Arc::ptr_eq(t, &me));
    TASKS.lock().remove(&me.tid);
    drop(me);
    sched::exit_current()
}

/// Starts the first process: `path` with `argv` and `envp`, console on fds 0-2.
pub fn spawn_init(path: &str, argv: &[&[u8]], envp: &[&[u8]]) -> KResult<()> {
    let pid = alloc_pid();
    let image = exec::load(path, "/", argv, envp)?;
    let files = FdTable::with_console();
    let process = Process::new(pid, 0, Arc::new(SpinLock::new(image.mm)), files, String::from("/"), image.name);
    let task = Task::new(pid, &process, &image.frame, FpuState::initial())?;
    crate::tty::console().set_controlling(&process);
    sched::spawn(task);
    Ok(())
}

/// What `clone` asked for, already decoded.
pub struct CloneArgs {
    pub flags: u64,
    pub stack: u64,
    pub tls: Option<u64>,
    pub child_tid: u64,
    /// Where CLONE_PARENT_SETTID writes the new tid (in the parent's memory).
    pub parent_tid: u64,
}

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// Creates a thread (CLONE_THREAD) or a process (fork, vfork, clone) from the current
/// task, which is in a syscall with `frame`. Returns the child's id and, for a process,
/// the child process (the caller may have to wait for a vfork child).
pub fn clone_current(frame: &TrapFrame, args: &CloneArgs) -> KResult<(Pid, Option<Arc<Process>>)> {
    let me = sched::current();
    let parent = &me.process;
    let mut child_frame = frame.clone();
    child_frame.rax = 0;
    if args.stack != 0 {
        child_frame.rsp = args.stack;
    }
    let mut fpu = FpuState::initial();
    fpu.save();
    let tid = alloc_pid();
    let (task, process) = if args.flags & CLONE_THREAD != 0 {
        (Task::new(tid, parent, &child_frame, fpu)?, None)
    } else {
        let parent_mm = parent.mm().ok_or(ENOMEM)?;
        let mm = if args.flags & CLONE_VM != 0 {
            parent_mm
        } else {
            // Registered with the file caches it maps before the parent is unlocked: the
            // shrinker could otherwise drop a page the copy maps (`UserSpace::register_mapper`).
            let parent_space = parent_mm.lock();
            let copy = Arc::new(SpinLock::new(parent_space.fork()?));
            UserSpace::register_mapper(&copy);
            drop(parent_space);
            copy
        };
        let files = parent.files.lock().clone();
        let cwd = parent.cwd.lock().clone();
        let name = parent.name.lock().clone();
        let child = Process::new(tid, parent.pid, mm, files, cwd, name);
        child.pgid.store(parent.pgid.load(Ordering::Relaxed), Ordering::Relaxed);
        child.sid.store(parent.sid.load(Ordering::Relaxed), Ordering::Relaxed);
        child.exit_signal.store((args.flags & 0xff) as u32, Ordering::Relaxed);
        *child.sigactions.lock() = *parent.sigactions.lock();
        child.rlimits.copy_from(&parent.rlimits);
        itimer::set_cpu_limit(&child, child.rlimits.get(rlimit::RLIMIT_CPU));
        child.attrs.inherit(&parent.attrs);
        parent.children.lock().push(Arc::clone(&child));
        (Task::new(tid, &child, &child_frame, fpu)?, Some(child))
    };
    task.fs_base.store(args.tls.unwrap_or(me.fs_base.load(Ordering::Relaxed)), Ordering::Relaxed);
    task.sigmask.store(me.sigmask.load(Ordering::Relaxed), Ordering::Relaxed);
    task.attrs.inherit(&me.attrs);
    if args.flags & CLONE_CHILD_CLEARTID != 0 {
        task.clear_child_tid.store(args.child_tid, Ordering::Relaxed);
    }
    if args.flags & CLONE_CHILD_SETTID != 0
        && let Some(mm) = task.process.mm() {
            let _ = uaccess::with_user(&mm, |mm| uaccess::write(mm, args.child_tid, &tid));
        }
    // Before the child can run (on another CPU, at once): a thread that exits clears
    // this very word (CLONE_CHILD_CLEARTID), which must not be written after that.
    if args.flags & CLONE_PARENT_SETTID != 0 {
        let _ = write_user(args.parent_tid, &tid);
    }
    sched::spawn(task);
    Ok((tid, process))
}

/// Ends the current thread; the last thread out ends the process with `status` (a wait
/// status) unless an exit of the whole group already chose one.
pub fn exit_thread(status: i32) -> ! {
    let me = sched::current();
    // Its io_uring requests are cancelled and its io-wq stopped (Linux: do_exit's
    // io_uring_files_cancel); rings shared with others go on.
    crate::io_uring::tctx::task_exit(&me);
    let process = Arc::clone(&me.process);
    let ctid = me.clear_child_tid.load(Ordering::Relaxed);
    if ctid != 0 {
        if let Some(mm) = process.mm() {
            let _ = uaccess::with_user(&mm, |mm| uaccess::write(mm, ctid, &0u32));
        }
        crate::syscall::futex::wake_address(ctid, 1);
    }
    TASKS.lock().remove(&me.tid);
    // Its CPU time so far counts now: its parent may read it (wait4) on another CPU
    // before this one switches away.
    sched::account(&me);
    let last = {
        let mut threads = process.threads.lock();
        threads.retain(|t| !Arc::ptr_eq(t, &me));
        threads.is_empty()
    };
    process.threads_gone.wake_all();
    drop(me);
    if last {
        let _ = process.group_exit.compare_exchange(-1, status, Ordering::Relaxed, Ordering::Relaxed);
        exit_process(&process);
    }
    // Nothing on this stack is dropped after the switch away: let go of the process here.
    drop(process);
    sched::exit_current()
}

/// The last thread has gone: free the process's resources and tell the parent.
fn exit_process(process: &Arc<Process>) {
    let status = process.group_exit.load(Ordering::Relaxed);
    crate::ktest::process_exiting(process.pid);
    process.itimers.cancel_real();
    paging::activate_kernel();
    let mm = process.mm.lock().take();
    // Stores through shared file mappings reach their files (Linux writes them back later).
    if let Some(mm) = mm {
        let files = mm.lock().files_in(0, crate::mm::USER_END);
        drop(mm);
        crate::syscall::mm::writeback(files);
    }
    let closed = process.files.lock().close_all();
    drop(closed);
    crate::tty::console().session_leader_exited(process);
    process.vfork_released.store(true, Ordering::Relaxed);
    process.vfork_done.wake_all();
    // Orphans get their parent-death signal (PR_SET_PDEATHSIG) and go to the nearest
    // living ancestor that is a subreaper (PR_SET_CHILD_SUBREAPER), else to init.
    let orphans = core::mem::take(&mut *process.children.lock());
    for c in &orphans {
        let sig = c.attrs.pdeath_signal.load(Ordering::Relaxed);
        if sig != 0 && c.zombie.lock().is_none() {
            signal::send(c, sig);
        }
    }
    if let Some(reaper) = reaper_for(process) {
        for c in orphans {
            c.ppid.store(reaper.pid, Ordering::Relaxed);
            reaper.children.lock().push(c);
        }
        reaper.child_exited.wake_all();
    }
    *process.zombie.lock() = Some(status);
    process.attrs.exited.wake_all();
    if process.pid == 1 {
        *INIT_EXIT.lock() = Some(status);
        // The boot CPU's idle loop ends the VM; it may be halted.
        if crate::arch::cpu::index() != 0 {
            crate::arch::smp::send_kick(0);
        }
    }
    match find_process(process.ppid.load(Ordering::Relaxed)) {
        Some(parent) => {
            let sig = process.exit_signal.load(Ordering::Relaxed);
            if sig != 0 {
                let mut info = exit::child_info(process.pid, status, sched::process_cpu_ns(process));
                info.signo = sig;
                let _ = signal::send_info(&parent, info, false);
            }
            parent.child_exited.wake_all();
        }
        None => {
            PROCESSES.lock().remove(&process.pid);
        }
    }
}

/// Who adopts the children of `process` as it exits: its nearest living ancestor that
/// asked to be a subreaper, else init (none when init itself is exiting).
fn reaper_for(process: &Process) -> Option<Arc<Process>> {
    let mut pid = process.ppid.load(Ordering::Relaxed);
    while pid > 1 {
        let Some(p) = find_process(pid) else { break };
        if p.attrs.subreaper.load(Ordering::Relaxed) && !p.exiting() {
            return Some(p);
        }
        pid = p.ppid.load(Ordering::Relaxed);
    }
    find_process(1).filter(|i| i.pid != process.pid)
}

/// Forgets a reaped zombie.
pub fn release_process(pid: Pid) {
    PROCESSES.lock().remove(&pid);
}

/// Called for every exit to user mode: dies if the process is exiting, and gives up the
/// CPU when the time slice is used up.
pub fn return_to_user(frame: &mut TrapFrame) {
    let Some(me) = sched::try_current() else { return };
    if frame.rip >= USER_END {
        // Only reachable through a forged return address (execve or the #PF syscall path).
        log::warn!("pid {}: return to non-canonical rip {:#x}", me.process.pid, frame.rip);
        me.process.begin_exit(SIGSEGV as i32);
    }
    if crate::time::take_resched() && sched::others_runnable() {
        sched::yield_now();
    }
    // Task work first (Linux's exit_to_user_mode_loop runs it before signals): links,
    // drains and retries of this task's io_uring requests move on however it reaps.
    if me.task_work_pending() {
        run_task_work(&me);
    }
    if me.process.itimers.cpu_armed() {
        itimer::check_cpu(&me.process);
    }
    if me.signal_pending() && !me.process.exiting() {
        signal::deliver(frame);
    }
    // A stopped process's threads wait here for SIGCONT (or SIGKILL).
    if me.process.attrs.stop_signal.load(Ordering::Relaxed) != 0 && !me.process.exiting() {
        signal::wait_while_stopped(&me);
    }
    // An interrupted syscall that no handler took (the signal was ignored) starts again.
    if me.restart.load(Ordering::Relaxed) != 0 {
        crate::syscall::restart::without_handler(frame, me.restart.swap(0, Ordering::Relaxed));
    }
    // The handler's frame saved the mask from before the syscall's temporary one.
    if me.restore_sigmask.load(Ordering::Relaxed) {
        me.restore_sigmask.store(false, Ordering::Relaxed);
        if let Some(mask) = me.saved_sigmask.lock().take() {
            me.sigmask.store(mask, Ordering::Relaxed);
        }
    }
    if me.killed.load(Ordering::Relaxed) {
        drop(me);
        exit_thread(0);
    }
    if me.process.exiting() {
        drop(me);
        exit_thread(0);
    }
    // Only user-modifiable flags survive, with interrupts on.
    frame.rflags = (frame.rflags & 0x24_0dd5) | 0x202;
}

/// An exception in user mode: resolve a page fault, or kill the process with a signal.
/// Queues the signal of a fault for `me`'s handler, with the siginfo Linux gives it
/// (si_code and si_addr); false if no handler would run (blocked, ignored or default:
/// then the fault kills, as Linux's force_sig_fault does).
fn deliver_fault(me: &Arc<Task>, sig: u32, frame: &TrapFrame, cr2: u64) -> bool {
    const SEGV_MAPERR: i32 = 1;
    const SEGV_ACCERR: i32 = 2;
    const BUS_ADRERR: i32 = 2;
    const ILL_ILLOPN: i32 = 2;
    const FPE_INTDIV: i32 = 1;
    let action = me.process.sigactions.lock()[sig as usize - 1];
    let blocked = me.sigmask.load(Ordering::Relaxed) & (1 << (sig - 1)) != 0;
    if blocked || action.handler == signal::SIG_DFL || action.handler == signal::SIG_IGN {
        return false;
    }
    let (code, addr) = match (frame.vector, sig) {
        // A present page refused the access: ACCERR; nothing mapped there: MAPERR.
        (14, signal::SIGBUS) => (BUS_ADRERR, cr2),
        (14, _) => (if frame.error_code & 1 != 0 { SEGV_ACCERR } else { SEGV_MAPERR }, cr2),
        (6, _) => (ILL_ILLOPN, frame.rip),
        (0, _) => (FPE_INTDIV, frame.rip),
        _ => (sigqueue::SI_KERNEL, 0),
    };
    let info = sigqueue::SigInfo { signo: sig, errno: 0, code, fields: [addr, 0, 0, 0] };
    me.pending.push(info, true).is_ok()
}

pub fn user_exception(frame: &mut TrapFrame, name: &str, cr2: u64) {
    let me = sched::current();
    let mut sig = signal::signal_for_exception(frame.vector);
    if frame.vector == 14
        && let Some(mm) = me.process.mm()
    {
        let (write, exec) = (frame.error_code & 2 != 0, frame.error_code & 16 != 0);
        let mut reclaims = 0;
        loop {
            let fault = mm.lock().fault(cr2, write, exec);
            match fault {
                crate::mm::user::Fault::Mapped => return,
                crate::mm::user::Fault::Denied => break,
                crate::mm::user::Fault::Bus => {
                    sig = signal::SIGBUS;
                    break;
                }
                crate::mm::user::Fault::NoMemory => {
                    if reclaims < uaccess::RECLAIM_TRIES && crate::mm::writeback::reclaim_wait() {
                        reclaims += 1;
                        continue;
                    }
                    // Out of memory: Linux's OOM killer would end a process; this one.
                    sig = signal::SIGKILL;
                    break;
                }
                // Read the file's page with the address space unlocked, then fault again.
                crate::mm::user::Fault::Missing(file, index) => {
                    match crate::mm::user::fault_in_file(&*file, index) {
                        Ok(()) => {}
                        // Out of memory even after writeback: as an OOM kill.
                        Err(crate::errno::ENOMEM) => {
                            sig = signal::SIGKILL;
                            break;
                        }
                        // Past the end of the file, or the read failed.
                        Err(_) => {
                            sig = signal::SIGBUS;
                            break;
                        }
                    }
                }
            }
        }
    }
    if sig != signal::SIGKILL && deliver_fault(&me, sig, frame, cr2) {
        return;
    }
    log::info!(
        "{}[{}]: {name} at {:#x} rip {:#x} sp {:#x} error {:#x}: killed by signal {sig}",
        *me.process.name.lock(),
        me.process.pid,
        cr2,
        frame.rip,
        frame.rsp,
        frame.error_code
    );
    me.process.begin_exit(sig as i32);
}
