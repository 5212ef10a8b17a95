//! The virtual machine: KVM, guest memory, the in-kernel irqchip, and the vCPU threads.
//!
//! The boot vCPU starts at the kernel's PVH entry in 32-bit protected mode (paging off,
//! flat segments, `ebx` = `hvm_start_info`). Other vCPUs wait for INIT/SIPI from the guest,
//! as on hardware. Each vCPU runs in its own thread and reports how it ended on a channel;
//! the first report (or the timeout) ends the VM.
//!
//! Guest memory is unmapped only after no vCPU can run: [`Vcpus`] kicks every vCPU thread
//! out of KVM_RUN (a signal whose handler sets `immediate_exit`, so a kick that comes
//! just before KVM_RUN is not lost) and joins it, on every way out of [`run`], and the
//! VM is closed before the memory is dropped.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_run, kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{IoEventAddress, Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{self, BootError, BOOT_GDT_ADDR, START_INFO_ADDR};
use crate::config::{DiskEngine, VmConfig};
use crate::console_out::ConsoleOut;
use crate::devices::virtio::{self, block, mmio::MmioTransport, net, p9, VirtioDevice};
use crate::devices::{serial, IoAction, IoBus, MmioBus};
use crate::seccomp;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot open {path}: {source} (is KVM available, and may this user use it?)")]
    KvmOpen { path: PathBuf, source: kvm_ioctls::Error },
    #[error("KVM {what} failed: {source}")]
    Kvm { what: &'static str, source: kvm_ioctls::Error },
    #[error("cannot allocate {0} bytes of guest memory: {1}")]
    Memory(u64, String),
    #[error("{0}")]
    Boot(#[from] BootError),
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
    #[error("guest stopped: {reason} (vCPU {vcpu}, rip={rip:#x})")]
    GuestCrashed { reason: String, vcpu: u8, rip: u64 },
    #[error("cannot start a vCPU thread: {0}")]
    Thread(std::io::Error),
    #[error("--disk {path}: {source}")]
    Disk { path: PathBuf, source: std::io::Error },
    #[error("--share {path}: {source}")]
    Share { path: PathBuf, source: std::io::Error },
    #[error("--net tap={tap}: {source}")]
    Net { tap: String, source: std::io::Error },
    #[error("too many devices: {0} (at most {max} disks, shares and network devices)", max = virtio::MMIO_SLOTS)]
    TooManyDevices(usize),
    #[error("cannot set up a virtio device: {0}")]
    Device(std::io::Error),
    #[error("vCPU {0} stopped without saying why (its thread ended)")]
    VcpuVanished(u8),
    #[error("every vCPU thread ended without saying why")]
    VcpusGone,
    #[error("cannot install the vCPU kick signal handler: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("cannot start the device thread launcher: {0}")]
    Launcher(std::io::Error),
    #[error("--gdb: cannot listen on 127.0.0.1: {0}")]
    Gdb(std::io::Error),
    #[error("--trace {}: {}", .0.display(), .1)]
    Trace(std::path::PathBuf, std::io::Error),
}

impl VmError {
    /// Whether the error is the user's input rather than the machine's state.
    pub fn is_usage(&self) -> bool {
        match self {
            VmError::Boot(e) => e.is_usage(),
            VmError::Disk { .. }
            | VmError::Share { .. }
            | VmError::Net { .. }
            | VmError::TooManyDevices(_)
            | VmError::Gdb(_)
            | VmError::Trace(..) => true,
            _ => false,
        }
    }
}

/// How a VM run ended, when it ended by the guest's own choice or the timeout.
#[derive(Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest wrote this status to the exit device.
    Exited(u32),
    /// `--timeout` elapsed; the guest was stopped.
    TimedOut,
    /// The user typed Ctrl-A x on the console.
    Quit,
    /// GDB's `kill` (`--gdb`).
    Killed,
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// After the VM ends, how long the console's output may still take to reach a stdout
/// that is slow, beyond `--timeout` (without a timeout there is no bound).
const FLUSH_GRACE: Duration = Duration::from_millis(500);

/// Boots the configured guest and runs it until it exits, crashes or times out.
pub fn run(config: &VmConfig) -> Result<VmExit, VmError> {
    if config.seccomp {
        // Before any thread is created: each installs its own filter.
        seccomp::enable();
        seccomp::start_launcher().map_err(VmError::Launcher)?;
    }
    let kvm = open_kvm(&config.kvm_device)?;
    // Declared before the VM and the vCPUs: dropped after them (see `Vcpus`).
    let mem = GuestMemoryMmap::<()>::from_ranges(&boot::ram_ranges(config.mem_bytes))
        .map_err(|e| VmError::Memory(config.mem_bytes, e.to_string()))?;
    let vm = kvm.create_vm().map_err(kvm_err("CREATE_VM"))?;
    register_memory(&vm, &mem)?;
    let devices = build_devices(config)?;
    // --trace: the guest's trace rings at the top of low RAM, and `trace=` to find them.
    let trace_region = config.trace.as_ref().map(|_| crate::trace::region(boot::low_ram_end(config.mem_bytes), config.vcpus));
    let mut cmdline = announce_devices(&config.cmdline, devices.len());
    if let Some((base, _)) = trace_region {
        cmdline = kernel_words(&cmdline, &[crate::trace::cmdline_word(base)]);
    }
    let entry = boot::load(&mem, config.mem_bytes, &config.kernel, config.initrd.as_deref(), &cmdline, trace_region.map_or(0, |r| r.1))?;
    let mut trace = match (&config.trace, trace_region) {
        (Some(path), Some((base, _))) => {
            Some(crate::trace::Session::start(&mem, base, config.vcpus, path).map_err(|e| VmError::Trace(path.clone(), e))?)
        }
        _ => None,
    };
    crate::mptable::write(&mem, config.vcpus).map_err(|e| VmError::Boot(boot::BootError::Memory(e.to_string())))?;

    // Intel needs a TSS area for real-mode emulation; harmless elsewhere.
    vm.set_tss_address(0xfffb_d000).map_err(kvm_err("SET_TSS_ADDR"))?;
    vm.create_irq_chip().map_err(kvm_err("CREATE_IRQCHIP"))?;

    let serial_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(VmError::EventFd)?;
    vm.register_irqfd(&serial_irq, serial::COM1_IRQ).map_err(kvm_err("IRQFD"))?;
    let rx_space = serial::RxSpace::new().map_err(VmError::EventFd)?;
    let console = ConsoleOut::spawn(Box::new(std::io::stdout())).map_err(VmError::Thread)?;
    let serial = serial::new(serial_irq, Arc::clone(&rx_space), Box::new(console.writer()));
    let bus = Arc::new(IoBus::new(serial, Arc::clone(&console)));
    let mmio = Arc::new(attach_devices(&vm, &mem, devices)?);

    let supported = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm_err("GET_SUPPORTED_CPUID"))?;
    install_kick_handler()?;
    let (tx, rx) = mpsc::channel();
    // --gdb: listen first (a port in use is an error before the guest starts); every
    // vCPU parks before its first instruction until GDB lets it run.
    let debugger = match config.gdb {
        Some(port) => {
            let listener = crate::gdb::listen(port).map_err(VmError::Gdb)?;
            let dbg = Arc::new(crate::gdb::Debugger::new(mem.clone(), usize::from(config.vcpus), kick_signal()));
            let served = Arc::clone(&dbg);
            let quit = tx.clone();
            let kill = move || {
                let _ = quit.send(Ok(VmExit::Killed));
            };
            thread::Builder::new().name("gdb".into()).spawn(move || crate::gdb::serve(listener, served, kill)).map_err(VmError::Thread)?;
            Some(dbg)
        }
        None => None,
    };
    // From here on every way out of this function stops and joins the vCPU threads
    // (`vcpus` is dropped before `mmio`, `vm` and `mem`).
    let mut vcpus = Vcpus::new(&mem, Arc::clone(&console), debugger.clone());
    for index in 0..config.vcpus {
        let vcpu = vm.create_vcpu(u64::from(index)).map_err(kvm_err("CREATE_VCPU"))?;
        let mut entries = supported.as_slice().to_vec();
        crate::cpuid::patch(&mut entries, index, config.vcpus);
        let cpuid = kvm_bindings::CpuId::from_entries(&entries)
            .map_err(|_| VmError::Kvm { what: "SET_CPUID2", source: kvm_ioctls::Error::new(libc::E2BIG) })?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("SET_CPUID2"))?;
        if index == 0 {
            setup_boot_vcpu(&vcpu, entry.entry)?;
            if let Some(t) = &mut trace {
                t.set_clock(vcpu.get_tsc_khz().unwrap_or(0), crate::trace::tsc_offset(&vcpu));
            }
        }
        vcpus.spawn(index, vcpu, Arc::clone(&bus), Arc::clone(&mmio), tx.clone())?;
    }
    if let Some(dbg) = &debugger {
        dbg.set_threads(vcpus.pthreads());
    }
    // Raw mode (a terminal on stdin) until this function returns.
    let terminal = crate::console::raw_mode();
    // A terminal we do not have the foreground of is left alone (reading it would stop
    // vmm with SIGTTIN).
    if terminal.is_some() || !crate::console::stdin_is_a_terminal() {
        let quit = tx.clone();
        crate::console::spawn_input(Arc::clone(&bus), rx_space, terminal.is_some(), move || {
            let _ = quit.send(Ok(VmExit::Quit));
        })
        .map_err(VmError::Thread)?;
    }
    drop(tx);
    seccomp::install(seccomp::Thread::Main)?;

    let started = Instant::now();
    let result = wait_for_end(&rx, config.timeout);
    vcpus.stop();
    if let Some(t) = trace
        && let Err(e) = t.finish()
    {
        log::error!("--trace: {e}");
    }
    // A stdout that does not drain must not keep vmm from ending after --timeout.
    if !bus.flush(config.timeout.map(|t| started + t + FLUSH_GRACE)) {
        log::warn!("console output not all written: stdout does not drain");
    }
    drop(terminal);
    result
}

/// Waits for the first vCPU's report (or the stdin thread's Ctrl-A x), at most `timeout`.
fn wait_for_end(rx: &mpsc::Receiver<Result<VmExit, VmError>>, timeout: Option<Duration>) -> Result<VmExit, VmError> {
    match timeout {
        Some(timeout) => match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Ok(VmExit::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(VmError::VcpusGone),
        },
        None => rx.recv().unwrap_or(Err(VmError::VcpusGone)),
    }
}

/// How long [`Vcpus::stop`] kicks the vCPU threads before it gives up on one.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The vCPU threads. KVM reads and writes guest memory while a vCPU runs, so the memory
/// must outlive them: [`Vcpus::stop`] (also on drop) kicks each thread out of KVM_RUN and
/// joins it; a thread that does not stop within [`STOP_TIMEOUT`] (blocked outside
/// KVM_RUN) is left running, and guest memory stays mapped until the process ends.
struct Vcpus {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    console: Arc<ConsoleOut>,
    mem: GuestMemoryMmap,
    /// `--gdb`: parked vCPUs are let go (and never kicked by it again) before the joins.
    debugger: Option<Arc<crate::gdb::Debugger>>,
}

impl Vcpus {
    fn new(mem: &GuestMemoryMmap, console: Arc<ConsoleOut>, debugger: Option<Arc<crate::gdb::Debugger>>) -> Self {
        Self { threads: Vec::new(), stop: Arc::new(AtomicBool::new(false)), console, mem: mem.clone(), debugger }
    }

    /// Starts vCPU `index`'s thread; it sends how the guest ended on `tx`.
    fn spawn(
        &mut self,
        index: u8,
        vcpu: VcpuFd,
        bus: Arc<IoBus>,
        mmio: Arc<MmioBus>,
        tx: mpsc::Sender<Result<VmExit, VmError>>,
    ) -> Result<(), VmError> {
        let stop = Arc::clone(&self.stop);
        let debugger = self.debugger.clone();
        let handle = thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let mut report = Report { index, tx: Some(tx) };
                if let Err(e) = seccomp::install(seccomp::Thread::Vcpu) {
                    return report.send(Err(e.into()));
                }
                let result = run_vcpu(index, vcpu, &bus, &mmio, &stop, debugger.as_deref());
                if let Some(dbg) = &debugger {
                    dbg.vcpu_gone(usize::from(index));
                }
                match result {
                    Some(result) => report.send(result),
                    None => report.tx = None, // stopped: the VM is ending anyway
                }
            })
            .map_err(VmError::Thread)?;
        self.threads.push(handle);
        Ok(())
    }

    /// The threads' pthread_t handles (valid until [`Vcpus::stop`] joins them).
    fn pthreads(&self) -> Vec<libc::pthread_t> {
        use std::os::unix::thread::JoinHandleExt;
        self.threads.iter().map(|h| h.as_pthread_t()).collect()
    }

    /// Stops every vCPU thread: kicked out of KVM_RUN (again and again, until it is seen
    /// to end) and joined. False if one did not end in time (it is left running).
    fn stop(&mut self) -> bool {
        let mut all = true;
        use std::os::unix::thread::JoinHandleExt;
        self.stop.store(true, Ordering::SeqCst);
        // A vCPU waiting for room in the console's buffer gives up waiting.
        self.console.close();
        if let Some(dbg) = &self.debugger {
            dbg.end();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for handle in self.threads.drain(..) {
            while !handle.is_finished() {
                if Instant::now() >= deadline {
                    log::error!("{} does not stop; guest memory stays mapped", handle.thread().name().unwrap_or("a vCPU"));
                    std::mem::forget(self.mem.clone());
                    all = false;
                    break;
                }
                // SAFETY: the thread is not joined yet, so its pthread_t is valid; the kick
                // signal has a handler (`install_kick_handler`).
                unsafe { libc::pthread_kill(handle.as_pthread_t(), kick_signal()) };
                thread::sleep(Duration::from_millis(2));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        all
    }
}

impl Drop for Vcpus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a vCPU thread sends on the channel: its result, or, should it end without one
/// (a panic that unwinds), that it vanished.
struct Report {
    index: u8,
    tx: Option<mpsc::Sender<Result<VmExit, VmError>>>,
}

impl Report {
    fn send(&mut self, result: Result<VmExit, VmError>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let index = self.index;
        self.send(Err(VmError::VcpuVanished(index)));
    }
}

thread_local! {
    /// This vCPU thread's `kvm_run` page, for the kick signal's handler; null outside
    /// [`run_vcpu`].
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The signal that kicks a vCPU thread out of KVM_RUN.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `KickTarget` set it on this thread (the handler runs on the thread the
        // signal was sent to) to its vCPU's kvm_run mapping, and clears it before that
        // vCPU is dropped. Only KVM reads immediate_exit; the write is one aligned byte.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

fn install_kick_handler() -> Result<(), VmError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data, zeroed then filled; the handler only touches a
        // thread-local pointer and one byte (async-signal-safe), and no flags ask for
        // SA_RESTART, so KVM_RUN returns EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_kick as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(kick_signal(), &action, std::ptr::null_mut()) != 0 {
                result = Err(VmError::Signal(std::io::Error::last_os_error()));
            }
        }
    });
    result
}

/// Publishes a vCPU's kvm_run page to the kick handler while it lives.
struct KickTarget;

impl KickTarget {
    fn set(vcpu: &mut VcpuFd) -> Self {
        let run: *mut kvm_run = vcpu.get_kvm_run();
        KVM_RUN.with(|c| c.set(run));
        KickTarget
    }
}

impl Drop for KickTarget {
    fn drop(&mut self) {
        KVM_RUN.with(|c| c.set(std::ptr::null_mut()));
    }
}

/// Opens every --disk and --share, in command-line order (disks first), then the --net
/// tap.
fn build_devices(config: &VmConfig) -> Result<Vec<Box<dyn VirtioDevice>>, VmError> {
    let count = config.disks.len() + config.shares.len() + usize::from(config.net.is_some());
    if count > virtio::MMIO_SLOTS {
        return Err(VmError::TooManyDevices(count));
    }
    let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
    for (n, disk) in config.disks.iter().enumerate() {
        devices.push(Box::new(open_disk(disk, n)?.with_poll(config.blk_poll).with_request_queues(usize::from(config.vcpus))));
    }
    for share in &config.shares {
        let err = |source| VmError::Share { path: share.path.clone(), source };
        if !share.path.is_dir() {
            let source = std::fs::metadata(&share.path)
                .err()
                .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
            return Err(err(source));
        }
        let tag = share.tag.as_deref().unwrap_or(crate::config::DEFAULT_SHARE_TAG);
        devices.push(Box::new(p9::P9Device::new(&share.path, tag, share.read_only).map_err(err)?));
    }
    if let Some(cfg) = &config.net {
        let tap = net::tap::Tap::open(&cfg.tap).map_err(|source| VmError::Net { tap: cfg.tap.clone(), source })?;
        devices.push(Box::new(net::Net::new(tap, cfg.mac)));
    }
    Ok(devices)
}

/// Opens the `n`-th disk. Its GET_ID answer is `vmm-diskN`, a neutral serial: never the
/// host's path or file name.
fn open_disk(disk: &crate::config::DiskConfig, n: usize) -> Result<block::Block, VmError> {
    let err = |source| VmError::Disk { path: disk.path.clone(), source };
    let engine: Arc<dyn block::BlockBackend> = match disk.engine.unwrap_or_else(default_engine) {
        DiskEngine::Sync => Arc::new(block::engine_sync::SyncEngine::open_with(&disk.path, disk.read_only, disk.direct).map_err(err)?),
        DiskEngine::Uring if disk.eio.is_none() => {
            Arc::new(block::engine_uring::UringEngine::open_with(&disk.path, disk.read_only, disk.direct).map_err(err)?)
        }
        // Test-only (see block::engine_test).
        engine => {
            let sync = block::engine_sync::SyncEngine::open_with(&disk.path, disk.read_only, disk.direct).map_err(err)?;
            let eio = disk.eio.map(|(first, last)| first..=last);
            Arc::new(block::engine_test::TestEngine::new(sync, engine == DiskEngine::Volatile, eio))
        }
    };
    Ok(block::Block::new(engine, disk.read_only, format!("vmm-disk{n}").as_bytes()))
}

/// io_uring when the host allows it (probed once), else the synchronous engine.
fn default_engine() -> DiskEngine {
    match block::engine_uring::probe() {
        Ok(()) => DiskEngine::Uring,
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| log::info!("io_uring unavailable ({e}): disks use the sync engine"));
            DiskEngine::Sync
        }
    }
}

/// The kernel command line with one `virtio_mmio.device=` entry per device, placed before
/// a `--` (whatever follows it is init's), as QEMU microvm announces its slots.
fn announce_devices(cmdline: &str, count: usize) -> String {
    let entries: Vec<String> = (0..count)
        .filter_map(virtio::mmio_slot)
        .map(|(base, gsi)| virtio::cmdline_entry(base, gsi))
        .collect();
    kernel_words(cmdline, &entries)
}

/// The command line with `extra` words for the kernel, before any `--`.
fn kernel_words(cmdline: &str, extra: &[String]) -> String {
    if extra.is_empty() {
        return cmdline.to_owned();
    }
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let split = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    let mut out: Vec<&str> = words[..split].to_vec();
    out.extend(extra.iter().map(String::as_str));
    out.extend_from_slice(&words[split..]);
    out.join(" ")
}

/// Puts each device in its slot: an irqfd on its GSI (with a resample fd when KVM has
/// them, for level-triggered semantics), an ioeventfd per queue on QueueNotify.
fn attach_devices(vm: &VmFd, mem: &GuestMemoryMmap, devices: Vec<Box<dyn VirtioDevice>>) -> Result<MmioBus, VmError> {
    let mut bus = MmioBus::default();
    for (n, device) in devices.into_iter().enumerate() {
        let (base, gsi) = virtio::mmio_slot(n).ok_or(VmError::TooManyDevices(n + 1))?;
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).map_err(VmError::EventFd)?;
        let resample = EventFd::new(libc::EFD_NONBLOCK).map_err(VmError::EventFd)?;
        let resample = match vm.register_irqfd_with_resample(&irqfd, &resample, gsi) {
            Ok(()) => Some(resample),
            Err(e) => {
                log::debug!("irqfd resampling unavailable ({e}); edge interrupts on GSI {gsi}");
                vm.register_irqfd(&irqfd, gsi).map_err(kvm_err("IRQFD"))?;
                None
            }
        };
        let kind = match device.device_type() {
            virtio::TYPE_BLOCK => "blk",
            virtio::TYPE_NET => "net",
            _ => "9p",
        };
        let name = format!("virtio-{kind}@{base:#x}");
        let transport = MmioTransport::new(name, device, mem.clone(), irqfd, resample).map_err(VmError::Device)?;
        let notify = IoEventAddress::Mmio(base + virtio::mmio::reg::QUEUE_NOTIFY);
        for (index, evt) in transport.queue_evts().iter().enumerate() {
            vm.register_ioevent(evt, &notify, index as u32).map_err(kvm_err("IOEVENTFD"))?;
        }
        bus.add(base, transport);
    }
    Ok(bus)
}

fn open_kvm(path: &Path) -> Result<Kvm, VmError> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| VmError::KvmOpen { path: path.to_owned(), source: kvm_ioctls::Error::new(libc::EINVAL) })?;
    let kvm = Kvm::new_with_path(&c_path).map_err(|source| VmError::KvmOpen { path: path.to_owned(), source })?;
    // A file that opens but is not KVM answers this ioctl with an error.
    kvm.get_api_version();
    kvm.check_extension_int(kvm_ioctls::Cap::Irqchip)
        .gt(&0)
        .then_some(kvm)
        .ok_or_else(|| VmError::KvmOpen { path: path.to_owned(), source: kvm_ioctls::Error::new(libc::ENOTTY) })
}

fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), VmError> {
    for (slot, region) in mem.iter().enumerate() {
        let region_info = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region is a live mmap owned by `mem`, and no two slots overlap. `run`
        // drops `mem` only after the VM is closed and every vCPU thread has been joined
        // (`Vcpus`); should a thread not stop, a leaked clone keeps the mapping.
        unsafe { vm.set_user_memory_region(region_info) }.map_err(kvm_err("SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

/// Puts the boot vCPU where the PVH protocol says: 32-bit protected mode, paging off,
/// flat 4 GiB segments, `ebx` pointing at `hvm_start_info`.
fn setup_boot_vcpu(vcpu: &VcpuFd, entry: u64) -> Result<(), VmError> {
    let mut sregs = vcpu.get_sregs().map_err(kvm_err("GET_SREGS"))?;
    let flat = |selector: u16, type_: u8| kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.cs = flat(0x08, 0xb);
    let data = flat(0x10, 0x3);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = kvm_segment { limit: 0x67, selector: 0x18, type_: 0xb, s: 0, db: 0, g: 0, ..flat(0x18, 0xb) };
    sregs.gdt.base = BOOT_GDT_ADDR;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.cr0 = 0x11; // PE | ET
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs).map_err(kvm_err("SET_SREGS"))?;

    let regs = kvm_bindings::kvm_regs { rip: entry, rbx: START_INFO_ADDR, rflags: 0x2, ..Default::default() };
    vcpu.set_regs(&regs).map_err(kvm_err("SET_REGS"))?;

    let fpu = kvm_bindings::kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    vcpu.set_fpu(&fpu).map_err(kvm_err("SET_FPU"))
}

/// VM exits seen by all vCPUs, by kind (`vmm run --stats` prints them).
pub struct ExitCounts {
    pub io: AtomicU64,
    /// Of the port I/O exits, those to the console (COM1): output, not I/O work.
    pub console: AtomicU64,
    pub mmio: AtomicU64,
    pub other: AtomicU64,
}

pub static EXITS: ExitCounts =
    ExitCounts { io: AtomicU64::new(0), console: AtomicU64::new(0), mmio: AtomicU64::new(0), other: AtomicU64::new(0) };

fn count_exit(exit: &Result<VcpuExit, kvm_ioctls::Error>) {
    if let Ok(VcpuExit::IoIn(port, _) | VcpuExit::IoOut(port, _)) = exit
        && crate::devices::serial::offset(*port).is_some()
    {
        EXITS.console.fetch_add(1, Ordering::Relaxed);
    }
    let counter = match exit {
        Ok(VcpuExit::IoIn(..) | VcpuExit::IoOut(..)) => &EXITS.io,
        Ok(VcpuExit::MmioRead(..) | VcpuExit::MmioWrite(..)) => &EXITS.mmio,
        _ => &EXITS.other,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Runs one vCPU until the guest exits or something goes wrong; `None` once `stop` is set
/// (the VM is ending).
fn run_vcpu(
    index: u8,
    mut vcpu: VcpuFd,
    bus: &IoBus,
    mmio: &MmioBus,
    stop: &AtomicBool,
    debugger: Option<&crate::gdb::Debugger>,
) -> Option<Result<VmExit, VmError>> {
    let _kick = KickTarget::set(&mut vcpu);
    Some(loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(dbg) = debugger {
            dbg.checkpoint(usize::from(index), &vcpu);
            if stop.load(Ordering::SeqCst) {
                return None;
            }
        }
        let exit = vcpu.run();
        count_exit(&exit);
        let reason = match exit {
            Ok(VcpuExit::IoOut(port, data)) => match bus.write(port, data) {
                IoAction::Continue => continue,
                IoAction::Exit(status) => break Ok(VmExit::Exited(status)),
            },
            Ok(VcpuExit::IoIn(port, data)) => {
                bus.read(port, data);
                continue;
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !mmio.read(addr, data) {
                    log::debug!("vcpu{index}: read from unemulated MMIO {addr:#x}");
                    data.fill(0xff);
                }
                continue;
            }
            Ok(VcpuExit::MmioWrite(addr, data)) if mmio.write(addr, data) => continue,
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                log::debug!("vcpu{index}: write to unemulated MMIO {addr:#x}: {data:x?}");
                continue;
            }
            Ok(VcpuExit::Debug(arch)) if debugger.is_some() => {
                if let Some(dbg) = debugger {
                    dbg.debug_exit(usize::from(index), &vcpu, arch.dr6);
                }
                continue;
            }
            Ok(VcpuExit::Hlt) => "halted with interrupts off (HLT)".to_owned(),
            Ok(VcpuExit::Shutdown) => "triple fault (shutdown)".to_owned(),
            Ok(VcpuExit::InternalError) => "KVM internal error (emulation failure?)".to_owned(),
            Ok(VcpuExit::FailEntry(reason, _)) => format!("VM entry failed (hardware reason {reason:#x})"),
            Ok(VcpuExit::SystemEvent(kind, _)) => format!("system event {kind}"),
            Ok(other) => format!("unexpected exit {other:?}"),
            Err(e) if e.errno() == libc::EINTR => {
                // A kick: the loop's check sees `stop`. (Another signal: run again.)
                vcpu.set_kvm_immediate_exit(0);
                continue;
            }
            Err(e) if e.errno() == libc::EAGAIN => continue,
            Err(e) => format!("KVM_RUN failed: {e}"),
        };
        let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
        break Err(VmError::GuestCrashed { reason, vcpu: index, rip });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiskConfig;
    use crate::devices::virtio::test_util::TempDir;

    /// GET_ID says nothing of the host's file.
    #[test]
    fn disk_id_is_neutral() {
        let dir = TempDir::new("diskid");
        let path = dir.path().join("secret-customer.img");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let disk = DiskConfig { path, read_only: true, engine: Some(DiskEngine::Sync), direct: false, eio: None };
        let id = *open_disk(&disk, 1).unwrap().id();
        assert_eq!(&id, b"vmm-disk1\0\0\0\0\0\0\0\0\0\0\0");
    }

    /// A vCPU thread that ends without a report (a panic) is not a timeout, nor is a
    /// channel whose senders are all gone.
    #[test]
    fn a_vanished_vcpu_is_an_error_not_a_timeout() {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let _report = Report { index: 3, tx: Some(tx) };
            panic!("a vCPU thread dies");
        });
        assert!(thread.join().is_err());
        assert!(matches!(wait_for_end(&rx, Some(Duration::from_secs(5))), Err(VmError::VcpuVanished(3))));
        let (tx, rx) = mpsc::channel::<Result<VmExit, VmError>>();
        drop(tx);
        assert!(matches!(wait_for_end(&rx, Some(Duration::from_secs(5))), Err(VmError::VcpusGone)));
        assert!(matches!(wait_for_end(&rx, None), Err(VmError::VcpusGone)));
        let (_tx, rx) = mpsc::channel::<Result<VmExit, VmError>>();
        assert!(matches!(wait_for_end(&rx, Some(Duration::from_millis(10))), Ok(VmExit::TimedOut)));
    }

    /// A vCPU spinning in guest mode (no exits) is kicked out of KVM_RUN and joined, also
    /// when the kick comes before it entered KVM_RUN (skipped without /dev/kvm).
    #[test]
    fn stop_kicks_vcpus_out_of_kvm_run_and_joins_them() {
        let Ok(kvm) = Kvm::new() else { return };
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).unwrap();
        vm_memory::Bytes::write_slice(&mem, &[0xeb, 0xfe], vm_memory::GuestAddress(0x1000)).unwrap(); // jmp $
        let vm = kvm.create_vm().unwrap();
        register_memory(&vm, &mem).unwrap();
        install_kick_handler().unwrap();
        let console = ConsoleOut::spawn(Box::new(std::io::sink())).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let serial = serial::new(irq, serial::RxSpace::new().unwrap(), Box::new(console.writer()));
        let bus = Arc::new(IoBus::new(serial, Arc::clone(&console)));
        let mmio = Arc::new(MmioBus::default());
        let (tx, rx) = mpsc::channel();
        let mut id = 0u64;
        for round in 0..10 {
            let mut vcpus = Vcpus::new(&mem, Arc::clone(&console), None);
            for index in 0..2 {
                let vcpu = vm.create_vcpu(id).unwrap();
                id += 1;
                let mut sregs = vcpu.get_sregs().unwrap();
                (sregs.cs.base, sregs.cs.selector) = (0, 0);
                vcpu.set_sregs(&sregs).unwrap();
                vcpu.set_regs(&kvm_bindings::kvm_regs { rip: 0x1000, rflags: 2, ..Default::default() }).unwrap();
                vcpus.spawn(index, vcpu, Arc::clone(&bus), Arc::clone(&mmio), tx.clone()).unwrap();
            }
            if round % 2 == 1 {
                thread::sleep(Duration::from_millis(50)); // well inside KVM_RUN by now
            }
            let start = Instant::now();
            assert!(vcpus.stop(), "round {round}: a vCPU thread did not stop");
            assert!(start.elapsed() < Duration::from_secs(1), "round {round}: {:?}", start.elapsed());
            assert!(rx.try_recv().is_err(), "a stopped vCPU reports nothing");
        }
    }

    #[test]
    fn devices_are_announced_before_init_args() {
        assert_eq!(announce_devices("loglevel=info", 0), "loglevel=info");
        assert_eq!(
            announce_devices("init=/bin/x -- a b", 2),
            "init=/bin/x virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 -- a b"
        );
        assert_eq!(announce_devices("", 1), "virtio_mmio.device=512@0xfeb00e00:12");
    }
}
