//! The synchronous engine: pread/pwrite/fdatasync on the backing file, on the device's
//! worker thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::BlockBackend;

pub struct SyncEngine {
    file: File,
    size: u64,
}

impl SyncEngine {
    /// Opens `path` (a regular file or a block device) for reading, and for writing unless
    /// `read_only`.
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let ty = file.metadata()?.file_type();
        use std::os::unix::fs::FileTypeExt;
        if !ty.is_file() && !ty.is_block_device() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file or block device"));
        }
        let size = file.seek(SeekFrom::End(0))?;
        Ok(Self { file, size })
    }

    /// The open disk file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl BlockBackend for SyncEngine {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn size(&self) -> u64 {
        self.size
    }
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
}
