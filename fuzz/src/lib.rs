//! Shared pieces of the VMM's fuzz targets: guest memory, an in-memory disk, and a
//! temporary 9p share with a sentinel beside it that no input may change.
//!
//! Everything here drives the devices through the entry points the VMM itself uses
//! (`MmioTransport::{read,write}`, `Worker::{process_queue,complete}`, `Server::handle`)
//! on vm-memory's `GuestMemoryMmap`; nothing reaches into device internals. The
//! targets: `mmio`, `virtq`, `p9` and `net` (virtio-net on a socket-pair tap).

pub mod targets {
    //! One module per fuzz target (`fuzz_targets/<name>.rs` calls `run`), so that
    //! `tests/replay.rs` can replay the corpora without libFuzzer.
    pub mod mmio;
    pub mod net;
    pub mod p9;
    pub mod virtq;
}

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::devices::virtio::block::BlockBackend;
use vmm::devices::virtio::block::device::BlockHandler;
use vmm::devices::virtio::p9::{P9Handler, server::Server};
use vmm::devices::virtio::worker::Worker;
use vmm::devices::virtio::{Interrupt, QueueHandler};
use vmm_sys_util::eventfd::EventFd;

/// Guest RAM of every target: 64 KiB at guest address 0.
pub const MEM_SIZE: usize = 0x10000;
/// The rings of a queue of `size` entries, packed from guest address 0: (descriptor
/// table, avail ring, used ring, first free byte), each aligned as virtio 1.x asks.
/// `make_seeds.py` lays its seeds out the same way.
pub fn layout(size: u16) -> (u64, u64, u64, u64) {
    let size = u64::from(size);
    let desc = 0;
    let avail = 16 * size;
    let used = (avail + 6 + 2 * size + 3) & !3;
    let data = (used + 6 + 8 * size + 15) & !15;
    (desc, avail, used, data)
}

pub fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory")
}

/// Copies `image` to the start of guest memory (truncated to its size).
pub fn load_image(mem: &GuestMemoryMmap, image: &[u8]) {
    let n = image.len().min(MEM_SIZE);
    mem.write_slice(&image[..n], GuestAddress(0)).expect("guest memory write");
}

/// A disk in memory. Any access outside it is a device bug (the device must have
/// checked the request against the capacity), so it panics.
pub struct MemDisk(pub Mutex<Vec<u8>>);

impl MemDisk {
    pub fn new(sectors: usize) -> Arc<Self> {
        let data = (0..sectors * 512).map(|i| (i / 512) as u8).collect();
        Arc::new(Self(Mutex::new(data)))
    }

    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    fn range(&self, offset: u64, len: usize) -> std::ops::Range<usize> {
        let size = self.0.lock().unwrap().len() as u64;
        let end = offset.checked_add(len as u64).expect("disk offset overflows");
        assert!(end <= size, "disk access {offset}+{len} beyond the disk ({size} bytes)");
        offset as usize..end as usize
    }
}

impl BlockBackend for MemDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = self.range(offset, buf.len());
        buf.copy_from_slice(&self.0.lock().unwrap()[r]);
        Ok(())
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let r = self.range(offset, buf.len());
        self.0.lock().unwrap()[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        let r = self.range(offset, usize::try_from(len).expect("discard length"));
        self.0.lock().unwrap()[r].fill(0);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0.lock().unwrap().len() as u64
    }
}

/// A block device's request handler over an in-memory disk of `sectors` sectors.
pub fn block_handler(disk: &Arc<MemDisk>, read_only: bool) -> Box<dyn QueueHandler> {
    let handler = BlockHandler::new(disk.clone(), read_only, *b"fuzz-disk-0123456789");
    assert!(!handler.is_async());
    Box::new(handler)
}

/// The disk engines the virtq target can put behind virtio-blk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// [`MemDisk`]: synchronous, and any access beyond the disk panics.
    Mem,
    /// The synchronous engine on a temporary file.
    Sync,
    /// The io_uring engine (asynchronous requests) on a temporary file, 8 ring entries
    /// (so that the queue also fills up).
    Uring,
    /// The same with O_DIRECT (buffered when the file system refuses it).
    UringDirect,
}

/// A temporary disk file of `sectors` sectors (the same pattern as [`MemDisk`]), laid
/// anew by [`DiskFile::reset`].
pub struct DiskFile(PathBuf);

impl DiskFile {
    pub fn new(what: &str) -> Self {
        clean_up_at_exit();
        Self(std::env::temp_dir().join(format!("vmm-fuzz-{what}-{}.img", std::process::id())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn reset(&self, sectors: usize) {
        let data: Vec<u8> = (0..sectors * 512).map(|i| (i / 512) as u8).collect();
        std::fs::write(&self.0, data).expect("disk file");
    }

    pub fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.0).expect("disk file")
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A block handler on `file` through `engine` (not [`Engine::Mem`]), prepared as the
/// worker thread prepares it (the io_uring engine's ring is made then).
pub fn file_handler(file: &DiskFile, engine: Engine, read_only: bool) -> Box<dyn QueueHandler> {
    use vmm::devices::virtio::block::engine_sync::SyncEngine;
    use vmm::devices::virtio::block::engine_uring::UringEngine;
    let backend: Arc<dyn BlockBackend> = match engine {
        Engine::Mem => unreachable!("MemDisk has block_handler"),
        Engine::Sync => Arc::new(SyncEngine::open(file.path(), read_only).expect("sync engine")),
        Engine::Uring | Engine::UringDirect => {
            let direct = engine == Engine::UringDirect;
            let uring = UringEngine::open_with(file.path(), read_only, direct)
                .or_else(|_| UringEngine::open(file.path(), read_only))
                .expect("io_uring engine");
            Arc::new(uring.with_ring_entries(8))
        }
    };
    let mut handler = BlockHandler::new(backend, read_only, *b"fuzz-disk-0123456789");
    handler.prepare();
    if engine != Engine::Sync {
        assert!(handler.is_async(), "the io_uring engine gave no asynchronous queue");
    }
    Box::new(handler)
}

/// Serves a worker's queue 0 as its thread would, asynchronous completions included:
/// drain the avail ring, then, while requests are in flight (popped and not yet used),
/// wait for completions, publish them and drain again (room was freed). A request still
/// in flight after a second is left to `quiesce`. Stops at the first device error
/// (DEVICE_NEEDS_RESET), as the worker does.
pub fn serve(worker: &mut Worker) {
    let in_flight = |w: &Worker| w.queues[0].1.next_avail() != w.queues[0].1.next_used();
    let mut ok = worker.process_queue(0).is_ok();
    if let Some(fd) = worker.handler.completion_fd() {
        let mut done = Vec::new();
        while ok && in_flight(worker) {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one valid pollfd that outlives the call.
            if unsafe { libc::poll(&mut pfd, 1, 1000) } <= 0 {
                break;
            }
            done.clear();
            ok = worker.handler.complete(&worker.mem, &mut done).is_ok();
            let (mem, queue) = (&worker.mem, &mut worker.queues[0].1);
            ok = ok && done.iter().all(|&(_, head, len)| queue.add_used(mem, head, len).is_ok());
            ok = ok && worker.process_queue(0).is_ok();
        }
    }
    worker.handler.quiesce();
}

/// A worker (not spawned: the target calls `process_queue` itself) serving one queue
/// laid out as [`layout`] says.
pub fn worker(mem: &GuestMemoryMmap, size: u16, event_idx: bool, handler: Box<dyn QueueHandler>) -> Option<Worker> {
    let mut q = Queue::new(256).ok()?;
    q.try_set_size(size).ok()?;
    let (desc, avail, used, _) = layout(size);
    q.try_set_desc_table_address(GuestAddress(desc)).ok()?;
    q.try_set_avail_ring_address(GuestAddress(avail)).ok()?;
    q.try_set_used_ring_address(GuestAddress(used)).ok()?;
    q.set_event_idx(event_idx);
    q.set_ready(true);
    assert!(q.is_valid(mem));
    let irq = EventFd::new(libc::EFD_NONBLOCK).ok()?;
    let interrupt = Arc::new(Interrupt::new(irq));
    let stop = EventFd::new(libc::EFD_NONBLOCK).ok()?;
    let kick = EventFd::new(libc::EFD_NONBLOCK).ok()?;
    Some(Worker::new(
        "fuzz".into(),
        mem.clone(),
        vec![(0, q, kick)],
        handler,
        interrupt,
        None,
        stop,
        std::time::Duration::ZERO,
        None,
    ))
}

/// A 9p share for fuzzing: `<base>/share` is exported, and `<base>/sentinel` (a
/// directory with a file), `<base>/sentinel.txt` and the listing of `<base>` itself must
/// stay exactly as they were, whatever the guest sends.
pub struct Share {
    base: PathBuf,
    snapshot: BTreeMap<PathBuf, String>,
}

/// Removes this process's temporary shares and disk files at exit: libFuzzer ends the
/// process with `exit()`, so the statics that own them are never dropped.
fn clean_up_at_exit() {
    extern "C" fn clean_up() {
        let suffix = format!("-{}", std::process::id());
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if name.starts_with("vmm-fuzz-") && (name.ends_with(&suffix) || name.ends_with(&format!("{suffix}.img"))) {
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `clean_up` is an `extern "C" fn()` that lives as long as the process and
        // touches nothing that exit() has torn down (it only lists and removes files).
        unsafe { libc::atexit(clean_up) };
    });
}

impl Share {
    pub fn new(what: &str) -> Self {
        clean_up_at_exit();
        let base = std::env::temp_dir().join(format!("vmm-fuzz-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("sentinel")).unwrap();
        std::fs::write(base.join("sentinel/secret"), b"outside the share\n").unwrap();
        std::fs::write(base.join("sentinel.txt"), b"outside the share too\n").unwrap();
        let mut share = Self { base, snapshot: BTreeMap::new() };
        share.reset();
        share.snapshot = share.outside();
        share
    }

    pub fn root(&self) -> PathBuf {
        self.base.join("share")
    }

    /// Lays the share anew: a file, a subdirectory with a file, and symlinks that point
    /// outside (which the server must never follow).
    pub fn reset(&self) {
        let root = self.root();
        if root.exists() {
            // The fuzzer runs as root, so permissions the guest took away do not matter.
            std::fs::remove_dir_all(&root).expect("cannot remove the share");
        }
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join("file"), b"hello from the share\n").unwrap();
        std::fs::write(root.join("dir/inner"), b"inner\n").unwrap();
        std::os::unix::fs::symlink("../sentinel", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
    }

    pub fn server(&self, read_only: bool) -> Server {
        Server::new(&self.root(), read_only).expect("9p server")
    }

    pub fn handler(&self, read_only: bool) -> Box<dyn QueueHandler> {
        Box::new(P9Handler::new(self.server(read_only)))
    }

    /// Everything outside the share under `base`: path -> (type, mode, size, mtime,
    /// contents or link target).
    fn outside(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(&self.base, &self.root(), &mut out);
        out
    }

    /// Everything inside the share, times included (but not atimes): a read-only share
    /// must look the same after any input.
    pub fn contents(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(&self.root(), Path::new("/nonexistent/skip"), &mut out);
        out
    }

    /// Panics unless the share is as `before` said (a read-only share).
    pub fn check_unchanged(&self, before: Option<BTreeMap<PathBuf, String>>) {
        if let Some(before) = before {
            let now = self.contents();
            if now != before {
                panic!("9p: a read-only share changed:\nbefore {before:#?}\nafter {now:#?}");
            }
        }
    }

    /// Panics if anything outside the share changed.
    pub fn check(&self) {
        let now = self.outside();
        if now != self.snapshot {
            panic!("9p: something outside the share changed:\nbefore {:#?}\nafter {:#?}", self.snapshot, now);
        }
    }
}

fn walk(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    if Some(dir) != skip.parent() {
        // (The base's own times change when the share is laid anew; its listing is
        // what matters, and every entry is recorded.)
        let meta = std::fs::symlink_metadata(dir).unwrap();
        out.insert(dir.to_owned(), describe(dir, &meta));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path == skip {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, skip, out);
        } else {
            out.insert(path.clone(), describe(&path, &meta));
        }
    }
}

fn describe(path: &Path, meta: &std::fs::Metadata) -> String {
    let what = if meta.file_type().is_symlink() {
        format!("-> {:?}", std::fs::read_link(path).unwrap())
    } else if meta.is_file() {
        format!("{:?}", std::fs::read(path).unwrap())
    } else {
        String::new()
    };
    format!(
        "mode {:o} uid {} gid {} size {} nlink {} mtime {}.{} ctime {}.{} {what}",
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.size(),
        meta.nlink(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

impl Drop for Share {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
