//! virtio-9p (device id 9): a host directory shared with the guest over 9P2000.L.
//!
//! Spec types here (feature bit, config space: `tag_len[2] tag[tag_len]`); the protocol in
//! [`wire`] and [`server`]. Each request is one descriptor chain: the T-message in the
//! device-readable buffers, room for the R-message in the device-writable ones. As in
//! QEMU, a chain with fewer than 7 bytes (a 9P header) either way is a driver bug that
//! puts the device in DEVICE_NEEDS_RESET.

pub mod server;
pub mod sys;
pub mod wire;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use vm_memory::GuestMemoryMmap;

use super::chain::Chain;
use super::{DeviceError, QueueHandler, VirtioDevice, TYPE_9P, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};
use server::{Server, MAX_MSIZE};

/// The config space holds a mount tag.
pub const VIRTIO_9P_MOUNT_TAG: u32 = 0;
/// Longest mount tag accepted (QEMU's limit).
pub const MAX_TAG_LEN: usize = 255;
/// Requests queue size (QEMU's MAX_REQ).
pub const QUEUE_SIZE: u16 = 128;

pub struct P9Device {
    /// The share's root, opened once at startup: a reset never looks the path up again
    /// (the guest may have replaced it, e.g. by a symlink, if it can write its parent).
    root: Arc<OwnedFd>,
    read_only: bool,
    config: Vec<u8>,
}

impl P9Device {
    /// `root` must be a directory; `tag` at most [`MAX_TAG_LEN`] bytes.
    pub fn new(root: &Path, tag: &str, read_only: bool) -> std::io::Result<Self> {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let root = server::open_root(root)?;
        // /proc/self/fd too is opened once, now, if it is there.
        let _ = sys::proc_self_fd();
        let mut config = (tag.len() as u16).to_le_bytes().to_vec();
        config.extend_from_slice(tag.as_bytes());
        Ok(Self { root, read_only, config })
    }

    /// A server for a fresh activation: a device reset forgets every fid.
    fn server(&self) -> Server {
        Server::with_root(Arc::clone(&self.root), self.read_only)
    }
}

impl VirtioDevice for P9Device {
    fn device_type(&self) -> u32 {
        TYPE_9P
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX | 1 << VIRTIO_9P_MOUNT_TAG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn activate(&mut self, _features: u64) -> Box<dyn QueueHandler> {
        Box::new(P9Handler::new(self.server()))
    }

    fn poll_stats(&self) -> Option<&'static crate::devices::virtio::poll::PollStats> {
        // Kicks only: a 9p share is never busy-polled (no polling window).
        Some(&crate::devices::virtio::poll::P9_STATS)
    }
}

pub struct P9Handler {
    server: Server,
}

impl P9Handler {
    pub fn new(server: Server) -> Self {
        Self { server }
    }
}

impl QueueHandler for P9Handler {
    fn process(&mut self, _queue: usize, mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError> {
        let (in_len, out_len) = (chain.readable_len(), chain.writable_len());
        if in_len < wire::HEADER as u64 || out_len < wire::HEADER as u64 {
            return Err(DeviceError::Request(format!(
                "9p request without headers ({in_len} bytes to read, {out_len} to write)"
            )));
        }
        let server = &mut self.server;
        let mut size = [0u8; 4];
        chain.read_at(mem, 0, &mut size)?;
        // A size larger than the buffers (or than msize) is passed on truncated; the
        // server answers it with an error.
        let size = u64::from(u32::from_le_bytes(size)).min(in_len).min(u64::from(MAX_MSIZE)) as usize;
        let mut msg = vec![0u8; size];
        chain.read_at(mem, 0, &mut msg)?;
        let room = usize::try_from(out_len).unwrap_or(usize::MAX);
        let reply = server.handle(&msg, room);
        if reply.len() > room || !chain.write_at(mem, 0, &reply)? {
            crate::guest_warn!(crate::devices::guest_errors::P9, "9p: reply of {} bytes does not fit in {room}", reply.len());
            return Ok(0);
        }
        Ok(reply.len() as u32)
    }
}
