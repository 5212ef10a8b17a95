//! virtio-net: both queues of the device, and frames from the host side of its tap.
//!
//! The device is the VMM's own (`NetHandler`, activated with or without MRG_RXBUF) on a
//! stand-in tap: one end of a datagram socket pair (`Tap::from_file`, as the device's
//! unit tests do), whose other end plays the host (it sends frames, header included,
//! and receives what the guest transmits). A `Worker` serves the receive queue (0) and
//! the transmit queue (1) through the entry points its thread uses: `process_queue`
//! after a kick, and `complete` when the handler's completion fd is readable, which the
//! target asks with `poll(0)` as the thread's epoll would.
//!
//! The handler serves its tap one of two ways, as the input chooses: through the host's
//! io_uring (transmit frames as a batch of WRITEVs submitted when a queue is drained,
//! receive readiness from a POLL_ADD on the tap; the completion fd is the ring's
//! eventfd), or the fallback for hosts without one (`NetHandler::without_uring`: one
//! `writev` per transmit frame, and an epoll of the handler's own, the completion fd,
//! on the tap and a wake eventfd). Both read frames with one `readv` each. (On a host
//! whose io_uring is unavailable both are the fallback.)
//!
//! The input is a flags byte, a host byte, then 8-byte operations, the guest's and the
//! host's interleaved. flags: bit 0 MRG_RXBUF, bit 1 EVENT_IDX, bits 2..4 the receive
//! queue's size and bits 5..7 the transmit queue's (2^n). host: bit 0 the fallback
//! (epoll, `readv`, `writev`) rather than the ring; bit 1 the checksum offloads
//! negotiated (CSUM and GUEST_CSUM: transmit headers may ask for a checksum, and the
//! tap's NEEDS_CSUM frames reach the guest); the other bits are ignored. Guest
//! memory is [`MEM_SIZE`] bytes: the receive queue's rings from 0 and the transmit
//! queue's from 0x2000 (each packed as [`layout`] says), an area for indirect tables
//! per queue at 0x4000 and 0x5000, and buffers anywhere. `q` below is bit 0 of the
//! operation's second byte.
//!
//! op[0] % 8:
//! - 0 descriptor: byte 1 = q | flags << 1 (NEXT 1, WRITE 2, INDIRECT 4) | 0x10 (in
//!   q's indirect area rather than its table) | 0x20 (the address counted down from
//!   2^64, outside memory); byte 2 index; bytes 3..5 address; 5..7 length; 7 next.
//! - 1 post: the head (bytes 2..4) in q's avail ring, and its idx + 1.
//! - 2 kick q: `process_queue` (on the ring, the transmit batch is written there).
//! - 3 a frame from the host: byte 1 the tap header's flags, 2 its gso_type, 3..5 and
//!   bit 0 of 5 the datagram's length (header included, 1..2^17), 6 the data's first
//!   byte, 7 the low and high byte of every other header field.
//! - 4 the worker wakes: up to byte 1 % 4 + 1 times, `complete` while the handler's
//!   completion fd is readable.
//! - 5 poke the u32 of bytes 3..7 at the guest address of bytes 1..3.
//! - 6 q's avail flags (byte 1 bit 1 clear) or used_event (set) := bytes 2..4.
//! - 7 the host reads every frame the device transmitted.
//!
//! As the worker, the target stops serving at the first device error (the device needs
//! a reset). It checks:
//! - each frame the host receives: 1 to 65535 bytes after a header that asks for no
//!   offload, has no flag, no `num_buffers` and an `hdr_len` within the frame; and they
//!   are all the frames (and bytes) the device counted as sent;
//! - each `complete`: frames are taken from the tap in order, none that was sent is
//!   taken twice nor one that was not sent; of those taken, only frames with data and a
//!   header without offloads (NEEDS_CSUM, a GSO type) may reach the guest, every byte of
//!   which is accounted for by the used entries (their lengths total the frames' and a
//!   header each), and each used entry names a head of the receive queue;
//! - every iovec the device hands the kernel for the tap lies inside guest memory, but
//!   the device's own header (first) and bounce buffer (last, receive), at most
//!   [`IOV_MAX`] of them (`check_iovecs`): those of each WRITEV the ring path submits,
//!   seen through the handler's write hook (`NetHandler::with_write_hook`, called as the
//!   SQE is built), in every build; and, in the fuzz binary only
//!   (`fuzz_targets/net.rs` puts [`readv`] and [`writev`] in front of libc's), those of
//!   every `readv` (both paths) and `writev` (the fallback, and a ring write retried
//!   with `writev`).
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};
use vmm::devices::virtio::net::device::NetHandler;
use vmm::devices::virtio::net::rx::IOV_MAX;
use vmm::devices::virtio::net::tap::Tap;
use vmm::devices::virtio::net::{NetHdr, HDR_LEN, MAX_RX_FRAME, MAX_TX_FRAME, RX_QUEUE, STATS};
use vmm::devices::virtio::worker::Worker;
use vmm::devices::virtio::{Interrupt, QueueHandler};
use vmm_sys_util::eventfd::EventFd;
use crate::*;

/// Where each queue's rings begin (receive, transmit), and its indirect area.
pub const RINGS: [u64; 2] = [0x0000, 0x2000];
pub const INDIRECT: [u64; 2] = [0x4000, 0x5000];

/// The device's counters (global: inputs are played one at a time, see [`LOCK`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl Counters {
    fn now() -> Self {
        Self {
            rx_frames: STATS.rx_frames.load(Relaxed),
            rx_bytes: STATS.rx_bytes.load(Relaxed),
            rx_dropped: STATS.rx_dropped.load(Relaxed),
            tx_frames: STATS.tx_frames.load(Relaxed),
            tx_bytes: STATS.tx_bytes.load(Relaxed),
            tx_dropped: STATS.tx_dropped.load(Relaxed),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            rx_frames: self.rx_frames - before.rx_frames,
            rx_bytes: self.rx_bytes - before.rx_bytes,
            rx_dropped: self.rx_dropped - before.rx_dropped,
            tx_frames: self.tx_frames - before.tx_frames,
            tx_bytes: self.tx_bytes - before.tx_bytes,
            tx_dropped: self.tx_dropped - before.tx_dropped,
        }
    }
}

/// What one input did (for `tests/seeds.rs`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The device's counters over the input.
    pub counters: Counters,
    /// Frames the host sent (the socket took them), and received (and their bytes
    /// after the header).
    pub host_sent: u64,
    pub host_received: u64,
    pub host_bytes: u64,
    /// The device stopped on an error (it needs a reset).
    pub broken: bool,
    /// The handler served the tap through io_uring (not the fallback).
    pub uring: bool,
    /// WRITEVs the ring path submitted, each with its iovecs checked.
    pub ring_writes: u64,
}

/// One input at a time: the device's counters are global (`cargo test` runs tests on
/// threads), and so is the iovec check's idea of the tap and guest memory.
static LOCK: Mutex<()> = Mutex::new(());

/// A frame the host sent: its length after the header, and whether the guest may get it.
struct Sent {
    len: usize,
    deliverable: bool,
}

/// Plays one input.
pub fn run(data: &[u8]) {
    play(data);
}

/// Plays one input, and says what it did.
pub fn play(data: &[u8]) -> Report {
    let _one = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((&flags, rest)) = data.split_first() else { return Report::default() };
    let Some((&host_flags, ops)) = rest.split_first() else { return Report::default() };
    let mrg = flags & 1 != 0;
    let event_idx = flags & 2 != 0;
    let sizes = [1u16 << (flags >> 2 & 7), 1u16 << (flags >> 5 & 7)];
    let mem = guest_memory();
    let (tap, host) = fake_tap();
    let tap_fd = tap.fd();
    let mut handler = NetHandler::new(Arc::new(tap), mrg).with_write_hook(check_ring_write);
    if host_flags & 1 != 0 {
        handler = handler.without_uring();
    }
    let offload = host_flags & 2 != 0;
    if offload {
        // (prepare's TUNSETOFFLOAD fails on the stand-in tap, a socket: logged, harmless.)
        handler = handler.with_checksum_offload(true, true);
    }
    // What the worker thread does first (the ring, or the epoll and its wake eventfd).
    handler.prepare();
    let uring = handler.uses_uring();
    assert!(!uring || host_flags & 1 == 0, "the handler chose io_uring when told not to");
    let completion = handler.completion_fd().expect("virtio-net: no completion fd after prepare");
    let queues = (0..2).map(|q| (q, queue(&mem, RINGS[q], sizes[q], event_idx), eventfd())).collect();
    let interrupt = Arc::new(Interrupt::new(eventfd()));
    let mut worker = Worker::new(
        "fuzz-net".into(),
        mem.clone(),
        queues,
        Box::new(handler),
        interrupt,
        None,
        eventfd(),
        std::time::Duration::ZERO,
        None,
    );
    let _checked = CheckIovecs::arm(tap_fd, &mem);
    let start = Counters::now();
    let ring_writes = RING_WRITES.load(Relaxed);
    let mut report = Report { uring, ..Report::default() };
    let mut sent = VecDeque::new();
    let mut buf = vec![0u8; HDR_LEN + MAX_TX_FRAME + 1];
    let mut broken = false;
    for op in ops.chunks_exact(8) {
        let q = usize::from(op[1] & 1);
        let size = sizes[q];
        let (_, avail, _, _) = layout(size);
        let avail = RINGS[q] + avail;
        let half = |at: usize| u16::from_le_bytes([op[at], op[at + 1]]);
        match op[0] % 8 {
            0 => {
                let at = if op[1] & 0x10 != 0 {
                    INDIRECT[q] + 16 * u64::from(op[2])
                } else {
                    RINGS[q] + 16 * u64::from(u16::from(op[2]) % size)
                };
                let addr = u64::from(half(3));
                let addr = if op[1] & 0x20 != 0 { u64::MAX - addr } else { addr };
                let _ = mem.write_obj(addr, GuestAddress(at));
                let _ = mem.write_obj(u32::from(half(5)), GuestAddress(at + 8));
                let _ = mem.write_obj(u16::from(op[1] >> 1 & 7), GuestAddress(at + 12));
                let _ = mem.write_obj(u16::from(op[7]), GuestAddress(at + 14));
            }
            1 => {
                let idx: u16 = mem.read_obj(GuestAddress(avail + 2)).unwrap();
                mem.write_obj(half(2), GuestAddress(avail + 4 + 2 * u64::from(idx % size))).unwrap();
                mem.write_obj(idx.wrapping_add(1), GuestAddress(avail + 2)).unwrap();
            }
            2 if !broken => broken = worker.process_queue(q).is_err(),
            3 => {
                let total = (usize::from(half(3)) | usize::from(op[5] & 1) << 16).max(1);
                let field = u16::from_le_bytes([op[7], op[7]]);
                let hdr = NetHdr {
                    flags: op[1],
                    gso_type: op[2],
                    hdr_len: field,
                    gso_size: field,
                    csum_start: field,
                    csum_offset: field,
                    num_buffers: field,
                };
                let mut frame = hdr.to_bytes().to_vec();
                frame.truncate(total);
                frame.extend((0..total.saturating_sub(HDR_LEN)).map(|i| op[6].wrapping_add(i as u8)));
                if host_send(&host, &frame) {
                    report.host_sent += 1;
                    sent.push_back(Sent { len: total.saturating_sub(HDR_LEN), deliverable: total > HDR_LEN && deliverable(&hdr, offload) });
                }
            }
            4 => {
                for _ in 0..=op[1] % 4 {
                    if broken || !readable(completion) {
                        break;
                    }
                    broken = !complete(&mut worker, &mut sent, sizes[RX_QUEUE], mrg);
                }
            }
            5 => {
                let _ = mem.write_obj(u32::from_le_bytes([op[3], op[4], op[5], op[6]]), GuestAddress(u64::from(half(1))));
            }
            6 => {
                let at = if op[1] & 2 == 0 { avail } else { avail + 4 + 2 * u64::from(size) };
                mem.write_obj(half(2), GuestAddress(at)).unwrap();
            }
            7 => host_receive(&host, &mut buf, &mut report, offload),
            _ => {}
        }
    }
    // The worker catches up with what is left (as many rounds as the tap could need),
    // then the host takes what was sent.
    for _ in 0..64 {
        if broken || !readable(completion) {
            break;
        }
        broken = !complete(&mut worker, &mut sent, sizes[RX_QUEUE], mrg);
    }
    host_receive(&host, &mut buf, &mut report, offload);
    drop(worker);
    report.counters = Counters::now().since(start);
    report.ring_writes = RING_WRITES.load(Relaxed) - ring_writes;
    report.broken = broken;
    assert_eq!(
        (report.host_received, report.host_bytes),
        (report.counters.tx_frames, report.counters.tx_bytes),
        "frames (and bytes) the host received, and those the device counted as sent"
    );
    report
}

/// One `Worker::complete`, checked against the frames the host sent; false when the
/// device failed.
fn complete(worker: &mut Worker, sent: &mut VecDeque<Sent>, rx_size: u16, mrg: bool) -> bool {
    let before = Counters::now();
    let mut done = Vec::new();
    let ok = worker.complete(&mut done).is_ok();
    let d = Counters::now().since(before);
    // Each frame read from the tap is counted once, delivered or dropped, when it is done
    // with (a frame waiting for buffers, later): those counted are the next ones sent.
    let taken = usize::try_from(d.rx_frames + d.rx_dropped).unwrap();
    assert!(taken <= sent.len(), "the device took {taken} frames from the tap, of {} sent", sent.len());
    let taken: Vec<Sent> = sent.drain(..taken).collect();
    let deliverable = taken.iter().filter(|s| s.deliverable).count() as u64;
    let bytes: u64 = taken.iter().filter(|s| s.deliverable).map(|s| s.len as u64).sum();
    assert!(
        d.rx_frames <= deliverable && d.rx_bytes <= bytes,
        "{} frames ({} bytes) delivered of {} taken, only {deliverable} ({bytes} bytes) without offloads and not empty",
        d.rx_frames,
        d.rx_bytes,
        taken.len()
    );
    // (A frame longer than the bounce buffer may have been cut by the socket.)
    if d.rx_frames == deliverable && taken.iter().all(|s| s.len <= MAX_RX_FRAME) {
        assert_eq!(d.rx_bytes, bytes, "every deliverable frame was delivered, not every byte");
    }
    let mut used = 0u64;
    for &(queue, head, len) in &done {
        assert_eq!(queue, RX_QUEUE, "a completion for queue {queue}");
        assert!(head < rx_size, "a used entry for head {head} of a queue of {rx_size}");
        used += u64::from(len);
    }
    assert_eq!(used, d.rx_bytes + HDR_LEN as u64 * d.rx_frames, "used lengths of {done:?} for {d:?}");
    if mrg {
        assert!(done.len() as u64 >= d.rx_frames);
    } else {
        assert_eq!(done.len() as u64, d.rx_frames, "one buffer per frame without MRG_RXBUF");
    }
    ok
}

/// A split queue of `size` entries whose rings are packed from `base`.
/// Whether a frame from the tap with header `hdr` reaches the guest: never one asking
/// for a segmentation, one asking for a checksum only with the offloads on.
fn deliverable(hdr: &NetHdr, offload: bool) -> bool {
    hdr.gso_type == 0 && (hdr.flags & vmm::devices::virtio::net::VIRTIO_NET_HDR_F_NEEDS_CSUM == 0 || offload)
}

fn queue(mem: &GuestMemoryMmap, base: u64, size: u16, event_idx: bool) -> Queue {
    let mut q = Queue::new(256).unwrap();
    q.try_set_size(size).unwrap();
    let (desc, avail, used, _) = layout(size);
    q.try_set_desc_table_address(GuestAddress(base + desc)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(base + avail)).unwrap();
    q.try_set_used_ring_address(GuestAddress(base + used)).unwrap();
    q.set_event_idx(event_idx);
    q.set_ready(true);
    assert!(q.is_valid(mem));
    q
}

fn eventfd() -> EventFd {
    EventFd::new(libc::EFD_NONBLOCK).expect("eventfd")
}

/// A datagram socket pair, as `device.rs`'s tests make it: one end (nonblocking) is the
/// device's tap, the other the host's side of it (nonblocking too here).
fn fake_tap() -> (Tap, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors, which we own from here on.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors owned by nobody else.
    let (ours, host) = unsafe { (std::fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (Tap::from_file(ours, "fuzz"), host)
}

/// Sends one frame to the device; false when the socket has no room for it (the host
/// would drop it).
fn host_send(host: &OwnedFd, frame: &[u8]) -> bool {
    // SAFETY: a send of our own buffer.
    let n = unsafe { libc::send(host.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
    n == frame.len() as isize
}

/// Receives and checks every frame the device transmitted (`offload`: the guest may have
/// asked for checksums, whose field must lie in the frame).
fn host_receive(host: &OwnedFd, buf: &mut [u8], report: &mut Report, offload: bool) {
    loop {
        // SAFETY: a receive into our own buffer; MSG_TRUNC: the datagram's real length.
        let n = unsafe { libc::recv(host.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
        if n < 0 {
            return;
        }
        let n = n as usize;
        assert!(n > HDR_LEN && n <= HDR_LEN + MAX_TX_FRAME, "a frame of {n} bytes, header included, reached the tap");
        let hdr = NetHdr::from_bytes(buf[..HDR_LEN].try_into().unwrap());
        let csum_ok = hdr.flags == 0
            || offload
                && hdr.flags == vmm::devices::virtio::net::VIRTIO_NET_HDR_F_NEEDS_CSUM
                && usize::from(hdr.csum_start) + usize::from(hdr.csum_offset) + 2 <= n - HDR_LEN;
        assert!(
            csum_ok && hdr.gso_type == 0 && hdr.num_buffers == 0 && usize::from(hdr.hdr_len) <= n - HDR_LEN,
            "a frame of {} bytes reached the tap with the header {hdr:?}",
            n - HDR_LEN
        );
        report.host_received += 1;
        report.host_bytes += (n - HDR_LEN) as u64;
    }
}

/// Whether `fd` (the handler's completion fd: the ring's eventfd, or the fallback's epoll)
/// is readable now (the worker's level-triggered epoll would wake).
fn readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd that outlives the call.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 }
}

// ---- The iovecs the device gives the kernel for the tap ----

/// The stand-in tap's descriptor while an input plays (-1: none), guest memory's host
/// address, whether [`readv`] has ever been called (the fuzz binary interposes it), and
/// the WRITEVs [`check_ring_write`] has seen.
static TAP_FD: AtomicI32 = AtomicI32::new(-1);
static GUEST_BASE: AtomicUsize = AtomicUsize::new(0);
static INTERPOSED: AtomicBool = AtomicBool::new(false);
static RING_WRITES: AtomicU64 = AtomicU64::new(0);

struct CheckIovecs;

impl CheckIovecs {
    fn arm(tap: i32, mem: &GuestMemoryMmap) -> Self {
        let base = mem.get_host_address(GuestAddress(0)).expect("guest memory's host address");
        GUEST_BASE.store(base as usize, Relaxed);
        TAP_FD.store(tap, Relaxed);
        Self
    }
}

impl Drop for CheckIovecs {
    fn drop(&mut self) {
        TAP_FD.store(-1, Relaxed);
    }
}

/// Panics unless `iov` is what the device may hand the kernel for the tap: at most
/// IOV_MAX iovecs; the first its 12-byte header; with `bounce` (a read) the last its
/// bounce buffer; every other one inside guest memory.
fn check_iovecs(iov: &[libc::iovec], bounce: bool) {
    assert!(!iov.is_empty() && iov.len() <= IOV_MAX, "{} iovecs for the tap", iov.len());
    let base = GUEST_BASE.load(Relaxed);
    let last = iov.len() - 1;
    for (i, v) in iov.iter().enumerate() {
        let (start, len) = (v.iov_base as usize, v.iov_len);
        let inside = start >= base && start.checked_add(len).is_some_and(|end| end <= base + MEM_SIZE);
        let want = if i == 0 {
            len == HDR_LEN && !inside
        } else if bounce && i == last {
            len == MAX_RX_FRAME && !inside
        } else {
            inside && len > 0
        };
        assert!(want, "iovec {i} of {}: {start:#x}+{len:#x}, guest memory at {base:#x}+{MEM_SIZE:#x}", iov.len());
    }
}

/// The handler's write hook: the iovecs of a WRITEV about to go on the ring, which must
/// be for the stand-in tap and pass [`check_iovecs`]. (No interposition needed: every
/// build checks them, `cargo test` too.)
fn check_ring_write(fd: i32, iov: &[libc::iovec]) {
    assert!(fd >= 0 && fd == TAP_FD.load(Relaxed), "a WRITEV for descriptor {fd}, not the tap's");
    check_iovecs(iov, false);
    RING_WRITES.fetch_add(1, Relaxed);
}

/// libc's `readv`, after [`check_iovecs`] when `fd` is the stand-in tap.
///
/// # Safety
///
/// That of readv(2): `iov` points to `n` iovecs, each valid for writes of its length.
pub unsafe fn readv(fd: i32, iov: *const libc::iovec, n: i32) -> isize {
    INTERPOSED.store(true, Relaxed);
    if fd >= 0 && fd == TAP_FD.load(Relaxed) {
        // SAFETY: the caller's promise: `iov` points to `n` iovecs.
        check_iovecs(unsafe { std::slice::from_raw_parts(iov, usize::try_from(n).unwrap_or(0)) }, true);
    }
    // SAFETY: the caller's promise, passed on to the kernel.
    unsafe { libc::syscall(libc::SYS_readv, fd, iov, n) as isize }
}

/// libc's `writev`, after [`check_iovecs`] when `fd` is the stand-in tap.
///
/// # Safety
///
/// That of writev(2): `iov` points to `n` iovecs, each valid for reads of its length.
pub unsafe fn writev(fd: i32, iov: *const libc::iovec, n: i32) -> isize {
    if fd >= 0 && fd == TAP_FD.load(Relaxed) {
        // SAFETY: the caller's promise: `iov` points to `n` iovecs.
        check_iovecs(unsafe { std::slice::from_raw_parts(iov, usize::try_from(n).unwrap_or(0)) }, false);
    }
    // SAFETY: the caller's promise, passed on to the kernel.
    unsafe { libc::syscall(libc::SYS_writev, fd, iov, n) as isize }
}

/// Panics unless the device's calls to libc's `readv` reach [`readv`] (the fuzz binary
/// defines the symbol; a test binary does not, and checks no iovecs).
pub fn assert_interposed() {
    // SAFETY: readv of no iovec on no descriptor: EBADF, nothing touched.
    unsafe { libc::readv(-1, std::ptr::null(), 0) };
    assert!(INTERPOSED.load(Relaxed), "net: the fuzz binary's readv does not stand in front of libc's");
}
