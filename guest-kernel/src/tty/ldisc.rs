//! The line discipline (Linux's `n_tty`): what received bytes become (editing, echo,
//! signals, readable input) and how output is cooked. Pure data: no locks, no devices;
//! `tty/mod.rs` holds it under its lock and does the I/O it asks for. Host tests compile
//! this file as it is (`tests/tests/ldisc.rs`).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::termios::*;

/// Linux's N_TTY_BUF_SIZE: input beyond this many unread bytes is dropped.
pub const INPUT_MAX: usize = 4096;

/// What receiving bytes asks the tty to do besides buffering.
#[derive(Default)]
pub struct Effects {
    /// Bytes to echo (already cooked for output).
    pub echo: Vec<u8>,
    /// A signal for the foreground process group (SIGINT, SIGQUIT, SIGTSTP).
    pub signal: Option<u32>,
    /// New input became readable.
    pub readable: bool,
}

pub struct Ldisc {
    pub termios: Termios,
    /// Canonical mode: the line being edited, not yet readable.
    line: Vec<u8>,
    /// Readable bytes.
    ready: VecDeque<u8>,
    /// Canonical mode: the lengths of the complete lines in `ready` (an EOF at the start
    /// of a line is a line of length 0: a read returns 0).
    lines: VecDeque<usize>,
}

const SIGINT: u32 = 2;
const SIGQUIT: u32 = 3;
const SIGTSTP: u32 = 20;

impl Ldisc {
    pub const fn new() -> Self {
        Self { termios: Termios::STD, line: Vec::new(), ready: VecDeque::new(), lines: VecDeque::new() }
    }

    fn canonical(&self) -> bool {
        self.termios.lflag & ICANON != 0
    }

    /// Installs new settings; leaving canonical mode makes the edited line readable.
    pub fn set_termios(&mut self, t: Termios) {
        let was = self.canonical();
        self.termios = t;
        if was && !self.canonical() {
            self.ready.extend(self.line.drain(..));
            self.lines.clear();
        } else if !was && self.canonical() && !self.ready.is_empty() {
            self.lines.clear();
            self.lines.push_back(self.ready.len());
        }
    }

    /// Drops all input (TCFLSH, TCSETSF, a signal character without NOFLSH).
    pub fn flush_input(&mut self) {
        self.line.clear();
        self.ready.clear();
        self.lines.clear();
    }

    /// Bytes a read could take now (FIONREAD).
    pub fn available(&self) -> usize {
        if self.canonical() { self.lines.iter().sum() } else { self.ready.len() }
    }

    /// Whether a read would return now (canonical: a complete line; otherwise any byte;
    /// `min` is VMIN's demand, checked by the reader).
    pub fn readable(&self) -> bool {
        if self.canonical() { !self.lines.is_empty() } else { !self.ready.is_empty() }
    }

    /// Takes up to `max` bytes for a read: one line at most in canonical mode.
    pub fn take(&mut self, max: usize) -> Vec<u8> {
        let n = if self.canonical() {
            let Some(first) = self.lines.front_mut() else { return Vec::new() };
            let n = (*first).min(max);
            *first -= n;
            // A line read whole goes; an empty one (EOF) is consumed by this read.
            if *first == 0 {
                self.lines.pop_front();
            }
            n
        } else {
            self.ready.len().min(max)
        };
        self.ready.drain(..n).collect()
    }

    fn unread(&self) -> usize {
        self.ready.len() + self.line.len()
    }

    /// Receives bytes from the device.
    pub fn receive(&mut self, bytes: &[u8]) -> Effects {
        let mut fx = Effects::default();
        for &b in bytes {
            self.receive_one(b, &mut fx);
        }
        fx
    }

    fn receive_one(&mut self, mut c: u8, fx: &mut Effects) {
        let t = self.termios;
        if t.iflag & ISTRIP != 0 {
            c &= 0x7f;
        }
        if c == b'\r' {
            if t.iflag & IGNCR != 0 {
                return;
            }
            if t.iflag & ICRNL != 0 {
                c = b'\n';
            }
        } else if c == b'\n' && t.iflag & INLCR != 0 {
            c = b'\r';
        }
        if t.lflag & ISIG != 0 {
            let sig = match c {
                _ if c == t.cc[VINTR] && c != 0 => Some(SIGINT),
                _ if c == t.cc[VQUIT] && c != 0 => Some(SIGQUIT),
                _ if c == t.cc[VSUSP] && c != 0 => Some(SIGTSTP),
                _ => None,
            };
            if let Some(sig) = sig {
                if t.lflag & NOFLSH == 0 {
                    self.flush_input();
                }
                self.echo_char(c, fx);
                fx.signal = Some(sig);
                return;
            }
        }
        if !self.canonical() {
            if self.unread() < INPUT_MAX {
                self.ready.push_back(c);
                fx.readable = true;
                self.echo_char(c, fx);
            }
            return;
        }
        if c == t.cc[VERASE] && c != 0 {
            if let Some(gone) = self.line.pop() {
                self.echo_erase(gone, fx);
            }
            return;
        }
        if c == t.cc[VKILL] && c != 0 {
            while let Some(gone) = self.line.pop() {
                self.echo_erase(gone, fx);
            }
            return;
        }
        if c == t.cc[VWERASE] && c != 0 && t.lflag & IEXTEN != 0 {
            while self.line.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                let gone = self.line.pop().unwrap_or(b' ');
                self.echo_erase(gone, fx);
            }
            while self.line.last().is_some_and(|b| *b != b' ' && *b != b'\t') {
                let gone = self.line.pop().unwrap_or(b' ');
                self.echo_erase(gone, fx);
            }
            return;
        }
        if c == t.cc[VEOF] && c != 0 {
            self.end_line(fx);
            return;
        }
        if self.unread() >= INPUT_MAX - 1 && c != b'\n' {
            return; // room is kept for the newline that ends the line
        }
        self.line.push(c);
        if c == b'\n' && t.lflag & ECHO == 0 && t.lflag & ECHONL != 0 {
            fx.echo.extend_from_slice(b"\r\n");
        }
        self.echo_char(c, fx);
        if c == b'\n' || (c == t.cc[VEOL] && c != 0) || (c == t.cc[VEOL2] && c != 0) {
            self.end_line(fx);
        }
    }

    fn end_line(&mut self, fx: &mut Effects) {
        self.lines.push_back(self.line.len());
        self.ready.extend(self.line.drain(..));
        fx.readable = true;
    }

    fn echo_char(&self, c: u8, fx: &mut Effects) {
        let t = &self.termios;
        if t.lflag & ECHO == 0 {
            return;
        }
        if t.lflag & ECHOCTL != 0 && (c < 0x20 || c == 0x7f) && c != b'\n' && c != b'\t' {
            fx.echo.push(b'^');
            fx.echo.push(c ^ 0x40);
        } else {
            cook_output(t, &[c], &mut fx.echo);
        }
    }

    fn echo_erase(&self, gone: u8, fx: &mut Effects) {
        let t = &self.termios;
        if t.lflag & ECHO == 0 {
            return;
        }
        if t.lflag & ECHOE == 0 {
            self.echo_char(t.cc[VERASE], fx);
            return;
        }
        let width = if t.lflag & ECHOCTL != 0 && (gone < 0x20 || gone == 0x7f) && gone != b'\t' { 2 } else { 1 };
        for _ in 0..width {
            fx.echo.extend_from_slice(b"\x08 \x08");
        }
    }
}

/// Output processing: with OPOST and ONLCR each `\n` goes out as `\r\n`.
pub fn cook_output(t: &Termios, bytes: &[u8], out: &mut Vec<u8>) {
    if t.oflag & OPOST == 0 || t.oflag & ONLCR == 0 {
        out.extend_from_slice(bytes);
        return;
    }
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}
