//! The console as a terminal: one tty on the serial port (COM1), behind `/dev/console`,
//! `/dev/tty` and `/dev/ttyS0`.
//!
//! `uart.rs` takes received bytes in the UART's interrupt; `ldisc.rs` (Linux's `n_tty`)
//! turns them into readable input, echo and signals; this file is the device: reads that
//! block (and poll), cooked writes, the termios ioctls, and job control's bookkeeping: the
//! session the tty controls and its foreground process group. ^C, ^\ and ^Z signal the
//! foreground group. A background group that reads gets SIGTTIN (which stops it unless
//! handled; the read starts again once it is continued); one that writes with TOSTOP
//! set, or changes the terminal (TCSETS*, TCFLSH, TCXONC, TCSBRK, TIOCSPGRP), gets
//! SIGTTOU. As Linux's __tty_check_change: an ignored or blocked SIGTTIN is EIO and an
//! ignored or blocked SIGTTOU lets the call through; an orphaned group gets EIO.
//!
//! Unlike Linux, where `/dev/console` never becomes a controlling terminal, the console is
//! the controlling terminal of init's session from the start, with init's group in the
//! foreground: a shell run as init gets job control and ^C without `setsid cttyhack`.

pub mod ldisc;
pub mod termios;
pub mod uart;

use alloc::sync::Arc;
use core::any::Any;
use core::sync::atomic::Ordering;

use crate::errno::*;
use crate::fs::{alloc_ino, FileType, IoBuf, Node, OpenFile, Stat, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::sync::SpinLock;
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, signal, Process};
use ldisc::Ldisc;
use termios::{Termios, WinSize, ICANON, VMIN, VTIME};

const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TCSBRK: u64 = 0x5409;
const TCXONC: u64 = 0x540a;
const TCFLSH: u64 = 0x540b;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCOUTQ: u64 = 0x5411;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGSID: u64 = 0x5429;
const TCSBRKP: u64 = 0x5425;

const SIGTTIN: u32 = 21;
const SIGTTOU: u32 = 22;
/// termios lflag: background writes get SIGTTOU.
const TOSTOP: u32 = 0o400;

// SAFETY: integers and bytes only; every bit pattern is a value, no padding (36 = 4*4+1+19).
unsafe impl crate::mm::uaccess::Pod for Termios {}

struct State {
    ldisc: Ldisc,
    winsize: WinSize,
    /// The session this is the controlling terminal of (0: none).
    session: u32,
    /// The foreground process group (0: none).
    pgrp: u32,
}

pub struct Tty {
    state: SpinLock<State>,
    readable: WaitQueue,
}

static TTY: Tty = Tty {
    state: SpinLock::new(State { ldisc: Ldisc::new(), winsize: [24, 80, 0, 0], session: 0, pgrp: 0 }),
    readable: WaitQueue::new(),
};

/// The console's tty.
pub fn console() -> &'static Tty {
    &TTY
}

/// Sends `sig` to every live process of group `pgrp`.
pub fn signal_group(pgrp: u32, sig: u32) {
    if pgrp == 0 {
        return;
    }
    for p in task::all_processes() {
        if p.pgid.load(Ordering::Relaxed) == pgrp && p.zombie.lock().is_none() {
            signal::send(&p, sig);
        }
    }
}

fn wait_error(e: WaitError) -> Errno {
    match e {
        WaitError::Interrupted => EINTR,
        WaitError::TimedOut => EAGAIN,
    }
}

impl Tty {
    /// Makes the tty the controlling terminal of `process`'s session, its group in the
    /// foreground (init at boot; TIOCSCTTY; opening `/dev/ttyS0` as a session leader).
    pub fn set_controlling(&self, process: &Process) {
        let mut s = self.state.lock();
        s.session = process.sid.load(Ordering::Relaxed);
        s.pgrp = process.pgid.load(Ordering::Relaxed);
    }

    /// A process ended: if it led the session the tty controls, the tty is free again and
    /// the foreground group gets SIGHUP, as Linux's `disassociate_ctty(1)`.
    pub fn session_leader_exited(&self, process: &Process) {
        if let Some(pgrp) = self.disassociate(process) {
            signal_group(pgrp, signal::SIGHUP);
        }
    }

    /// Frees the tty if `process` leads the session it controls; returns the foreground
    /// group it had.
    fn disassociate(&self, process: &Process) -> Option<u32> {
        let mut s = self.state.lock();
        if s.session == 0 || s.session != process.pid || process.sid.load(Ordering::Relaxed) != process.pid {
            return None;
        }
        s.session = 0;
        Some(core::mem::take(&mut s.pgrp))
    }

    /// The session the tty controls and its foreground group (0s: none).
    pub fn owner(&self) -> (u32, u32) {
        let s = self.state.lock();
        (s.session, s.pgrp)
    }

    /// Whether the tty is `process`'s controlling terminal.
    pub fn controls(&self, process: &Process) -> bool {
        let s = self.state.lock();
        s.session != 0 && s.session == process.sid.load(Ordering::Relaxed)
    }

    /// Bytes from the UART (interrupt context).
    pub fn receive(&self, bytes: &[u8]) {
        let (fx, pgrp) = {
            let mut s = self.state.lock();
            let fx = s.ldisc.receive(bytes);
            (fx, s.pgrp)
        };
        if !fx.echo.is_empty() {
            crate::console::write_bytes(&fx.echo);
        }
        if let Some(sig) = fx.signal {
            signal_group(pgrp, sig);
        }
        if fx.readable || fx.signal.is_some() {
            self.readable.wake_all();
        }
    }

    /// Job control for a process outside the foreground group of the session the tty
    /// controls, about to read (`sig` SIGTTIN) or write or change the terminal (SIGTTOU):
    /// Linux's __tty_check_change. EINTR after signalling the group: the syscall starts
    /// again once the group is continued (or is EINTR for a handler without SA_RESTART).
    fn check_change(&self, sig: u32) -> KResult<()> {
        let me = task::current_process();
        let (session, pgrp) = {
            let s = self.state.lock();
            (s.session, s.pgrp)
        };
        let mine = me.pgid.load(Ordering::Relaxed);
        if session == 0 || session != me.sid.load(Ordering::Relaxed) || pgrp == 0 || pgrp == mine {
            return Ok(());
        }
        let ignored = me.sigactions.lock()[sig as usize - 1].handler == signal::SIG_IGN;
        let blocked = task::sched::current().sigmask.load(Ordering::Relaxed) & signal::bit(sig) != 0;
        if ignored || blocked {
            return if sig == SIGTTIN { Err(EIO) } else { Ok(()) };
        }
        if task::pgrp_orphaned(mine, session) {
            return Err(EIO);
        }
        signal_group(mine, sig);
        Err(EINTR)
    }

    fn read(&self, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        self.check_change(SIGTTIN)?;
        if buf.len() == 0 {
            return Ok(0);
        }
        let (canonical, vmin, vtime) = {
            let s = self.state.lock();
            let t = &s.ldisc.termios;
            (t.lflag & ICANON != 0, usize::from(t.cc[VMIN]), u64::from(t.cc[VTIME]))
        };
        // How many bytes must be there before the read returns.
        let want = if canonical { 1 } else { vmin.min(buf.len()) };
        let enough = || {
            let s = self.state.lock();
            if canonical { s.ldisc.readable() } else { s.ldisc.available() >= want.max(1) }
        };
        if !enough() {
            if nonblock {
                return Err(EAGAIN);
            }
            if !canonical && vmin == 0 && vtime == 0 {
                return Ok(0);
            }
            let timeout = (!canonical && vtime > 0).then(|| vtime * 100_000_000);
            let any = || self.state.lock().ldisc.available() > 0;
            if let Some(t) = timeout {
                // VMIN 0: wait up to VTIME for one byte. VMIN > 0: wait for the first byte,
                // then up to VTIME (from then on) for VMIN of them.
                if vmin > 0 {
                    self.readable.wait_until(None, any).map_err(wait_error)?;
                }
                let deadline = crate::time::monotonic_ns() + t;
                let done = || if vmin == 0 { any() } else { enough() };
                match self.readable.wait_until(Some(deadline), done) {
                    Ok(()) | Err(WaitError::TimedOut) => {}
                    Err(WaitError::Interrupted) => return Err(EINTR),
                }
            } else {
                self.readable.wait_until(None, enough).map_err(wait_error)?;
            }
        }
        let data = self.state.lock().ldisc.take(buf.len());
        buf.put(0, &data)?;
        Ok(data.len())
    }

    fn write(&self, buf: &IoBuf) -> KResult<usize> {
        let (oflag, lflag) = {
            let s = self.state.lock();
            (s.ldisc.termios.oflag, s.ldisc.termios.lflag)
        };
        if lflag & TOSTOP != 0 {
            self.check_change(SIGTTOU)?;
        }
        let onlcr = oflag & (termios::OPOST | termios::ONLCR) == termios::OPOST | termios::ONLCR;
        let mut chunk = [0u8; 256];
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(chunk.len());
            buf.get(done, &mut chunk[..n])?;
            if onlcr {
                crate::console::write_bytes_onlcr(&chunk[..n]);
            } else {
                crate::console::write_bytes(&chunk[..n]);
            }
            done += n;
        }
        Ok(done)
    }

    fn poll_mask(&self) -> u32 {
        let readable = self.state.lock().ldisc.readable();
        POLLOUT | POLLWRNORM | if readable { POLLIN | POLLRDNORM } else { 0 }
    }

    fn ioctl(&self, cmd: u64, arg: u64) -> KResult<u64> {
        let me = task::current_process();
        if matches!(cmd, TCSETS | TCSETSW | TCSETSF | TCFLSH | TCXONC | TCSBRK | TCSBRKP) {
            self.check_change(SIGTTOU)?;
        }
        match cmd {
            TCGETS => {
                let t = self.state.lock().ldisc.termios;
                task::write_user(arg, &t).map(|()| 0)
            }
            TCSETS | TCSETSW | TCSETSF => {
                let t: Termios = task::read_user(arg)?;
                let mut s = self.state.lock();
                if cmd == TCSETSF {
                    s.ldisc.flush_input();
                }
                s.ldisc.set_termios(t);
                drop(s);
                self.readable.wake_all(); // a mode change can make input readable
                Ok(0)
            }
            TIOCGWINSZ => {
                let ws = self.state.lock().winsize;
                task::write_user(arg, &ws).map(|()| 0)
            }
            TIOCSWINSZ => {
                let ws: WinSize = task::read_user(arg)?;
                let (changed, pgrp) = {
                    let mut s = self.state.lock();
                    let changed = s.winsize != ws;
                    s.winsize = ws;
                    (changed, s.pgrp)
                };
                if changed {
                    signal_group(pgrp, signal::SIGWINCH);
                }
                Ok(0)
            }
            FIONREAD => {
                let n = self.state.lock().ldisc.available() as i32;
                task::write_user(arg, &n).map(|()| 0)
            }
            TCFLSH => {
                if arg > 2 {
                    return Err(EINVAL);
                }
                if arg != 1 {
                    self.state.lock().ldisc.flush_input();
                }
                Ok(0)
            }
            // Output is never queued: draining, breaks and flow control have nothing to do.
            TCSBRK | TCSBRKP | TCXONC => Ok(0),
            TIOCOUTQ => task::write_user(arg, &0i32).map(|()| 0),
            TIOCGPGRP => {
                if !self.controls(&me) {
                    return Err(ENOTTY);
                }
                let pgrp = self.state.lock().pgrp;
                task::write_user(arg, &pgrp).map(|()| 0)
            }
            TIOCSPGRP => {
                if !self.controls(&me) {
                    return Err(ENOTTY);
                }
                self.check_change(SIGTTOU)?;
                let pgrp: i32 = task::read_user(arg)?;
                if pgrp < 0 {
                    return Err(EINVAL);
                }
                let sid = me.sid.load(Ordering::Relaxed);
                let exists = task::all_processes()
                    .iter()
                    .any(|p| p.pgid.load(Ordering::Relaxed) == pgrp as u32 && p.sid.load(Ordering::Relaxed) == sid);
                if !exists {
                    return Err(EPERM);
                }
                self.state.lock().pgrp = pgrp as u32;
                Ok(0)
            }
            TIOCGSID => {
                if !self.controls(&me) {
                    return Err(ENOTTY);
                }
                let sid = self.state.lock().session;
                task::write_user(arg, &sid).map(|()| 0)
            }
            TIOCSCTTY => {
                if self.controls(&me) {
                    return Ok(0);
                }
                let leader = me.sid.load(Ordering::Relaxed) == me.pid;
                let taken = self.state.lock().session != 0;
                // Only a session leader; stealing another session's tty needs arg 1 (and
                // root, which everyone is here).
                if !leader || (taken && arg != 1) {
                    return Err(EPERM);
                }
                self.set_controlling(&me);
                Ok(0)
            }
            TIOCNOTTY => {
                if !self.controls(&me) {
                    return Err(ENOTTY);
                }
                // The session leader gives it up: its foreground group is hung up and
                // continued (Linux's disassociate_ctty(0)); others just lose it.
                if let Some(pgrp) = self.disassociate(&me) {
                    signal_group(pgrp, signal::SIGHUP);
                    signal_group(pgrp, signal::SIGCONT);
                }
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// Which name the tty was opened by: `/dev/tty` means "my controlling terminal".
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TtyName {
    Console,
    CurrentTty,
    TtyS0,
}

/// A device node of the console tty.
pub struct TtyNode {
    ino: u64,
    name: TtyName,
}

const O_NOCTTY: u32 = 0o400;

impl TtyNode {
    pub fn new(name: TtyName) -> Arc<Self> {
        Arc::new(Self { ino: alloc_ino(), name })
    }
}

impl Node for TtyNode {
    fn stat(&self) -> Stat {
        let rdev = match self.name {
            TtyName::Console => (5 << 8) | 1,
            TtyName::CurrentTty => 5 << 8,
            TtyName::TtyS0 => (4 << 8) | 64,
        };
        Stat { ino: self.ino, mode: FileType::CharDevice.mode_bits() | 0o620, nlink: 1, rdev, ..Stat::default() }
    }

    fn open(&self, flags: u32) -> KResult<()> {
        let me = task::current_process();
        match self.name {
            TtyName::CurrentTty if !TTY.controls(&me) => Err(ENXIO),
            // A session leader without a terminal acquires this one (never via
            // /dev/console, as Linux).
            TtyName::TtyS0 if flags & O_NOCTTY == 0 => {
                let free = TTY.state.lock().session == 0;
                if free && me.sid.load(Ordering::Relaxed) == me.pid {
                    TTY.set_controlling(&me);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn read(&self, _offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        TTY.read(buf, nonblock)
    }

    fn write(&self, _offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        TTY.write(buf)
    }

    fn seekable(&self) -> bool {
        false
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn ioctl(&self, _file: &OpenFile, cmd: u64, arg: u64) -> KResult<u64> {
        TTY.ioctl(cmd & 0xffff_ffff, arg)
    }

    fn poll_mask(&self) -> u32 {
        TTY.poll_mask()
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        (!write).then_some(&TTY.readable)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
