//! Regular file data: between the disk and the page cache (or an O_DIRECT caller's
//! buffer), never through the metadata cache, in runs of physically contiguous blocks of up to `MAX_RUN`
//! bytes. Holes read as zeros and stay holes until written.

use alloc::vec::Vec;

use super::inode::Inode;
use super::{Ext2Fs, State};
use crate::errno::*;
use crate::fs::IoBuf;

/// Largest single disk transfer.
const MAX_RUN: usize = 64 * 1024;

static ZEROS: [u8; 4096] = [0; 4096];

/// Puts `n` zero bytes into `buf` at `at`.
fn put_zeros(buf: &mut IoBuf, at: usize, n: usize) -> KResult<()> {
    let mut done = 0;
    while done < n {
        let k = (n - done).min(ZEROS.len());
        buf.put(at + done, &ZEROS[..k])?;
        done += k;
    }
    Ok(())
}

/// A read's runs of disk blocks: (offset in the read, first block, blocks).
pub type Runs = Vec<(usize, u32, u64)>;

/// The page cache's page.
const PAGE: usize = 4096;

/// The parts of `frames` (pages, in order) that bytes `[from, to)` of them fill, as
/// (physical address, length) segments.
fn frame_parts(frames: &[u64], from: usize, to: usize) -> Vec<(u64, u32)> {
    let mut parts = Vec::new();
    let mut at = from;
    while at < to {
        let (page, off) = (at / PAGE, at % PAGE);
        let len = (PAGE - off).min(to - at);
        parts.push((frames[page] + off as u64, len as u32));
        at += len;
    }
    parts
}

/// Zeroes `parts` of frames being filled (a hole's bytes).
fn zero_parts(parts: &[(u64, u32)]) -> KResult<()> {
    for &(addr, len) in parts {
        let ptr = crate::mm::phys_to_virt(addr, u64::from(len)).ok_or(EFAULT)?;
        // SAFETY: part of a frame claimed for this read (nothing else touches it until
        // the read settles), in the direct map.
        unsafe { core::ptr::write_bytes(ptr, 0, len as usize) };
    }
    Ok(())
}

impl Ext2Fs {
    /// Reads up to `buf.len()` bytes at `offset` (short at end of file).
    pub fn read_data(&self, st: &mut State, inode: &Inode, offset: u64, buf: &mut IoBuf) -> KResult<usize> {
        if offset >= inode.size {
            return Ok(0);
        }
        let bs = self.geo.block_size as u64;
        let total = (buf.len() as u64).min(inode.size - offset) as usize;
        let last = (offset + total as u64 - 1) / bs;
        let mut bounce = Vec::new();
        let mut done = 0;
        while done < total {
            let pos = offset + done as u64;
            let (fb, within) = (pos / bs, (pos % bs) as usize);
            let (phys, blocks) = self.bmap_run(st, inode, fb, (last - fb + 1).min(MAX_RUN as u64 / bs))?;
            let n = ((blocks * bs) as usize - within).min(total - done);
            if phys == 0 {
                put_zeros(buf, done, n)?;
            } else {
                bounce.resize((blocks * bs) as usize, 0);
                st.cache.read_disk(phys, &mut bounce)?;
                buf.put(done, &bounce[within..within + n])?;
            }
            done += n;
        }
        Ok(done)
    }

    /// Plans a read of `len` bytes at `pos` (a multiple of the block size) without I/O:
    /// the inode and block map must be in the metadata cache, else EAGAIN. Returns the
    /// file's bytes there (fewer at its end) and the runs of disk blocks holding them, as
    /// (offset in the read, first block, blocks); holes are left out (they read as zeros).
    pub fn plan_read(&self, st: &mut State, ino: u32, pos: u64, len: usize) -> KResult<(usize, Runs)> {
        st.cache.nowait = true;
        let r = self.plan_runs(st, ino, pos, len);
        st.cache.nowait = false;
        r
    }

    /// The disk block where an O_DIRECT read of `len` bytes at `offset` starts, when the
    /// bytes lie inside the file on one run of allocated blocks and the inode and block
    /// map are cached (found without I/O).
    pub fn direct_run(&self, st: &mut State, ino: u32, offset: u64, len: usize) -> Option<u64> {
        st.cache.nowait = true;
        let r = self.find_run(st, ino, offset, len);
        st.cache.nowait = false;
        r
    }

    fn find_run(&self, st: &mut State, ino: u32, offset: u64, len: usize) -> Option<u64> {
        let inode = self.read_inode(st, ino).ok()?;
        if offset.checked_add(len as u64)? > inode.size {
            return None;
        }
        let bs = self.geo.block_size as u64;
        let blocks = ((offset % bs) + len as u64).div_ceil(bs);
        let (phys, run) = self.bmap_run(st, &inode, offset / bs, blocks).ok()?;
        (phys != 0 && run >= blocks).then_some(u64::from(phys))
    }

    fn plan_runs(&self, st: &mut State, ino: u32, pos: u64, len: usize) -> KResult<(usize, Runs)> {
        let inode = self.read_inode(st, ino)?;
        self.runs_of(st, &inode, pos, len)
    }

    /// The file's bytes in `[pos, pos + len)` (`pos` a multiple of the block size; fewer
    /// at the end of the file) and the runs of disk blocks holding them, as `plan_read`.
    fn runs_of(&self, st: &mut State, inode: &Inode, pos: u64, len: usize) -> KResult<(usize, Runs)> {
        let bs = self.geo.block_size as u64;
        if pos >= inode.size || len == 0 || !pos.is_multiple_of(bs) {
            return Ok((0, Vec::new()));
        }
        let total = (len as u64).min(inode.size - pos) as usize;
        let last = (pos + total as u64 - 1) / bs;
        let mut runs = Vec::new();
        let mut at = 0;
        while at < total {
            let fb = (pos + at as u64) / bs;
            let (phys, blocks) = self.bmap_run(st, inode, fb, (last - fb + 1).min(MAX_RUN as u64 / bs))?;
            if phys != 0 {
                runs.push((at, phys, blocks));
            }
            at += (blocks * bs) as usize;
        }
        Ok((total, runs))
    }

    /// Reads file bytes at `pos` (a multiple of the page size) straight into the page
    /// frames `frames`: each run of contiguous disk blocks is one request whose segments
    /// are the frames' parts; holes are zeroed. Returns the file's bytes there (fewer at
    /// its end).
    pub fn read_into_frames(&self, st: &mut State, inode: &Inode, pos: u64, frames: &[u64]) -> KResult<usize> {
        let (total, runs) = self.runs_of(st, inode, pos, frames.len() * PAGE)?;
        let bs = self.geo.block_size;
        let (disk, sectors) = st.cache.disk();
        let disk = alloc::sync::Arc::clone(disk);
        let mut covered = 0;
        for &(at, phys, blocks) in &runs {
            zero_parts(&frame_parts(frames, covered, at))?; // the hole before the run
            let n = (blocks as usize * bs).min(total - at);
            let mut segments = frame_parts(frames, at, at + n);
            // Whole sectors: a run ends on a block boundary, or at the end of the file
            // (rounded up: the rest of its block is in the same frame).
            if let Some(last) = segments.last_mut() {
                last.1 = last.1.next_multiple_of(512);
            }
            disk.transfer_segments(crate::drivers::virtio::blk::T_IN, u64::from(phys) * sectors, &segments)?;
            covered = at + n;
        }
        zero_parts(&frame_parts(frames, covered, total))?;
        Ok(total)
    }

    /// Zeroes the rest of the block holding byte `size` (the old end of file, before the
    /// file grows past it), so that stale bytes there never become file contents.
    pub fn zero_tail(&self, st: &mut State, inode: &Inode, size: u64) -> KResult<()> {
        let bs = self.geo.block_size as u64;
        let within = (size % bs) as usize;
        if within == 0 {
            return Ok(());
        }
        let phys = self.bmap(st, inode, size / bs)?;
        if phys == 0 {
            return Ok(());
        }
        let mut block = alloc::vec![0u8; bs as usize];
        st.cache.read_disk(phys, &mut block)?;
        if block[within..].iter().any(|&b| b != 0) {
            block[within..].fill(0);
            st.cache.write_disk(phys, &mut block)?;
        }
        Ok(())
    }

    /// Writes `buf` at `offset`, allocating blocks near `goal` for holes; returns the
    /// bytes written and the last block allocated (the next goal). The caller updates
    /// the size and times and writes the inode back (whatever the result: blocks may
    /// have been allocated).
    pub fn write_data(&self, st: &mut State, inode: &mut Inode, offset: u64, buf: &IoBuf, goal: u32) -> KResult<(usize, u32)> {
        let len = buf.len();
        let end = offset.checked_add(len as u64).ok_or(EFBIG)?;
        if end > self.max_size() {
            return Err(EFBIG);
        }
        if offset > inode.size {
            self.zero_tail(st, inode, inode.size)?;
        }
        let bs = self.geo.block_size as u64;
        let bsz = bs as usize;
        let mut goal = goal;
        let mut bounce = Vec::new();
        let mut done = 0;
        // A block allocated while looking ahead that did not join the run before it.
        let mut fresh: Option<(u64, u32)> = None;
        let mut result = Ok(());
        while done < len {
            let pos = offset + done as u64;
            let (fb, within) = (pos / bs, (pos % bs) as usize);
            let (phys, first_new) = match fresh.take() {
                Some((f, p)) if f == fb => (p, true),
                _ => match self.bmap_alloc(st, inode, fb, goal) {
                    Ok(r) => r,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            goal = phys + 1;
            // Grow the run while the next block is (or can be allocated) right after.
            let mut blocks = 1u64;
            let mut last_new = first_new;
            while (fb + blocks) * bs < end && ((blocks + 1) * bs) as usize <= MAX_RUN {
                let Ok(next) = self.bmap_alloc(st, inode, fb + blocks, goal) else { break };
                if next.0 != phys + blocks as u32 {
                    if next.1 {
                        fresh = Some((fb + blocks, next.0));
                    }
                    break;
                }
                last_new = next.1;
                goal = next.0 + 1;
                blocks += 1;
            }
            let run = (blocks * bs) as usize;
            let n = (run - within).min(len - done);
            bounce.resize(run, 0);
            // Bytes of the first and last blocks outside the write keep their contents
            // (zeros for a new block).
            let head_partial = within != 0 || (blocks == 1 && n < bsz);
            let tail_partial = !(within + n).is_multiple_of(bsz);
            let mut io = Ok(());
            if head_partial {
                if first_new {
                    bounce[..bsz].fill(0);
                } else {
                    io = st.cache.read_disk(phys, &mut bounce[..bsz]);
                }
            }
            if io.is_ok() && tail_partial && blocks > 1 {
                let last = run - bsz;
                if last_new {
                    bounce[last..].fill(0);
                } else {
                    io = st.cache.read_disk(phys + blocks as u32 - 1, &mut bounce[last..]);
                }
            }
            let io = io.and_then(|()| buf.get(done, &mut bounce[within..within + n])).and_then(|()| st.cache.write_disk(phys, &mut bounce));
            if let Err(e) = io {
                result = Err(e);
                break;
            }
            done += n;
        }
        match result {
            Err(e) if done == 0 => Err(e),
            _ => Ok((done, goal)),
        }
    }

    /// Frees the blocks past the end of file (after a write that failed part way, so
    /// no allocated, unwritten block stays past the end; a hole inside the file that
    /// such a write filled keeps its block).
    pub fn trim_to_size(&self, st: &mut State, inode: &mut Inode) -> KResult<()> {
        let bs = self.geo.block_size as u64;
        self.free_from(st, inode, inode.size.div_ceil(bs))
    }
}
