//! The virtual machine: KVM, guest memory, the in-kernel irqchip, and the vCPU threads.
//!
//! The boot vCPU starts at the kernel's PVH entry in 32-bit protected mode (paging off,
//! flat segments, `ebx` = `hvm_start_info`). Other vCPUs wait for INIT/SIPI from the guest,
//! as on hardware. Each vCPU runs in its own thread and reports how it ended on a channel;
//! the first report (or the timeout) ends the VM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use kvm_bindings::{kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{IoEventAddress, Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{self, BootError, BOOT_GDT_ADDR, START_INFO_ADDR};
use crate::config::{DiskEngine, VmConfig};
use crate::devices::virtio::{self, block, mmio::MmioTransport, p9, VirtioDevice};
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
    #[error("too many devices: {0} (at most {max} disks and shares)", max = virtio::MMIO_SLOTS)]
    TooManyDevices(usize),
    #[error("cannot set up a virtio device: {0}")]
    Device(std::io::Error),
    #[error("{0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("cannot start the device thread launcher: {0}")]
    Launcher(std::io::Error),
}

impl VmError {
    /// Whether the error is the user's input rather than the machine's state.
    pub fn is_usage(&self) -> bool {
        match self {
            VmError::Boot(e) => e.is_usage(),
            VmError::Disk { .. } | VmError::Share { .. } | VmError::TooManyDevices(_) => true,
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
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// Boots the configured guest and runs it until it exits, crashes or times out.
pub fn run(config: &VmConfig) -> Result<VmExit, VmError> {
    if config.seccomp {
        // Before any thread is created: each installs its own filter.
        seccomp::enable();
        seccomp::start_launcher().map_err(VmError::Launcher)?;
    }
    let kvm = open_kvm(&config.kvm_device)?;
    let vm = kvm.create_vm().map_err(kvm_err("CREATE_VM"))?;

    let mem = GuestMemoryMmap::<()>::from_ranges(&boot::ram_ranges(config.mem_bytes))
        .map_err(|e| VmError::Memory(config.mem_bytes, e.to_string()))?;
    register_memory(&vm, &mem)?;
    let devices = build_devices(config)?;
    let cmdline = announce_devices(&config.cmdline, devices.len());
    let entry = boot::load(&mem, config.mem_bytes, &config.kernel, config.initrd.as_deref(), &cmdline)?;

    // Intel needs a TSS area for real-mode emulation; harmless elsewhere.
    vm.set_tss_address(0xfffb_d000).map_err(kvm_err("SET_TSS_ADDR"))?;
    vm.create_irq_chip().map_err(kvm_err("CREATE_IRQCHIP"))?;

    let serial_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(VmError::EventFd)?;
    vm.register_irqfd(&serial_irq, serial::COM1_IRQ).map_err(kvm_err("IRQFD"))?;
    let rx_space = serial::RxSpace::new().map_err(VmError::EventFd)?;
    let bus = Arc::new(IoBus::new(serial::new(serial_irq, Arc::clone(&rx_space), Box::new(std::io::stdout()))));
    let mmio = Arc::new(attach_devices(&vm, &mem, devices)?);

    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm_err("GET_SUPPORTED_CPUID"))?;
    let (tx, rx) = mpsc::channel();
    for index in 0..config.vcpus {
        let vcpu = vm.create_vcpu(u64::from(index)).map_err(kvm_err("CREATE_VCPU"))?;
        let mut cpuid = cpuid.clone();
        for e in cpuid.as_mut_slice() {
            if e.function == 1 {
                e.ebx = (e.ebx & 0x00ff_ffff) | (u32::from(index) << 24); // initial APIC ID
            }
        }
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("SET_CPUID2"))?;
        if index == 0 {
            setup_boot_vcpu(&vcpu, entry.entry)?;
        }
        let (bus, mmio, tx) = (Arc::clone(&bus), Arc::clone(&mmio), tx.clone());
        thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let result = seccomp::install(seccomp::Thread::Vcpu).map_err(VmError::from);
                let _ = tx.send(result.and_then(|()| run_vcpu(index, vcpu, &bus, &mmio)));
            })
            .map_err(VmError::Thread)?;
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

    let result = match config.timeout {
        Some(timeout) => match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Ok(VmExit::TimedOut),
        },
        None => rx.recv().unwrap_or(Ok(VmExit::TimedOut)),
    };
    bus.flush();
    drop(terminal);
    // Returning ends the process, and with it the vCPU threads and the VM.
    result
}

/// Opens every --disk and --share, in command-line order (disks first).
fn build_devices(config: &VmConfig) -> Result<Vec<Box<dyn VirtioDevice>>, VmError> {
    let count = config.disks.len() + config.shares.len();
    if count > virtio::MMIO_SLOTS {
        return Err(VmError::TooManyDevices(count));
    }
    let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
    for disk in &config.disks {
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
        // GET_ID answers the file's name (its first 20 bytes), like a drive serial.
        let id = disk.path.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
        devices.push(Box::new(block::Block::new(engine, disk.read_only, &id).with_poll(config.blk_poll)));
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
    Ok(devices)
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
    if entries.is_empty() {
        return cmdline.to_owned();
    }
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let split = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    let mut out: Vec<&str> = words[..split].to_vec();
    out.extend(entries.iter().map(String::as_str));
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
        let name = format!("virtio-{}@{base:#x}", if device.device_type() == virtio::TYPE_BLOCK { "blk" } else { "9p" });
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
        // SAFETY: the region is a live mmap owned by `mem`, which outlives the VM: `run`
        // keeps it until the process ends, and no two slots overlap.
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

/// Runs one vCPU until the guest exits or something goes wrong.
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

fn run_vcpu(index: u8, mut vcpu: VcpuFd, bus: &IoBus, mmio: &MmioBus) -> Result<VmExit, VmError> {
    loop {
        let exit = vcpu.run();
        count_exit(&exit);
        let reason = match exit {
            Ok(VcpuExit::IoOut(port, data)) => match bus.write(port, data) {
                IoAction::Continue => continue,
                IoAction::Exit(status) => return Ok(VmExit::Exited(status)),
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
            Ok(VcpuExit::Hlt) => "halted with interrupts off (HLT)".to_owned(),
            Ok(VcpuExit::Shutdown) => "triple fault (shutdown)".to_owned(),
            Ok(VcpuExit::InternalError) => "KVM internal error (emulation failure?)".to_owned(),
            Ok(VcpuExit::FailEntry(reason, _)) => format!("VM entry failed (hardware reason {reason:#x})"),
            Ok(VcpuExit::SystemEvent(kind, _)) => format!("system event {kind}"),
            Ok(other) => format!("unexpected exit {other:?}"),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => format!("KVM_RUN failed: {e}"),
        };
        let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
        return Err(VmError::GuestCrashed { reason, vcpu: index, rip });
    }
}

#[cfg(test)]
mod tests {
    use super::announce_devices;

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
