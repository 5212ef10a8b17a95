//! On-disk inodes (read and patched in their inode table block in the cache) and the
//! block map: 12 direct pointers, then single, double and triple indirect blocks; a zero
//! pointer is a hole.

use super::{corrupt, le16, le32, put16, put32, Ext2Fs, State};
use crate::errno::*;
use crate::fs::FileType;

// Inode fields (byte offsets).
const I_MODE: usize = 0;
const I_UID: usize = 2;
const I_SIZE: usize = 4;
const I_ATIME: usize = 8;
const I_CTIME: usize = 12;
const I_MTIME: usize = 16;
const I_DTIME: usize = 20;
const I_GID: usize = 24;
const I_LINKS: usize = 26;
const I_BLOCKS: usize = 28;
const I_FLAGS: usize = 32;
const I_BLOCK: usize = 40;
const I_FILE_ACL: usize = 104;
const I_SIZE_HIGH: usize = 108;
const I_UID_HIGH: usize = 120;
const I_GID_HIGH: usize = 122;
// In inodes larger than 128 bytes, as far as i_extra_isize reaches.
const I_EXTRA_ISIZE: usize = 128;
const I_CTIME_EXTRA: usize = 132;
const I_MTIME_EXTRA: usize = 136;
const I_ATIME_EXTRA: usize = 140;
/// What new large inodes get (as mke2fs's default s_want_extra_isize).
const NEW_EXTRA_ISIZE: u16 = 32;

/// i_flags: the directory has an htree index.
pub const INDEX_FL: u32 = 0x1000;

/// An inode's fields that this driver uses; the rest stay as they are on disk.
#[derive(Clone)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Times in ns since the epoch.
    pub atime: u64,
    pub ctime: u64,
    pub mtime: u64,
    pub dtime: u32,
    pub links: u16,
    /// 512-byte sectors in use, indirect blocks included.
    pub blocks: u32,
    pub flags: u32,
    pub block: [u32; 15],
    pub file_acl: u32,
}

impl Inode {
    pub fn kind(&self) -> Option<FileType> {
        Some(match self.mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => return None,
        })
    }

    /// Whether i_block holds block pointers (not a device number or a short symlink's
    /// target).
    pub fn has_blocks(&self, block_size: usize) -> bool {
        match self.kind() {
            Some(FileType::Regular | FileType::Directory) => true,
            Some(FileType::Symlink) => !self.fast_symlink(block_size),
            _ => false,
        }
    }

    /// A symlink whose target is in i_block: it has no data block (an xattr block aside).
    pub fn fast_symlink(&self, block_size: usize) -> bool {
        let acl = if self.file_acl != 0 { (block_size / 512) as u32 } else { 0 };
        self.blocks.saturating_sub(acl) == 0
    }

    /// The device number of a device node (Linux's encoding for `st_rdev`).
    pub fn rdev(&self) -> u64 {
        let (major, minor) = if self.block[0] != 0 {
            ((self.block[0] >> 8) & 0xff, self.block[0] & 0xff)
        } else {
            let b = self.block[1];
            ((b >> 8) & 0xfff, (b & 0xff) | ((b >> 12) & 0xfff00))
        };
        u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
    }
}

/// Seconds and the extra field (2 epoch bits, 30 bits of ns) as ns since the epoch.
fn time_ns(secs: u32, extra: Option<u32>) -> u64 {
    let e = extra.unwrap_or(0);
    let secs = u64::from(secs) + (u64::from(e & 3) << 32);
    let ns = u64::from(e >> 2).min(999_999_999);
    secs * 1_000_000_000 + ns
}

fn time_parts(ns: u64) -> (u32, u32) {
    let secs = ns / 1_000_000_000;
    let extra = (((ns % 1_000_000_000) as u32) << 2) | ((secs >> 32) as u32 & 3);
    (secs as u32, extra)
}

impl Ext2Fs {
    /// Where inode `ino` lives: its inode table block and byte offset there.
    fn inode_loc(&self, st: &State, ino: u32) -> KResult<(u32, usize)> {
        let geo = &self.geo;
        if ino == 0 || ino > geo.inodes_count {
            return Err(corrupt(format_args!("inode number {ino}")));
        }
        let (g, index) = ((ino - 1) / geo.inodes_per_group, (ino - 1) % geo.inodes_per_group);
        let byte = index as usize * geo.inode_size;
        Ok((st.inode_table(g) + (byte / geo.block_size) as u32, byte % geo.block_size))
    }

    /// How far the extra fields of a large inode reach (0: none).
    fn extra_end(&self, raw: &[u8]) -> usize {
        if self.geo.inode_size <= 128 {
            return 0;
        }
        let extra = usize::from(le16(raw, I_EXTRA_ISIZE));
        if extra > self.geo.inode_size - 128 { 0 } else { 128 + extra }
    }

    pub fn read_inode(&self, st: &mut State, ino: u32) -> KResult<Inode> {
        let (block, off) = self.inode_loc(st, ino)?;
        let isz = self.geo.inode_size;
        let raw = &st.cache.get(block)?[off..off + isz];
        let end = self.extra_end(raw);
        let extra = |at: usize| (end >= at + 4).then(|| le32(raw, at));
        let mode = le16(raw, I_MODE);
        let mut size = u64::from(le32(raw, I_SIZE));
        if mode & 0o170000 == 0o100000 {
            size |= u64::from(le32(raw, I_SIZE_HIGH)) << 32;
        }
        let mut block = [0u32; 15];
        for (i, b) in block.iter_mut().enumerate() {
            *b = le32(raw, I_BLOCK + 4 * i);
        }
        Ok(Inode {
            mode,
            uid: u32::from(le16(raw, I_UID)) | (u32::from(le16(raw, I_UID_HIGH)) << 16),
            gid: u32::from(le16(raw, I_GID)) | (u32::from(le16(raw, I_GID_HIGH)) << 16),
            size,
            atime: time_ns(le32(raw, I_ATIME), extra(I_ATIME_EXTRA)),
            ctime: time_ns(le32(raw, I_CTIME), extra(I_CTIME_EXTRA)),
            mtime: time_ns(le32(raw, I_MTIME), extra(I_MTIME_EXTRA)),
            dtime: le32(raw, I_DTIME),
            links: le16(raw, I_LINKS),
            blocks: le32(raw, I_BLOCKS),
            flags: le32(raw, I_FLAGS),
            block,
            file_acl: le32(raw, I_FILE_ACL),
        })
    }

    /// Writes the fields of `inode` into its slot (other fields are left as they are).
    pub fn write_inode(&self, st: &mut State, ino: u32, inode: &Inode) -> KResult<()> {
        let (block, off) = self.inode_loc(st, ino)?;
        let isz = self.geo.inode_size;
        if inode.size > 0x7fff_ffff {
            st.set_ro_compat(super::RO_COMPAT_LARGE_FILE);
        }
        let raw = &mut st.cache.get_mut(block)?[off..off + isz];
        let end = self.extra_end(raw);
        put16(raw, I_MODE, inode.mode);
        put16(raw, I_UID, inode.uid as u16);
        put16(raw, I_UID_HIGH, (inode.uid >> 16) as u16);
        put16(raw, I_GID, inode.gid as u16);
        put16(raw, I_GID_HIGH, (inode.gid >> 16) as u16);
        put32(raw, I_SIZE, inode.size as u32);
        let high = if inode.kind() == Some(FileType::Regular) { (inode.size >> 32) as u32 } else { 0 };
        put32(raw, I_SIZE_HIGH, high);
        for (at, extra_at, ns) in [(I_ATIME, I_ATIME_EXTRA, inode.atime), (I_CTIME, I_CTIME_EXTRA, inode.ctime), (I_MTIME, I_MTIME_EXTRA, inode.mtime)] {
            let (secs, extra) = time_parts(ns);
            put32(raw, at, secs);
            if end >= extra_at + 4 {
                put32(raw, extra_at, extra);
            }
        }
        put32(raw, I_DTIME, inode.dtime);
        put16(raw, I_LINKS, inode.links);
        put32(raw, I_BLOCKS, inode.blocks);
        put32(raw, I_FLAGS, inode.flags);
        for (i, b) in inode.block.iter().enumerate() {
            put32(raw, I_BLOCK + 4 * i, *b);
        }
        put32(raw, I_FILE_ACL, inode.file_acl);
        Ok(())
    }

    /// A fresh inode slot for `ino`: all zeros (a large inode gets its extra fields).
    pub fn clear_inode(&self, st: &mut State, ino: u32) -> KResult<()> {
        let (block, off) = self.inode_loc(st, ino)?;
        let isz = self.geo.inode_size;
        let raw = &mut st.cache.get_mut(block)?[off..off + isz];
        raw.fill(0);
        if isz >= 128 + usize::from(NEW_EXTRA_ISIZE) {
            put16(raw, I_EXTRA_ISIZE, NEW_EXTRA_ISIZE);
        }
        Ok(())
    }

    /// Checks a block pointer read from the disk.
    fn check_ptr(&self, b: u32) -> KResult<u32> {
        if b == 0 || self.geo.valid_block(b) { Ok(b) } else { Err(corrupt(format_args!("block pointer {b}"))) }
    }

    /// The path to file block `fb`: the slot in i_block, then the index in each indirect
    /// block (EFBIG past the triple indirect block's reach).
    fn path(&self, fb: u64) -> KResult<([usize; 4], usize)> {
        let p = self.geo.ptrs();
        if fb < 12 {
            return Ok(([fb as usize, 0, 0, 0], 1));
        }
        let fb = fb - 12;
        if fb < p {
            return Ok(([12, fb as usize, 0, 0], 2));
        }
        let fb = fb - p;
        if fb < p * p {
            return Ok(([13, (fb / p) as usize, (fb % p) as usize, 0], 3));
        }
        let fb = fb - p * p;
        if fb < p * p * p {
            return Ok(([14, (fb / (p * p)) as usize, (fb / p % p) as usize, (fb % p) as usize], 4));
        }
        Err(EFBIG)
    }

    /// Largest file size: what the block map reaches, and what i_blocks (32 bits of
    /// sectors) can count.
    pub fn max_size(&self) -> u64 {
        let p = self.geo.ptrs();
        let reach = (12 + p + p * p + p * p * p) * self.geo.block_size as u64;
        reach.min((u64::from(u32::MAX) - 8 * p) * 512)
    }

    /// The disk block holding file block `fb` (0: a hole).
    pub fn bmap(&self, st: &mut State, inode: &Inode, fb: u64) -> KResult<u32> {
        let (path, n) = self.path(fb)?;
        let mut b = self.check_ptr(inode.block[path[0]])?;
        for &i in &path[1..n] {
            if b == 0 {
                return Ok(0);
            }
            b = self.check_ptr(le32(st.cache.get(b)?, i * 4))?;
        }
        Ok(b)
    }

    /// The disk block of file block `fb` and how many of the next file blocks (at most
    /// `max`, within one indirect block) follow it contiguously on disk; for a hole
    /// (block 0), how many holes follow.
    pub fn bmap_run(&self, st: &mut State, inode: &Inode, fb: u64, max: u64) -> KResult<(u32, u64)> {
        let (path, n) = self.path(fb)?;
        let run = |ptrs: &mut dyn FnMut(usize) -> Option<u32>, first: u32| -> KResult<(u32, u64)> {
            let mut k = 1u64;
            while k < max {
                match ptrs(k as usize) {
                    Some(c) if (first == 0 && c == 0) || (first != 0 && u64::from(c) == u64::from(first) + k) => k += 1,
                    _ => break,
                }
            }
            if first != 0 && !self.geo.valid_block((u64::from(first) + k - 1) as u32) {
                return Err(corrupt(format_args!("block pointer {first}")));
            }
            Ok((first, k))
        };
        if n == 1 {
            let first = self.check_ptr(inode.block[path[0]])?;
            return run(&mut |k| inode.block.get(path[0] + k).copied().filter(|_| path[0] + k < 12), first);
        }
        let mut b = self.check_ptr(inode.block[path[0]])?;
        for &i in &path[1..n - 1] {
            if b == 0 {
                return Ok((0, 1));
            }
            b = self.check_ptr(le32(st.cache.get(b)?, i * 4))?;
        }
        if b == 0 {
            return Ok((0, 1));
        }
        let data = st.cache.get(b)?;
        let idx = path[n - 1];
        let first = le32(data, idx * 4);
        let ptrs = self.geo.ptrs() as usize;
        let first = self.check_ptr(first)?;
        run(&mut |k| (idx + k < ptrs).then(|| le32(data, (idx + k) * 4)), first)
    }

    /// Allocates a block for `inode` near `goal` and counts it in i_blocks.
    pub fn alloc_for(&self, st: &mut State, inode: &mut Inode, goal: u32) -> KResult<u32> {
        let sectors = (self.geo.block_size / 512) as u32;
        let blocks = inode.blocks.checked_add(sectors).ok_or(EFBIG)?;
        let b = self.alloc_block(st, goal)?;
        inode.blocks = blocks;
        Ok(b)
    }

    /// The disk block of file block `fb`, allocated (with any indirect blocks on the
    /// way) near `goal` if it is a hole; and whether it is new (its contents are not
    /// the file's: the caller writes all of it). The caller writes the inode back.
    pub fn bmap_alloc(&self, st: &mut State, inode: &mut Inode, fb: u64, goal: u32) -> KResult<(u32, bool)> {
        let (path, n) = self.path(fb)?;
        let mut b = self.check_ptr(inode.block[path[0]])?;
        let mut new = false;
        if b == 0 {
            b = self.alloc_for(st, inode, goal)?;
            inode.block[path[0]] = b;
            new = true;
            if n > 1 {
                st.cache.zeroed(b)?;
            }
        }
        for (k, &i) in path[1..n].iter().enumerate() {
            let parent = b;
            b = self.check_ptr(le32(st.cache.get(parent)?, i * 4))?;
            new = false;
            if b == 0 {
                b = self.alloc_for(st, inode, goal)?;
                put32(st.cache.get_mut(parent)?, i * 4, b);
                new = true;
                if k + 2 < n {
                    st.cache.zeroed(b)?;
                }
            }
        }
        Ok((b, new))
    }

    /// Frees every block of the file from file block `first` on, and the indirect
    /// blocks left empty. The caller writes the inode back.
    pub fn free_from(&self, st: &mut State, inode: &mut Inode, first: u64) -> KResult<()> {
        let sectors = (self.geo.block_size / 512) as u32;
        for i in (first.min(12) as usize)..12 {
            let b = inode.block[i];
            if b != 0 {
                self.free_block(st, b)?;
                inode.block[i] = 0;
                inode.blocks = inode.blocks.saturating_sub(sectors);
            }
        }
        let p = self.geo.ptrs();
        let (mut base, mut span) = (12u64, p);
        for level in 1..=3u32 {
            let slot = 11 + level as usize;
            let b = self.check_ptr(inode.block[slot])?;
            if b != 0 && first < base + span && self.free_tree(st, inode, b, level, first.saturating_sub(base))? {
                self.free_block(st, b)?;
                inode.block[slot] = 0;
                inode.blocks = inode.blocks.saturating_sub(sectors);
            }
            base += span;
            span *= p;
        }
        Ok(())
    }

    /// Frees the blocks from `from` (relative to this tree) under indirect block `blk`
    /// of depth `level`; whether the indirect block is now empty (the caller frees it).
    fn free_tree(&self, st: &mut State, inode: &mut Inode, blk: u32, level: u32, from: u64) -> KResult<bool> {
        let sectors = (self.geo.block_size / 512) as u32;
        let p = self.geo.ptrs();
        let child_span = p.pow(level - 1);
        let mut ptrs = alloc::vec::Vec::from(st.cache.get(blk)?);
        let (mut changed, mut empty) = (false, true);
        for i in 0..p as usize {
            let c = le32(&ptrs, i * 4);
            if c == 0 {
                continue;
            }
            let start = i as u64 * child_span;
            if start + child_span <= from {
                empty = false;
                continue;
            }
            let c = self.check_ptr(c)?;
            let freed = level == 1 || self.free_tree(st, inode, c, level - 1, from.saturating_sub(start))?;
            if freed {
                self.free_block(st, c)?;
                inode.blocks = inode.blocks.saturating_sub(sectors);
                put32(&mut ptrs, i * 4, 0);
                changed = true;
            } else {
                empty = false;
            }
        }
        if changed && !empty {
            st.cache.get_mut(blk)?.copy_from_slice(&ptrs);
        }
        Ok(empty)
    }

    /// Releases inode `ino` once nothing links to it: its blocks, its xattr block, its
    /// bitmap bit (the deletion time is set, as e2fsck expects).
    pub fn evict(&self, st: &mut State, ino: u32) -> KResult<()> {
        let mut inode = self.read_inode(st, ino)?;
        if inode.links != 0 || inode.dtime != 0 {
            return Ok(());
        }
        if inode.has_blocks(self.geo.block_size) {
            self.free_from(st, &mut inode, 0)?;
        }
        if inode.file_acl != 0 {
            self.release_xattr_block(st, inode.file_acl)?;
            inode.file_acl = 0;
        }
        inode.blocks = 0;
        inode.size = 0;
        inode.dtime = super::now_secs().max(1);
        st.caches.remove(&ino);
        self.write_inode(st, ino, &inode)?;
        self.free_inode(st, ino, inode.kind() == Some(FileType::Directory))
    }

    /// Drops one reference to a shared extended-attribute block (freed at the last).
    fn release_xattr_block(&self, st: &mut State, b: u32) -> KResult<()> {
        const XATTR_MAGIC: u32 = 0xEA02_0000;
        if !self.geo.valid_block(b) {
            return Err(corrupt(format_args!("xattr block {b}")));
        }
        let data = st.cache.get(b)?;
        if le32(data, 0) != XATTR_MAGIC {
            return Err(corrupt(format_args!("xattr block {b} has no magic")));
        }
        let refs = le32(data, 4);
        if refs <= 1 {
            self.free_block(st, b)
        } else {
            put32(st.cache.get_mut(b)?, 4, refs - 1);
            Ok(())
        }
    }
}
