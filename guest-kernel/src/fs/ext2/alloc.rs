//! Block and inode bitmaps: allocation near a goal, freeing, and the free counts of the
//! group descriptors and the superblock, which always change together.

use super::{corrupt, Ext2Fs, State};
use crate::errno::*;

/// The first clear bit in `start..end` of `map`, 64 bits at a time where it can.
fn scan(map: &[u8], start: u32, end: u32) -> Option<u32> {
    let mut bit = start;
    while bit < end {
        if bit.is_multiple_of(64) && bit + 64 <= end {
            let i = (bit / 8) as usize;
            let word = u64::from_le_bytes(map[i..i + 8].try_into().expect("8 bytes"));
            if word != u64::MAX {
                return Some(bit + (!word).trailing_zeros());
            }
            bit += 64;
            continue;
        }
        if map[(bit / 8) as usize] & (1 << (bit % 8)) == 0 {
            return Some(bit);
        }
        bit += 1;
    }
    None
}

fn set_bit(map: &mut [u8], bit: u32, on: bool) {
    let (i, m) = ((bit / 8) as usize, 1u8 << (bit % 8));
    if on {
        map[i] |= m;
    } else {
        map[i] &= !m;
    }
}

fn bit_set(map: &[u8], bit: u32) -> bool {
    map[(bit / 8) as usize] & (1 << (bit % 8)) != 0
}

impl Ext2Fs {
    /// Allocates a block, the first free one at or after `goal` in its group, else in the
    /// groups after it (ENOSPC: none free).
    pub fn alloc_block(&self, st: &mut State, goal: u32) -> KResult<u32> {
        let geo = &self.geo;
        if st.free_blocks() == 0 {
            return Err(ENOSPC);
        }
        let goal = if geo.valid_block(goal) { goal } else { geo.first_data_block };
        let g0 = (goal - geo.first_data_block) / geo.blocks_per_group;
        for i in 0..geo.groups {
            let g = (g0 + i) % geo.groups;
            if st.free_blocks_in(g) == 0 {
                continue;
            }
            let base = geo.first_data_block + g * geo.blocks_per_group;
            let nbits = geo.blocks_in_group(g);
            let start = if i == 0 { goal - base } else { 0 };
            let (bitmap, ibitmap, table) = (st.block_bitmap(g), st.inode_bitmap(g), st.inode_table(g));
            let map = st.cache.get_mut(bitmap)?;
            let Some(bit) = scan(map, start, nbits).or_else(|| scan(map, 0, start)) else {
                log::warn!("ext2: group {g} counts free blocks but its bitmap has none");
                continue;
            };
            let b = base + bit;
            if b == bitmap || b == ibitmap || (b >= table && b - table < geo.itable_blocks) {
                return Err(corrupt(format_args!("block bitmap of group {g} marks metadata block {b} free")));
            }
            set_bit(map, bit, true);
            st.count_blocks(g, -1);
            return Ok(b);
        }
        Err(ENOSPC)
    }

    /// Frees block `b` and forgets any cached copy of it.
    pub fn free_block(&self, st: &mut State, b: u32) -> KResult<()> {
        let geo = &self.geo;
        if !geo.valid_block(b) {
            return Err(corrupt(format_args!("freeing block {b} outside the file system")));
        }
        let g = (b - geo.first_data_block) / geo.blocks_per_group;
        let bit = (b - geo.first_data_block) % geo.blocks_per_group;
        let bitmap = st.block_bitmap(g);
        if !bit_set(st.cache.get(bitmap)?, bit) {
            log::warn!("ext2: freeing block {b}, which is already free");
        } else {
            set_bit(st.cache.get_mut(bitmap)?, bit, false);
            st.count_blocks(g, 1);
        }
        st.cache.forget(b);
        Ok(())
    }

    /// Allocates an inode, in `near`'s group if it has a free one.
    pub fn alloc_inode(&self, st: &mut State, near: u32, dir: bool) -> KResult<u32> {
        let geo = &self.geo;
        if st.free_inodes() == 0 {
            return Err(ENOSPC);
        }
        let g0 = near.saturating_sub(1) / geo.inodes_per_group % geo.groups;
        for i in 0..geo.groups {
            let g = (g0 + i) % geo.groups;
            if st.free_inodes_in(g) == 0 {
                continue;
            }
            // Inodes below s_first_ino are reserved.
            let start = if g == 0 { geo.first_ino - 1 } else { 0 };
            if start >= geo.inodes_per_group {
                continue;
            }
            let bitmap = st.inode_bitmap(g);
            let Some(bit) = scan(st.cache.get(bitmap)?, start, geo.inodes_per_group) else {
                log::warn!("ext2: group {g} counts free inodes but its bitmap has none");
                continue;
            };
            set_bit(st.cache.get_mut(bitmap)?, bit, true);
            st.count_inodes(g, -1, dir as i32);
            return Ok(g * geo.inodes_per_group + bit + 1);
        }
        Err(ENOSPC)
    }

    pub fn free_inode(&self, st: &mut State, ino: u32, dir: bool) -> KResult<()> {
        let geo = &self.geo;
        let (g, bit) = ((ino - 1) / geo.inodes_per_group, (ino - 1) % geo.inodes_per_group);
        let bitmap = st.inode_bitmap(g);
        if !bit_set(st.cache.get(bitmap)?, bit) {
            log::warn!("ext2: freeing inode {ino}, which is already free");
            return Ok(());
        }
        set_bit(st.cache.get_mut(bitmap)?, bit, false);
        st.count_inodes(g, 1, -(dir as i32));
        Ok(())
    }
}
