//! An interactive shell: Debian's busybox-static runs as init (`images/busybox.cpio`) and
//! the test drives `sh` over the console, as a person would: the VM's stdin feeds the
//! UART, the kernel's tty cooks it, and the shell's output comes back on stdout. Under
//! `vmm run` (KVM) and QEMU (TCG).

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tests::console::{busybox_image, Console};
use tests::{device_args, on_both_platforms, scratch_dir, Device};

const PROMPT: &str = "/ # ";
const STEP: Duration = Duration::from_secs(60);

/// Runs `command` at the prompt and returns what it printed (up to the next prompt).
fn run(c: &mut Console, command: &str) -> String {
    c.send(format!("{command}\n").as_bytes());
    // The shell echoes the line itself (line editing), then runs it. Lines are kept
    // shorter than the 80 columns the shell wraps at (with escape sequences).
    assert!(command.len() < 70, "{command:?} would wrap");
    c.expect(command, STEP);
    let out = c.expect(PROMPT, STEP);
    // Kernel warnings (loglevel=warn; each unknown syscall once) share the console.
    let lines: Vec<&str> = out.trim_end_matches(PROMPT).lines().filter(|l| !is_kernel_log(l)).collect();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Whether `line` is one of the kernel's log lines: `[ seconds.millis] LEVEL ...`.
/// `jobs` until the background job has stopped (up to 20 s): its last output.
fn stopped_job(c: &mut Console) -> String {
    let start = Instant::now();
    loop {
        let jobs = run(c, "jobs");
        if jobs.contains("Stopped") || start.elapsed() > Duration::from_secs(20) {
            return jobs;
        }
        sleep(Duration::from_millis(200));
    }
}

fn is_kernel_log(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some((stamp, _)) = rest.split_once("] ") else { return false };
    let stamp = stamp.trim_start();
    !stamp.is_empty() && stamp.chars().all(|ch| ch.is_ascii_digit() || ch == '.')
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
    let mut c = Console::boot(p, "loglevel=warn init=/bin/sh", &busybox_image(), &device_args(p, &devices));
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

    run(&mut c, "mkdir /mnt/t && mount -t tmpfs none /mnt/t");
    let out = run(&mut c, "echo in-tmpfs > /mnt/t/f; mount");
    assert!(out.contains("share on /mnt/share type 9p") && out.contains("none on /mnt/t type tmpfs"), "{p:?}: mount:\n{out}");
    let out = run(&mut c, "cat /mnt/t/f && umount /mnt/t && ls /mnt/t | wc -l");
    assert!(out.contains("in-tmpfs\n0\n"), "{p:?}: tmpfs and umount:\n{out}");

    // The share mounted again by its tag, as on Linux.
    run(&mut c, "mkdir /mnt/again");
    let out = run(&mut c, "mount -t 9p -o trans=virtio share /mnt/again; echo status=$?");
    assert!(out.contains("status=0"), "{p:?}: mount -t 9p:\n{out}");
    let out = run(&mut c, "cat /mnt/again/greeting.txt && umount /mnt/again && echo unmounted");
    assert!(out.contains("hello from the host") && out.contains("unmounted"), "{p:?}: the share mounted again:\n{out}");
    let out = run(&mut c, "mount -t 9p nosuchtag /mnt/again; echo status=$?");
    assert!(out.contains("status=255") || out.contains("status=1"), "{p:?}: mount of an unknown tag:\n{out}");

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

    // A background job reading the terminal is stopped by SIGTTIN; in the foreground it
    // reads. With `stty tostop`, a background write is stopped by SIGTTOU.
    // (`head` reads the terminal at once, where the shell's `read` would poll until
    // input; the job is one process, so every process of it gets the signal.)
    c.send(b"sh -c 'head -n 1 | sed s/^/got-/' &\n");
    c.expect(PROMPT, STEP);
    let jobs = stopped_job(&mut c);
    assert!(jobs.contains("Stopped (tty input)"), "{p:?}: a background read is not stopped:\n{jobs}");
    c.send(b"fg\n");
    sleep(Duration::from_millis(500));
    c.send(b"typed\n");
    c.expect("got-typed", STEP);
    c.expect(PROMPT, STEP);
    run(&mut c, "stty tostop");
    c.send(b"echo from-the-background &\n");
    c.expect(PROMPT, STEP);
    let jobs = stopped_job(&mut c);
    assert!(jobs.contains("Stopped (tty output)"), "{p:?}: a background write with tostop:\n{jobs}");
    assert!(!jobs.lines().any(|l| l.trim() == "from-the-background"), "{p:?}: it wrote:\n{jobs}");
    c.send(b"fg\n");
    c.expect("from-the-background", STEP);
    c.expect(PROMPT, STEP);
    run(&mut c, "stty -tostop");

    // Init takes no signal it does not handle, not even SIGKILL from another process.
    let out = run(&mut c, "sh -c 'kill -9 1'; kill -TERM 1; echo init-alive");
    assert!(out.contains("init-alive"), "{p:?}: kill -9 1:\n{out}");

    let ps = run(&mut c, "ps");
    let pid1 = ps.lines().find(|l| l.split_whitespace().next() == Some("1"));
    assert!(pid1.is_some_and(|l| l.ends_with("/bin/sh")), "{p:?}: ps lacks PID 1, the shell:\n{ps}");
    assert!(ps.lines().count() >= 3, "{p:?}: ps lists PID 1 and itself:\n{ps}");

    c.send(b"exit 42\n");
    let (status, transcript, stderr) = c.finish(STEP);
    assert_eq!(status, Some(42), "{p:?}: the shell's exit status is the VM's\n{transcript}\n{stderr}");
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(&bytes[..17], b"guest-wrote-this\n", "{p:?}: the guest's block on the host");
});

/// A pseudo-terminal: (master, slave).
fn openpty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the name, termios and winsize are optional.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and ours alone.
    unsafe { (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)) }
}

fn termios(fd: &std::fs::File) -> libc::termios {
    use std::os::fd::AsRawFd;
    // SAFETY: termios is plain data; tcgetattr fills it from a valid descriptor.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
        t
    }
}

/// `vmm run` with the busybox shell on a fresh terminal it controls: (vmm, the terminal's
/// master side, a channel of what the terminal shows, the slave side, the terminal's
/// settings before vmm started).
fn vmm_on_a_terminal() -> (std::process::Child, std::fs::File, std::sync::mpsc::Receiver<u8>, std::fs::File, libc::termios) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let (master, slave) = openpty();
    let cooked = termios(&slave);
    assert_ne!(cooked.c_lflag & libc::ICANON, 0, "a new pty starts cooked");
    let mut cmd = std::process::Command::new(tests::vmm_bin());
    cmd.arg("run").arg(tests::guest_elf()).arg("--initrd").arg(busybox_image());
    cmd.args(["--cmdline", "init=/bin/sh loglevel=error", "--timeout", "100"]);
    cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave.try_clone().unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
    // controlling terminal is the pty (stdin), so vmm is its foreground.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("start vmm");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            buf[..n].iter().for_each(|&b| { let _ = tx.send(b); });
        }
    });
    (child, master, rx, slave, cooked)
}

#[track_caller]
fn expect_bytes(rx: &std::sync::mpsc::Receiver<u8>, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + STEP;
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => seen.push(b as char),
            Err(_) => panic!("no {needle:?} on the terminal; it shows:\n{seen}"),
        }
    }
}

#[test]
fn vmm_terminal_raw_mode_ctrl_a_x_and_restore() {
    use std::io::Write;
    if !tests::kvm_available() {
        return;
    }
    let (mut child, mut master, rx, slave, cooked) = vmm_on_a_terminal();
    let mut seen = String::new();
    expect_bytes(&rx, &mut seen, PROMPT);
    let raw = termios(&slave);
    assert_eq!(raw.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0, "vmm put the terminal in raw mode");
    // Enter is \r from a terminal: the guest's tty maps it to \n (ICRNL).
    master.write_all(b"echo pty-$((2*3))\r").unwrap();
    expect_bytes(&rx, &mut seen, "pty-6");
    // Ctrl-A Ctrl-A is one Ctrl-A for the guest; Ctrl-A x quits.
    master.write_all(b"\x01\x01\x01x").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "C-a x exits 0\n{seen}");
    let after = termios(&slave);
    assert_eq!((after.c_lflag, after.c_iflag, after.c_oflag), (cooked.c_lflag, cooked.c_iflag, cooked.c_oflag), "restored");

    // Killed by SIGTERM: the terminal is restored all the same.
    let (mut child, _master, rx, slave, cooked) = vmm_on_a_terminal();
    let mut seen = String::new();
    expect_bytes(&rx, &mut seen, PROMPT);
    assert_eq!(termios(&slave).c_lflag & libc::ICANON, 0);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let after = termios(&slave);
    assert_eq!((after.c_lflag, after.c_iflag), (cooked.c_lflag, cooked.c_iflag), "restored after SIGTERM");
}

on_both_platforms!(console_reads_poll_io_uring_and_vtime, |p| {
    // guest-user/src/bin/ttytest.rs: poll, then an io_uring READ, wait on the console.
    let mut c = Console::boot(p, "init=/bin/ttytest", &tests::rootfs(), &[]);
    c.expect("ttytest: polling", STEP);
    c.send(b"line one\n");
    let out = c.expect("uring armed", STEP);
    assert!(out.contains("line one\n"), "{p:?}: canonical echo:\n{out}");
    assert!(out.contains("poll Ok(1) revents 0x1, read \"line one\""), "{p:?}: poll:\n{out}");
    c.send(b"line two\n");
    let out = c.expect("ttytest: done", STEP);
    assert!(out.contains("uring read 9 \"line two\""), "{p:?}: io_uring read:\n{out}");
    assert!(out.contains("vtime read Ok(0)"), "{p:?}: VTIME:\n{out}");
    let (status, transcript, _) = c.finish(STEP);
    assert_eq!(status, Some(0), "{transcript}");
    assert!(transcript.contains("poll before input: Ok(0)"), "{transcript}");
});
