//! The synchronous engine: pread/pwrite/fdatasync on the backing file, on the device's
//! worker thread. With direct I/O ([`super::direct`]) the file is opened with O_DIRECT
//! and a request that O_DIRECT cannot take as it is goes through an aligned buffer (or,
//! for a misaligned range, the buffered descriptor).

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::direct::{self, AlignedBuf, DioAlign, Route};
use super::BlockBackend;

pub struct SyncEngine {
    file: File,
    size: u64,
    direct: Option<Direct>,
}

/// What an O_DIRECT file needs besides its descriptor.
pub(crate) struct Direct {
    pub align: DioAlign,
    /// The same file without O_DIRECT, for ranges O_DIRECT cannot take (see
    /// [`DioAlign::needs_buffered`]).
    pub buffered: Option<File>,
}

impl Direct {
    fn open(path: &Path, read_only: bool, file: &File, align: Option<DioAlign>) -> io::Result<Self> {
        let align = match align {
            Some(a) => a,
            None => DioAlign::of(file)?,
        };
        let buffered = if align.needs_buffered() { Some(direct::open(path, read_only, false)?) } else { None };
        Ok(Self { align, buffered })
    }

    /// The route of a transfer of `buf` at `offset`.
    fn route(&self, offset: u64, buf: &[u8]) -> Route {
        let route = self.align.route(offset, buf.len() as u64, std::iter::once((buf.as_ptr() as usize, buf.len())), self.buffered.is_some());
        route.count();
        route
    }
}

impl SyncEngine {
    /// Opens `path` (a regular file or a block device) for reading, and for writing unless
    /// `read_only`.
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        Self::open_with(path, read_only, false)
    }

    /// As [`SyncEngine::open`]; with O_DIRECT when `direct`.
    pub fn open_with(path: &Path, read_only: bool, direct: bool) -> io::Result<Self> {
        Self::open_aligned(path, read_only, direct.then_some(None))
    }

    /// `direct`: `None` for buffered I/O, `Some(None)` for O_DIRECT with the file's
    /// alignment, `Some(Some(a))` for O_DIRECT as if the file needed `a` (tests).
    pub(crate) fn open_aligned(path: &Path, read_only: bool, direct: Option<Option<DioAlign>>) -> io::Result<Self> {
        let mut file = direct::open(path, read_only, direct.is_some())?;
        let direct = match direct {
            Some(align) => Some(Direct::open(path, read_only, &file, align)?),
            None => None,
        };
        let size = file.seek(SeekFrom::End(0))?;
        Ok(Self { file, size, direct })
    }

    /// The open disk file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// With O_DIRECT: the alignment and the buffered descriptor.
    pub(crate) fn direct(&self) -> Option<&Direct> {
        self.direct.as_ref()
    }
}

impl BlockBackend for SyncEngine {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let Some(d) = &self.direct else { return self.file.read_exact_at(buf, offset) };
        match d.route(offset, buf) {
            Route::Direct => self.file.read_exact_at(buf, offset),
            Route::Buffered => d.buffered.as_ref().expect("a buffered descriptor").read_exact_at(buf, offset),
            Route::Bounce => {
                let mut bounce = AlignedBuf::new(buf.len(), d.align.mem);
                self.file.read_exact_at(&mut bounce, offset)?;
                buf.copy_from_slice(&bounce);
                Ok(())
            }
        }
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let Some(d) = &self.direct else { return self.file.write_all_at(buf, offset) };
        match d.route(offset, buf) {
            Route::Direct => self.file.write_all_at(buf, offset),
            Route::Buffered => d.buffered.as_ref().expect("a buffered descriptor").write_all_at(buf, offset),
            Route::Bounce => {
                let mut bounce = AlignedBuf::new(buf.len(), d.align.mem);
                bounce.copy_from_slice(buf);
                self.file.write_all_at(&bounce, offset)
            }
        }
    }

    fn flush(&self) -> io::Result<()> {
        // One inode: this also makes writes through the buffered descriptor durable.
        self.file.sync_data()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        punch_hole(&self.file, offset, len)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: the range is deallocated and reads as zeros.
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (offset, len) = (libc::off_t::try_from(offset), libc::off_t::try_from(len));
    let (Ok(offset), Ok(len)) = (offset, len) else { return Err(io::Error::from_raw_os_error(libc::EINVAL)) };
    // SAFETY: a valid descriptor; fallocate reads only its integer arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_util::TempDir;

    #[test]
    fn file_io() {
        let dir = TempDir::new("blk");
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let e = SyncEngine::open(&path, false).unwrap();
        assert_eq!(e.size(), 4096);
        e.write_at(512, &[1; 512]).unwrap();
        e.flush().unwrap();
        let mut buf = [0u8; 1024];
        e.read_at(0, &mut buf).unwrap();
        assert_eq!((buf[511], buf[512], buf[1023]), (7, 1, 1));
        assert!(e.read_at(4000, &mut buf).is_err(), "a short read is an error");

        let ro = SyncEngine::open(&path, true).unwrap();
        assert!(ro.write_at(0, &[0; 512]).is_err());
        assert!(SyncEngine::open(dir.path(), true).is_err(), "a directory is not a disk");
        assert!(SyncEngine::open(&dir.path().join("missing"), false).is_err());
    }

    /// O_DIRECT with buffers at every alignment: aligned ones go straight to the file,
    /// others through a bounce buffer; the data is the same either way.
    #[test]
    fn direct_io_any_buffer() {
        let dir = TempDir::new("blk-direct");
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![7u8; 16384]).unwrap();
        for align in [None, Some(DioAlign::new(4096, 4096))] {
            let e = SyncEngine::open_aligned(&path, false, Some(align)).unwrap();
            assert!(direct::is_direct(e.file()));
            assert_eq!(e.size(), 16384);
            let mut aligned = AlignedBuf::new(4096, 4096);
            aligned.fill(1);
            e.write_at(4096, &aligned).unwrap();
            // A Vec's buffer, 1 byte in: never aligned.
            let mut odd = vec![2u8; 4097];
            e.write_at(8192, &odd[1..]).unwrap();
            // 512 bytes at sector 1: aligned for a 512-byte host, not for a 4 KiB one.
            e.write_at(512, &odd[1..513]).unwrap();
            e.flush().unwrap();
            let file = std::fs::read(&path).unwrap();
            assert_eq!((file[511], file[512], file[1023], file[1024]), (7, 2, 2, 7));
            assert!(file[4096..8192].iter().all(|&b| b == 1));
            assert!(file[8192..12288].iter().all(|&b| b == 2));

            e.read_at(4096, &mut odd[1..]).unwrap();
            assert!(odd[1..].iter().all(|&b| b == 1));
            e.read_at(8192, &mut aligned).unwrap();
            assert!(aligned.iter().all(|&b| b == 2));
            e.read_at(0, &mut odd[1..1025]).unwrap();
            assert_eq!((odd[1], odd[512], odd[513], odd[1024]), (7, 7, 2, 2));
            assert!(e.read_at(16384 - 512, &mut odd[1..1025]).is_err(), "a short read is an error");
        }
    }
}
