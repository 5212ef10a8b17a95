//! Harness for host tests that boot the real guest kernel, under our `vmm` on KVM and
//! under QEMU microvm with TCG, and look at the serial transcript and exit status.
//!
//! The binaries come from `make` (`target/release/vmm`, `images/guest.elf`). KVM tests
//! need `/dev/kvm`: without it they fail, unless `NO_KVM=1` says to skip them (loudly).

pub mod console;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one guest may run before the harness kills it.
const HARNESS_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// `vmm run` on /dev/kvm.
    Vmm,
    /// `qemu-system-x86_64 -M microvm -accel tcg`.
    QemuTcg,
}

/// What a finished VM left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The process's exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// The status the guest wrote to the exit port, decoded per platform.
    pub guest_status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with the transcript unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}\n{self}");
        self
    }

    /// Panics with the transcript unless the guest exited with `status`.
    #[track_caller]
    pub fn assert_status(&self, status: u32) -> &Self {
        assert_eq!(self.guest_status, Some(status), "wrong guest exit status\n{self}");
        self
    }
}

impl Outcome {
    /// Panics unless init exited with `code` (as a shell would show it: 139 for SIGSEGV):
    /// the kernel says so, and the VM's status carries it (QEMU's exit code keeps only the
    /// low 7 bits of the status, see `boot`).
    #[track_caller]
    pub fn assert_init_status(&self, platform: Platform, code: u32) -> &Self {
        self.assert_stdout(&format!("init exited with status {code}\n"));
        let carried = if platform == Platform::QemuTcg { code & 0x7f } else { code };
        self.assert_status(carried)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {:?}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

fn built(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} is missing: run `make` first (make test does)", path.display());
    path
}

pub fn vmm_bin() -> PathBuf {
    built(root().join("target/release/vmm"))
}

pub fn guest_elf() -> PathBuf {
    built(root().join("images/guest.elf"))
}

/// The initramfs `make` packs: /init and the test programs in /bin.
pub fn rootfs() -> PathBuf {
    built(root().join("images/rootfs.cpio"))
}

/// Records that the running test skips itself (it returns at once and libtest counts it
/// as passed): its name and `why` on stderr and, under `scripts/run-tests.sh`, in the file
/// `$TESTS_SKIPPED_FILE`, from which the summary counts it as skipped, not passed, and
/// lists it by name. The name is the test binary's and libtest's (its thread's name).
pub fn skip(why: &str) {
    let exe = std::env::current_exe().ok();
    let binary = exe.as_ref().and_then(|p| p.file_stem()).and_then(|s| s.to_str()).unwrap_or("?");
    let binary = binary.rsplit_once('-').map_or(binary, |(name, _hash)| name);
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{binary}::{test}: {why}");
    eprintln!("SKIPPED: {line}");
    if let Ok(path) = std::env::var("TESTS_SKIPPED_FILE") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().append(true).create(true).open(&path);
        // One write per line: tests in parallel append whole lines.
        let _ = file.and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    }
}

/// Runs `vmm run IMAGE --initrd ROOTFS` with `args` until its console has shown each of
/// `marks` in turn (or 60 s passed, or it ended), then kills it with SIGKILL, as a power
/// cut would; how many of the marks it saw.
pub fn vmm_until_then_kill_9(args: &[&str], marks: &[&str]) -> usize {
    use std::io::BufRead;
    let mut child = Command::new(vmm_bin())
        .args(["run", guest_elf().to_str().unwrap(), "--initrd", rootfs().to_str().unwrap()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vmm");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < marks.len() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if line.contains(marks[seen]) {
                    seen += 1;
                }
            }
            Err(_) => break, // timed out, or the VMM ended
        }
    }
    child.kill().expect("SIGKILL the vmm");
    let _ = child.wait();
    seen
}

/// Whether KVM tests should run: true with /dev/kvm; false with `NO_KVM=1` (the test is
/// recorded as skipped, see [`skip`]); otherwise a failure, so a machine without KVM never
/// passes silently.
pub fn kvm_available() -> bool {
    if std::env::var("NO_KVM").is_ok_and(|v| v == "1") {
        skip("KVM test not run because NO_KVM=1 is set");
        return false;
    }
    assert!(
        Path::new("/dev/kvm").exists(),
        "/dev/kvm is missing: KVM tests cannot run. Set NO_KVM=1 to run only the QEMU tests."
    );
    true
}

/// Runs `cmd` to completion (or kills it after the harness timeout) and collects output.
pub fn run(cmd: Command) -> (Option<i32>, String, String) {
    try_run(cmd, HARNESS_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` to completion and collects output: (exit code, stdout, stderr), or why not
/// (it could not start, or was still running after `timeout` and was killed).
pub fn try_run(mut cmd: Command, timeout: Duration) -> Result<(Option<i32>, String, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let out = drain(&mut child, true);
    let err = drain(&mut child, false);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait for {cmd:?}: {e}"))? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} still running after {timeout:?}: killed"));
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok((status.code(), out.join().expect("stdout reader"), err.join().expect("stderr reader")))
}

fn drain(child: &mut Child, stdout: bool) -> thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("piped stdout"))
    } else {
        Box::new(child.stderr.take().expect("piped stderr"))
    };
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        // The guest's console is a terminal that writes "\r\n" for "\n" (ONLCR), as
        // Linux's: transcripts are compared as text.
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    })
}

/// `vmm` with `args` (no guest-status decoding: the exit code is the status).
pub fn vmm(args: &[&str]) -> Outcome {
    let mut cmd = Command::new(vmm_bin());
    cmd.args(args);
    let (code, stdout, stderr) = run(cmd);
    Outcome { code, guest_status: code.map(|c| c as u32), stdout, stderr }
}

/// CPUs of the guests that run the suites (`boot_rootfs`, `boot_with_devices`):
/// `vmm run --vcpus` (2, or `$TEST_VMM_VCPUS`) and QEMU's `-smp` (4, or `$TEST_QEMU_SMP`);
/// `make test-smp` runs them on 1, 2 and 4 under both. Other boots keep one CPU, `vmm
/// run`'s default.
pub fn vmm_vcpus() -> String {
    std::env::var("TEST_VMM_VCPUS").unwrap_or_else(|_| "2".into())
}

/// See [`vmm_vcpus`].
pub fn qemu_smp() -> String {
    std::env::var("TEST_QEMU_SMP").unwrap_or_else(|_| "4".into())
}

/// The QEMU command line that matches `vmm run`'s machine, with one CPU.
pub fn qemu_command(kernel: &Path, cmdline: &str, accel: &str) -> Command {
    qemu_command_smp(kernel, cmdline, accel, "1")
}

/// As [`qemu_command`], with `smp` CPUs.
pub fn qemu_command_smp(kernel: &Path, cmdline: &str, accel: &str, smp: &str) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-M", "microvm,acpi=off", "-accel", accel, "-m", "256M", "-smp", smp])
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-global", "virtio-mmio.force-legacy=false"])
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", cmdline]);
    cmd
}

/// Boots the guest kernel on `platform` with `cmdline` and extra arguments for the
/// platform (`vmm run` flags, or QEMU flags).
pub fn boot(platform: Platform, cmdline: &str, extra: &[&str]) -> Outcome {
    boot_smp(platform, cmdline, extra, "1")
}

/// As [`boot`]; QEMU gets `smp` CPUs (`vmm run` takes `--vcpus` in `extra`).
pub fn boot_smp(platform: Platform, cmdline: &str, extra: &[&str], smp: &str) -> Outcome {
    let kernel = guest_elf();
    match platform {
        Platform::Vmm => {
            let mut args = vec!["run", kernel.to_str().expect("utf-8 path"), "--cmdline", cmdline];
            args.extend_from_slice(extra);
            vmm(&args)
        }
        Platform::QemuTcg => {
            let mut cmd = qemu_command_smp(&kernel, cmdline, "tcg", smp);
            cmd.args(extra);
            let (code, stdout, stderr) = run(cmd);
            // isa-debug-exit: QEMU exits with (status << 1) | 1.
            let guest_status = code.filter(|c| c & 1 == 1).map(|c| (c >> 1) as u32);
            Outcome { code, guest_status, stdout, stderr }
        }
    }
}

/// Boots the guest with the standard initramfs and `cmdline`.
pub fn boot_rootfs(platform: Platform, cmdline: &str) -> Outcome {
    let rootfs = rootfs();
    let path = rootfs.to_str().expect("utf-8 path");
    match platform {
        Platform::Vmm => boot(platform, cmdline, &["--initrd", path, "--timeout", "100", "--vcpus", &vmm_vcpus()]),
        Platform::QemuTcg => boot_smp(platform, cmdline, &["-initrd", path], &qemu_smp()),
    }
}

/// A virtio device to attach to a test VM.
pub enum Device<'a> {
    Disk { path: &'a Path, read_only: bool },
    Share { dir: &'a Path, tag: &'a str },
}

/// Boots the guest with the standard initramfs, `cmdline` and `devices`, attached the
/// platform's way (`--disk`/`--share`, or QEMU's `-drive`/`-fsdev` with virtio-mmio).
pub fn boot_with_devices(platform: Platform, cmdline: &str, devices: &[Device]) -> Outcome {
    let mut extra = device_args(platform, devices);
    let rootfs = rootfs();
    let rootfs = rootfs.to_str().expect("utf-8 path").to_owned();
    match platform {
        Platform::Vmm => extra.extend(["--initrd".into(), rootfs, "--timeout".into(), "100".into(), "--vcpus".into(), vmm_vcpus()]),
        Platform::QemuTcg => extra.extend(["-initrd".into(), rootfs]),
    }
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    boot_smp(platform, cmdline, &refs, &qemu_smp())
}

/// The arguments that attach `devices` on `platform` (`--disk`/`--share`, or QEMU's
/// `-drive`/`-fsdev` with virtio-mmio).
pub fn device_args(platform: Platform, devices: &[Device]) -> Vec<String> {
    let mut extra: Vec<String> = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        match (platform, d) {
            (Platform::Vmm, Device::Disk { path, read_only }) => {
                extra.push("--disk".into());
                extra.push(format!("{}{}", path.display(), if *read_only { ",ro" } else { "" }));
            }
            (Platform::Vmm, Device::Share { dir, tag }) => {
                extra.push("--share".into());
                extra.push(format!("{},tag={tag}", dir.display()));
            }
            (Platform::QemuTcg, Device::Disk { path, read_only }) => {
                extra.push("-drive".into());
                let ro = if *read_only { ",readonly=on" } else { "" };
                extra.push(format!("id=d{i},file={},format=raw,if=none,discard=unmap{ro}", path.display()));
                extra.push("-device".into());
                // A request queue per CPU and the polled one, as `vmm run` offers.
                let queues = qemu_smp().parse::<u32>().expect("TEST_QEMU_SMP is a number") + 1;
                extra.push(format!("virtio-blk-device,drive=d{i},num-queues={queues}"));
            }
            (Platform::QemuTcg, Device::Share { dir, tag }) => {
                extra.push("-fsdev".into());
                extra.push(format!("local,id=fs{i},path={},security_model=none", dir.display()));
                extra.push("-device".into());
                extra.push(format!("virtio-9p-device,fsdev=fs{i},mount_tag={tag}"));
            }
        }
    }
    extra
}

/// A fresh scratch directory for one test (under the system temp dir).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uring-vmm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Defines one test per platform from a body that takes the `Platform`:
/// `on_both_platforms!(name, |p| { ... })` gives `name::vmm_kvm` and `name::qemu_tcg`.
#[macro_export]
macro_rules! on_both_platforms {
    ($name:ident, |$p:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($p: $crate::Platform) $body
            #[test]
            fn vmm_kvm() {
                if $crate::kvm_available() {
                    body($crate::Platform::Vmm);
                }
            }
            #[test]
            fn qemu_tcg() {
                body($crate::Platform::QemuTcg);
            }
        }
    };
}
