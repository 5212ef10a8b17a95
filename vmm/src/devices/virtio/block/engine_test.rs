//! The test engine, for tests only: the synchronous engine with faults a test needs.
//!
//! - Volatile (`--disk FILE,engine=volatile`): writes stay in the VMM's memory until a
//!   FLUSH writes them to the file (then fdatasync), as in a disk's volatile write cache;
//!   reads see them. Killing the VMM loses exactly the writes the guest did not flush, so
//!   a test can tell flushed data from data that only reached the host's page cache. A
//!   discard drops the pending writes in its range and punches the hole at once.
//! - Injected errors (`--disk FILE,eio=FIRST-LAST`): reads and writes that touch sectors
//!   FIRST to LAST (inclusive) fail with EIO, as a bad range of a real disk would.
//!
//! Nothing is bounded: every unflushed write is held in memory.

use std::collections::BTreeMap;
use std::io;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use super::engine_sync::SyncEngine;
use super::{BlockBackend, SECTOR_SIZE};

const SECTOR: usize = SECTOR_SIZE as usize;

pub struct TestEngine {
    inner: SyncEngine,
    /// Unflushed sectors by number (volatile mode).
    pending: Option<Mutex<BTreeMap<u64, Box<[u8; SECTOR]>>>>,
    eio: Option<RangeInclusive<u64>>,
}

impl TestEngine {
    /// `volatile`: hold writes until FLUSH; `eio`: sectors whose I/O fails.
    pub fn new(inner: SyncEngine, volatile: bool, eio: Option<RangeInclusive<u64>>) -> Self {
        Self { inner, pending: volatile.then(|| Mutex::new(BTreeMap::new())), eio }
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<()> {
        let (Some(bad), Some(last)) = (&self.eio, (offset + len as u64).checked_sub(1)) else { return Ok(()) };
        let (first, last) = (offset / SECTOR_SIZE, last / SECTOR_SIZE);
        if first <= *bad.end() && *bad.start() <= last {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    fn pending(&self) -> Option<std::sync::MutexGuard<'_, BTreeMap<u64, Box<[u8; SECTOR]>>>> {
        self.pending.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whole sectors only: the device checks lengths, offsets come from sector numbers.
fn sectors(offset: u64, len: usize) -> io::Result<u64> {
    if !offset.is_multiple_of(SECTOR_SIZE) || !len.is_multiple_of(SECTOR) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(offset / SECTOR_SIZE)
}

impl BlockBackend for TestEngine {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        self.inner.read_at(offset, buf)?;
        if let Some(pending) = self.pending() {
            let first = sectors(offset, buf.len())?;
            let end = first + (buf.len() / SECTOR) as u64;
            for (sector, data) in pending.range(first..end) {
                let at = (sector - first) as usize * SECTOR;
                buf[at..at + SECTOR].copy_from_slice(&data[..]);
            }
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        let Some(mut pending) = self.pending() else { return self.inner.write_at(offset, buf) };
        let first = sectors(offset, buf.len())?;
        if first + (buf.len() / SECTOR) as u64 > self.inner.size() / SECTOR_SIZE {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        for (n, chunk) in buf.chunks_exact(SECTOR).enumerate() {
            pending.insert(first + n as u64, Box::new(chunk.try_into().expect("a whole sector")));
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        if let Some(mut pending) = self.pending() {
            // Contiguous sectors go out in one write.
            let mut run: Vec<u8> = Vec::new();
            let mut run_start = 0;
            for (&sector, data) in pending.iter() {
                if !run.is_empty() && run_start + (run.len() / SECTOR) as u64 != sector {
                    self.inner.write_at(run_start * SECTOR_SIZE, &run)?;
                    run.clear();
                }
                if run.is_empty() {
                    run_start = sector;
                }
                run.extend_from_slice(&data[..]);
            }
            if !run.is_empty() {
                self.inner.write_at(run_start * SECTOR_SIZE, &run)?;
            }
            pending.clear();
        }
        self.inner.flush()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        if let Some(mut pending) = self.pending() {
            let first = offset / SECTOR_SIZE;
            let end = (offset + len).div_ceil(SECTOR_SIZE);
            pending.retain(|&s, _| s < first || s >= end);
        }
        self.inner.discard(offset, len)
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_util::TempDir;

    fn engine(dir: &TempDir, volatile: bool, eio: Option<RangeInclusive<u64>>) -> (TestEngine, std::path::PathBuf) {
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![0u8; 64 * SECTOR]).unwrap();
        (TestEngine::new(SyncEngine::open(&path, false).unwrap(), volatile, eio), path)
    }

    #[test]
    fn volatile_writes_reach_the_file_only_on_flush() {
        let dir = TempDir::new("volatile");
        let (e, path) = engine(&dir, true, None);
        e.write_at(SECTOR as u64, &[7u8; 2 * SECTOR]).unwrap();
        e.write_at(5 * SECTOR as u64, &[9u8; SECTOR]).unwrap();
        let mut buf = vec![0u8; 6 * SECTOR];
        e.read_at(0, &mut buf).unwrap();
        assert!(buf[..SECTOR].iter().all(|&b| b == 0) && buf[SECTOR..3 * SECTOR].iter().all(|&b| b == 7));
        assert!(buf[5 * SECTOR..].iter().all(|&b| b == 9));
        assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0), "not in the file before FLUSH");
        e.flush().unwrap();
        let file = std::fs::read(&path).unwrap();
        assert_eq!(&file[..6 * SECTOR], &buf[..]);
        e.write_at(0, &[1u8; SECTOR]).unwrap();
        drop(e); // the VMM dies: the unflushed write is gone
        assert!(std::fs::read(&path).unwrap()[..SECTOR].iter().all(|&b| b == 0));
    }

    #[test]
    fn injected_errors_hit_only_their_range() {
        let dir = TempDir::new("eio");
        let (e, _) = engine(&dir, false, Some(8..=15));
        let mut buf = vec![0u8; 8 * SECTOR];
        assert_eq!(e.read_at(0, &mut buf).map_err(|e| e.raw_os_error()), Ok(()));
        assert_eq!(e.read_at(SECTOR as u64, &mut buf).unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(e.write_at(15 * SECTOR as u64, &buf[..SECTOR]).unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(e.write_at(16 * SECTOR as u64, &buf).is_ok());
        assert!(e.flush().is_ok());
    }
}
