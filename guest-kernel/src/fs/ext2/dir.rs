//! Directory entries: a linked list of records in each directory block (inode, record
//! length, name length, file type, name). Records are 4-byte aligned and the last one of
//! a block runs to its end; a removed record is merged into the one before it (or, first
//! in its block, gets inode 0). An htree index (dir_index) lives in records a linear
//! reader skips, so directories are read linearly, and a changed one loses its index
//! flag, as Linux's ext2 does.

use alloc::string::String;
use alloc::vec::Vec;

use super::inode::{Inode, INDEX_FL};
use super::{corrupt, le16, le32, put16, put32, Ext2Fs, State};
use crate::errno::*;
use crate::fs::FileType;

/// The record length a name needs.
fn rec_len(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

/// The file type byte of the filetype feature.
pub fn ftype_of(kind: FileType) -> u8 {
    match kind {
        FileType::Regular => 1,
        FileType::Directory => 2,
        FileType::CharDevice => 3,
        FileType::BlockDevice => 4,
        FileType::Fifo => 5,
        FileType::Socket => 6,
        FileType::Symlink => 7,
    }
}

pub fn kind_of(ftype: u8) -> Option<FileType> {
    Some(match ftype {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => return None,
    })
}

struct Entry<'a> {
    off: usize,
    ino: u32,
    rec_len: usize,
    name: &'a [u8],
    ftype: u8,
}

/// The records of one directory block, each checked (EUCLEAN ends the walk).
struct Entries<'a> {
    data: &'a [u8],
    off: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = KResult<Entry<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        let (data, off) = (self.data, self.off);
        if off >= data.len() {
            return None;
        }
        self.off = data.len();
        if off + 8 > data.len() {
            return Some(Err(corrupt(format_args!("directory record at {off} runs past its block"))));
        }
        let ino = le32(data, off);
        let rec = usize::from(le16(data, off + 4));
        let name_len = usize::from(data[off + 6]);
        if rec < 8 || !rec.is_multiple_of(4) || off + rec > data.len() || (ino != 0 && 8 + name_len > rec) {
            return Some(Err(corrupt(format_args!("directory record at {off}: length {rec}, name length {name_len}"))));
        }
        self.off = off + rec;
        let name = if ino == 0 { &data[off + 8..off + 8] } else { &data[off + 8..off + 8 + name_len] };
        Some(Ok(Entry { off, ino, rec_len: rec, name, ftype: data[off + 7] }))
    }
}

fn entries(data: &[u8]) -> Entries<'_> {
    Entries { data, off: 0 }
}

/// Writes a record at `off`.
fn put_entry(data: &mut [u8], off: usize, ino: u32, rec: usize, name: &[u8], ftype: u8) {
    put32(data, off, ino);
    put16(data, off + 4, rec as u16);
    data[off + 6] = name.len() as u8;
    data[off + 7] = ftype;
    data[off + 8..off + 8 + name.len()].copy_from_slice(name);
}

/// Where an entry was found.
pub struct Found {
    pub ino: u32,
    block: u32,
    off: usize,
}

impl Ext2Fs {
    /// The directory's blocks: its size over the block size (a directory whose size
    /// exceeds what it has allocated is corrupt).
    fn dir_blocks(&self, dir: &Inode) -> KResult<u64> {
        let bs = self.geo.block_size as u64;
        if dir.size > u64::from(dir.blocks) * 512 {
            return Err(corrupt(format_args!("directory of {} bytes with {} sectors", dir.size, dir.blocks)));
        }
        Ok(dir.size / bs)
    }

    /// Calls `f(block, record)` for each record until it returns true.
    fn walk_dir(&self, st: &mut State, dir: &Inode, mut f: impl FnMut(u32, &Entry) -> bool) -> KResult<()> {
        for i in 0..self.dir_blocks(dir)? {
            let b = self.bmap(st, dir, i)?;
            if b == 0 {
                continue;
            }
            for e in entries(st.cache.get(b)?) {
                if f(b, &e?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub fn dir_find(&self, st: &mut State, dir: &Inode, name: &[u8]) -> KResult<Option<Found>> {
        let mut found = None;
        self.walk_dir(st, dir, |block, e| {
            if e.ino != 0 && e.name == name {
                found = Some(Found { ino: e.ino, block, off: e.off });
            }
            found.is_some()
        })?;
        Ok(found)
    }

    /// Every entry but `.` and `..`: (name, inode, file type byte).
    pub fn dir_list(&self, st: &mut State, dir: &Inode) -> KResult<Vec<(String, u32, u8)>> {
        let mut out = Vec::new();
        self.walk_dir(st, dir, |_, e| {
            if e.ino != 0 && e.name != b"." && e.name != b".." {
                out.push((String::from_utf8_lossy(e.name).into_owned(), e.ino, e.ftype));
            }
            false
        })?;
        Ok(out)
    }

    pub fn dir_is_empty(&self, st: &mut State, dir: &Inode) -> KResult<bool> {
        let mut empty = true;
        self.walk_dir(st, dir, |_, e| {
            empty = e.ino == 0 || e.name == b"." || e.name == b"..";
            !empty
        })?;
        Ok(empty)
    }

    fn type_byte(&self, kind: FileType) -> u8 {
        if self.geo.filetype { ftype_of(kind) } else { 0 }
    }

    /// Adds `name` -> `ino` to directory `dir` (inode `dir_ino`), growing it by a block
    /// if no record has room. The caller checked the name is not there, and writes the
    /// directory's inode back.
    pub fn dir_add(&self, st: &mut State, dir_ino: u32, dir: &mut Inode, name: &[u8], ino: u32, kind: FileType) -> KResult<()> {
        let need = rec_len(name.len());
        let ftype = self.type_byte(kind);
        dir.flags &= !INDEX_FL;
        let mut slot = None;
        self.walk_dir(st, dir, |block, e| {
            let used = if e.ino == 0 { 0 } else { rec_len(e.name.len()) };
            if e.rec_len - used >= need {
                slot = Some((block, e.off, used, e.rec_len));
            }
            slot.is_some()
        })?;
        if let Some((block, off, used, rec)) = slot {
            let data = st.cache.get_mut(block)?;
            if used == 0 {
                put_entry(data, off, ino, rec, name, ftype);
            } else {
                put16(data, off + 4, used as u16);
                put_entry(data, off + used, ino, rec - used, name, ftype);
            }
            return Ok(());
        }
        let bs = self.geo.block_size;
        let index = self.dir_blocks(dir)?;
        let goal = dir.block[0].max(self.group_start(dir_ino));
        let (block, _) = self.bmap_alloc(st, dir, index, goal)?;
        let data = st.cache.zeroed(block)?;
        put_entry(data, 0, ino, bs, name, ftype);
        dir.size += bs as u64;
        Ok(())
    }

    /// Removes entry `name`; what it pointed to.
    pub fn dir_remove(&self, st: &mut State, dir: &mut Inode, name: &[u8]) -> KResult<Found> {
        let mut hit = None;
        let mut prev = None;
        let mut prev_block = 0;
        self.walk_dir(st, dir, |block, e| {
            if block != prev_block {
                prev = None;
                prev_block = block;
            }
            if e.ino != 0 && e.name == name {
                hit = Some((Found { ino: e.ino, block, off: e.off }, prev, e.rec_len));
                return true;
            }
            prev = Some((e.off, e.rec_len));
            false
        })?;
        let (found, prev, rec) = hit.ok_or(ENOENT)?;
        let data = st.cache.get_mut(found.block)?;
        match prev {
            Some((poff, prec)) => put16(data, poff + 4, (prec + rec) as u16),
            None => put32(data, found.off, 0),
        }
        dir.flags &= !INDEX_FL;
        Ok(found)
    }

    /// Points an existing entry at another inode (rename over a name).
    pub fn dir_set(&self, st: &mut State, at: &Found, ino: u32, kind: FileType) -> KResult<()> {
        let ftype = self.type_byte(kind);
        let data = st.cache.get_mut(at.block)?;
        put32(data, at.off, ino);
        data[at.off + 7] = ftype;
        Ok(())
    }

    /// A new directory's first block: `.` and `..`.
    pub fn dir_init(&self, st: &mut State, block: u32, ino: u32, parent: u32) -> KResult<()> {
        let bs = self.geo.block_size;
        let ftype = self.type_byte(FileType::Directory);
        let data = st.cache.zeroed(block)?;
        put_entry(data, 0, ino, 12, b".", ftype);
        put_entry(data, 12, parent, bs - 12, b"..", ftype);
        Ok(())
    }

    /// Points a directory's `..` at `parent` (it moved).
    pub fn set_dotdot(&self, st: &mut State, dir: &Inode, parent: u32) -> KResult<()> {
        let found = self.dir_find(st, dir, b"..")?.ok_or_else(|| corrupt(format_args!("directory without ..")))?;
        self.dir_set(st, &found, parent, FileType::Directory)
    }

    /// The first block of the group of inode `ino` (an allocation goal).
    pub fn group_start(&self, ino: u32) -> u32 {
        let g = ino.saturating_sub(1) / self.geo.inodes_per_group;
        self.geo.first_data_block + g.min(self.geo.groups - 1) * self.geo.blocks_per_group
    }
}
