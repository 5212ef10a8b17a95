//! The guest kernel's line discipline (`guest-kernel/src/tty/ldisc.rs`, pure data),
//! compiled for the host and checked against what Linux's n_tty does.

extern crate alloc;

// `ldisc.rs` finds the constants as `super::termios`: both sit at this crate's root.
#[allow(dead_code)] // the kernel uses more of it than these tests
#[path = "../../guest-kernel/src/tty/ldisc.rs"]
mod ldisc;
#[allow(dead_code)]
#[path = "../../guest-kernel/src/tty/termios.rs"]
mod termios;

use ldisc::{cook_output, Ldisc, INPUT_MAX};
use termios::*;

fn read_all(l: &mut Ldisc) -> Vec<u8> {
    l.take(usize::MAX)
}

#[test]
fn canonical_lines_become_readable_at_newline_with_icrnl_and_echo() {
    let mut l = Ldisc::new();
    let fx = l.receive(b"ab");
    assert!(!l.readable() && !fx.readable);
    assert_eq!(fx.echo, b"ab");
    let fx = l.receive(b"\r");
    assert!(fx.readable && l.readable());
    assert_eq!(fx.echo, b"\r\n", "CR read as NL (ICRNL), echoed as CR NL (ONLCR)");
    assert_eq!(l.available(), 3);
    assert_eq!(read_all(&mut l), b"ab\n");
    assert!(!l.readable());
}

#[test]
fn a_read_takes_one_line_at_most_and_short_reads_keep_the_rest() {
    let mut l = Ldisc::new();
    l.receive(b"one\ntwo\n");
    assert_eq!(l.take(2), b"on");
    assert_eq!(l.take(100), b"e\n");
    assert_eq!(l.take(100), b"two\n");
}

#[test]
fn erase_kill_and_word_erase_edit_the_line() {
    let mut l = Ldisc::new();
    let fx = l.receive(b"abc\x7f");
    assert!(fx.echo.ends_with(b"\x08 \x08"), "ECHOE rubs out");
    l.receive(b"d\n");
    assert_eq!(read_all(&mut l), b"abd\n");
    l.receive(b"junk\x15ok\n");
    assert_eq!(read_all(&mut l), b"ok\n");
    l.receive(b"one two  \x17three\n");
    assert_eq!(read_all(&mut l), b"one three\n");
    let fx = l.receive(b"\x7f");
    assert!(fx.echo.is_empty(), "nothing to erase");
}

#[test]
fn eof_ends_a_line_without_itself_and_reads_zero_at_the_start() {
    let mut l = Ldisc::new();
    l.receive(b"par\x04");
    assert_eq!(read_all(&mut l), b"par");
    l.receive(b"\x04");
    assert!(l.readable(), "EOF is readable");
    assert_eq!(read_all(&mut l), b"", "and reads as 0 bytes");
    assert!(!l.readable(), "once");
}

#[test]
fn signal_characters_flush_and_echo_unless_told_otherwise() {
    let mut l = Ldisc::new();
    l.receive(b"half");
    let fx = l.receive(b"\x03");
    assert_eq!(fx.signal, Some(2));
    assert_eq!(fx.echo, b"^C");
    assert_eq!(l.available(), 0);
    l.receive(b"x\n");
    assert_eq!(read_all(&mut l), b"x\n", "the flushed half line is gone");
    assert_eq!(l.receive(b"\x1c").signal, Some(3));
    assert_eq!(l.receive(b"\x1a").signal, Some(20));
    let mut t = Termios::STD;
    t.lflag |= NOFLSH;
    l.set_termios(t);
    l.receive(b"kept");
    l.receive(b"\x03\n");
    assert_eq!(read_all(&mut l), b"kept\n");
    t.lflag &= !ISIG;
    l.set_termios(t);
    let fx = l.receive(b"\x03\n");
    assert_eq!(fx.signal, None);
    assert_eq!(read_all(&mut l), b"\x03\n", "without ISIG ^C is data");
}

#[test]
fn raw_mode_passes_bytes_at_once_without_echo() {
    let mut l = Ldisc::new();
    let mut t = Termios::STD;
    t.lflag &= !(ICANON | ECHO);
    t.iflag &= !ICRNL;
    l.set_termios(t);
    let fx = l.receive(b"a\x7f\r");
    assert!(fx.readable && fx.echo.is_empty());
    assert_eq!(read_all(&mut l), b"a\x7f\r");
}

#[test]
fn leaving_canonical_mode_makes_the_edited_line_readable() {
    let mut l = Ldisc::new();
    l.receive(b"part");
    assert!(!l.readable());
    let mut t = Termios::STD;
    t.lflag &= !ICANON;
    l.set_termios(t);
    assert_eq!(read_all(&mut l), b"part");
    l.receive(b"raw");
    l.set_termios(Termios::STD);
    assert!(l.readable(), "raw bytes read before return to canonical mode stay readable");
    assert_eq!(read_all(&mut l), b"raw");
}

#[test]
fn echo_ctl_and_echonl() {
    let mut l = Ldisc::new();
    let mut t = Termios::STD;
    t.lflag &= !ICANON;
    l.set_termios(t);
    assert_eq!(l.receive(b"\x01\t").echo, b"^A\t");
    t.lflag &= !ECHO;
    t.lflag |= ECHONL | ICANON;
    l.set_termios(t);
    assert_eq!(l.receive(b"secret\n").echo, b"\r\n", "ECHONL echoes only the newline");
}

#[test]
fn input_is_bounded_and_a_full_line_can_still_end() {
    let mut l = Ldisc::new();
    let big = vec![b'x'; INPUT_MAX * 2];
    l.receive(&big);
    l.receive(b"\n");
    let line = read_all(&mut l);
    assert_eq!(line.len(), INPUT_MAX);
    assert_eq!(line.last(), Some(&b'\n'));
}

#[test]
fn output_processing() {
    let mut out = Vec::new();
    cook_output(&Termios::STD, b"a\nb\n\n", &mut out);
    assert_eq!(out, b"a\r\nb\r\n\r\n");
    let mut t = Termios::STD;
    t.oflag &= !OPOST;
    out.clear();
    cook_output(&t, b"a\n", &mut out);
    assert_eq!(out, b"a\n");
}

#[test]
fn linux_defaults() {
    let t = Termios::STD;
    assert_eq!((t.iflag, t.oflag, t.cflag, t.lflag), (0o2400, 0o5, 0o2277, 0o105073));
    assert_eq!((t.cc[VINTR], t.cc[VERASE], t.cc[VEOF], t.cc[VMIN], t.cc[VTIME]), (3, 0x7f, 4, 1, 0));
}
