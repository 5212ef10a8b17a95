//! Descriptor chains against each device: the input is the first byte of flags and then
//! guest memory itself (the rings packed from address 0 as `layout` says, buffers
//! anywhere), and the device's worker serves the queue as it does after
//! a kick: `Worker::process_queue` pops each chain, `Chain::parse` checks it, and the
//! virtio-blk handler (over an in-memory disk, or a temporary file through the
//! synchronous or the io_uring engine) or the 9p handler (over a temporary share
//! with a sentinel beside it) serves it.
//!
//! flags: bit 0 device (0 block, 1 9p), bit 1 EVENT_IDX, bit 2 read-only, bits 3..5 the
//! queue size (2^n), bits 6..7 the disk engine (memory, sync file, io_uring file,
//! io_uring O_DIRECT file). A read-only disk or share must not change at all.
use std::sync::OnceLock;
use crate::*;

fn share() -> &'static Share {
    static SHARE: OnceLock<Share> = OnceLock::new();
    SHARE.get_or_init(|| Share::new("virtq"))
}

fn disk_file() -> &'static DiskFile {
    static FILE: OnceLock<DiskFile> = OnceLock::new();
    FILE.get_or_init(|| DiskFile::new("virtq"))
}

/// Plays one input.
pub fn run(data: &[u8]) {
    let Some((&flags, image)) = data.split_first() else { return };
    let p9 = flags & 1 != 0;
    let event_idx = flags & 2 != 0;
    let read_only = flags & 4 != 0;
    let size = 1u16 << ((flags >> 3) & 7);
    let engine = [Engine::Mem, Engine::Sync, Engine::Uring, Engine::UringDirect][usize::from(flags >> 6)];
    let mem = guest_memory();
    load_image(&mem, image);
    let disk = MemDisk::new(64);
    let disk_before = disk.contents();
    if engine != Engine::Mem && !p9 {
        disk_file().reset(64);
    }
    let share_before = (p9 && read_only).then(|| share().contents());
    let handler = match (p9, engine) {
        (true, _) => share().handler(read_only),
        (false, Engine::Mem) => block_handler(&disk, read_only),
        (false, engine) => file_handler(disk_file(), engine, read_only),
    };
    let Some(mut worker) = worker(&mem, size, event_idx, handler) else { return };
    serve(&mut worker);
    drop(worker);
    if read_only {
        assert!(disk.contents() == disk_before, "a read-only disk was written");
        if engine != Engine::Mem && !p9 {
            assert!(disk_file().contents() == disk_before, "a read-only disk file was written");
        }
    }
    if p9 {
        share().check();
        share().check_unchanged(share_before);
        share().reset();
    }
}
