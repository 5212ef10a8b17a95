//! Debugging the guest kernel with GDB: `vmm run --gdb PORT`, and the same GDB script
//! against QEMU's own stub (`-gdb tcp::PORT -S`) with the same ELF.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{guest_elf, on_both_platforms, rootfs, try_run, vmm_bin, Platform};

/// A symbol's address in the guest kernel (`nm -C`).
fn symbol(name: &str) -> u64 {
    let out = Command::new("nm").arg("-C").arg(guest_elf()).output().expect("run nm (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.splitn(3, ' ').nth(2) == Some(name)).unwrap_or_else(|| panic!("no symbol {name} in the kernel"));
    u64::from_str_radix(&line[..16], 16).expect("a hex address")
}

/// A local port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Whether a socket listens on 127.0.0.1:`port` (`/proc/net/tcp`: state 0A is LISTEN).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[3] == "0A"
    })
}

/// The `rip` values `info registers rip` printed, in order.
fn rips(gdb_out: &str) -> Vec<u64> {
    gdb_out
        .lines()
        .filter_map(|l| l.strip_prefix("rip"))
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()))
        .collect()
}

// The guest waits for GDB before its first instruction. GDB sets a hardware breakpoint on
// io_uring's enter path (`io_uring::enter`), continues until a uring-test NOP test gets
// there, reads RIP and a kernel variable (the online-CPU mask: both CPUs), steps one
// instruction, and detaches; the guest then runs its tests to the end.
on_both_platforms!(gdb_stops_the_kernel_on_io_uring_enter, |p| {
    let enter = symbol("guest_kernel::io_uring::enter");
    let online = symbol("guest_kernel::arch::x86_64::smp::ONLINE");
    let port = free_port();
    let cmdline = "init=/bin/uring-test -- nop";
    let mut guest = match p {
        Platform::Vmm => {
            let mut cmd = Command::new(vmm_bin());
            cmd.arg("run").arg(guest_elf()).args(["--vcpus", "2", "--gdb", &port.to_string(), "--timeout", "100"]);
            cmd.arg("--initrd").arg(rootfs()).args(["--cmdline", cmdline]);
            cmd
        }
        Platform::QemuTcg => {
            let mut cmd = tests::qemu_command_smp(&guest_elf(), cmdline, "tcg", "2");
            cmd.arg("-initrd").arg(rootfs()).args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"]);
            cmd
        }
    };
    let mut child = guest.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the guest");
    // The stub listens before the guest starts: wait for that without connecting (each
    // stub serves the first connection only).
    let start = Instant::now();
    while !listening(port) {
        assert!(start.elapsed() < Duration::from_secs(20), "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"]).arg(guest_elf());
    for ex in [
        format!("target remote 127.0.0.1:{port}"),
        format!("hbreak *{enter:#x}"),
        "continue".into(),
        "info registers rip".into(),
        format!("print/x *(unsigned long *){online:#x}"),
        "stepi".into(),
        "info registers rip".into(),
        "detach".into(),
    ] {
        gdb.arg("-ex").arg(ex);
    }
    let (code, out, err) = try_run(gdb, Duration::from_secs(120)).expect("run gdb");
    // The guest ends on its own once GDB is gone.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the guest") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut guest_out = String::new();
    let _ = child.stdout.take().expect("piped").read_to_string(&mut guest_out);
    let report = format!("gdb exit {code:?}\n--- gdb stdout ---\n{out}\n--- gdb stderr ---\n{err}\n--- guest ---\n{guest_out}");
    assert!(out.contains(&format!("Breakpoint 1, {enter:#x}")), "no stop at io_uring::enter\n{report}");
    let rips = rips(&out);
    assert_eq!(rips.len(), 2, "two RIPs read\n{report}");
    assert_eq!(rips[0], enter, "RIP at the breakpoint\n{report}");
    assert!(rips[1] > enter && rips[1] < enter + 16, "stepi moved one instruction\n{report}");
    assert!(out.contains("$1 = 0x3"), "the online-CPU mask read as two CPUs\n{report}");
    assert!(out.contains("detached"), "gdb detached\n{report}");
    assert!(status.is_some(), "the guest did not end after gdb detached\n{report}");
    assert!(guest_out.contains("6 passed, 0 failed"), "the guest's tests after the session\n{report}");
});
