//! `/proc`: what the kernel tells about itself. Only `/proc/meminfo` so far, with
//! Linux's first lines (MemTotal, MemFree, MemAvailable) and our own `KernelHeap` (bytes
//! of kernel heap in use), which leak tests compare before and after a workload.

use alloc::format;
use alloc::sync::Arc;
use core::any::Any;

use super::ramfs::RamDir;
use super::{alloc_ino, FileType, IoBuf, Node, Stat};
use crate::errno::*;
use crate::mm::{frame, heap, PAGE_SIZE};

struct MemInfo {
    ino: u64,
}

impl Node for MemInfo {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o444, nlink: 1, ..Stat::default() }
    }

    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        let (total, free) = frame::stats();
        let kib = |frames: u64| frames * PAGE_SIZE / 1024;
        let text = format!(
            "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\nKernelHeap:     {:8} kB\nKernelHeapBytes: {}\n",
            kib(total),
            kib(free),
            kib(free),
            heap::in_use() / 1024,
            heap::in_use()
        );
        let bytes = text.as_bytes();
        let start = (offset as usize).min(bytes.len());
        let n = (bytes.len() - start).min(buf.len());
        buf.put(0, &bytes[start..start + n])?;
        Ok(n)
    }

    fn nowait(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Makes `/proc` and its files.
pub fn populate(root: &RamDir) {
    let Ok(dir) = root.lookup("proc").or_else(|_| root.create("proc", FileType::Directory, 0o555)) else { return };
    if let Some(dir) = dir.as_any().downcast_ref::<RamDir>() {
        let _ = dir.add("meminfo", Arc::new(MemInfo { ino: alloc_ino() }));
    }
}
