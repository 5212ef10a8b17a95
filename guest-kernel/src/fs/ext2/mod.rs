//! ext2, read and write, on a virtio-blk disk (`mount -t ext2 /dev/vdX DIR`).
//!
//! Revision 0 and 1 images as `mke2fs -t ext2` makes them: 1, 2 or 4 KiB blocks, 128- or
//! 256-byte inodes, sparse_super, large_file, filetype; dir_index directories are read as
//! the plain linear directories they also are (the index flag is cleared when one is
//! changed). Unknown incompatible features refuse the mount (EINVAL); unknown
//! read-only-compatible ones make it read-only.
//!
//! The files, one per concern: `cache` (metadata blocks, write-back), `alloc` (block and
//! inode bitmaps), `inode` (on-disk inodes, the block map, file data), `dir` (directory
//! entries), `node` (the VFS nodes). One sleeping lock per file system serialises
//! everything (`Ext2Fs::st`).
//!
//! Everything read from the disk is checked before it is used as an index or a size: a
//! corrupt image gives EUCLEAN (or EINVAL at mount), never a panic.

mod alloc;
mod cache;
mod dir;
mod file;
mod inode;
mod node;

use crate::mm::filemap::FileCache;
use ::alloc::boxed::Box;
use ::alloc::collections::BTreeMap;
use ::alloc::sync::{Arc, Weak};
use ::alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::drivers::virtio::blk::{Blk, T_FLUSH};
use crate::errno::*;
use crate::sync::{Mutex, SpinLock};
use cache::BlockCache;
pub use node::Ext2Node;

pub const EXT2_SUPER_MAGIC: u16 = 0xEF53;
const ROOT_INO: u32 = 2;

// Superblock fields (byte offsets).
const S_INODES_COUNT: usize = 0;
const S_BLOCKS_COUNT: usize = 4;
const S_R_BLOCKS_COUNT: usize = 8;
const S_FREE_BLOCKS: usize = 12;
const S_FREE_INODES: usize = 16;
const S_FIRST_DATA_BLOCK: usize = 20;
const S_LOG_BLOCK_SIZE: usize = 24;
const S_BLOCKS_PER_GROUP: usize = 32;
const S_INODES_PER_GROUP: usize = 40;
const S_MTIME: usize = 44;
const S_WTIME: usize = 48;
const S_MNT_COUNT: usize = 52;
const S_MAGIC: usize = 56;
const S_STATE: usize = 58;
const S_REV_LEVEL: usize = 76;
const S_FIRST_INO: usize = 84;
const S_INODE_SIZE: usize = 88;
const S_FEATURE_COMPAT: usize = 92;
const S_FEATURE_INCOMPAT: usize = 96;
const S_FEATURE_RO_COMPAT: usize = 100;

/// s_state: cleanly unmounted.
const STATE_VALID: u16 = 1;

const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_FILETYPE: u32 = 0x2;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;
const RO_COMPAT_BTREE_DIR: u32 = 0x4;
const INCOMPAT_SUPPORTED: u32 = INCOMPAT_FILETYPE;
const RO_COMPAT_SUPPORTED: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

/// A group descriptor's size (no 64bit feature).
const GD_SIZE: usize = 32;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Logs what is wrong with the image and gives EUCLEAN (Linux's "structure needs
/// cleaning").
fn corrupt(what: core::fmt::Arguments) -> Errno {
    log::warn!("ext2: corrupt image: {what}");
    EUCLEAN
}

/// The file system's geometry, fixed at mount and checked against the disk.
pub struct Geometry {
    pub block_size: usize,
    pub blocks_count: u32,
    pub first_data_block: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inodes_count: u32,
    pub inode_size: usize,
    pub first_ino: u32,
    pub groups: u32,
    /// Blocks of each group's inode table.
    pub itable_blocks: u32,
    pub filetype: bool,
}

impl Geometry {
    /// Block pointers per indirect block.
    pub fn ptrs(&self) -> u64 {
        self.block_size as u64 / 4
    }

    /// Whether `b` can be a block of the file system (data or metadata).
    pub fn valid_block(&self, b: u32) -> bool {
        b >= self.first_data_block && b < self.blocks_count
    }

    /// Blocks in group `g` (the last may be short).
    pub fn blocks_in_group(&self, g: u32) -> u32 {
        let start = self.first_data_block + g * self.blocks_per_group;
        (self.blocks_count - start).min(self.blocks_per_group)
    }

    /// Checks the superblock; the reason is logged.
    fn parse(sb: &[u8], disk_bytes: u64) -> KResult<Self> {
        let bad = |why: core::fmt::Arguments| {
            log::warn!("ext2: not mountable: {why}");
            EINVAL
        };
        if le16(sb, S_MAGIC) != EXT2_SUPER_MAGIC {
            return Err(bad(format_args!("no ext2 magic")));
        }
        let log_bs = le32(sb, S_LOG_BLOCK_SIZE);
        if log_bs > 2 {
            return Err(bad(format_args!("block size {} KiB (1, 2 or 4 supported)", 1u64 << log_bs.min(40))));
        }
        let block_size = 1024usize << log_bs;
        let rev = le32(sb, S_REV_LEVEL);
        let (inode_size, first_ino) = match rev {
            0 => (128, 11),
            1 => (usize::from(le16(sb, S_INODE_SIZE)), le32(sb, S_FIRST_INO)),
            _ => return Err(bad(format_args!("revision {rev}"))),
        };
        if !inode_size.is_power_of_two() || inode_size < 128 || inode_size > block_size {
            return Err(bad(format_args!("inode size {inode_size}")));
        }
        let blocks_count = le32(sb, S_BLOCKS_COUNT);
        let first_data_block = le32(sb, S_FIRST_DATA_BLOCK);
        let bpg = le32(sb, S_BLOCKS_PER_GROUP);
        let ipg = le32(sb, S_INODES_PER_GROUP);
        let inodes_count = le32(sb, S_INODES_COUNT);
        let bits = 8 * block_size as u32;
        if first_data_block > 1 || blocks_count <= first_data_block + 1 {
            return Err(bad(format_args!("{blocks_count} blocks from {first_data_block}")));
        }
        if u64::from(blocks_count) * block_size as u64 > disk_bytes {
            return Err(bad(format_args!("{blocks_count} blocks of {block_size} bytes but the disk has {disk_bytes} bytes")));
        }
        if !(8..=bits).contains(&bpg) || !(1..=bits).contains(&ipg) {
            return Err(bad(format_args!("{bpg} blocks and {ipg} inodes per group")));
        }
        let groups = (blocks_count - first_data_block).div_ceil(bpg);
        if u64::from(groups) * u64::from(ipg) != u64::from(inodes_count) {
            return Err(bad(format_args!("{inodes_count} inodes in {groups} groups of {ipg}")));
        }
        if first_ino < 11 || first_ino >= inodes_count {
            return Err(bad(format_args!("first inode {first_ino}")));
        }
        let itable_blocks = ((u64::from(ipg) * inode_size as u64).div_ceil(block_size as u64)) as u32;
        let incompat = le32(sb, S_FEATURE_INCOMPAT);
        Ok(Self {
            block_size,
            blocks_count,
            first_data_block,
            blocks_per_group: bpg,
            inodes_per_group: ipg,
            inodes_count,
            inode_size,
            first_ino,
            groups,
            itable_blocks,
            filetype: incompat & INCOMPAT_FILETYPE != 0,
        })
    }
}

/// What the lock guards: the superblock and group descriptors (raw, patched in place),
/// the block cache, and the live nodes.
pub struct State {
    pub cache: BlockCache,
    sb: Box<[u8; 1024]>,
    gdt: Vec<u8>,
    /// Whether the disk's superblock says "clean" (the next change must say otherwise
    /// first).
    clean_on_disk: bool,
    meta_dirty: bool,
    /// Nodes handed out, so one inode has one node; each with its "unlinked while open"
    /// flag, shared with the node (its last drop frees the inode).
    nodes: BTreeMap<u32, (Weak<Ext2Node>, Arc<AtomicBool>)>,
    /// Regular files' page caches, kept after their nodes go (the next open finds the
    /// pages); dropped when the inode is freed, or when empty and unused.
    pub caches: BTreeMap<u32, Arc<FileCache>>,
}

impl State {
    fn gd32(&self, g: u32, at: usize) -> u32 {
        le32(&self.gdt, g as usize * GD_SIZE + at)
    }
    fn gd16(&self, g: u32, at: usize) -> u16 {
        le16(&self.gdt, g as usize * GD_SIZE + at)
    }
    fn set_gd16(&mut self, g: u32, at: usize, v: u16) {
        put16(&mut self.gdt, g as usize * GD_SIZE + at, v);
        self.meta_dirty = true;
    }
    pub fn block_bitmap(&self, g: u32) -> u32 {
        self.gd32(g, 0)
    }
    pub fn inode_bitmap(&self, g: u32) -> u32 {
        self.gd32(g, 4)
    }
    pub fn inode_table(&self, g: u32) -> u32 {
        self.gd32(g, 8)
    }
    pub fn free_blocks_in(&self, g: u32) -> u16 {
        self.gd16(g, 12)
    }
    pub fn free_inodes_in(&self, g: u32) -> u16 {
        self.gd16(g, 14)
    }

    /// Adds `delta` to group `g`'s free block count and the superblock's.
    pub fn count_blocks(&mut self, g: u32, delta: i32) {
        let v = self.gd16(g, 12) as i32 + delta;
        self.set_gd16(g, 12, v.clamp(0, 0xffff) as u16);
        let total = le32(&self.sb[..], S_FREE_BLOCKS) as i64 + i64::from(delta);
        put32(&mut self.sb[..], S_FREE_BLOCKS, total.clamp(0, u32::MAX as i64) as u32);
    }

    /// Adds `delta` to the free inode counts (and `dirs` to the group's directories).
    pub fn count_inodes(&mut self, g: u32, delta: i32, dirs: i32) {
        let v = self.gd16(g, 14) as i32 + delta;
        self.set_gd16(g, 14, v.clamp(0, 0xffff) as u16);
        let d = self.gd16(g, 16) as i32 + dirs;
        self.set_gd16(g, 16, d.clamp(0, 0xffff) as u16);
        let total = le32(&self.sb[..], S_FREE_INODES) as i64 + i64::from(delta);
        put32(&mut self.sb[..], S_FREE_INODES, total.clamp(0, u32::MAX as i64) as u32);
    }

    pub fn free_blocks(&self) -> u32 {
        le32(&self.sb[..], S_FREE_BLOCKS)
    }
    pub fn free_inodes(&self) -> u32 {
        le32(&self.sb[..], S_FREE_INODES)
    }

    /// Sets a read-only-compatible feature (large_file, once a file passes 2 GiB).
    pub fn set_ro_compat(&mut self, feature: u32) {
        let f = le32(&self.sb[..], S_FEATURE_RO_COMPAT);
        if f & feature == 0 {
            put32(&mut self.sb[..], S_FEATURE_RO_COMPAT, f | feature);
            self.meta_dirty = true;
        }
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
/// Mounted file systems (for sync(2)).
static MOUNTED: SpinLock<Vec<Weak<Ext2Fs>>> = SpinLock::new(Vec::new());

pub struct Ext2Fs {
    pub geo: Geometry,
    pub read_only: bool,
    /// Told apart by `Node::mount_id` (never 0, the RAM tree's).
    pub id: usize,
    pub st: Mutex<State>,
    disk: Arc<Blk>,
    /// Unmounted while files of it were still open: they may be read, not changed (the
    /// disk may be mounted again, with a cache of its own).
    gone: AtomicBool,
}

impl Ext2Fs {
    /// Mounts the ext2 on `disk`: checks the superblock and group descriptors, and on a
    /// writable mount counts the mount and marks the file system not clean on disk.
    /// `ext2_only`: the caller asked for ext3 or ext4 by name, which this driver takes
    /// only when the image needs nothing ext2 lacks and has no journal (else ENODEV).
    /// As ext2 (Linux's ext2 does the same) an ext3 image mounts, its journal unused;
    /// one that needs recovery does not (an incompatible feature).
    pub fn mount(disk: Arc<Blk>, read_only: bool, ext2_only: bool) -> KResult<Arc<Ext2Fs>> {
        if MOUNTED.lock().iter().filter_map(Weak::upgrade).any(|fs| Arc::ptr_eq(&fs.disk, &disk)) {
            return Err(EBUSY);
        }
        // The file system reads and writes the disk around its page cache: what that
        // holds is stale from now on (and again after umount).
        disk.page_cache.forget(0, u64::MAX);
        let mut sb = Box::new([0u8; 1024]);
        disk.transfer(crate::drivers::virtio::blk::T_IN, 2, &mut sb[..])?;
        let geo = Geometry::parse(&sb[..], disk.sectors * 512)?;
        let incompat = le32(&sb[..], S_FEATURE_INCOMPAT);
        let ro_compat = le32(&sb[..], S_FEATURE_RO_COMPAT);
        if incompat & !INCOMPAT_SUPPORTED != 0 {
            log::warn!("ext2: {}: unsupported incompatible features {:#x}", disk.name, incompat & !INCOMPAT_SUPPORTED);
            return Err(if ext2_only { ENODEV } else { EINVAL });
        }
        // ext3 or ext4 by name promise a journal this driver would not keep.
        if ext2_only && le32(&sb[..], S_FEATURE_COMPAT) & COMPAT_HAS_JOURNAL != 0 {
            log::warn!("ext2: {}: has a journal: mount it as ext2 (the journal is left alone)", disk.name);
            return Err(ENODEV);
        }
        let mut read_only = read_only || disk.read_only;
        if ro_compat & !RO_COMPAT_SUPPORTED != 0 {
            if ext2_only {
                return Err(ENODEV);
            }
            log::warn!("ext2: {}: unknown ro_compat features {:#x}: mounted read-only", disk.name, ro_compat & !RO_COMPAT_SUPPORTED);
            read_only = true;
        }
        let bs = geo.block_size;
        let gdt_blocks = (geo.groups as usize * GD_SIZE).div_ceil(bs);
        // Without meta_bg the descriptors sit in group 0, after its superblock.
        if gdt_blocks as u64 + 2 > u64::from(geo.blocks_per_group) {
            log::warn!("ext2: not mountable: {} groups' descriptors do not fit in a group", geo.groups);
            return Err(EINVAL);
        }
        let mut gdt = Vec::new();
        gdt.try_reserve_exact(gdt_blocks * bs).map_err(|_| ENOMEM)?;
        gdt.resize(gdt_blocks * bs, 0);
        let cache = BlockCache::new(Arc::clone(&disk), bs);
        cache.read_disk(geo.first_data_block + 1, &mut gdt)?;
        let state = State { cache, sb, gdt, clean_on_disk: false, meta_dirty: false, nodes: BTreeMap::new(), caches: BTreeMap::new() };
        check_groups(&geo, &state, gdt_blocks as u32)?;
        if le16(&state.sb[..], S_STATE) & STATE_VALID == 0 {
            log::warn!("ext2: {}: not cleanly unmounted; run e2fsck", disk.name);
        }
        let fs = Arc::new(Ext2Fs { geo, read_only, id: NEXT_ID.fetch_add(1, Ordering::Relaxed), st: Mutex::new(state), disk, gone: AtomicBool::new(false) });
        if !read_only {
            let mut st = fs.st.lock();
            let count = le16(&st.sb[..], S_MNT_COUNT);
            put16(&mut st.sb[..], S_MNT_COUNT, count.wrapping_add(1));
            put32(&mut st.sb[..], S_MTIME, now_secs());
            st.clean_on_disk = true; // so `changing` writes "not clean" now
            fs.changing(&mut st)?;
        }
        MOUNTED.lock().push(Arc::downgrade(&fs));
        log::info!(
            "ext2: {}: {} blocks of {} bytes, {} inodes, {} groups{}",
            fs.disk.name,
            fs.geo.blocks_count,
            bs,
            fs.geo.inodes_count,
            fs.geo.groups,
            if read_only { ", read-only" } else { "" }
        );
        Ok(fs)
    }

    /// The root directory's node.
    pub fn root(self: &Arc<Self>) -> KResult<Arc<Ext2Node>> {
        let mut st = self.st.lock();
        let inode = self.read_inode(&mut st, ROOT_INO)?;
        if inode.kind() != Some(crate::fs::FileType::Directory) {
            return Err(corrupt(format_args!("the root inode is not a directory")));
        }
        Ok(self.node(&mut st, ROOT_INO, crate::fs::FileType::Directory))
    }

    /// Called before the first change of an operation: EROFS on a read-only mount; after
    /// a sync that left the disk marked clean, marks it not clean again first.
    pub fn changing(&self, st: &mut State) -> KResult<()> {
        if self.read_only {
            return Err(EROFS);
        }
        if self.gone.load(Ordering::Relaxed) {
            return Err(EIO);
        }
        if st.clean_on_disk {
            let s = le16(&st.sb[..], S_STATE) & !STATE_VALID;
            put16(&mut st.sb[..], S_STATE, s);
            self.write_super(st)?;
            st.clean_on_disk = false;
        }
        Ok(())
    }

    fn write_super(&self, st: &mut State) -> KResult<()> {
        put32(&mut st.sb[..], S_WTIME, now_secs());
        self.disk.transfer(crate::drivers::virtio::blk::T_OUT, 2, &mut st.sb[..])
    }

    /// Writes back every dirty metadata block, the group descriptors and the superblock
    /// (marked clean), then flushes the disk's cache.
    pub fn sync(&self, st: &mut State) -> KResult<()> {
        if self.read_only || self.gone.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.write_meta(st)?;
        let s = le16(&st.sb[..], S_STATE) | STATE_VALID;
        put16(&mut st.sb[..], S_STATE, s);
        self.write_super(st)?;
        st.clean_on_disk = true;
        self.disk.transfer(T_FLUSH, 0, &mut [])
    }

    /// Writes the changed metadata blocks and group descriptors.
    fn write_meta(&self, st: &mut State) -> KResult<()> {
        st.cache.flush()?;
        if st.meta_dirty {
            let mut gdt = core::mem::take(&mut st.gdt);
            let r = st.cache.write_disk(self.geo.first_data_block + 1, &mut gdt);
            st.gdt = gdt;
            r?;
            st.meta_dirty = false;
        }
        Ok(())
    }

    /// umount: everything written back, the disk marked clean.
    pub fn unmount(self: &Arc<Self>) -> KResult<()> {
        self.write_back_files();
        let mut st = self.st.lock();
        let r = self.sync(&mut st);
        self.disk.page_cache.forget(0, u64::MAX);
        self.gone.store(true, Ordering::Relaxed);
        MOUNTED.lock().retain(|w| w.strong_count() > 0 && !core::ptr::eq(w.as_ptr(), Arc::as_ptr(self)));
        r
    }

    pub fn statfs(&self) -> crate::fs::StatFs {
        let st = self.st.lock();
        let free = u64::from(st.free_blocks());
        let reserved = u64::from(le32(&st.sb[..], S_R_BLOCKS_COUNT));
        crate::fs::StatFs {
            kind: u64::from(EXT2_SUPER_MAGIC),
            bsize: self.geo.block_size as u64,
            blocks: u64::from(self.geo.blocks_count),
            bfree: free,
            bavail: free.saturating_sub(reserved),
            files: u64::from(self.geo.inodes_count),
            ffree: u64::from(st.free_inodes()),
            namelen: 255,
        }
    }

    /// The node of inode `ino` (of type `kind`): the live one if there is one.
    pub fn node(self: &Arc<Self>, st: &mut State, ino: u32, kind: crate::fs::FileType) -> Arc<Ext2Node> {
        if let Some(n) = st.nodes.get(&ino).and_then(|(w, _)| w.upgrade()) {
            return n;
        }
        if st.nodes.len() >= 256 {
            st.nodes.retain(|_, (w, _)| w.strong_count() > 0);
        }
        let orphan = Arc::new(AtomicBool::new(false));
        let cache = (kind == crate::fs::FileType::Regular).then(|| {
            if st.caches.len() >= 256 {
                st.caches.retain(|_, c| Arc::strong_count(c) > 1 || !c.is_empty());
            }
            Arc::clone(st.caches.entry(ino).or_insert_with(|| Arc::new(FileCache::new())))
        });
        let n = Arc::new(Ext2Node::new(Arc::clone(self), ino, kind, Arc::clone(&orphan), cache));
        st.nodes.insert(ino, (Arc::downgrade(&n), orphan));
        n
    }
}

/// Checks every group descriptor: bitmaps and inode table inside the file system, not
/// over the superblock and descriptors, counts within the group.
fn check_groups(geo: &Geometry, st: &State, gdt_blocks: u32) -> KResult<()> {
    let meta_end = geo.first_data_block + 1 + gdt_blocks;
    for g in 0..geo.groups {
        let (bb, ib, it) = (st.block_bitmap(g), st.inode_bitmap(g), st.inode_table(g));
        let inside = |b: u32| b >= meta_end && b < geo.blocks_count;
        let table_ok = u64::from(it) + u64::from(geo.itable_blocks) <= u64::from(geo.blocks_count);
        let counts_ok = u32::from(st.free_blocks_in(g)) <= geo.blocks_in_group(g) && u32::from(st.free_inodes_in(g)) <= geo.inodes_per_group;
        if !inside(bb) || !inside(ib) || !inside(it) || !table_ok || !counts_ok {
            log::warn!("ext2: not mountable: group descriptor {g} is corrupt (bitmaps {bb}, {ib}, table {it})");
            return Err(EINVAL);
        }
    }
    Ok(())
}

pub fn now_secs() -> u32 {
    (crate::time::realtime_ns() / 1_000_000_000) as u32
}

/// Mounts the ext2 on block device node `dev` (ENOTBLK: not a disk); its root.
pub fn mount_device(dev: &Arc<dyn crate::fs::Node>, read_only: bool, ext2_only: bool) -> KResult<(Arc<Ext2Fs>, Arc<Ext2Node>)> {
    let blk = dev.as_any().downcast_ref::<crate::drivers::virtio::blk::BlockNode>().ok_or(ENOTBLK)?;
    let fs = Ext2Fs::mount(Arc::clone(&blk.dev), read_only, ext2_only)?;
    let root = fs.root()?;
    Ok((fs, root))
}

/// The flusher's pass: every mounted file system's dirty file pages and metadata go to
/// the disk (no cache flush, and the file system stays marked in use, as Linux's
/// periodic writeback).
pub fn write_back_all() {
    let all: Vec<Arc<Ext2Fs>> = MOUNTED.lock().iter().filter_map(Weak::upgrade).collect();
    for fs in all {
        fs.write_back_files();
        let mut st = fs.st.lock();
        if !fs.read_only && !fs.gone.load(Ordering::Relaxed) {
            let _ = fs.write_meta(&mut st);
        }
    }
}

/// sync(2): writes back every mounted ext2, with its files' dirty pages and what
/// mappings stored into them (errors are not sync's to report).
pub fn sync_all() {
    let all: Vec<Arc<Ext2Fs>> = MOUNTED.lock().iter().filter_map(Weak::upgrade).collect();
    for fs in all {
        fs.write_back_files();
        let mut st = fs.st.lock();
        let _ = fs.sync(&mut st);
    }
}

impl Ext2Fs {
    /// Writes back the files' dirty pages and what mappings stored into them (errors
    /// stay with the pages, for fsync).
    pub fn write_back_files(self: &Arc<Self>) {
        let changed: Vec<Arc<Ext2Node>> = {
            let mut st = self.st.lock();
            let inos: Vec<u32> = st.caches.iter().filter(|(_, c)| c.in_use() || c.dirty_pages() > 0).map(|(&ino, _)| ino).collect();
            inos.into_iter().map(|ino| self.node(&mut st, ino, crate::fs::FileType::Regular)).collect()
        };
        for node in changed {
            let _ = crate::fs::Node::writeback(&*node);
        }
    }
}
