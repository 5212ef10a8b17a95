//! The host side of the interactive console: stdin into the guest's UART (COM1).
//!
//! A thread reads stdin and hands each chunk to [`serial::push_input`], which returns only
//! once the guest's receive FIFO took all of it: stdin is read no faster than the guest
//! reads the UART, so a guest that never reads leaves the input in the host's pipe or
//! terminal, not in the VMM's memory. At EOF (a pipe's writer closed it) the thread ends.
//!
//! When stdin is a terminal and `vmm` is in its foreground, the terminal is put in raw
//! mode as QEMU's `-serial mon:stdio` does (no echo, no line editing, ^C and ^Z are bytes
//! for the guest; output processing stays on), and restored on every way out: return,
//! panic (a hook, since panics abort) and the signals that end the process (a handler).
//! Then Ctrl-A is an escape key: Ctrl-A x quits, Ctrl-A Ctrl-A sends a Ctrl-A, Ctrl-A h
//! lists the keys. Bytes from a pipe or file pass unchanged.

use std::sync::{Arc, OnceLock};
use std::thread;

use crate::devices::serial::{self, RxSpace};
use crate::devices::IoBus;

/// Ctrl-A: the escape key on a terminal.
pub const ESCAPE: u8 = 0x01;

const HELP: &str = "\r\nC-a x    exit vmm\r\nC-a C-a  send C-a\r\nC-a h    this help\r\n";

/// What a key typed on the terminal asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
}

/// The Ctrl-A escape state machine.
#[derive(Default)]
pub struct Escape {
    pending: bool,
}

impl Escape {
    /// Passes `input` through the escape keys into `out`; stops at the first command.
    /// Returns the command and how much of `input` was consumed.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> (Option<Command>, usize) {
        for (i, &b) in input.iter().enumerate() {
            if !self.pending {
                if b == ESCAPE {
                    self.pending = true;
                } else {
                    out.push(b);
                }
                continue;
            }
            self.pending = false;
            match b {
                ESCAPE => out.push(ESCAPE),
                b'x' | b'X' => return (Some(Command::Quit), i + 1),
                b'h' | b'H' | b'?' => return (Some(Command::Help), i + 1),
                _ => {} // unknown: dropped, as QEMU does
            }
        }
        (None, input.len())
    }
}

/// The terminal's settings before raw mode, restored on the way out.
static SAVED: OnceLock<libc::termios> = OnceLock::new();

fn restore() {
    if let Some(t) = SAVED.get() {
        // SAFETY: tcsetattr with a termios from tcgetattr; async-signal-safe.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, t) };
    }
}

extern "C" fn restore_and_die(sig: libc::c_int) {
    restore();
    // SAFETY: back to the default action, then the signal again: the process ends as
    // the signal says, with the terminal restored.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Raw mode on stdin's terminal while it lives.
pub struct RawTerminal(());

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether stdin is a terminal.
pub fn stdin_is_a_terminal() -> bool {
    // SAFETY: a plain query of fd 0.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// Whether stdin is a terminal whose foreground is this process's group.
fn stdin_is_our_terminal() -> bool {
    // SAFETY: plain queries of fd 0 and of this process.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp() }
}

/// Puts stdin's terminal in raw mode; `None` when stdin is not our terminal.
pub fn raw_mode() -> Option<RawTerminal> {
    if !stdin_is_our_terminal() {
        return None;
    }
    // SAFETY: termios is plain data; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 and a valid termios.
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } != 0 {
        return None;
    }
    let _ = SAVED.set(t);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { libc::signal(sig, restore_and_die as *const () as libc::sighandler_t) };
    }
    // QEMU's settings for a stdio character device (qemu_chr_set_echo_stdio).
    t.c_iflag &= !(libc::IGNBRK | libc::BRKINT | libc::PARMRK | libc::ISTRIP | libc::INLCR | libc::IGNCR | libc::ICRNL | libc::IXON);
    t.c_oflag |= libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN | libc::ISIG);
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: fd 0 and a valid termios.
    unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) };
    Some(RawTerminal(()))
}

/// Starts the thread that feeds stdin to the UART. `escape`: Ctrl-A keys are honoured
/// (a terminal); `quit` is called on Ctrl-A x.
pub fn spawn_input(
    bus: Arc<IoBus>,
    rx_space: Arc<RxSpace>,
    escape: bool,
    quit: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    thread::Builder::new().name("stdin".into()).spawn(move || {
        if let Err(e) = crate::seccomp::install(crate::seccomp::Thread::Stdin) {
            eprintln!("vmm: {e}");
            std::process::exit(1);
        }
        let serial = bus.serial();
        let mut esc = Escape::default();
        let mut buf = [0u8; 64];
        let mut out = Vec::with_capacity(buf.len());
        loop {
            // SAFETY: reads into a buffer we own, at most its length.
            let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if n == 0 {
                return; // EOF: nothing more will come
            }
            let mut input = &buf[..n as usize];
            if !escape {
                serial::push_input(serial, &rx_space, input, || true);
                continue;
            }
            while !input.is_empty() {
                out.clear();
                let (command, used) = esc.filter(input, &mut out);
                serial::push_input(serial, &rx_space, &out, || true);
                input = &input[used..];
                match command {
                    Some(Command::Quit) => return quit(),
                    Some(Command::Help) => eprint!("{HELP}"),
                    None => {}
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(esc: &mut Escape, input: &[u8]) -> (Vec<u8>, Option<Command>, usize) {
        let mut out = Vec::new();
        let (cmd, used) = esc.filter(input, &mut out);
        (out, cmd, used)
    }

    #[test]
    fn plain_bytes_pass() {
        assert_eq!(run(&mut Escape::default(), b"ls\r\x03"), (b"ls\r\x03".to_vec(), None, 4));
    }

    #[test]
    fn ctrl_a_x_quits_and_stops_there() {
        assert_eq!(run(&mut Escape::default(), b"ab\x01xcd"), (b"ab".to_vec(), Some(Command::Quit), 4));
    }

    #[test]
    fn ctrl_a_ctrl_a_sends_one_ctrl_a() {
        assert_eq!(run(&mut Escape::default(), b"\x01\x01z"), (b"\x01z".to_vec(), None, 3));
    }

    #[test]
    fn escape_split_across_reads() {
        let mut esc = Escape::default();
        assert_eq!(run(&mut esc, b"q\x01"), (b"q".to_vec(), None, 2));
        assert_eq!(run(&mut esc, b"X"), (Vec::new(), Some(Command::Quit), 1));
    }

    #[test]
    fn unknown_escapes_are_dropped_and_h_asks_for_help() {
        let mut esc = Escape::default();
        assert_eq!(run(&mut esc, b"\x01zy"), (b"y".to_vec(), None, 3));
        assert_eq!(run(&mut esc, b"\x01h!"), (Vec::new(), Some(Command::Help), 2));
    }
}
