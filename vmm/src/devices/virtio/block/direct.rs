//! Direct I/O (`--disk FILE,direct=on`): the disk file opened with O_DIRECT, so that the
//! guest's reads and writes reach the host's storage instead of its page cache, as an
//! O_DIRECT program on the host does.
//!
//! O_DIRECT asks for alignment: the file offset and the length of every buffer a multiple
//! of the file's direct-I/O offset alignment, and every buffer's address a multiple of its
//! memory alignment (statx `STATX_DIOALIGN`; typically 512 and 512 or 4). virtio-blk
//! requests are whole 512-byte sectors, but their data buffers are wherever the guest put
//! them: a guest kernel's bounce buffer from its heap, a buffer split over descriptors of
//! any length. Both engines check each request ([`DioAlign`]) and never fail one for its
//! alignment:
//! - buffers not aligned: the transfer goes through one aligned buffer ([`AlignedBuf`])
//!   and is copied to or from the guest's buffers (counted in [`STATS`]`.bounced`);
//! - offset or length not aligned (only when the host needs more than 512 bytes, on a
//!   4 KiB-sector device): the request is served through a second descriptor of the same
//!   file opened without O_DIRECT (`STATS.buffered`). Linux keeps the two coherent (a
//!   direct read writes back the cached range first, a direct write invalidates it); a
//!   read-modify-write of whole blocks could not be, with other requests in flight.

use std::alloc::Layout;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// What direct I/O did in this process, for `vmm run --stats`.
pub struct DirectStats {
    /// Requests with data (reads and writes) served with O_DIRECT.
    pub requests: AtomicU64,
    /// Of those, requests whose buffers were not aligned: copied through an aligned buffer.
    pub bounced: AtomicU64,
    /// Requests whose offset or length was not aligned: served without O_DIRECT.
    pub buffered: AtomicU64,
}

pub static STATS: DirectStats = DirectStats { requests: AtomicU64::new(0), bounced: AtomicU64::new(0), buffered: AtomicU64::new(0) };

/// How a direct-I/O request is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight from or into the caller's buffers.
    Direct,
    /// Through an aligned buffer.
    Bounce,
    /// Through the buffered descriptor.
    Buffered,
}

impl Route {
    /// Counts one request taking this route.
    pub fn count(self) {
        STATS.requests.fetch_add(1, Ordering::Relaxed);
        match self {
            Route::Direct => {}
            Route::Bounce => _ = STATS.bounced.fetch_add(1, Ordering::Relaxed),
            Route::Buffered => _ = STATS.buffered.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The alignment O_DIRECT needs on one file (both powers of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DioAlign {
    /// Of buffer addresses in memory.
    pub mem: usize,
    /// Of file offsets and buffer lengths.
    pub offset: u64,
}

/// Assumed when the kernel does not say (before Linux 6.1, or a file system that does not
/// report it): a page satisfies every common device.
const FALLBACK_ALIGN: u32 = 4096;

impl DioAlign {
    /// Asks the kernel (statx `STATX_DIOALIGN`); for a block device that it does not
    /// answer for, its logical sector size; otherwise 4096 for both. An error when the
    /// kernel says this file cannot do direct I/O.
    pub fn of(file: &File) -> io::Result<Self> {
        // SAFETY: statx only writes the struct it is given; zero is a valid statx.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor, an empty NUL-terminated path with AT_EMPTY_PATH
        // (the descriptor itself), and a writable statx.
        let r = unsafe { libc::statx(file.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_DIOALIGN, &mut stx) };
        if r == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0 {
            if stx.stx_dio_offset_align == 0 {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "the file system cannot do direct I/O on this file"));
            }
            return Ok(Self::new(stx.stx_dio_mem_align.max(1), stx.stx_dio_offset_align));
        }
        if file.metadata()?.file_type().is_block_device() {
            let mut size: libc::c_int = 0;
            // SAFETY: BLKSSZGET writes one int.
            if unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut size) } == 0 && size > 0 {
                return Ok(Self::new(size as u32, size as u32));
            }
        }
        Ok(Self::new(FALLBACK_ALIGN, FALLBACK_ALIGN))
    }

    /// Both rounded up to powers of two.
    pub fn new(mem: u32, offset: u32) -> Self {
        Self { mem: mem.next_power_of_two() as usize, offset: u64::from(offset.next_power_of_two()) }
    }

    /// Whether `len` bytes at file offset `offset` may be transferred with O_DIRECT at all.
    pub fn range_ok(&self, offset: u64, len: u64) -> bool {
        (offset | len) & (self.offset - 1) == 0
    }

    /// Whether a buffer at `addr` of `len` bytes may be used as it is.
    pub fn buf_ok(&self, addr: usize, len: usize) -> bool {
        addr & (self.mem - 1) == 0 && len as u64 & (self.offset - 1) == 0
    }

    /// How to carry out a transfer of `len` bytes at `offset` from or into `bufs`
    /// (address, length each). A range that O_DIRECT cannot take goes to the buffered
    /// descriptor when there is one (`has_buffered`); without one (the alignment is at
    /// most a sector, so this cannot happen for virtio-blk requests) it is tried anyway.
    pub fn route(&self, offset: u64, len: u64, bufs: impl IntoIterator<Item = (usize, usize)>, has_buffered: bool) -> Route {
        if !self.range_ok(offset, len) && has_buffered {
            Route::Buffered
        } else if bufs.into_iter().all(|(addr, n)| self.buf_ok(addr, n)) {
            Route::Direct
        } else {
            Route::Bounce
        }
    }

    /// Whether requests of whole 512-byte sectors can be misaligned for this file (then a
    /// buffered descriptor is kept for them).
    pub fn needs_buffered(&self) -> bool {
        self.offset > super::SECTOR_SIZE
    }
}

/// Opens `path` (a regular file or a block device) for reading, and for writing unless
/// `read_only`, with O_DIRECT when `direct`.
pub fn open(path: &Path, read_only: bool, direct: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(!read_only);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let file = options.open(path).map_err(|e| {
        if direct && e.raw_os_error() == Some(libc::EINVAL) {
            io::Error::new(e.kind(), format!("cannot open with O_DIRECT (direct=on), the file system refuses it: {e}"))
        } else {
            e
        }
    })?;
    let ty = file.metadata()?.file_type();
    if !ty.is_file() && !ty.is_block_device() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file or block device"));
    }
    Ok(file)
}

/// A zeroed heap buffer whose address is a multiple of its alignment.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    /// What was allocated: at least one byte.
    layout: Layout,
}

// SAFETY: the buffer is owned memory, like a Vec<u8>'s.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access is read-only, like a Vec<u8>'s.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes at an address that is a multiple of `align` (a power of two) and
    /// of 4096 (a page).
    pub fn new(len: usize, align: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), align.max(4096)).expect("a power-of-two alignment and a sane length");
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else { std::alloc::handle_alloc_error(layout) };
        Self { ptr, len, layout }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` initialized (zeroed) bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Whether `file` was opened with O_DIRECT.
pub fn is_direct(file: &File) -> bool {
    // SAFETY: F_GETFL on a valid descriptor reads its flags.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_DIRECT != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_util::TempDir;

    #[test]
    fn alignment_checks() {
        let a = DioAlign::new(512, 512);
        assert!(a.range_ok(0, 4096) && a.range_ok(512, 512));
        assert!(!a.range_ok(100, 512) && !a.range_ok(512, 100));
        assert!(a.buf_ok(0x1000, 4096) && a.buf_ok(0x1200, 512));
        assert!(!a.buf_ok(0x1010, 4096), "address not aligned");
        assert!(!a.buf_ok(0x1000, 100), "length not aligned");
        let bufs = |v: &[(usize, usize)]| v.to_vec();
        assert_eq!(a.route(0, 4096, bufs(&[(0x1000, 4096)]), false), Route::Direct);
        assert_eq!(a.route(0, 4096, bufs(&[(0x1000, 512), (0x3000, 3584)]), false), Route::Direct);
        assert_eq!(a.route(0, 4096, bufs(&[(0x1010, 4096)]), false), Route::Bounce);
        assert_eq!(a.route(0, 4096, bufs(&[(0x1000, 100), (0x2000, 3996)]), false), Route::Bounce);
        assert!(!a.needs_buffered());

        let big = DioAlign::new(4096, 4096);
        assert!(big.needs_buffered());
        assert_eq!(big.route(512, 512, bufs(&[(0x1000, 512)]), true), Route::Buffered);
        assert_eq!(big.route(4096, 4096, bufs(&[(0x1000, 4096)]), true), Route::Direct);
        assert_eq!(big.route(4096, 4096, bufs(&[(0x1200, 4096)]), true), Route::Bounce);
        assert_eq!(DioAlign::new(3, 500), DioAlign { mem: 4, offset: 512 });
    }

    #[test]
    fn aligned_buffers() {
        for (len, align) in [(1, 512), (4096, 4096), (128 << 10, 8192), (0, 512)] {
            let mut b = AlignedBuf::new(len, align);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_mut_ptr() as usize % align.max(4096), 0);
            assert!(b.iter().all(|&x| x == 0));
            b.fill(3);
        }
    }

    #[test]
    fn opens_with_o_direct() {
        let dir = TempDir::new("direct");
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let f = open(&path, true, true).unwrap();
        assert!(is_direct(&f));
        let a = DioAlign::of(&f).unwrap();
        assert!(a.mem.is_power_of_two() && a.offset.is_power_of_two() && a.offset >= 1);
        assert!(!is_direct(&open(&path, false, false).unwrap()));
        assert!(open(dir.path(), true, true).is_err(), "a directory is not a disk");
    }
}
