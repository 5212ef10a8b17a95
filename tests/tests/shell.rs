//! An interactive shell: Debian's busybox-static runs as init (`images/busybox.cpio`) and
//! the test drives `sh` over the console, as a person would: the VM's stdin feeds the
//! UART, the kernel's tty cooks it, and the shell's output comes back on stdout. Under
//! `vmm run` (KVM) and QEMU (TCG).

use std::path::Path;
use std::time::{Duration, Instant};

use tests::console::{busybox_image, Console};
use tests::{device_args, on_both_platforms, scratch_dir, Device};

const PROMPT: &str = "/ # ";
const STEP: Duration = Duration::from_secs(60);

/// Runs `command` at the prompt and returns what it printed (up to the next prompt).
fn run(c: &mut Console, command: &str) -> String {
    c.send(format!("{command}\n").as_bytes());
    // The shell echoes the line itself (line editing), then runs it.
    c.expect(command, STEP);
    let out = c.expect(PROMPT, STEP);
    out.trim_end_matches(PROMPT).to_owned()
}

fn disk(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("disk.img");
    let mut bytes = vec![0u8; 1 << 20];
    bytes[4096..4096 + 11].copy_from_slice(b"host-marker");
    std::fs::write(&path, bytes).expect("write disk image");
    path
}

on_both_platforms!(busybox_shell_over_the_console, |p| {
    let dir = scratch_dir(&format!("shell-{p:?}"));
    let share = dir.join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("greeting.txt"), "hello from the host\n").unwrap();
    let img = disk(&dir);
    let devices = [Device::Disk { path: &img, read_only: false }, Device::Share { dir: &share, tag: "share" }];
    let mut c = Console::boot(p, "init=/bin/sh", &busybox_image(), &device_args(p, &devices));
    c.expect(PROMPT, STEP);

    let ls = run(&mut c, "ls /mnt/share");
    assert!(ls.contains("greeting.txt"), "{p:?}: ls /mnt/share:\n{ls}");

    // dd to the disk and back, and the host's marker from the disk.
    let out = run(&mut c, "echo guest-wrote-this | dd of=/dev/vda bs=512 conv=sync,fsync");
    assert!(out.contains("1+0 records out"), "{p:?}: dd to /dev/vda:\n{out}");
    let out = run(&mut c, "dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 16; echo");
    assert!(out.contains("guest-wrote-this"), "{p:?}: dd from /dev/vda:\n{out}");
    let out = run(&mut c, "dd if=/dev/vda bs=4096 skip=1 count=1 2>/dev/null | head -c 11; echo");
    assert!(out.contains("host-marker"), "{p:?}: dd of the host's block:\n{out}");

    let maps = run(&mut c, "cat /proc/self/maps");
    assert!(maps.contains("r-xp") && maps.contains("[stack]"), "{p:?}: /proc/self/maps:\n{maps}");

    // A pipeline through three processes.
    let out = run(&mut c, "echo abc def | tr a-z A-Z | tr ' ' '\\n' | sort -r");
    assert!(out.contains("DEF\nABC\n"), "{p:?}: pipeline:\n{out}");

    // ^C ends the foreground job: the marker shows the job is in the foreground (its own
    // process group) before the interrupt is typed.
    let start = Instant::now();
    c.send(b"sh -c 'echo sleep-$((6*7)); exec sleep 60'\n");
    c.expect("sleep-42", STEP);
    c.send(b"\x03");
    c.expect(PROMPT, STEP);
    let status = run(&mut c, "echo status=$?");
    assert!(status.contains("status=130"), "{p:?}: ^C of sleep:\n{status}");
    assert!(start.elapsed() < Duration::from_secs(60), "{p:?}: sleep ran to its end");

    let ps = run(&mut c, "ps");
    let pid1 = ps.lines().find(|l| l.split_whitespace().next() == Some("1"));
    assert!(pid1.is_some_and(|l| l.ends_with("/bin/sh")), "{p:?}: ps lacks PID 1, the shell:\n{ps}");
    assert!(ps.lines().count() >= 3, "{p:?}: ps lists PID 1 and itself:\n{ps}");

    c.send(b"exit 42\n");
    let (status, transcript, stderr) = c.finish(STEP);
    assert_eq!(status, Some(42), "{p:?}: the shell's exit status is the VM's\n{transcript}\n{stderr}");
    assert!(transcript.contains("init exited with status 42"), "{transcript}");
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(&bytes[..17], b"guest-wrote-this\n", "{p:?}: the guest's block on the host");
});
