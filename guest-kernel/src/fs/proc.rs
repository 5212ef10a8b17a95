//! `/proc`: what the kernel tells about itself and its processes, as text made at each read.
//!
//! - `meminfo`: Linux's first lines (MemTotal, MemFree, MemAvailable, Buffers, Cached:
//!   the page cache), Dirty (cache pages not yet written back), Writeback (being
//!   written back), and our own
//!   `KernelHeap` (bytes of kernel heap in use), which leak tests compare before and after
//!   a workload;
//! - `mounts` (and `self/mounts`), `uptime`, `loadavg`, `stat` (the live processes' CPU
//!   time as user time, the rest idle), `self` (a link to the caller's directory);
//! - `sys/vm/dirty_expire_centisecs` and `dirty_writeback_centisecs`: the flusher's
//!   timing (`mm::writeback`), which root may change;
//! - `PID/`: `stat`, `status`, `cmdline`, `comm`, `maps` (with the paths files were
//!   mapped by), as `ps` and `top` read them; `exe`, a link to the executable.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use super::ramfs::RamDir;
use super::{alloc_ino, DirEntry, FileType, IoBuf, Node, Stat};
use crate::errno::*;
use crate::mm::{frame, heap, PAGE_SIZE};
use crate::sync::SpinLock;
use crate::task::{self, Process, TaskState};

/// A read-only file whose text is made when read.
struct TextFile {
    ino: u64,
    text: Box<dyn Fn() -> KResult<String> + Send + Sync>,
}

fn text_file(text: impl Fn() -> KResult<String> + Send + Sync + 'static) -> Arc<dyn Node> {
    Arc::new(TextFile { ino: alloc_ino(), text: Box::new(text) })
}

impl Node for TextFile {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o444, nlink: 1, ..Stat::default() }
    }

    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        let text = (self.text)()?;
        let bytes = text.as_bytes();
        let start = (offset as usize).min(bytes.len());
        let n = (bytes.len() - start).min(buf.len());
        buf.put(0, &bytes[start..start + n])?;
        Ok(n)
    }

    fn write(&self, _offset: u64, _buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EACCES)
    }

    fn nowait(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `/proc/self`: a link to the caller's `/proc/PID`.
struct SelfLink {
    ino: u64,
}

impl Node for SelfLink {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Symlink.mode_bits() | 0o777, nlink: 1, ..Stat::default() }
    }

    fn readlink(&self) -> KResult<String> {
        Ok(task::current_process().pid.to_string())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `/proc/PID/exe`: a link to the process's executable.
struct ExeLink {
    ino: u64,
    pid: u32,
}

impl Node for ExeLink {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Symlink.mode_bits() | 0o777, nlink: 1, ..Stat::default() }
    }

    fn readlink(&self) -> KResult<String> {
        let mm = process(self.pid)?.mm().ok_or(ENOENT)?;
        let exe = mm.lock().exe.clone();
        Ok(exe)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Mounted file systems as `/proc/mounts` lists them (device, mount point, type, options).
static MOUNTS: SpinLock<Vec<(String, String, &'static str, &'static str)>> = SpinLock::new(Vec::new());

/// Records a mount for `/proc/mounts`.
pub fn add_mount(device: &str, path: &str, kind: &'static str, options: &'static str) {
    MOUNTS.lock().push((String::from(device), String::from(path), kind, options));
}

/// Whether `/proc/mounts` lists `path` as a mount point.
pub fn is_mount_point(path: &str) -> bool {
    path == "/" || path == "/proc" || MOUNTS.lock().iter().any(|m| m.1 == path)
}

/// Forgets the latest mount at `path` (umount).
pub fn remove_mount(path: &str) {
    let mut mounts = MOUNTS.lock();
    if let Some(i) = mounts.iter().rposition(|m| m.1 == path) {
        mounts.remove(i);
    }
}

fn mounts() -> KResult<String> {
    let mut s = String::from("rootfs / rootfs rw 0 0\nproc /proc proc rw,nosuid,nodev,noexec 0 0\n");
    for (dev, path, kind, opts) in MOUNTS.lock().iter() {
        let _ = writeln!(s, "{dev} {path} {kind} {opts} 0 0");
    }
    Ok(s)
}

fn meminfo() -> KResult<String> {
    let (total, free) = frame::stats();
    // The page cache counts as available: its clean pages go when memory runs out.
    let (cached, reclaimable) = crate::mm::filemap::cached_pages();
    let kib = |frames: u64| frames * PAGE_SIZE / 1024;
    Ok(format!(
        "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\nBuffers:        {:8} kB\nCached:         {:8} kB\nDirty:          {:8} kB\nWriteback:      {:8} kB\nKernelHeap:     {:8} kB\nKernelHeapBytes: {}\n",
        kib(total),
        kib(free),
        kib(free + reclaimable),
        0,
        kib(cached),
        kib(crate::mm::filemap::dirty_pages() as u64),
        kib(crate::mm::filemap::writeback_pages() as u64),
        heap::in_use() / 1024,
        heap::in_use()
    ))
}

/// `/proc/cpuinfo`: each online CPU, from CPUID (vendor, family, model, stepping, name) and
/// the TSC's rate.
fn cpuinfo() -> KResult<String> {
    use crate::arch::cpu::cpuid;
    let v = cpuid(0, 0);
    let mut vendor = [0u8; 12];
    for (i, r) in [v[1], v[3], v[2]].iter().enumerate() {
        vendor[i * 4..i * 4 + 4].copy_from_slice(&r.to_le_bytes());
    }
    let sig = cpuid(1, 0)[0];
    let (stepping, base_model, base_family) = (sig & 0xf, (sig >> 4) & 0xf, (sig >> 8) & 0xf);
    let family = if base_family == 0xf { base_family + ((sig >> 20) & 0xff) } else { base_family };
    let model = if base_family >= 6 { base_model | ((sig >> 16) & 0xf) << 4 } else { base_model };
    let mut name = alloc::vec::Vec::new();
    if cpuid(0x8000_0000, 0)[0] >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004 {
            for r in cpuid(leaf, 0) {
                name.extend_from_slice(&r.to_le_bytes());
            }
        }
    }
    let name = String::from_utf8_lossy(&name).trim_matches(|c: char| c == '\0' || c == ' ').to_string();
    let khz = crate::time::tsc_khz();
    let n = crate::arch::smp::online_count();
    let mut out = String::new();
    for cpu in crate::arch::smp::online_cpus() {
        out.push_str(&format!(
            "processor\t: {cpu}\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\nstepping\t: {stepping}\ncpu MHz\t\t: {}.{:03}\nphysical id\t: 0\nsiblings\t: {n}\ncore id\t\t: {cpu}\ncpu cores\t: {n}\napicid\t\t: {}\n\n",
            String::from_utf8_lossy(&vendor),
            khz / 1000,
            khz % 1000,
            crate::arch::percpu::apic_id(cpu),
        ));
    }
    Ok(out)
}

fn uptime() -> KResult<String> {
    let ms = crate::time::uptime_ms();
    Ok(format!("{}.{:02} 0.00\n", ms / 1000, ms % 1000 / 10))
}

fn running_counts() -> (usize, usize) {
    let all = task::all_processes();
    let running = all.iter().filter(|p| state_char(p) == 'R').count();
    (running, all.len())
}

fn loadavg() -> KResult<String> {
    let (running, total) = running_counts();
    Ok(format!("0.00 0.00 0.00 {running}/{total} {}\n", task::all_processes().iter().map(|p| p.pid).max().unwrap_or(0)))
}

fn stat() -> KResult<String> {
    let (running, total) = running_counts();
    let boot = crate::time::realtime_ns() / 1_000_000_000 - crate::time::uptime_ms() / 1000;
    // Ticks (USER_HZ 100): the processes' CPU time as user time (exited ones are not
    // counted), the rest of the uptime as idle.
    let busy: u64 = task::all_processes().iter().map(|p| crate::task::sched::process_cpu_ns(p)).sum::<u64>() / 10_000_000;
    let idle = (crate::time::uptime_ms() / 10).saturating_sub(busy);
    let cpu = format!("{busy} 0 0 {idle} 0 0 0 0 0 0");
    Ok(format!(
        "cpu  {cpu}\ncpu0 {cpu}\nintr 0\nctxt 0\nbtime {boot}\nprocesses {total}\nprocs_running {running}\nprocs_blocked 0\n"
    ))
}

/// R (running or runnable), S (sleeping) or Z (zombie), as `ps` shows it.
fn state_char(p: &Process) -> char {
    if p.zombie.lock().is_some() {
        return 'Z';
    }
    if p.attrs.stop_signal.load(Ordering::Relaxed) != 0 {
        return 'T';
    }
    let threads = p.threads();
    if threads.iter().any(|t| t.state.load(Ordering::Relaxed) == TaskState::Runnable as u8) { 'R' } else { 'S' }
}

fn process(pid: u32) -> KResult<Arc<Process>> {
    task::find_process(pid).ok_or(ENOENT)
}

/// (virtual size in bytes, resident pages): resident is not tracked; the writable
/// private areas stand in for it.
fn sizes(p: &Process) -> (u64, u64) {
    let Some(mm) = p.mm() else { return (0, 0) };
    let mm = mm.lock();
    let vsize = mm.vmas().map(|v| v.end - v.start).sum::<u64>();
    let rss = mm.vmas().filter(|v| v.shared.is_none() && v.prot & 2 != 0).map(|v| (v.end - v.start) / PAGE_SIZE).sum();
    (vsize, rss)
}

fn pid_stat(pid: u32) -> KResult<String> {
    let p = process(pid)?;
    let (session, fg) = crate::tty::console().owner();
    let sid = p.sid.load(Ordering::Relaxed);
    let (tty_nr, tpgid) = if session != 0 && session == sid { ((4 << 8) | 64, fg as i64) } else { (0, -1) };
    let (vsize, rss) = sizes(&p);
    // CPU time in clock ticks (USER_HZ 100), all of it counted as user time.
    let utime = crate::task::sched::process_cpu_ns(&p) / 10_000_000;
    Ok(format!(
        "{pid} ({}) {} {} {} {sid} {tty_nr} {tpgid} 4194560 0 0 0 0 {utime} 0 0 0 20 0 {} 0 0 {vsize} {rss} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        p.name.lock().as_str(),
        state_char(&p),
        p.ppid.load(Ordering::Relaxed),
        p.pgid.load(Ordering::Relaxed),
        p.thread_count().max(1),
    ))
}

fn pid_status(pid: u32) -> KResult<String> {
    let p = process(pid)?;
    let (vsize, rss) = sizes(&p);
    let state = match state_char(&p) {
        'R' => "R (running)",
        'Z' => "Z (zombie)",
        'T' => "T (stopped)",
        _ => "S (sleeping)",
    };
    // The ids and capabilities of its main thread (a zombie's: root's, as nothing is left).
    let c = p.threads().first().map_or_else(crate::task::cred::Cred::root, |t| t.cred.lock().clone());
    let groups: String = c.groups.iter().map(|g| format!("{g} ")).collect();
    Ok(format!(
        "Name:\t{}\nState:\t{state}\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{}\nUid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nGroups:\t{groups}\nVmSize:\t{} kB\nVmRSS:\t{} kB\nThreads:\t{}\n\
         CapInh:\t{:016x}\nCapPrm:\t{:016x}\nCapEff:\t{:016x}\nCapBnd:\t{:016x}\nCapAmb:\t{:016x}\nNoNewPrivs:\t{}\n",
        p.name.lock().as_str(),
        p.ppid.load(Ordering::Relaxed),
        c.uid, c.euid, c.suid, c.fsuid,
        c.gid, c.egid, c.sgid, c.fsgid,
        vsize / 1024,
        rss * PAGE_SIZE / 1024,
        p.thread_count(),
        c.cap_inheritable, c.cap_permitted, c.cap_effective, c.cap_bset, 0,
        u8::from(p.attrs.no_new_privs.load(Ordering::Relaxed)),
    ))
}

fn pid_cmdline(pid: u32) -> KResult<String> {
    let p = process(pid)?;
    let Some(mm) = p.mm() else { return Ok(String::new()) };
    let (start, end) = mm.lock().args;
    let mut bytes = alloc::vec![0u8; (end - start).min(4096) as usize];
    if crate::mm::uaccess::with_user(&mm, |mm| crate::mm::uaccess::copy_from_user(mm, &mut bytes, start)).is_err() {
        bytes.clear();
    }
    // The text type is a String; argv bytes that are not UTF-8 are shown replaced.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn pid_maps(pid: u32) -> KResult<String> {
    let p = process(pid)?;
    let Some(mm) = p.mm() else { return Ok(String::new()) };
    let mm = mm.lock();
    let mut s = String::new();
    for v in mm.vmas() {
        let flag = |bit: u32, c: char| if v.prot & bit != 0 { c } else { '-' };
        let (name, offset) = match &v.label {
            Some((name, off)) => (&**name, *off),
            None if mm.brk_start != 0 && v.start >= mm.brk_start && v.start < mm.brk => ("[heap]", 0),
            None if v.end == task::exec::STACK_TOP => ("[stack]", 0),
            None => ("", 0),
        };
        let _ = writeln!(
            s,
            "{:08x}-{:08x} {}{}{}{} {offset:08x} 00:00 0{}{name}",
            v.start,
            v.end,
            flag(1, 'r'),
            flag(2, 'w'),
            flag(4, 'x'),
            if v.shared.is_some() { 's' } else { 'p' },
            if name.is_empty() { "" } else { "                          " },
        );
    }
    Ok(s)
}

const PID_FILES: [&str; 9] = ["cmdline", "comm", "exe", "fd", "fdinfo", "maps", "mounts", "stat", "status"];

/// `/proc/PID`.
struct PidDir {
    ino: u64,
    pid: u32,
}

impl Node for PidDir {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Directory.mode_bits() | 0o555, nlink: 2, ..Stat::default() }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Node>> {
        let pid = self.pid;
        process(pid)?;
        Ok(match name {
            "stat" => text_file(move || pid_stat(pid)),
            "status" => text_file(move || pid_status(pid)),
            "cmdline" => text_file(move || pid_cmdline(pid)),
            "comm" => text_file(move || Ok(format!("{}\n", process(pid)?.name.lock().as_str()))),
            "maps" => text_file(move || pid_maps(pid)),
            "mounts" => text_file(mounts),
            "exe" => Arc::new(ExeLink { ino: alloc_ino(), pid }),
            "fd" => Arc::new(FdDir { ino: alloc_ino(), pid, info: false }),
            "fdinfo" => Arc::new(FdDir { ino: alloc_ino(), pid, info: true }),
            _ => return Err(ENOENT),
        })
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        let kind = |n: &str| match n {
            "exe" => FileType::Symlink,
            "fd" | "fdinfo" => FileType::Directory,
            _ => FileType::Regular,
        };
        Ok(PID_FILES.iter().map(|n| DirEntry { name: String::from(*n), ino: alloc_ino(), kind: kind(n) }).collect())
    }

    fn read(&self, _offset: u64, _buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EISDIR)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `/proc/PID/fd` (a link per open descriptor, to the path it was opened by or its kind,
/// `anon_inode:[io_uring]`, `pipe:[INO]`...) and `/proc/PID/fdinfo` (a text per
/// descriptor: position, flags, inode, and what the file adds: an io_uring's rings).
struct FdDir {
    ino: u64,
    pid: u32,
    info: bool,
}

fn open_file(pid: u32, fd: i32) -> KResult<Arc<super::OpenFile>> {
    process(pid)?.files.lock().get(fd).map_err(|_| ENOENT)
}

fn fdinfo(pid: u32, fd: i32) -> KResult<String> {
    let f = open_file(pid, fd)?;
    let pos = *f.offset.lock();
    let mut text = format!("pos:\t{pos}\nflags:\t0{:o}\nmnt_id:\t{}\nino:\t{}\n", f.flags(), f.node.mount_id(), f.node.stat().ino);
    if let Some(more) = f.node.fdinfo() {
        text.push_str(&more);
    }
    Ok(text)
}

/// `/proc/PID/fd/N`.
struct FdLink {
    ino: u64,
    pid: u32,
    fd: i32,
}

impl Node for FdLink {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Symlink.mode_bits() | 0o700, nlink: 1, ..Stat::default() }
    }

    fn readlink(&self) -> KResult<String> {
        let f = open_file(self.pid, self.fd)?;
        Ok(match f.node.file_type() {
            FileType::Fifo if f.path.is_empty() || f.path.starts_with("pipe") => format!("pipe:[{}]", f.node.stat().ino),
            _ => f.path.clone(),
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Node for FdDir {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Directory.mode_bits() | 0o500, nlink: 2, ..Stat::default() }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Node>> {
        let fd: i32 = name.parse().map_err(|_| ENOENT)?;
        let pid = self.pid;
        open_file(pid, fd)?;
        Ok(if self.info { text_file(move || fdinfo(pid, fd)) } else { Arc::new(FdLink { ino: alloc_ino(), pid, fd }) })
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        let kind = if self.info { FileType::Regular } else { FileType::Symlink };
        let fds = process(self.pid)?.files.lock().open_fds();
        Ok(fds.into_iter().map(|(fd, _)| DirEntry { name: fd.to_string(), ino: alloc_ino(), kind }).collect())
    }

    fn read(&self, _offset: u64, _buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EISDIR)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `/proc` itself: fixed files, `self`, and a directory per live process.
/// A directory of `/proc`: its files, and (the root) a directory per process.
struct ProcDir {
    ino: u64,
    files: Vec<(&'static str, Arc<dyn Node>)>,
    pids: bool,
}

impl Node for ProcDir {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Directory.mode_bits() | 0o555, nlink: 2, ..Stat::default() }
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Node>> {
        if let Some((_, node)) = self.files.iter().find(|(n, _)| *n == name) {
            return Ok(Arc::clone(node));
        }
        if !self.pids {
            return Err(ENOENT);
        }
        let pid: u32 = name.parse().map_err(|_| ENOENT)?;
        process(pid)?;
        // The same inode number for the same pid: `ps` and `find` compare them.
        Ok(Arc::new(PidDir { ino: 1 << 32 | u64::from(pid), pid }))
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        let mut out: Vec<DirEntry> =
            self.files.iter().map(|(n, node)| DirEntry { name: String::from(*n), ino: node.stat().ino, kind: node.file_type() }).collect();
        for p in task::all_processes().into_iter().filter(|_| self.pids) {
            out.push(DirEntry { name: p.pid.to_string(), ino: 1 << 32 | u64::from(p.pid), kind: FileType::Directory });
        }
        Ok(out)
    }

    fn read(&self, _offset: u64, _buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EISDIR)
    }

    fn statfs(&self) -> KResult<super::StatFs> {
        Ok(super::StatFs { kind: 0x9fa0, bsize: 4096, namelen: 255, ..super::StatFs::default() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A `/proc` (boot makes one; `mount -t proc` another).
pub fn new_root() -> Arc<dyn Node> {
    let files: Vec<(&'static str, Arc<dyn Node>)> = alloc::vec![
        ("meminfo", text_file(meminfo)),
        ("cpuinfo", text_file(cpuinfo)),
        ("mounts", text_file(mounts)),
        ("uptime", text_file(uptime)),
        ("loadavg", text_file(loadavg)),
        ("stat", text_file(stat)),
        ("self", Arc::new(SelfLink { ino: alloc_ino() }) as Arc<dyn Node>),
        ("sys", proc_dir(alloc::vec![("vm", proc_dir(alloc::vec![
            ("dirty_expire_centisecs", Arc::new(Sysctl { ino: alloc_ino(), value: &crate::mm::writeback::EXPIRE_CS }) as Arc<dyn Node>),
            ("dirty_writeback_centisecs", Arc::new(Sysctl { ino: alloc_ino(), value: &crate::mm::writeback::INTERVAL_CS })),
        ]))])),
    ];
    Arc::new(ProcDir { ino: alloc_ino(), files, pids: true })
}

fn proc_dir(files: Vec<(&'static str, Arc<dyn Node>)>) -> Arc<dyn Node> {
    Arc::new(ProcDir { ino: alloc_ino(), files, pids: false })
}

/// A `/proc/sys` number root may change: read as text, written as decimal text (EINVAL
/// otherwise, as Linux's proc_dointvec).
struct Sysctl {
    ino: u64,
    value: &'static core::sync::atomic::AtomicU64,
}

impl Node for Sysctl {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o644, nlink: 1, ..Stat::default() }
    }

    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        let text = format!("{}\n", self.value.load(Ordering::Relaxed));
        let start = (offset as usize).min(text.len());
        let n = (text.len() - start).min(buf.len());
        buf.put(0, &text.as_bytes()[start..start + n])?;
        Ok(n)
    }

    fn write(&self, _offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        let mut bytes = [0u8; 24];
        let n = buf.len().min(bytes.len());
        buf.get(0, &mut bytes[..n])?;
        let text = core::str::from_utf8(&bytes[..n]).map_err(|_| EINVAL)?;
        let value: u64 = text.trim().parse().map_err(|_| EINVAL)?;
        self.value.store(value, Ordering::Relaxed);
        crate::mm::writeback::timing_changed();
        Ok(buf.len())
    }

    /// O_TRUNC (a shell's `>`) changes nothing, as on Linux.
    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn nowait(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Makes `/proc` (replacing a directory of that name from the initramfs).
pub fn populate(root: &RamDir) {
    let _ = root.detach("proc");
    let _ = root.add("proc", new_root());
}
