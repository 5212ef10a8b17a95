//! Formatted output without allocation: [`StackStr`] collects text in a fixed buffer;
//! the print macros format one call's text and `write(2)` it at once.

use core::ffi::CStr;
use core::fmt::{self, Write};

use crate::syscall::write;

/// Text in a fixed buffer of `N` bytes (the last one kept for a NUL, see [`Self::as_cstr`]).
/// Writes beyond the capacity are dropped and remembered by [`Self::truncated`].
pub struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> StackStr<N> {
    pub const fn new() -> Self {
        const { assert!(N > 0) };
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// Formats `args` into a new buffer.
    pub fn from_fmt(args: fmt::Arguments<'_>) -> Self {
        let mut s = Self::new();
        let _ = s.write_fmt(args);
        s
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only whole `str`s are appended (see write_str), so this cannot fail.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text followed by a NUL, e.g. as a path for a syscall.
    pub fn as_cstr(&self) -> &CStr {
        // buf[len] is always 0 (see write_str); an interior NUL would end the string early.
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.buf[0] = 0;
        self.truncated = false;
    }
}

impl<const N: usize> Default for StackStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N.saturating_sub(1) - self.len;
        if s.len() > room {
            // Keep whole characters only, so the buffer stays valid UTF-8.
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
            self.len += cut;
            self.buf[self.len] = 0;
            self.truncated = true;
            return Ok(());
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        self.buf[self.len] = 0;
        Ok(())
    }
}

impl<const N: usize> fmt::Display for StackStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Writes all of `buf` to `fd`, retrying short writes; errors are ignored.
pub fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) if n > 0 => buf = &buf[n..],
            _ => return,
        }
    }
}

/// Formats `args` into a stack buffer and writes it with one `write(2)` (more only for
/// text longer than the buffer).
pub fn print_to(fd: i32, args: fmt::Arguments<'_>) {
    struct Out {
        fd: i32,
        buf: [u8; 1024],
        len: usize,
    }
    impl Out {
        fn flush(&mut self) {
            write_all(self.fd, &self.buf[..self.len]);
            self.len = 0;
        }
    }
    impl fmt::Write for Out {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for chunk in s.as_bytes().chunks(self.buf.len()) {
                if self.len + chunk.len() > self.buf.len() {
                    self.flush();
                }
                self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
                self.len += chunk.len();
            }
            Ok(())
        }
    }
    let mut out = Out {
        fd,
        buf: [0; 1024],
        len: 0,
    };
    let _ = out.write_fmt(args);
    out.flush();
}

/// Prints to stdout.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::print_to(1, format_args!($($arg)*)) };
}

/// Prints a line to stdout.
#[macro_export]
macro_rules! println {
    () => { $crate::io::print_to(1, format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print_to(1, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to stderr.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::print_to(2, format_args!($($arg)*)) };
}

/// Prints a line to stderr.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::print_to(2, format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print_to(2, format_args!("{}\n", format_args!($($arg)*))) };
}
