//! virtio-9p transport and a 9P2000.L client.
//!
//! Each RPC is one chain: the T-message (device-readable) and a buffer for the R-message
//! (device-writable). Requests carry tags, so many can be in flight; callers sleep until
//! the interrupt handler completes theirs. `fs::p9` builds the file tree on top.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};

use super::mmio::{Mmio, VIRTIO_RING_F_EVENT_IDX};
use super::queue::{Buffer, VirtQueue};
use crate::errno::*;
use crate::mm::virt_to_phys;
use crate::sync::SpinLock;

const F_MOUNT_TAG: u64 = 1;
/// Our maximum message size (the server may lower it in Rversion).
const MSIZE: u32 = 128 * 1024;
pub const NOFID: u32 = !0;
const NOTAG: u16 = !0;

// Message types (T = request, R = T + 1).
pub const TLERROR: u8 = 6;
pub const TSTATFS: u8 = 8;
pub const TLOPEN: u8 = 12;
pub const TLCREATE: u8 = 14;
pub const TSYMLINK: u8 = 16;
pub const TREADLINK: u8 = 22;
pub const TGETATTR: u8 = 24;
pub const TSETATTR: u8 = 26;
pub const TXATTRWALK: u8 = 30;
pub const TXATTRCREATE: u8 = 32;
pub const TREADDIR: u8 = 40;
pub const TFSYNC: u8 = 50;
pub const TLINK: u8 = 70;
pub const TMKDIR: u8 = 72;
pub const TRENAMEAT: u8 = 74;
pub const TUNLINKAT: u8 = 76;
pub const TVERSION: u8 = 100;
pub const TATTACH: u8 = 104;
pub const TWALK: u8 = 110;
pub const TREAD: u8 = 116;
pub const TWRITE: u8 = 118;
pub const TCLUNK: u8 = 120;

/// A T-message being built: size[4] type[1] tag[2] then fields, little-endian.
pub struct Msg(Vec<u8>);

impl Msg {
    pub fn new(kind: u8) -> Self {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0; 4]);
        v.push(kind);
        v.extend_from_slice(&[0; 2]);
        Self(v)
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(&(s.len() as u16).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// An R-message being read (after its 7-byte header).
pub struct Reply {
    buf: Vec<u8>,
    pub at: usize,
}

impl Reply {
    fn take(&mut self, n: usize) -> KResult<&[u8]> {
        let s = self.buf.get(self.at..self.at + n).ok_or(EIO)?;
        self.at += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> KResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> KResult<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    pub fn u32(&mut self) -> KResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> KResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn str(&mut self) -> KResult<String> {
        let n = usize::from(self.u16()?);
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    pub fn bytes(&mut self, n: usize) -> KResult<&[u8]> {
        self.take(n)
    }
    /// qid: type[1] version[4] path[8].
    pub fn qid(&mut self) -> KResult<Qid> {
        Ok(Qid { kind: self.u8()?, version: self.u32()?, path: self.u64()? })
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Qid {
    pub kind: u8,
    /// On the wire; unused here (no caching).
    #[allow(dead_code)]
    pub version: u32,
    pub path: u64,
}

pub const QTDIR: u8 = 0x80;
pub const QTSYMLINK: u8 = 0x02;

pub struct P9 {
    dev: super::Device,
    pub tag: String,
    msize: AtomicU32,
    next_tag: AtomicU16,
    next_fid: AtomicU32,
    free_fids: SpinLock<Vec<u32>>,
}

impl P9 {
    /// Sends `msg` and waits for the reply, which may be up to `reply_max` bytes.
    /// An Rlerror becomes its errno.
    pub fn rpc(&self, msg: Msg, reply_max: usize) -> KResult<Reply> {
        let mut t = msg.0;
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed) % 0xfffe;
        let size = t.len() as u32;
        t[..4].copy_from_slice(&size.to_le_bytes());
        t[5..7].copy_from_slice(&tag.to_le_bytes());
        let kind = t[4];
        self.exchange(t, reply_max.min(self.msize() as usize), kind)
    }

    /// Sends `msg` without waiting for the reply: `done` gets it (or the error) from the
    /// interrupt handler. While the queue is full it waits, or with `wait` false returns
    /// false at once with `done` dropped unrun.
    pub fn rpc_async(&self, msg: Msg, reply_max: usize, done: Box<dyn FnOnce(KResult<Reply>) + Send>, wait: bool) -> bool {
        let mut t = msg.0;
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed) % 0xfffe;
        let size = t.len() as u32;
        t[..4].copy_from_slice(&size.to_le_bytes());
        t[5..7].copy_from_slice(&tag.to_le_bytes());
        let kind = t[4];
        let r = alloc::vec![0u8; reply_max.min(self.msize() as usize).max(11)];
        let chain = [
            Buffer { phys: virt_to_phys(t.as_ptr()), len: t.len() as u32, device_writes: false },
            Buffer { phys: virt_to_phys(r.as_ptr()), len: r.len() as u32, device_writes: true },
        ];
        let added = self.dev.add(
            &chain,
            Box::new(move |_| {
                drop(t);
                done(parse_reply(r, kind));
            }),
            wait,
        );
        match added {
            Ok(()) => true,
            Err((crate::errno::EAGAIN, _)) => false,
            Err((_, completion)) => {
                // Not queued: complete at once, as a device error (the reply buffer is empty).
                completion.complete(0);
                true
            }
        }
    }

    fn exchange(&self, t: Vec<u8>, reply_max: usize, kind: u8) -> KResult<Reply> {
        let r = alloc::vec![0u8; reply_max.max(11)];
        let chain = [
            Buffer { phys: virt_to_phys(t.as_ptr()), len: t.len() as u32, device_writes: false },
            Buffer { phys: virt_to_phys(r.as_ptr()), len: r.len() as u32, device_writes: true },
        ];
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        self.dev.add(&chain, Box::new(move |_| d.store(true, Ordering::Release)), true).map_err(|(e, _)| e)?;
        // Not interruptible: the device writes into `r`, which must outlive the request.
        self.dev.completions.wait_uninterruptible(|| done.load(Ordering::Acquire));
        drop(t);
        parse_reply(r, kind)
    }

    /// The negotiated maximum message size.
    pub fn msize(&self) -> u32 {
        self.msize.load(Ordering::Relaxed)
    }

    pub fn alloc_fid(&self) -> u32 {
        self.free_fids.lock().pop().unwrap_or_else(|| self.next_fid.fetch_add(1, Ordering::Relaxed))
    }

    /// Clunks `fid` without waiting for the reply (it runs where files are dropped: under
    /// locks, in interrupt handlers); the fid is reused once the server has answered. When
    /// the queue is full the fid is not reused.
    pub fn clunk(self: &Arc<Self>, fid: u32) {
        let mut t = Msg::new(TCLUNK).u32(fid).0;
        let size = t.len() as u32;
        t[..4].copy_from_slice(&size.to_le_bytes());
        let r = alloc::vec![0u8; 16];
        let chain = [
            Buffer { phys: virt_to_phys(t.as_ptr()), len: t.len() as u32, device_writes: false },
            Buffer { phys: virt_to_phys(r.as_ptr()), len: r.len() as u32, device_writes: true },
        ];
        let me = Arc::clone(self);
        let queued = self.dev.try_add(&chain, Box::new(move |_| {
            drop((t, r));
            me.free_fids.lock().push(fid);
        }));
        if !queued {
            log::debug!("9p: queue full, fid {fid} not clunked");
        }
    }

    /// Clunks `fid` and waits for the answer: for a fid whose clunk does the work (an
    /// xattr fid of Txattrcreate sets the attribute then).
    pub fn clunk_sync(&self, fid: u32) -> KResult<()> {
        let result = self.rpc(Msg::new(TCLUNK).u32(fid), 16).map(drop);
        self.free_fids.lock().push(fid);
        result
    }

    /// Gives back a fid number the server never took (its Twalk or Txattrwalk failed).
    pub fn release_fid(&self, fid: u32) {
        self.free_fids.lock().push(fid);
    }

    /// Walks from `fid` through `names` to a new fid (no names: a clone of `fid`).
    pub fn walk(self: &Arc<Self>, fid: u32, names: &[&str]) -> KResult<(u32, Option<Qid>)> {
        let newfid = self.alloc_fid();
        let mut msg = Msg::new(TWALK).u32(fid).u32(newfid).u16(names.len() as u16);
        for n in names {
            msg = msg.str(n);
        }
        let result = self.rpc(msg, 64 + 13 * names.len()).and_then(|mut r| {
            let n = usize::from(r.u16()?);
            let mut last = None;
            for _ in 0..n {
                last = Some(r.qid()?);
            }
            if n != names.len() {
                return Err(ENOENT);
            }
            Ok(last)
        });
        match result {
            Ok(q) => Ok((newfid, q)),
            Err(e) => {
                if e != ENOENT {
                    self.free_fids.lock().push(newfid);
                } else {
                    self.clunk(newfid);
                }
                Err(e)
            }
        }
    }
}

/// Checks an R-message's header: the reply to `kind`, or Rlerror's errno.
fn parse_reply(mut r: Vec<u8>, kind: u8) -> KResult<Reply> {
    let size = u32::from_le_bytes(r[..4].try_into().expect("4 bytes")) as usize;
    if size < 7 || size > r.len() {
        return Err(EIO);
    }
    r.truncate(size);
    let rkind = r[4];
    let mut reply = Reply { buf: r, at: 7 };
    if rkind == TLERROR + 1 {
        let code = reply.u32()? as i32;
        log::debug!("9p: T{kind} failed: error {code}");
        return Err(Errno(if code > 0 { code } else { EIO.0 }));
    }
    if rkind != kind + 1 {
        return Err(EIO);
    }
    Ok(reply)
}

impl super::Interrupt for P9 {
    fn interrupt(&self) {
        self.dev.service();
    }
}

/// Starts the driver; the share is mounted by the caller at `/mnt/TAG`.
pub fn probe(mmio: Mmio, irq: u32) -> Option<(Arc<P9>, Qid)> {
    let features = mmio.negotiate(F_MOUNT_TAG | VIRTIO_RING_F_EVENT_IDX)?;
    let size = mmio.queue_max(0);
    let queue = (size > 0).then(|| VirtQueue::new(0, size, features & VIRTIO_RING_F_EVENT_IDX != 0)).flatten()?;
    let (desc, driver, device) = queue.areas();
    mmio.setup_queue(0, queue.size(), desc, driver, device);
    let tag = if features & F_MOUNT_TAG != 0 {
        let len = mmio.config_u8(0) as usize | (mmio.config_u8(1) as usize) << 8;
        let bytes: Vec<u8> = (0..len.min(64)).map(|i| mmio.config_u8(2 + i)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        String::from("share")
    };
    mmio.driver_ok();
    let p9 = Arc::new(P9 {
        dev: super::Device::new(mmio, alloc::vec![queue]),
        tag,
        msize: AtomicU32::new(MSIZE),
        next_tag: AtomicU16::new(0),
        next_fid: AtomicU32::new(1),
        free_fids: SpinLock::new(Vec::new()),
    });
    super::register_irq(irq, p9.clone());
    Some((p9, Qid::default()))
}

/// Negotiates the version and attaches fid 0 to the share's root (needs a task context:
/// it sleeps for the replies).
pub fn attach(p9: &P9) -> KResult<Qid> {
    let mut t = Msg::new(TVERSION).u32(MSIZE).str("9P2000.L").0;
    let size = t.len() as u32;
    t[..4].copy_from_slice(&size.to_le_bytes());
    t[5..7].copy_from_slice(&NOTAG.to_le_bytes());
    let mut r = p9.exchange(t, 256, TVERSION)?;
    let msize = r.u32()?;
    let version = r.str()?;
    if version != "9P2000.L" {
        return Err(EOPNOTSUPP);
    }
    p9.msize.store(msize.min(MSIZE), Ordering::Relaxed);
    let mut r = p9.rpc(Msg::new(TATTACH).u32(0).u32(NOFID).str("root").str("").u32(0), 64)?;
    r.qid()
}
