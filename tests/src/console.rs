//! A guest driven over its console: the test writes to the VM's stdin (the UART's receive
//! side) and waits for text on its stdout, as a person at a terminal would.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{guest_elf, qemu_command, vmm_bin, Platform};

/// A running VM whose console the test holds.
pub struct Console {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Receiver<Vec<u8>>,
    stderr: Option<thread::JoinHandle<String>>,
    /// Everything the guest printed so far, `\r` removed.
    transcript: String,
    /// How far `expect` has matched in `transcript`.
    pos: usize,
    platform: Platform,
}

impl Console {
    /// Boots `guest.elf` on `platform` with `cmdline`, the initramfs `initrd` and `extra`
    /// platform arguments, stdin and stdout piped.
    pub fn boot(platform: Platform, cmdline: &str, initrd: &PathBuf, extra: &[String]) -> Self {
        let kernel = guest_elf();
        let mut cmd = match platform {
            Platform::Vmm => {
                let mut cmd = Command::new(vmm_bin());
                cmd.arg("run").arg(&kernel).args(["--cmdline", cmdline, "--timeout", "110", "--initrd"]).arg(initrd);
                cmd
            }
            Platform::QemuTcg => {
                let mut cmd = qemu_command(&kernel, cmdline, "tcg");
                cmd.arg("-initrd").arg(initrd);
                cmd
            }
        };
        cmd.args(extra).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, output) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Console { child, stdin, output, stderr: Some(stderr), transcript: String::new(), pos: 0, platform }
    }

    /// Types `bytes` on the console.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).and_then(|()| stdin.flush()).unwrap_or_else(|e| panic!("console write: {e}\n{}", self.transcript));
    }

    /// Waits until `needle` appears after what was matched last; returns the text up to
    /// and including it. Panics with the transcript after `timeout`.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.transcript[self.pos..].find(needle) {
                let end = self.pos + i + needle.len();
                let text = self.transcript[self.pos..end].to_owned();
                self.pos = end;
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.transcript.push_str(&String::from_utf8_lossy(&bytes).replace('\r', "")),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{:?}: no {needle:?} after {timeout:?}; transcript:\n{}", self.platform, self.transcript)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{:?}: the VM ended before {needle:?}; transcript:\n{}", self.platform, self.transcript)
                }
            }
        }
    }

    /// Closes stdin and waits for the VM to end: (the guest's status, decoded per
    /// platform, as in `Outcome`; the whole transcript; stderr).
    pub fn finish(mut self, timeout: Duration) -> (Option<u32>, String, String) {
        self.stdin = None;
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the VM") {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{:?}: the VM did not end within {timeout:?}; transcript:\n{}", self.platform, self.transcript);
            }
            thread::sleep(Duration::from_millis(10));
        };
        while let Ok(bytes) = self.output.recv_timeout(Duration::from_secs(2)) {
            self.transcript.push_str(&String::from_utf8_lossy(&bytes).replace('\r', ""));
        }
        let code = status.code();
        let guest = match self.platform {
            Platform::Vmm => code.map(|c| c as u32),
            Platform::QemuTcg => code.filter(|c| c & 1 == 1).map(|c| (c >> 1) as u32),
        };
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        (guest, std::mem::take(&mut self.transcript), stderr)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The busybox image `make` builds (`images/busybox.cpio`).
pub fn busybox_image() -> PathBuf {
    let path = crate::root().join("images/busybox.cpio");
    assert!(path.exists(), "{} is missing: run `make` first (make test does)", path.display());
    path
}
