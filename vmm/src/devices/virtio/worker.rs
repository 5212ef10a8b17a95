//! The thread that serves a device's queues once the driver has set DRIVER_OK.
//!
//! It waits (epoll) on each queue's notification eventfd (written by KVM through an
//! ioeventfd on QueueNotify, or by the transport when the write reached it as an MMIO
//! exit), on the irqfd's resample eventfd when KVM gave one, and on a stop eventfd that
//! the transport writes on device reset. For each notified queue it drains the available
//! ring with virtio-queue's `Queue`, in the usual EVENT_IDX loop: notifications off, pop
//! and serve every chain, notifications on, and again if the driver added more meanwhile;
//! then, if it used any buffer, it asks `needs_notification` (used_event with EVENT_IDX,
//! else the avail ring's NO_INTERRUPT flag) whether to interrupt.
//! InterruptStatus is set before the irqfd is written (see [`Interrupt::raise`]).
//!
//! A handler with asynchronous host I/O (virtio-blk on io_uring) starts requests instead:
//! the worker hands the whole batch to the host after draining the avail ring, and also
//! waits on the handler's completion fd; each finished request's used entry is added
//! then, followed by the same interrupt decision. Host I/O that is done once submitted
//! (virtio-net's batch of frames to the tap) is published with the drain itself. When the
//! handler has no room for more requests, the worker stops popping chains until
//! completions free some. On stop (reset) or a device error, the worker waits for the
//! host I/O in flight before it exits.
//!
//! With a polling window (virtio-blk's `--blk-poll-us`), a queue whose driver reaps by
//! polling is also busy-polled after it had work: the worker suppresses its kicks and,
//! instead of sleeping, looks at its avail ring (and, with `epoll_wait(0)`, at every other
//! event) until no work has come for the window, then re-arms notifications with a fence
//! and a last look before it sleeps again. The rules are in [`super::poll`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use std::sync::atomic::Ordering;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::chain::Chain;
use super::poll::{self, PollStats, Window, VRING_AVAIL_F_NO_INTERRUPT};
use super::{DeviceError, Interrupt, QueueHandler, INT_USED_BUFFER};
use crate::trace::{self, Vmm};

/// Everything a worker owns.
pub struct Worker {
    pub name: String,
    pub mem: GuestMemoryMmap,
    /// (queue index, queue, its notification eventfd), for the queues the driver made ready.
    pub queues: Vec<(usize, Queue, EventFd)>,
    pub handler: Box<dyn QueueHandler>,
    pub interrupt: Arc<Interrupt>,
    pub resample: Option<EventFd>,
    pub stop: EventFd,
    /// Busy polling of the queues whose driver polls (zero length: none).
    pub window: Window,
    /// Where kicks and polling are counted (`vmm run --stats`).
    pub stats: Option<&'static PollStats>,
    /// Per queue slot: kicks suppressed, the queue polled (a round is under way).
    pub polling: Vec<bool>,
    /// Per queue slot: chains popped or requests completed since the last poll step.
    pub worked: Vec<bool>,
    /// The seccomp filter the thread installs after [`QueueHandler::prepare`] (none in
    /// unit tests).
    pub filter: Option<crate::seccomp::Thread>,
}

impl Worker {
    /// A worker for `queues`, polling for `window` (zero: never).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        mem: GuestMemoryMmap,
        queues: Vec<(usize, Queue, EventFd)>,
        handler: Box<dyn QueueHandler>,
        interrupt: Arc<Interrupt>,
        resample: Option<EventFd>,
        stop: EventFd,
        window: std::time::Duration,
        stats: Option<&'static PollStats>,
    ) -> Self {
        let n = queues.len();
        Self {
            name,
            mem,
            queues,
            handler,
            interrupt,
            resample,
            stop,
            window: Window::new(window),
            stats,
            polling: vec![false; n],
            worked: vec![false; n],
            filter: None,
        }
    }
}

const STOP_TOKEN: u64 = u64::MAX;
const RESAMPLE_TOKEN: u64 = u64::MAX - 1;
const COMPLETION_TOKEN: u64 = u64::MAX - 2;

/// A running worker thread, which can be waited for with a bound.
pub struct WorkerHandle {
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends (its sender is dropped last thing).
    ended: std::sync::mpsc::Receiver<()>,
}

impl WorkerHandle {
    /// Joins the thread if it ends within `timeout`; gives the handle back if not.
    pub fn join_within(self, timeout: std::time::Duration) -> Result<(), Self> {
        match self.ended.recv_timeout(timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(self),
            _ => {
                let _ = self.thread.join();
                Ok(())
            }
        }
    }

    /// Joins the thread, however long it takes.
    pub fn join(self) -> std::thread::Result<()> {
        self.thread.join()
    }
}

impl Worker {
    /// Starts the worker's thread (through the seccomp launcher when filters are on).
    pub fn spawn(self) -> std::io::Result<WorkerHandle> {
        let (tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = crate::seccomp::spawn_worker(self.name.clone(), move || {
            let _ended = tx;
            self.run()
        })?;
        Ok(WorkerHandle { thread, ended })
    }

    fn run(mut self) {
        self.handler.prepare();
        if let Some(filter) = self.filter
            && let Err(e) = crate::seccomp::install(filter)
        {
            log::error!("{}: {e}", self.name);
            self.interrupt.needs_reset();
            return;
        }
        let result = self.serve();
        // No host I/O may still target guest memory once the device is reset.
        self.handler.quiesce();
        if let Err(e) = result {
            crate::guest_warn!(crate::devices::guest_errors::DEVICE, "{}: {e}; the device needs a reset", self.name);
            self.interrupt.needs_reset();
        }
    }

    fn serve(&mut self) -> Result<(), DeviceError> {
        let epoll = Epoll::new().map_err(|e| DeviceError::Queue(format!("epoll: {e}")))?;
        let add = |fd, token| {
            epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token))
                .map_err(|e| DeviceError::Queue(format!("epoll: {e}")))
        };
        use std::os::fd::AsRawFd;
        add(self.stop.as_raw_fd(), STOP_TOKEN)?;
        if let Some(r) = &self.resample {
            add(r.as_raw_fd(), RESAMPLE_TOKEN)?;
        }
        for (slot, (index, queue, evt)) in self.queues.iter().enumerate() {
            add(evt.as_raw_fd(), slot as u64)?;
            trace::name_queue(queue.desc_table(), format!("{} q{index}", self.name));
        }
        if let Some(fd) = self.handler.completion_fd() {
            add(fd, COMPLETION_TOKEN)?;
        }
        // Buffers made available before DRIVER_OK (or before this thread ran) are served
        // without waiting for a notification.
        for slot in 0..self.queues.len() {
            self.process_queue(slot)?;
        }
        let mut events = vec![EpollEvent::default(); self.queues.len() + 3];
        let mut done = Vec::new();
        loop {
            // While a polling round is open (until `poll_step` has ended it and re-armed
            // the notifications), look without sleeping.
            let timeout = if self.window.open() { 0 } else { -1 };
            let n = match epoll.wait(timeout, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DeviceError::Queue(format!("epoll_wait: {e}"))),
            };
            for event in &events[..n] {
                match event.data() {
                    STOP_TOKEN => return Ok(()),
                    RESAMPLE_TOKEN => {
                        if let Some(r) = &self.resample {
                            let _ = r.read();
                        }
                        self.interrupt.resample();
                    }
                    COMPLETION_TOKEN => self.complete(&mut done)?,
                    slot => {
                        let slot = slot as usize;
                        // An eventfd reads as the number of writes since the last read.
                        let kicks = self.queues[slot].2.read().unwrap_or(0);
                        if let Some(stats) = self.stats {
                            stats.kicks.fetch_add(kicks, Ordering::Relaxed);
                        }
                        trace::event(Vmm::KickReceived, self.queues[slot].1.desc_table(), 0, 0, kicks as i64);
                        self.process_queue(slot)?;
                    }
                }
            }
            if self.window.enabled() {
                self.poll_step()?;
            } else {
                self.worked.fill(false);
            }
        }
    }

    /// One step of busy polling: serve what the polled queues' drivers published, end the
    /// round when the window has passed without work (re-arming notifications, with the
    /// last look that finds what came meanwhile), and start or extend a round for each
    /// queue that had work and whose driver polls.
    fn poll_step(&mut self) -> Result<(), DeviceError> {
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        for slot in 0..self.queues.len() {
            if !self.polling[slot] || !self.handler.has_room() {
                continue;
            }
            let queue = &self.queues[slot].1;
            if poll::has_new(queue, &self.mem).map_err(qerr)? {
                self.process_queue(slot)?;
            }
        }
        let now = Instant::now();
        if self.window.expired(now) {
            for slot in 0..self.queues.len() {
                if std::mem::take(&mut self.polling[slot]) && poll::rearm(&mut self.queues[slot].1, &self.mem).map_err(qerr)? {
                    // Published before the driver could see the re-arming: serve it now
                    // (the drain ends armed, with the same fence and re-check).
                    self.process_queue(slot)?;
                }
            }
        }
        let mut work = false;
        for slot in 0..self.queues.len() {
            if !std::mem::take(&mut self.worked[slot]) {
                continue;
            }
            let (_, queue, _) = &self.queues[slot];
            if !poll::driver_polls(queue, &self.mem).map_err(qerr)? {
                continue;
            }
            work = true;
            if !self.polling[slot] {
                self.polling[slot] = true;
                poll::suppress(queue, &self.mem).map_err(qerr)?;
            }
        }
        if work {
            if let (false, Some(stats)) = (self.window.open(), self.stats) {
                stats.rounds.fetch_add(1, Ordering::Relaxed);
            }
            self.window.work(now);
        } else if self.window.open() {
            // Nothing this time: let a thread that shares this core (a vCPU) run first.
            std::thread::yield_now();
        }
        Ok(())
    }

    /// Publishes the used entries of the requests whose host I/O finished, interrupts
    /// where the driver asked, and serves the queues again (room was freed). What the
    /// thread calls when the handler's completion fd is readable; public, as
    /// `process_queue` is, for the fuzz targets (`fuzz/src/targets/net.rs`), which play
    /// the thread's loop themselves and check the entries left in `done`.
    pub fn complete(&mut self, done: &mut Vec<(usize, u16, u32)>) -> Result<(), DeviceError> {
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        done.clear();
        self.handler.complete(&self.mem, done)?;
        let mut touched = vec![false; self.queues.len()];
        for &(index, head, len) in done.iter() {
            let Some(slot) = self.queues.iter().position(|(i, _, _)| *i == index) else {
                return Err(DeviceError::Queue(format!("a completion for queue {index}, which is not ready")));
            };
            let queue = &mut self.queues[slot].1;
            if trace::on() {
                trace::event(Vmm::HostComplete, queue.desc_table(), head, 0, i64::from(len));
                trace::event(Vmm::Used, queue.desc_table(), head, queue.next_used(), 0);
            }
            queue.add_used(&self.mem, head, len).map_err(qerr)?;
            touched[slot] = true;
            self.worked[slot] = true;
        }
        for (slot, touched) in touched.into_iter().enumerate() {
            // One interrupt decision for the completed requests and those served now.
            if self.drain_queue(slot)? > 0 || touched {
                self.notify(slot)?;
            }
        }
        Ok(())
    }

    /// Serves every available chain of queue `slot`, then interrupts if the driver asked.
    pub fn process_queue(&mut self, slot: usize) -> Result<(), DeviceError> {
        if self.drain_queue(slot)? > 0 {
            self.notify(slot)?;
        }
        Ok(())
    }

    /// Starts every available chain of queue `slot` (while the handler has room) and
    /// submits them; returns the number of used entries added (requests done at once).
    fn drain_queue(&mut self, slot: usize) -> Result<usize, DeviceError> {
        let (index, queue, _) = &mut self.queues[slot];
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        let max_descriptors = usize::from(queue.size());
        let polling = self.polling[slot];
        let first = queue.next_avail();
        let mut used = 0usize;
        // --trace: the chains handed to the host, named when they are submitted.
        let mut started: Vec<u16> = Vec::new();
        'drain: loop {
            queue.disable_notification(&self.mem).map_err(qerr)?;
            loop {
                if !self.handler.has_room() {
                    // Completions will free room and serve the queue again; notifications
                    // stay off meanwhile.
                    break 'drain;
                }
                let at = queue.next_avail();
                let desc = match queue.iter(&self.mem) {
                    Ok(mut iter) => iter.next(),
                    Err(e) => return Err(qerr(e)),
                };
                let Some(desc) = desc else { break };
                let chain = Chain::parse(desc, &self.mem, max_descriptors)?;
                let head = chain.head;
                let traced = trace::on();
                if traced {
                    trace::event(Vmm::Pop, queue.desc_table(), head, at, 0);
                }
                match self.handler.start(*index, &self.mem, chain)? {
                    Some(len) => {
                        if traced {
                            // Served at once (no host I/O in flight).
                            trace::event(Vmm::HostComplete, queue.desc_table(), head, 1, i64::from(len));
                            trace::event(Vmm::Used, queue.desc_table(), head, queue.next_used(), 0);
                        }
                        queue.add_used(&self.mem, head, len).map_err(qerr)?;
                        used += 1;
                    }
                    None if traced => started.push(head),
                    None => {}
                }
            }
            if polling {
                // A polling round: kicks stay suppressed (avail_event follows next_avail).
                poll::suppress(queue, &self.mem).map_err(qerr)?;
                break;
            }
            if !queue.enable_notification(&self.mem).map_err(qerr)? {
                break;
            }
        }
        let popped = queue.next_avail().wrapping_sub(first);
        if popped != 0 {
            self.worked[slot] = true;
            if let Some(stats) = self.stats {
                stats.requests[(*index).min(poll::STAT_QUEUES - 1)].fetch_add(u64::from(popped), Ordering::Relaxed);
            }
            if let (true, Some(stats)) = (polling, self.stats) {
                // Served while the driver was told not to kick.
                stats.polled.fetch_add(u64::from(popped), Ordering::Relaxed);
            }
        }
        self.handler.submit()?;
        for head in started {
            trace::event(Vmm::HostSubmit, queue.desc_table(), head, 0, 0);
        }
        let mut finished = Vec::new();
        self.handler.finished(&mut finished);
        for (q, head, len) in finished {
            if q != *index {
                return Err(DeviceError::Queue(format!("a request of queue {q} finished while serving queue {index}")));
            }
            if trace::on() {
                trace::event(Vmm::HostComplete, queue.desc_table(), head, 0, i64::from(len));
                trace::event(Vmm::Used, queue.desc_table(), head, queue.next_used(), 0);
            }
            queue.add_used(&self.mem, head, len).map_err(qerr)?;
            used += 1;
        }
        Ok(used)
    }

    /// After used entries were added to queue `slot`: interrupts if the driver asked.
    fn notify(&mut self, slot: usize) -> Result<(), DeviceError> {
        let queue = &mut self.queues[slot].1;
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        // needs_notification fences the used-ring writes before it reads used_event; without
        // EVENT_IDX it says yes, and the driver's VRING_AVAIL_F_NO_INTERRUPT decides.
        let mut notify = queue.needs_notification(&self.mem).map_err(qerr)?;
        if notify && !queue.event_idx_enabled() {
            let flags: u16 = self
                .mem
                .load(GuestAddress(queue.avail_ring()), Ordering::Acquire)
                .map_err(|e| DeviceError::Queue(e.to_string()))?;
            notify = u16::from_le(flags) & VRING_AVAIL_F_NO_INTERRUPT == 0;
        }
        trace::event(if notify { Vmm::Irq } else { Vmm::IrqSuppressed }, queue.desc_table(), 0, 0, 0);
        if notify {
            self.interrupt.raise(INT_USED_BUFFER);
            if let Some(stats) = self.stats {
                stats.interrupts.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::{TestQueue, AVAIL, USED};
    use crate::devices::virtio::poll::{AVAIL_EVENT_BEHIND, VRING_USED_F_NO_NOTIFY};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Answers every request at once and records its head.
    struct Recorder(Arc<Mutex<Vec<u16>>>);

    impl QueueHandler for Recorder {
        fn process(&mut self, _queue: usize, _mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError> {
            self.0.lock().unwrap().push(chain.head);
            Ok(0)
        }
    }

    struct Running {
        t: TestQueue,
        kick: EventFd,
        stop: EventFd,
        served: Arc<Mutex<Vec<u16>>>,
        thread: Option<WorkerHandle>,
        event_idx: bool,
    }

    impl Running {
        /// A worker on one queue whose driver polls (or not), with a polling window.
        fn start(event_idx: bool, driver_polls: bool, window: Duration) -> Self {
            let t = TestQueue::new(16);
            let mut q = t.queue();
            q.set_event_idx(event_idx);
            if driver_polls {
                t.mem.write_obj(VRING_AVAIL_F_NO_INTERRUPT.to_le(), GuestAddress(AVAIL)).unwrap();
            }
            for i in 0..16 {
                t.chain(i, &[(0x10000, 16, false)]);
            }
            let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let stop = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let served = Arc::new(Mutex::new(Vec::new()));
            let worker = Worker::new(
                "test".into(),
                t.mem.clone(),
                vec![(1, q, kick.try_clone().unwrap())],
                Box::new(Recorder(Arc::clone(&served))),
                Arc::new(Interrupt::new(EventFd::new(libc::EFD_NONBLOCK).unwrap())),
                None,
                stop.try_clone().unwrap(),
                window,
                None,
            );
            let thread = Some(worker.spawn().unwrap());
            Self { t, kick, stop, served, thread, event_idx }
        }

        fn served(&self) -> usize {
            self.served.lock().unwrap().len()
        }

        /// Waits (up to 10 s) until `f` holds.
        fn wait_for(&self, what: &str, f: impl Fn(&Self) -> bool) {
            let until = Instant::now() + Duration::from_secs(10);
            while !f(self) {
                assert!(Instant::now() < until, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        /// Whether the device asks for no kicks now (after `published` requests).
        fn suppressed(&self, published: u16) -> bool {
            if self.event_idx {
                let event: u16 = self.t.mem.read_obj(GuestAddress(USED + 4 + 8 * 16)).unwrap();
                event == published.wrapping_sub(AVAIL_EVENT_BEHIND)
            } else {
                let flags: u16 = self.t.mem.read_obj(GuestAddress(USED)).unwrap();
                flags & VRING_USED_F_NO_NOTIFY != 0
            }
        }

        /// Whether notifications are armed for the next request (after `published`).
        fn armed(&self, published: u16) -> bool {
            if self.event_idx {
                let event: u16 = self.t.mem.read_obj(GuestAddress(USED + 4 + 8 * 16)).unwrap();
                event == published
            } else {
                let flags: u16 = self.t.mem.read_obj(GuestAddress(USED)).unwrap();
                flags & VRING_USED_F_NO_NOTIFY == 0
            }
        }

        fn finish(mut self) {
            self.stop.write(1).unwrap();
            self.thread.take().unwrap().join().unwrap();
        }
    }

    /// A polling driver's request published during a round is served without a kick; when
    /// the window has passed without work, notifications are armed again and the device
    /// stops looking (a request without a kick then waits for its kick).
    #[test]
    fn polled_queue_is_served_without_kicks_for_a_window() {
        for event_idx in [false, true] {
            let mut r = Running::start(event_idx, true, Duration::from_millis(1500));
            r.t.publish(0);
            r.kick.write(1).unwrap();
            r.wait_for("the kicked request", |r| r.served() == 1);
            r.wait_for("kicks suppressed", |r| r.suppressed(1));
            // No kicks now: the device finds these by looking.
            for n in 2..=5u16 {
                r.t.publish(n - 1);
                r.wait_for("a request found by polling", |r| r.served() == usize::from(n));
                assert!(r.suppressed(n), "event_idx {event_idx}");
            }
            // The round ends 1.5 s after the last request: notifications are armed again.
            let start = Instant::now();
            r.wait_for("notifications armed again", |r| r.armed(5));
            assert!(start.elapsed() >= Duration::from_millis(1000), "the window lasts: {:?}", start.elapsed());
            // The device no longer looks: a request without a kick waits for it.
            r.t.publish(5);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(r.served(), 5, "served without a kick after the window, event_idx {event_idx}");
            r.kick.write(1).unwrap();
            r.wait_for("the kicked request", |r| r.served() == 6);
            r.finish();
        }
    }

    /// A queue whose driver takes interrupts is never polled, whatever the window.
    #[test]
    fn interrupt_driven_queue_is_not_polled() {
        for event_idx in [false, true] {
            let mut r = Running::start(event_idx, false, Duration::from_secs(5));
            r.t.publish(0);
            r.kick.write(1).unwrap();
            r.wait_for("the kicked request", |r| r.served() == 1);
            assert!(r.armed(1), "event_idx {event_idx}");
            r.t.publish(1);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(r.served(), 1, "polled although the driver takes interrupts");
            r.kick.write(1).unwrap();
            r.wait_for("the kicked request", |r| r.served() == 2);
            r.finish();
        }
    }

    /// A reset stops the worker in the middle of a round, and a driver that never stops
    /// publishing keeps neither the worker from stopping nor memory growing.
    #[test]
    fn stop_ends_a_round_at_once() {
        let mut r = Running::start(true, true, Duration::from_secs(60));
        r.t.publish(0);
        r.kick.write(1).unwrap();
        r.wait_for("the kicked request", |r| r.served() == 1);
        for i in 1..2000u16 {
            // At most a ring's worth ahead of the device.
            r.wait_for("polled requests", |r| r.served() + 16 > usize::from(i));
            r.t.publish(i % 16);
        }
        r.wait_for("every request, without a kick", |r| r.served() == 2000);
        let start = Instant::now();
        r.finish();
        assert!(start.elapsed() < Duration::from_secs(5), "stop took {:?}", start.elapsed());
    }

    /// The guest owns the ring memory: scribbling on the fields the device uses to
    /// suppress kicks, or dropping VRING_AVAIL_F_NO_INTERRUPT mid-round, changes only
    /// whether it kicks. The round still serves what comes and ends on time, the device
    /// re-arms notifications over the scribbles, and a queue no longer flagged is not
    /// polled again.
    #[test]
    fn odd_flags_from_the_guest() {
        for event_idx in [false, true] {
            let mut r = Running::start(event_idx, true, Duration::from_millis(1000));
            r.t.publish(0);
            r.kick.write(1).unwrap();
            r.wait_for("the kicked request", |r| r.served() == 1);
            r.wait_for("kicks suppressed", |r| r.suppressed(1));
            r.t.mem.write_obj(0xffffu16, GuestAddress(USED)).unwrap();
            r.t.mem.write_obj(0x1234u16, GuestAddress(USED + 4 + 8 * 16)).unwrap();
            r.t.mem.write_obj(0xfffeu16, GuestAddress(AVAIL)).unwrap(); // NO_INTERRUPT off, other bits on
            r.t.publish(1);
            r.wait_for("a request found by polling", |r| r.served() == 2);
            r.wait_for("notifications armed again", |r| r.armed(2));
            r.t.publish(2);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(r.served(), 2, "polled again although the driver takes interrupts now");
            r.kick.write(1).unwrap();
            r.wait_for("the kicked request", |r| r.served() == 3);
            assert!(r.armed(3), "event_idx {event_idx}");
            r.finish();
        }
    }

    /// With polling off the worker is the plain eventfd loop: nothing without a kick.
    #[test]
    fn zero_window_never_polls() {
        let mut r = Running::start(true, true, Duration::ZERO);
        r.t.publish(0);
        r.kick.write(1).unwrap();
        r.wait_for("the kicked request", |r| r.served() == 1);
        assert!(r.armed(1));
        r.t.publish(1);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(r.served(), 1);
        r.finish();
    }
}
