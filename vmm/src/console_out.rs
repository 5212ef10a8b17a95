//! The host side of the console's output: what the guest transmits on its UART goes into
//! a bounded buffer, and a thread of its own writes the buffer to stdout.
//!
//! A vCPU never writes to stdout itself, so a stdout that blocks (a pipe nobody reads, a
//! stopped terminal) blocks neither the serial port's lock nor the thread that ends the
//! VM. When the buffer is full, the vCPU waits for room before it takes the serial lock
//! ([`ConsoleOut::wait_for_room`]): the guest's output is slowed to stdout's pace, not
//! dropped, until [`ConsoleOut::close`] (the VM is ending) releases every waiter. Once
//! stdout fails (EPIPE: the reader left), output is discarded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Bytes buffered before the guest's UART waits for stdout: a few of the writes the
/// guest's kernel makes, enough to keep the writer thread busy.
pub const CAPACITY: usize = 16 << 10;
/// Bytes the buffer may exceed [`CAPACITY`] by: the writes that found room before their
/// vCPU took the serial lock (each a few bytes, one per vCPU); beyond it bytes are dropped.
const SLACK: usize = 1 << 10;

#[derive(Default)]
struct State {
    buf: VecDeque<u8>,
    /// The writer thread has taken bytes out and is writing them.
    writing: bool,
    /// The VM is ending: nobody waits for room any more.
    closed: bool,
    /// stdout failed: output is discarded.
    broken: bool,
    /// Bytes dropped because the buffer was over its bound.
    dropped: u64,
}

/// The console output buffer, shared by the UART (producer) and the writer thread.
#[derive(Default)]
pub struct ConsoleOut {
    state: Mutex<State>,
    /// Signalled when bytes arrive or the console closes (the writer waits).
    data: Condvar,
    /// Signalled when bytes were written out or the console closes (producers and
    /// flushers wait).
    room: Condvar,
}

impl ConsoleOut {
    /// A buffer and the thread that writes it to `out`.
    pub fn spawn(out: Box<dyn Write + Send>) -> io::Result<Arc<Self>> {
        let console = Arc::new(Self::default());
        let writer = Arc::clone(&console);
        std::thread::Builder::new().name("console-out".into()).spawn(move || writer.write_out(out))?;
        Ok(console)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer thread: takes what is buffered, writes it outside the lock.
    fn write_out(&self, mut out: Box<dyn Write + Send>) {
        if let Err(e) = crate::seccomp::install(crate::seccomp::Thread::ConsoleOut) {
            log::error!("{e}");
        }
        let mut chunk = Vec::with_capacity(CAPACITY);
        loop {
            let mut state = self.lock();
            while state.buf.is_empty() {
                state = self.data.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            chunk.clear();
            chunk.extend(state.buf.drain(..));
            state.writing = true;
            drop(state);
            let result = out.write_all(&chunk).and_then(|()| out.flush());
            let mut state = self.lock();
            state.writing = false;
            if let Err(e) = result {
                log::debug!("console output: {e}; discarding the guest's output from now on");
                state.broken = true;
                state.buf.clear();
            }
            drop(state);
            self.room.notify_all();
        }
    }

    /// Waits until the buffer has room (or the console is closed or broken). Called
    /// before the serial lock is taken.
    pub fn wait_for_room(&self) {
        let mut state = self.lock();
        while state.buf.len() >= CAPACITY && !state.closed && !state.broken {
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Appends `bytes`; never blocks (see [`ConsoleOut::wait_for_room`]).
    fn push(&self, bytes: &[u8]) {
        let mut state = self.lock();
        if state.broken {
            return;
        }
        // The writer sleeps only on an empty buffer: wake it only for the first bytes.
        let was_empty = state.buf.is_empty();
        let n = bytes.len().min((CAPACITY + SLACK).saturating_sub(state.buf.len()));
        state.buf.extend(&bytes[..n]);
        state.dropped += (bytes.len() - n) as u64;
        drop(state);
        if was_empty {
            self.data.notify_one();
        }
    }

    /// The VM is ending: releases the vCPUs that wait for room. Output still buffered is
    /// written while the process lives (see [`ConsoleOut::flush_until`]).
    pub fn close(&self) {
        self.lock().closed = true;
        self.room.notify_all();
    }

    /// Waits until everything pushed has been written out, or until `deadline`. Returns
    /// whether it all was.
    pub fn flush_until(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.lock();
        while (!state.buf.is_empty() || state.writing) && !state.broken {
            state = match deadline {
                None => self.room.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                        return false;
                    };
                    self.room.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        true
    }

    /// Bytes dropped because the buffer was over its bound.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The UART's output stream: appends to this buffer.
    pub fn writer(self: &Arc<Self>) -> ConsoleWriter {
        ConsoleWriter(Arc::clone(self))
    }
}

/// What the UART writes to (vm-superio's `Serial` output).
pub struct ConsoleWriter(Arc<ConsoleOut>);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    /// The writer thread flushes; the UART's flush after each byte costs nothing.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use std::time::Duration;

    /// A pipe: (read end, write end as a `File`).
    fn pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors, which we own from here on.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors owned by nobody else.
        unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn output_reaches_stdout_in_order() {
        let (mut r, w) = pipe();
        let out = ConsoleOut::spawn(Box::new(w)).unwrap();
        let mut writer = out.writer();
        for i in 0..1000u32 {
            out.wait_for_room();
            write!(writer, "{i} ").unwrap();
        }
        assert!(out.flush_until(Some(Instant::now() + Duration::from_secs(5))));
        drop(writer);
        let expected: String = (0..1000u32).map(|i| format!("{i} ")).collect();
        let mut got = vec![0u8; expected.len()];
        io::Read::read_exact(&mut r, &mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);
    }

    /// A stdout nobody reads: producers wait for room without holding any lock of
    /// theirs, `close` releases them, and a bounded flush gives up on time.
    #[test]
    fn a_blocked_stdout_blocks_neither_close_nor_flush() {
        let (r, w) = pipe();
        let out = ConsoleOut::spawn(Box::new(w)).unwrap();
        let producer = {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut writer = out.writer();
                // Far more than the pipe (64 KiB) and the buffer hold.
                for _ in 0..(1 << 20) / 64 {
                    out.wait_for_room();
                    writer.write_all(&[b'x'; 64]).unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!producer.is_finished(), "the producer waits for room");
        let start = Instant::now();
        assert!(!out.flush_until(Some(Instant::now() + Duration::from_millis(100))));
        out.close();
        producer.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        assert!(out.dropped() > 0, "bytes past the bound are dropped once closed");
        assert!(out.lock().buf.len() <= CAPACITY + SLACK);
        drop(r);
    }

    /// When the reader goes away (EPIPE), output is discarded and nothing waits.
    #[test]
    fn a_broken_stdout_discards() {
        let (r, w) = pipe();
        drop(r);
        let out = ConsoleOut::spawn(Box::new(w)).unwrap();
        let mut writer = out.writer();
        for _ in 0..(1 << 20) / 64 {
            out.wait_for_room();
            writer.write_all(&[b'x'; 64]).unwrap();
        }
        assert!(out.flush_until(None));
    }
}
