//! Unpacking a cpio "newc" archive (the initramfs) into the RAM filesystem.
//!
//! Each entry: a 110-byte ASCII header (magic `070701`, then 13 eight-digit hex fields),
//! the NUL-terminated name, padding to 4 bytes, the data, padding to 4 bytes. The entry
//! named `TRAILER!!!` ends the archive. File data is not copied: files point into the
//! archive, whose frames the kernel never reuses.

use alloc::string::String;
use alloc::sync::Arc;

use super::ramfs::{RamDir, RamFile};
use super::{FileType, Node};

const HEADER: usize = 110;

fn hex(field: &[u8]) -> Option<u64> {
    field.iter().try_fold(0u64, |acc, &c| Some(acc << 4 | u64::from((c as char).to_digit(16)?)))
}

fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Adds every entry of `archive` under `root`; returns how many were added.
pub fn unpack(archive: &'static [u8], root: &Arc<RamDir>) -> Result<usize, String> {
    let mut at = 0;
    let mut count = 0;
    while at + HEADER <= archive.len() {
        let h = &archive[at..at + HEADER];
        if &h[..6] != b"070701" {
            return Err(alloc::format!("bad cpio magic at offset {at}"));
        }
        let field = |i: usize| hex(&h[6 + i * 8..14 + i * 8]).ok_or_else(|| alloc::format!("bad cpio header at offset {at}"));
        let (mode, size, namesize) = (field(1)? as u32, field(6)? as usize, field(11)? as usize);
        let name_start = at + HEADER;
        let data_start = align4(name_start + namesize);
        let data_end = data_start.checked_add(size).filter(|&e| e <= archive.len()).ok_or("truncated cpio archive")?;
        let name = archive.get(name_start..name_start + namesize.saturating_sub(1)).ok_or("truncated cpio name")?;
        let name = core::str::from_utf8(name).map_err(|_| "cpio name is not UTF-8")?;
        at = align4(data_end);
        if name == "TRAILER!!!" {
            break;
        }
        let data = &archive[data_start..data_end];
        if add(root, name.trim_start_matches("./").trim_start_matches('/'), mode, data) {
            count += 1;
        }
    }
    Ok(count)
}

/// Adds one entry, creating missing parent directories.
fn add(root: &Arc<RamDir>, path: &str, mode: u32, data: &'static [u8]) -> bool {
    if path.is_empty() || path == "." {
        return false;
    }
    let (parent_path, name) = path.rsplit_once('/').unwrap_or(("", path));
    let mut dir: Arc<dyn Node> = root.clone();
    for part in parent_path.split('/').filter(|p| !p.is_empty()) {
        dir = match dir.lookup(part) {
            Ok(d) => d,
            Err(_) => match dir.create(part, FileType::Directory, 0o755) {
                Ok(d) => d,
                Err(_) => return false,
            },
        };
    }
    let Some(dir) = dir.as_any().downcast_ref::<RamDir>() else { return false };
    let perm = mode & 0o7777;
    let result = match mode & 0o170000 {
        0o040000 => match dir.lookup(name) {
            Ok(existing) => existing.set_mode(perm),
            Err(_) => dir.create(name, FileType::Directory, perm).map(|_| ()),
        },
        0o100000 => dir.add(name, RamFile::new(perm, data)),
        0o120000 => match core::str::from_utf8(data) {
            Ok(target) => dir.symlink(name, target),
            Err(_) => return false,
        },
        _ => return false,
    };
    result.is_ok()
}
