//! virtio-net queue processing, with no knowledge of the transport: each transmit chain
//! is sent when popped ([`super::tx`]); receive chains are held until frames come
//! ([`super::rx`]). All checks of what the guest wrote happen there: the chain's shape
//! when it is popped (`Chain::parse`, then `Receiver::push` or `tx::transmit`), a
//! transmit header once copied out of guest memory.
//!
//! How receiving is driven. Frames arrive without a kick, so the device's worker must
//! also wait on the tap. It does through [`QueueHandler::completion_fd`], which it waits
//! on (level-triggered) beside the queues' eventfds, calling [`QueueHandler::complete`]
//! when it is readable and then publishing the used entries and interrupting as for any
//! completion (EVENT_IDX's `used_event`, or VRING_AVAIL_F_NO_INTERRUPT). That descriptor
//! is an epoll instance of the handler's own ([`Watch`], made in
//! [`QueueHandler::prepare`] on the worker thread), which holds:
//! - the tap, only while chains are held and no frame waits for more ("armed"). With no
//!   chain to fill the device does not read the tap, so its readiness must not wake the
//!   worker (level-triggered, it would spin); the frames wait in the host kernel's tap
//!   queue, which bounds them (txqueuelen; beyond it the host drops).
//! - an eventfd the handler writes itself in [`QueueHandler::submit`] when the driver
//!   posted chains (a kick on the receive queue) while the tap was not armed, so that
//!   `complete` runs, finishes a frame that waited for chains, and arms the tap again.
//!
//! `complete` reads at most [`RX_BUDGET`] frames per call (one nonblocking `readv` each),
//! so that a flood from the host cannot keep the worker from the transmit queue and from
//! interrupting; a tap still readable wakes it again at once.
//!
//! Why not the host's io_uring, as the disk's `engine_uring` does. A read of a tap does
//! not finish when submitted but when a frame comes, maybe never; on a ring its iovecs,
//! and so the receive chains it would fill, must be chosen before the frame's length is
//! known, and stay the kernel's until then: a reset (which must leave no host I/O on
//! guest memory) would need IORING_OP_ASYNC_CANCEL, outside what our restricted rings
//! accept, and a wait for it. The poll that io_uring arms for a tap inside the kernel is
//! what the epoll does here, and a ready frame then costs one `readv`, as it would cost
//! one CQE. Transmit could batch its writes on a ring (one `io_uring_enter` per drained
//! queue instead of a `writev` per frame; a tap write never waits, the host takes the
//! frame at once): left until a measurement asks for it.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::rx::{Outcome, Receiver};
use super::tap::Tap;
use super::{tx, RX_QUEUE, TX_QUEUE};
use crate::devices::virtio::chain::Chain;
use crate::devices::virtio::{DeviceError, QueueHandler};

/// Most frames one [`QueueHandler::complete`] call takes from the tap.
pub const RX_BUDGET: usize = 64;

/// The handler's own epoll: what makes its completion fd readable.
struct Watch {
    epoll: Epoll,
    /// Written by the handler to get `complete` called.
    wake: EventFd,
    /// The tap is in `epoll`.
    armed: bool,
}

const WAKE_TOKEN: u64 = 0;
const TAP_TOKEN: u64 = 1;

impl Watch {
    fn new() -> io::Result<Self> {
        let epoll = Epoll::new()?;
        let wake = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        epoll.ctl(ControlOperation::Add, wake.as_raw_fd(), EpollEvent::new(EventSet::IN, WAKE_TOKEN))?;
        Ok(Self { epoll, wake, armed: false })
    }

    /// Puts the tap in the epoll (`on`) or takes it out. Taking it out, rather than
    /// asking for no events, also silences EPOLLERR, which a deleted tap reports forever.
    fn arm(&mut self, tap: RawFd, on: bool) -> io::Result<()> {
        if on != self.armed {
            let (op, event) = if on {
                (ControlOperation::Add, EpollEvent::new(EventSet::IN, TAP_TOKEN))
            } else {
                (ControlOperation::Delete, EpollEvent::default())
            };
            self.epoll.ctl(op, tap, event)?;
            self.armed = on;
        }
        Ok(())
    }
}

pub struct NetHandler {
    tap: Arc<Tap>,
    rx: Receiver,
    /// Made by `prepare` (or why it could not be).
    watch: Result<Watch, String>,
    /// Receive chains were posted since the last `submit`.
    posted: bool,
    /// Reading the tap failed for good (it was deleted): nothing more is received.
    rx_closed: bool,
}

impl NetHandler {
    /// A handler on `tap`; `mrg`: VIRTIO_NET_F_MRG_RXBUF was negotiated.
    pub fn new(tap: Arc<Tap>, mrg: bool) -> Self {
        Self { tap, rx: Receiver::new(mrg), watch: Err("not prepared".into()), posted: false, rx_closed: false }
    }

    fn watch(&mut self) -> Result<&mut Watch, DeviceError> {
        self.watch.as_mut().map_err(|e| DeviceError::Queue(format!("virtio-net: cannot watch the tap: {e}")))
    }
}

impl QueueHandler for NetHandler {
    fn process(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError> {
        match queue {
            TX_QUEUE => tx::transmit(mem, chain, &*self.tap),
            _ => Err(DeviceError::Queue(format!("virtio-net: queue {queue} is not the transmit queue"))),
        }
    }

    fn start(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: Chain) -> Result<Option<u32>, DeviceError> {
        if queue != RX_QUEUE {
            return self.process(queue, mem, &chain).map(Some);
        }
        self.watch()?;
        self.rx.push(chain)?;
        self.posted = true;
        Ok(None)
    }

    fn submit(&mut self) -> Result<(), DeviceError> {
        if !std::mem::take(&mut self.posted) || self.rx_closed {
            return Ok(());
        }
        let pending = self.rx.is_pending();
        let watch = self.watch()?;
        // Armed and nothing waiting: the tap's readiness brings `complete` when a frame
        // comes, and the new chains are there for it.
        if !watch.armed || pending {
            watch.wake.write(1).map_err(|e| DeviceError::Queue(format!("virtio-net: eventfd: {e}")))?;
        }
        Ok(())
    }

    fn completion_fd(&self) -> Option<RawFd> {
        self.watch.as_ref().ok().map(|w| w.epoll.as_raw_fd())
    }

    fn complete(&mut self, mem: &GuestMemoryMmap, done: &mut Vec<(usize, u16, u32)>) -> Result<(), DeviceError> {
        // Cleared first: a wake from here on makes the epoll readable again.
        let _ = self.watch()?.wake.read();
        if !self.rx_closed {
            for _ in 0..RX_BUDGET {
                match self.rx.receive(mem, &*self.tap, done)? {
                    Outcome::Delivered | Outcome::Dropped => {}
                    Outcome::Pending | Outcome::NoBuffers | Outcome::NoFrame => break,
                    Outcome::Failed(e) => {
                        log::warn!("virtio-net: reading tap {}: {e}; the guest receives nothing more", self.tap.name());
                        self.rx_closed = true;
                        break;
                    }
                }
            }
        }
        let want = !self.rx_closed && self.rx.wants_frames();
        let tap = self.tap.fd();
        self.watch()?.arm(tap, want).map_err(|e| DeviceError::Queue(format!("virtio-net: epoll: {e}")))
    }

    fn prepare(&mut self) {
        self.watch = Watch::new().map_err(|e| e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::TestQueue;
    use crate::devices::virtio::net::rx::tests::pattern;
    use crate::devices::virtio::net::{NetHdr, HDR_LEN};
    use crate::devices::virtio::worker::{Worker, WorkerHandle};
    use crate::devices::virtio::Interrupt;
    use std::fs::File;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};
    use vm_memory::{Bytes, GuestAddress};

    /// A datagram socket pair: one end stands in for the tap (message boundaries kept,
    /// nonblocking), the other plays the host's side of it.
    fn fake_tap() -> (Tap, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills two descriptors, which we own from here on.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, 0);
        // SAFETY: fresh descriptors owned by nobody else.
        let (ours, host) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETFL with a flag word on an open descriptor.
        assert_eq!(unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) }, 0);
        (Tap::from_file(ours, "fake"), host)
    }

    fn host_send(host: &OwnedFd, frame: &[u8]) {
        let msg = [&NetHdr::default().to_bytes()[..], frame].concat();
        // SAFETY: a send of our own buffer.
        let n = unsafe { libc::send(host.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        assert_eq!(n, msg.len() as isize);
    }

    fn host_recv(host: &OwnedFd) -> Vec<u8> {
        let mut buf = vec![0u8; 70000];
        // SAFETY: a receive into our own buffer (blocking: the socket's default).
        let n = unsafe { libc::recv(host.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n >= 0);
        buf.truncate(n as usize);
        buf
    }

    /// The CPU time (clock ticks) the thread named `name` has taken so far.
    fn thread_ticks(name: &str) -> Option<u64> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let path = task.ok()?.path();
            if std::fs::read_to_string(path.join("comm")).ok()?.trim_end() == name {
                let stat = std::fs::read_to_string(path.join("stat")).ok()?;
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                // utime and stime: fields 14 and 15, the 12th and 13th after the name.
                return Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?);
            }
        }
        None
    }

    struct Running {
        t: TestQueue,
        kick: EventFd,
        stop: EventFd,
        irq: EventFd,
        host: OwnedFd,
        thread: Option<WorkerHandle>,
        used_seen: u16,
    }

    impl Running {
        /// A worker serving queue `index` (on the TestQueue's rings) of a handler on a
        /// fake tap.
        fn start(name: &str, index: usize, mrg: bool) -> Self {
            let t = TestQueue::with_ram(16, 4 << 20);
            let q = t.queue();
            let (tap, host) = fake_tap();
            let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let stop = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let worker = Worker::new(
                name.into(),
                t.mem.clone(),
                vec![(index, q, kick.try_clone().unwrap())],
                Box::new(NetHandler::new(Arc::new(tap), mrg)),
                Arc::new(Interrupt::new(irq.try_clone().unwrap())),
                None,
                stop.try_clone().unwrap(),
                Duration::ZERO,
                None,
            );
            let thread = Some(worker.spawn().unwrap());
            Self { t, kick, stop, irq, host, thread, used_seen: 0 }
        }

        /// Waits for the next used element: (id, len).
        fn wait_used(&mut self) -> Option<(u32, u32)> {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let (idx, id, len) = self.t.used(self.used_seen);
                if idx != self.used_seen {
                    self.used_seen = self.used_seen.wrapping_add(1);
                    return Some((id, len));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        }

        fn no_more_used(&self) -> bool {
            std::thread::sleep(Duration::from_millis(50));
            self.t.used(0).0 == self.used_seen
        }

        /// Posts a receive chain of one buffer at descriptor `d`, and kicks.
        fn post(&mut self, d: u16, size: u32) {
            self.t.chain(d, &[(0x10_0000 + 0x2_0000 * u64::from(d), size, true)]);
            self.t.publish(d);
            self.kick.write(1).unwrap();
        }

        fn received(&self, d: u16, len: usize) -> Vec<u8> {
            let mut b = vec![0u8; len];
            self.t.mem.read_slice(&mut b, GuestAddress(0x10_0000 + 0x2_0000 * u64::from(d))).unwrap();
            b
        }

        fn finish(mut self) {
            self.stop.write(1).unwrap();
            self.thread.take().unwrap().join().unwrap();
        }
    }

    /// Frames from the host reach the guest's chains, in order, with an interrupt; when
    /// the guest has no chain the device leaves the tap alone (without spinning, and the
    /// frames stay in the host's queue), and takes them once the guest posts chains.
    #[test]
    fn receive_through_the_worker() {
        let name = "net-rx-test";
        let mut r = Running::start(name, RX_QUEUE, true);
        r.post(0, 2048);
        let frames: Vec<Vec<u8>> = (0..3).map(|i| pattern(100 + i, i as u8)).collect();
        for f in &frames {
            host_send(&r.host, f);
        }
        assert_eq!(r.wait_used(), Some((0, HDR_LEN as u32 + 100)));
        assert_eq!(&r.received(0, HDR_LEN + 100)[HDR_LEN..], &frames[0][..]);
        assert_eq!(NetHdr::from_bytes(&r.received(0, HDR_LEN).try_into().unwrap()).num_buffers, 1);
        assert!(r.irq.read().unwrap() >= 1, "an interrupt for the used entry");
        assert!(r.no_more_used());
        // No chain: the worker sleeps although frames wait.
        if let Some(before) = thread_ticks(name) {
            std::thread::sleep(Duration::from_millis(300));
            let spent = thread_ticks(name).unwrap() - before;
            assert!(spent <= 3, "the worker spun for {spent} ticks with no buffers");
        }
        r.post(1, 2048);
        r.post(2, 2048);
        assert_eq!(r.wait_used(), Some((1, HDR_LEN as u32 + 101)));
        assert_eq!(r.wait_used(), Some((2, HDR_LEN as u32 + 102)));
        assert_eq!(&r.received(1, HDR_LEN + 101)[HDR_LEN..], &frames[1][..]);
        assert_eq!(&r.received(2, HDR_LEN + 102)[HDR_LEN..], &frames[2][..]);
        // A chain posted before the frame: served when it comes, with no kick.
        r.post(3, 2048);
        std::thread::sleep(Duration::from_millis(20));
        let late = pattern(1514, 9);
        host_send(&r.host, &late);
        assert_eq!(r.wait_used(), Some((3, HDR_LEN as u32 + 1514)));
        assert_eq!(&r.received(3, HDR_LEN + 1514)[HDR_LEN..], &late[..]);
        r.finish();
    }

    /// A frame larger than one chain waits for the guest to post enough (MRG_RXBUF).
    #[test]
    fn a_large_frame_waits_for_chains_through_the_worker() {
        let mut r = Running::start("net-mrg-test", RX_QUEUE, true);
        r.post(0, 1024);
        let frame = pattern(3000, 1);
        host_send(&r.host, &frame);
        assert!(r.no_more_used());
        r.post(1, 1024);
        assert!(r.no_more_used());
        r.post(2, 1024);
        assert_eq!(r.wait_used(), Some((0, 1024)));
        assert_eq!(r.wait_used(), Some((1, 1024)));
        assert_eq!(r.wait_used(), Some((2, 964)));
        let back = [&r.received(0, 1024)[HDR_LEN..], &r.received(1, 1024)[..], &r.received(2, 964)[..]].concat();
        assert_eq!(back, frame);
        assert_eq!(NetHdr::from_bytes(&r.received(0, HDR_LEN).try_into().unwrap()).num_buffers, 3);
        r.finish();
    }

    /// Frames of the transmit queue reach the host with their header; a bad one is
    /// answered and dropped, and the device goes on.
    #[test]
    fn transmit_through_the_worker() {
        let mut r = Running::start("net-tx-test", TX_QUEUE, false);
        let frame = pattern(1514, 4);
        let (hdr, data) = (0x10_0000u64, 0x20_0000u64);
        r.t.mem.write_slice(&NetHdr::default().to_bytes(), GuestAddress(hdr)).unwrap();
        r.t.mem.write_slice(&frame, GuestAddress(data)).unwrap();
        r.t.chain(0, &[(hdr, 12, false), (data, 1514, false)]);
        r.t.publish(0);
        r.t.chain(2, &[(hdr, 12, false)]); // no frame: dropped
        r.t.publish(2);
        r.t.chain(3, &[(hdr, 12, false), (data, 60, false)]);
        r.t.publish(3);
        r.kick.write(1).unwrap();
        assert_eq!(r.wait_used(), Some((0, 0)));
        assert_eq!(r.wait_used(), Some((2, 0)));
        assert_eq!(r.wait_used(), Some((3, 0)));
        let sent = host_recv(&r.host);
        assert_eq!(&sent[..HDR_LEN], &[0; HDR_LEN]);
        assert_eq!(&sent[HDR_LEN..], &frame[..]);
        assert_eq!(&host_recv(&r.host)[HDR_LEN..], &frame[..60]);
        r.finish();
    }
}
