//! virtio-net (virtio 1.x section 5.1): the link under `eth0`.
//!
//! - **Receive queue (0).** Filled with page-sized buffers at start. A frame comes back
//!   as a used entry: the interrupt moves it to `received`, where the stack's `recv`
//!   finds it; once the frame is dropped, its buffer goes back on the queue. With
//!   VIRTIO_NET_F_MRG_RXBUF a frame may span several buffers (the header's
//!   `num_buffers`); they are gathered before smoltcp sees the frame.
//! - **Transmit queue (1).** Each frame is written behind a 12-byte header
//!   (virtio_net_hdr_v1) into a page of its own, freed when the device is done. The queue
//!   is reaped when frames are sent, never by interrupt.
//! - **Checksum offload**, when the device offers it (no segmentation offload is taken).
//!   With VIRTIO_NET_F_CSUM smoltcp leaves TCP and UDP checksums out; the driver puts the
//!   pseudo-header's sum in the field and asks the device for the rest
//!   (VIRTIO_NET_HDR_F_NEEDS_CSUM, `csum_start`, `csum_offset`). With
//!   VIRTIO_NET_F_GUEST_CSUM a received frame may come with its checksum only partly
//!   computed (NEEDS_CSUM: it comes from the host, which vouches for it) or checked
//!   (DATA_VALID): smoltcp then checks none, and the driver checks the TCP and UDP
//!   checksums of the frames that say neither, dropping bad ones as smoltcp would.
//! - The interrupt wakes the stack's `netd`, which polls.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use smoltcp::phy::{Checksum, DeviceCapabilities, Medium};
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

use super::mmio::Mmio;
use super::queue::{Buffer, VirtQueue};
use crate::mm::{frame, frame_ptr, PAGE_SIZE};
use crate::sync::SpinLock;

const F_CSUM: u64 = 1 << 0;
const F_GUEST_CSUM: u64 = 1 << 1;
const F_MAC: u64 = 1 << 5;
const F_MRG_RXBUF: u64 = 1 << 15;
const F_STATUS: u64 = 1 << 16;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// sizeof(struct virtio_net_hdr_v1).
const HDR: usize = 12;
/// virtio_net_hdr_v1 flags.
const HDR_F_NEEDS_CSUM: u8 = 1;
const HDR_F_DATA_VALID: u8 = 2;
const MTU: usize = 1500;
/// An Ethernet header before the MTU's payload.
const FRAME_MAX: usize = MTU + 14;
const RX: u16 = 0;
const TX: u16 = 1;

pub struct NetDev {
    dev: super::Device,
    /// Used receive buffers not yet given to smoltcp: (page, bytes written).
    received: SpinLock<VecDeque<(u64, u32)>>,
    mrg: bool,
    /// VIRTIO_NET_F_CSUM and VIRTIO_NET_F_GUEST_CSUM were negotiated.
    csum: bool,
    guest_csum: bool,
}

impl NetDev {
    /// Puts a page on the receive queue (freed if the queue has no room, which cannot
    /// happen: there are never more pages than entries).
    fn post_rx(self: &Arc<Self>, page: u64) {
        let me = Arc::clone(self);
        let buf = [Buffer { phys: page, len: PAGE_SIZE as u32, device_writes: true }];
        let done = alloc::boxed::Box::new(move |len: u32| me.received.lock().push_back((page, len)));
        if super::Device::add_to(&self.dev.mmio, &self.dev.queues[usize::from(RX)], &buf, done).is_err() {
            frame::free(page);
        }
    }

    /// Frees the transmit buffers the device is done with.
    fn reap_tx(&self) {
        loop {
            let used = self.dev.queues[usize::from(TX)].lock().pop_used();
            let Some((done, len)) = used else { break };
            done.complete(len);
        }
    }
}

impl super::Interrupt for NetDev {
    fn interrupt(&self) {
        self.dev.mmio.ack_interrupt();
        loop {
            let used = self.dev.queues[usize::from(RX)].lock().pop_used();
            let Some((done, len)) = used else { break };
            done.complete(len);
        }
        crate::net::inet::stack::kick();
    }
}

/// The stack's handle on the device.
pub struct NetPhy {
    dev: Arc<NetDev>,
}

/// A received frame; its buffers go back on the receive queue when it is dropped.
pub struct RxFrame {
    dev: Arc<NetDev>,
    /// The frame's pages and the bytes of each (the first still with its header).
    pages: Vec<(u64, u32)>,
}

impl RxFrame {
    /// The flags of the frame's virtio header.
    fn hdr_flags(&self) -> u8 {
        // SAFETY: as in `with`: a page the device wrote and gave back, at least a header
        // long (checked by `recv`).
        unsafe { *frame_ptr(self.pages[0].0) }
    }

    /// Runs `f` on the Ethernet frame (without the virtio header).
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let page_bytes = |page: u64, len: u32| {
            // SAFETY: the device wrote `len` bytes (bounded by the page) into a page we
            // gave it and handed it back; we own it until it is posted again on drop.
            unsafe { core::slice::from_raw_parts(frame_ptr(page), (len as usize).min(PAGE_SIZE as usize)) }
        };
        if let [(page, len)] = self.pages[..] {
            return f(page_bytes(page, len).get(HDR..).unwrap_or(&[]));
        }
        let mut frame = Vec::new();
        for (k, &(page, len)) in self.pages.iter().enumerate() {
            let bytes = page_bytes(page, len);
            frame.extend_from_slice(if k == 0 { bytes.get(HDR..).unwrap_or(&[]) } else { bytes });
        }
        f(&frame)
    }
}

impl Drop for RxFrame {
    fn drop(&mut self) {
        for &(page, _) in &self.pages {
            self.dev.post_rx(page);
        }
    }
}

impl NetPhy {
    pub fn mtu(&self) -> usize {
        MTU
    }

    /// The next whole frame received, if any (with GUEST_CSUM, frames whose checksum the
    /// driver finds bad are dropped here).
    pub fn recv(&mut self) -> Option<RxFrame> {
        loop {
            let frame = self.next_frame()?;
            let flags = frame.hdr_flags();
            if !self.dev.guest_csum || flags & (HDR_F_NEEDS_CSUM | HDR_F_DATA_VALID) != 0 || frame.with(l4_checksum_ok) {
                return Some(frame);
            }
        }
    }

    fn next_frame(&mut self) -> Option<RxFrame> {
        let mut got = self.dev.received.lock();
        let &(first, len) = got.front()?;
        if (len as usize) < HDR {
            // Not even a header: dropped (its page goes back on the queue).
            let (page, len) = got.pop_front()?;
            drop(got);
            drop(RxFrame { dev: Arc::clone(&self.dev), pages: alloc::vec![(page, len)] });
            return self.next_frame();
        }
        // SAFETY: the device wrote this page and gave it back; `num_buffers` is at bytes
        // 10..12 of the header it wrote (checked: at least a header came back).
        let count = if self.dev.mrg && len as usize >= HDR { unsafe { core::ptr::read_unaligned(frame_ptr(first).add(10).cast::<u16>()) }.max(1) as usize } else { 1 };
        if got.len() < count {
            // The rest of the frame is still on its way.
            return None;
        }
        let pages: Vec<(u64, u32)> = got.drain(..count).collect();
        drop(got);
        Some(RxFrame { dev: Arc::clone(&self.dev), pages })
    }

    /// Whether a frame can be sent now (reaping what the device has sent).
    pub fn can_send(&mut self) -> bool {
        self.dev.reap_tx();
        self.dev.dev.queues[usize::from(TX)].lock().free_descriptors() > 0
    }

    /// Sends a frame of `len` bytes that `f` writes.
    pub fn send<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let len = len.min(FRAME_MAX);
        let Some(page) = frame::alloc() else {
            // Out of frames: the frame is built and dropped (TCP will resend it).
            let mut scratch = alloc::vec![0u8; len];
            return f(&mut scratch);
        };
        // SAFETY: a page of our own, not shared yet. smoltcp writes the whole frame; the
        // header is written here, and nothing past the frame is sent.
        let bytes = unsafe { core::slice::from_raw_parts_mut(frame_ptr(page), HDR + len) };
        bytes[..HDR].fill(0);
        let r = f(&mut bytes[HDR..]);
        if self.dev.csum {
            let (hdr, frame) = bytes.split_at_mut(HDR);
            offload_checksum(hdr, frame);
        }
        let buf = [Buffer { phys: page, len: (HDR + len) as u32, device_writes: false }];
        let done = alloc::boxed::Box::new(move |_| frame::free(page));
        if let Err(done) = super::Device::add_to(&self.dev.dev.mmio, &self.dev.dev.queues[usize::from(TX)], &buf, done) {
            done.complete(0);
        }
        r
    }

    pub fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps.max_burst_size = Some(64);
        // TCP and UDP checksums: the device computes outgoing ones with CSUM; with
        // GUEST_CSUM the driver checks incoming ones (see `recv`).
        let l4 = match (self.dev.csum, self.dev.guest_csum) {
            (false, false) => Checksum::Both,
            (true, false) => Checksum::Rx,
            (false, true) => Checksum::Tx,
            (true, true) => Checksum::None,
        };
        caps.checksum.tcp = l4;
        caps.checksum.udp = l4;
        caps
    }
}

/// Starts the device: its MAC and smoltcp's handle on it.
pub fn probe(mmio: Mmio, irq: u32) -> Option<(NetPhy, [u8; 6])> {
    let features = mmio.negotiate(F_CSUM | F_GUEST_CSUM | F_MAC | F_STATUS | F_MRG_RXBUF | VIRTIO_RING_F_EVENT_IDX)?;
    let event_idx = features & VIRTIO_RING_F_EVENT_IDX != 0;
    let mut queues = Vec::new();
    for index in [RX, TX] {
        let size = mmio.queue_max(index);
        let mut q = (size > 0).then(|| VirtQueue::new(index, size, event_idx)).flatten()?;
        if index == TX {
            q.set_polled();
        }
        let (desc, driver, device) = q.areas();
        mmio.setup_queue(index, q.size(), desc, driver, device);
        queues.push(q);
    }
    let mut mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    if features & F_MAC != 0 {
        for (i, b) in mac.iter_mut().enumerate() {
            *b = mmio.config_u8(i);
        }
    }
    let rx_size = queues[0].size();
    let dev = Arc::new(NetDev {
        dev: super::Device::new(mmio, queues),
        received: SpinLock::new(VecDeque::new()),
        mrg: features & F_MRG_RXBUF != 0,
        csum: features & F_CSUM != 0,
        guest_csum: features & F_GUEST_CSUM != 0,
    });
    // The handler first: a frame may come as soon as buffers are posted, and with
    // EVENT_IDX an interrupt nobody serviced is the last one.
    super::register_irq(irq, dev.clone());
    dev.dev.mmio.driver_ok();
    for _ in 0..rx_size {
        match frame::alloc() {
            Some(page) => dev.post_rx(page),
            None => break,
        }
    }
    super::Interrupt::interrupt(&*dev);
    log::info!(
        "virtio-net: eth0, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, checksum offload: transmit {}, receive {}",
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5],
        dev.csum,
        dev.guest_csum
    );
    Some((NetPhy { dev }, mac))
}

/// An Ethernet frame's IP addresses, transport protocol and transport bytes (None for
/// anything but unfragmented IPv4, or IPv6 without extension headers).
fn transport(frame: &[u8]) -> Option<(IpAddress, IpAddress, IpProtocol, usize, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let at = EthernetFrame::<&[u8]>::header_len();
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            let start = at + usize::from(ip.header_len());
            let end = at + usize::from(ip.total_len());
            Some((ip.src_addr().into(), ip.dst_addr().into(), ip.next_header(), start, end))
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let start = at + ip.header_len();
            Some((ip.src_addr().into(), ip.dst_addr().into(), ip.next_header(), start, start + usize::from(ip.payload_len())))
        }
        _ => None,
    }
}

/// Whether a received frame's TCP or UDP checksum is right (other frames pass: smoltcp
/// checks the rest). An IPv4 UDP checksum of 0 means none, as smoltcp takes it.
fn l4_checksum_ok(frame: &[u8]) -> bool {
    let Some((src, dst, proto, start, end)) = transport(frame) else { return true };
    let Some(l4) = frame.get(start..end) else { return true };
    match proto {
        IpProtocol::Tcp => TcpPacket::new_checked(l4).is_ok_and(|p| p.verify_checksum(&src, &dst)),
        IpProtocol::Udp => UdpPacket::new_checked(l4).is_ok_and(|p| p.verify_checksum(&src, &dst) || (matches!(src, IpAddress::Ipv4(_)) && p.checksum() == 0)),
        _ => true,
    }
}

/// With CSUM: a TCP or UDP frame leaves with the pseudo-header's sum in its checksum
/// field and the header asking the device for the rest (NEEDS_CSUM from `csum_start`,
/// stored at `csum_start + csum_offset`).
fn offload_checksum(hdr: &mut [u8], frame: &mut [u8]) {
    let Some((src, dst, proto, start, end)) = transport(frame) else { return };
    let field = match proto {
        IpProtocol::Tcp => 16,
        IpProtocol::Udp => 6,
        _ => return,
    };
    if end > frame.len() || start + field + 2 > end {
        return;
    }
    let sum = pseudo_header_sum(&src, &dst, proto, (end - start) as u32);
    frame[start + field..start + field + 2].copy_from_slice(&sum.to_be_bytes());
    hdr[0] = HDR_F_NEEDS_CSUM;
    hdr[6..8].copy_from_slice(&(start as u16).to_le_bytes());
    hdr[8..10].copy_from_slice(&(field as u16).to_le_bytes());
}

/// The ones'-complement sum (folded, not complemented) of the TCP/UDP pseudo-header:
/// both addresses, the protocol and the transport length (RFC 793, RFC 8200 8.1).
fn pseudo_header_sum(src: &IpAddress, dst: &IpAddress, proto: IpProtocol, len: u32) -> u16 {
    let mut acc: u32 = u32::from(u8::from(proto)) + (len >> 16) + (len & 0xffff);
    let mut add = |bytes: &[u8]| bytes.chunks(2).for_each(|w| acc += u32::from(u16::from_be_bytes([w[0], w[1]])));
    match (src, dst) {
        (IpAddress::Ipv4(s), IpAddress::Ipv4(d)) => {
            add(&s.octets());
            add(&d.octets());
        }
        (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
            add(&s.octets());
            add(&d.octets());
        }
        _ => {}
    }
    while acc > 0xffff {
        acc = (acc >> 16) + (acc & 0xffff);
    }
    acc as u16
}
