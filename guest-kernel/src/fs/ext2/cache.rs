//! The metadata block cache: superblock-adjacent structures that are read and patched a
//! few bytes at a time (bitmaps, inode table blocks, indirect and directory blocks).
//!
//! Write-back: a changed block stays dirty in memory until it is evicted (least recently
//! used first), or until `flush` (fsync, sync, umount). File data never passes through
//! here (it has the page cache, `mm::filemap`). A block that is freed is forgotten
//! without being written, so a stale copy can never overwrite the data of whoever gets
//! that block next.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use crate::drivers::virtio::blk::{Blk, T_IN, T_OUT};
use crate::errno::*;

/// Most blocks kept (4 MiB at 4 KiB blocks).
const CAPACITY: usize = 1024;

struct Entry {
    data: Box<[u8]>,
    dirty: bool,
    /// When it was last used (a counter, for LRU eviction).
    used: u64,
}

pub struct BlockCache {
    disk: Arc<Blk>,
    block_size: usize,
    /// Disk sectors per block.
    sectors: u64,
    blocks: BTreeMap<u32, Entry>,
    clock: u64,
    /// For callers that must not sleep: a block not cached, or room that only writing a
    /// dirty block back would make, is EAGAIN.
    pub nowait: bool,
}

impl BlockCache {
    pub fn new(disk: Arc<Blk>, block_size: usize) -> Self {
        Self { disk, block_size, sectors: block_size as u64 / 512, blocks: BTreeMap::new(), clock: 0, nowait: false }
    }

    /// Reads whole blocks from `block` into `buf` (its length a multiple of the block size).
    pub fn read_disk(&self, block: u32, buf: &mut [u8]) -> KResult<()> {
        self.disk.transfer(T_IN, u64::from(block) * self.sectors, buf)
    }

    /// Writes whole blocks from `buf` at `block`.
    pub fn write_disk(&self, block: u32, buf: &mut [u8]) -> KResult<()> {
        self.disk.transfer(T_OUT, u64::from(block) * self.sectors, buf)
    }

    /// The disk, and its sectors per block.
    pub fn disk(&self) -> (&Arc<Blk>, u64) {
        (&self.disk, self.sectors)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Makes room for one more block: writes back and drops the least recently used.
    fn make_room(&mut self) -> KResult<()> {
        if self.blocks.len() < CAPACITY {
            return Ok(());
        }
        let victim = self.blocks.iter().min_by_key(|(_, e)| e.used).map(|(&b, e)| (b, e.dirty));
        if let Some((b, dirty)) = victim {
            if dirty && self.nowait {
                return Err(EAGAIN); // writing it back would sleep
            }
            let mut e = self.blocks.remove(&b).expect("found above");
            if e.dirty
                && let Err(err) = self.write_disk(b, &mut e.data)
            {
                // Keep it (dirty) rather than lose the change.
                self.blocks.insert(b, e);
                return Err(err);
            }
        }
        Ok(())
    }

    fn load(&mut self, block: u32) -> KResult<&mut Entry> {
        let now = self.tick();
        if !self.blocks.contains_key(&block) {
            if self.nowait {
                return Err(EAGAIN);
            }
            self.make_room()?;
            let mut data = alloc::vec![0u8; self.block_size].into_boxed_slice();
            self.read_disk(block, &mut data)?;
            self.blocks.insert(block, Entry { data, dirty: false, used: now });
        }
        let e = self.blocks.get_mut(&block).expect("inserted above");
        e.used = now;
        Ok(e)
    }

    /// The block's bytes, read from disk on a miss.
    pub fn get(&mut self, block: u32) -> KResult<&[u8]> {
        Ok(&self.load(block)?.data)
    }

    /// The block's bytes to change (the block becomes dirty).
    pub fn get_mut(&mut self, block: u32) -> KResult<&mut [u8]> {
        let e = self.load(block)?;
        e.dirty = true;
        Ok(&mut e.data)
    }

    /// A block just allocated: all zeros, dirty, not read from disk.
    pub fn zeroed(&mut self, block: u32) -> KResult<&mut [u8]> {
        let now = self.tick();
        if !self.blocks.contains_key(&block) {
            self.make_room()?;
        }
        let data = alloc::vec![0u8; self.block_size].into_boxed_slice();
        self.blocks.insert(block, Entry { data, dirty: true, used: now });
        Ok(&mut self.blocks.get_mut(&block).expect("inserted above").data)
    }

    /// Drops a freed block without writing it back.
    pub fn forget(&mut self, block: u32) {
        self.blocks.remove(&block);
    }

    /// Writes every dirty block back (the first error is returned; blocks that failed
    /// stay dirty).
    pub fn flush(&mut self) -> KResult<()> {
        let mut result = Ok(());
        let disk = Arc::clone(&self.disk);
        let sectors = self.sectors;
        for (&b, e) in self.blocks.iter_mut().filter(|(_, e)| e.dirty) {
            match disk.transfer(T_OUT, u64::from(b) * sectors, &mut e.data) {
                Ok(()) => e.dirty = false,
                Err(err) => {
                    if result.is_ok() {
                        result = Err(err);
                    }
                }
            }
        }
        result
    }
}
