//! The network through a tap: the guest (`ip=10.0.2.15`, virtio-net under `vmm run --net`
//! or QEMU's `-netdev tap`) talks TCP and UDP to a server on the host side of the tap,
//! 10.0.2.2, in a network namespace the test makes and deletes. The guest's client is
//! `nettest` (guest-user/uring/nettest.c); the same binary runs natively against the same
//! server on the host's loopback first, so Linux is the reference.
//!
//! Making a namespace and a tap needs root (CAP_NET_ADMIN). Without it these tests fail,
//! unless `NO_NET=1` says to skip them (loudly, like `NO_KVM=1`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use tests::{guest_elf, qemu_command_smp, qemu_smp, rootfs, root, run, skip, vmm_bin, vmm_vcpus, Platform};

/// The guest's and the host's addresses on the tap's subnet; the host's IPv6 link-local
/// address on the tap (the guest's is its MAC's EUI-64, fe80::5054:ff:fe12:3456).
const GUEST_IP: &str = "10.0.2.15";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const HOST_IP6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
/// eth0's ifindex in the guest (lo is 1): the scope of a link-local address there.
const GUEST_ETH0: u32 = 2;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace holding a tap `tap0` at 10.0.2.2/24, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// None when `NO_NET=1` skips the test; a failure without the privilege otherwise.
    fn new(tag: &str) -> Option<Netns> {
        if std::env::var("NO_NET").is_ok_and(|v| v == "1") {
            skip("tap test not run because NO_NET=1 is set");
            return None;
        }
        let name = format!("uvmm-{}-{tag}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!("cannot make a network namespace (the tap tests need root): {e}. Set NO_NET=1 to skip them.");
        }
        let ns = Netns { name };
        let n = ns.name.as_str();
        for args in [
            &["-n", n, "link", "set", "lo", "up"][..],
            &["-n", n, "tuntap", "add", "dev", "tap0", "mode", "tap", "vnet_hdr"],
            &["-n", n, "addr", "add", "10.0.2.2/24", "dev", "tap0"],
            &["-n", n, "-6", "addr", "add", "fe80::2/64", "dev", "tap0", "nodad"],
            &["-n", n, "link", "set", "tap0", "up"],
        ] {
            ip(args).unwrap_or_else(|e| panic!("setting up the namespace: {e}"));
        }
        Some(ns)
    }

    /// Moves the calling thread into the namespace (sockets it makes then live there).
    fn enter(&self) {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.name)).expect("open the namespace");
        // SAFETY: setns on an fd we own; it changes only this thread's network namespace.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// `cmd` run inside the namespace.
    fn wrap(&self, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(cmd.get_program()).args(cmd.get_args());
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The byte at stream offset `i` of what 'R' sends (nettest.c's `pattern`).
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(131).wrapping_add((i >> 11).wrapping_mul(7)).wrapping_add(i >> 19)) as u8
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn serve_tcp(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut cmd = [0u8; 1];
    s.read_exact(&mut cmd)?;
    let mut len = [0u8; 8];
    match cmd[0] {
        b'E' => {
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                s.write_all(&buf[..n])?;
            }
        }
        b'S' => {
            s.read_exact(&mut len)?;
            let mut left = u64::from_le_bytes(len);
            let (mut h, mut off) = (0xcbf29ce484222325u64, 0u64);
            let mut buf = vec![0u8; 1 << 16];
            while left > 0 {
                let n = s.read(&mut buf[..left.min(1 << 16) as usize])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                if let Some(k) = (0..n).find(|&k| buf[k] != pattern(off + k as u64)) {
                    eprintln!("server: byte {} differs", off + k as u64);
                }
                h = fnv(h, &buf[..n]);
                (left, off) = (left - n as u64, off + n as u64);
            }
            s.write_all(&h.to_le_bytes())
        }
        b'R' => {
            s.read_exact(&mut len)?;
            let total = u64::from_le_bytes(len);
            let mut off = 0;
            while off < total {
                let n = (total - off).min(1 << 16);
                let chunk: Vec<u8> = (off..off + n).map(pattern).collect();
                s.write_all(&chunk)?;
                off += n;
            }
            Ok(())
        }
        b'X' => {
            s.write_all(&[b'x'; 1000])?;
            // Let the bytes go before the reset (a RST overtakes nothing already sent).
            thread::sleep(Duration::from_millis(200));
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: setsockopt with a struct linger of ours on a socket we own.
            unsafe {
                libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&raw const linger).cast(), size_of::<libc::linger>() as u32);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The test's server: TCP and UDP on `addr` (port 0: any), in `ns` if given, until the
/// returned flag is set. Returns (tcp port, udp port, stop flag).
fn server(ns: Option<&Netns>, addr: IpAddr) -> (u16, u16, Arc<AtomicBool>) {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let ns_name = ns.map(|n| n.name.clone());
    thread::spawn(move || {
        if let Some(name) = ns_name {
            Netns { name: name.clone() }.enter_and_forget();
        }
        let at = match addr {
            // A link-local address is the tap's (its ifindex in the namespace).
            IpAddr::V6(a) if a.is_unicast_link_local() => {
                // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
                let tap = unsafe { libc::if_nametoindex(c"tap0".as_ptr()) };
                SocketAddr::V6(SocketAddrV6::new(a, 0, 0, tap))
            }
            a => SocketAddr::new(a, 0),
        };
        let tcp = TcpListener::bind(at).expect("bind the TCP server");
        let udp = UdpSocket::bind(at).expect("bind the UDP server");
        tx.send((tcp.local_addr().unwrap().port(), udp.local_addr().unwrap().port())).unwrap();
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            match tcp.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    thread::spawn(move || {
                        if let Err(e) = serve_tcp(s) {
                            eprintln!("server: {e}");
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&buf[..n], from);
            }
        }
    });
    let (t, u) = rx.recv().expect("server ports");
    (t, u, stop)
}

impl Netns {
    /// `enter` for a thread that outlives nobody's namespace handle (no delete on drop).
    fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self);
    }
}

/// MiB each way: 64, as the issue asks, on the host and under QEMU. Under `vmm run` on
/// this project's PVM hosts, where guest ring 0 is emulated, the guest moves about
/// 0.2 MB/s through the tap (every frame is smoltcp's and the driver's code, at some
/// microseconds an instruction): 2 MiB there keeps the test under half a minute.
/// `NET_TEST_MIB` overrides both.
fn mib(p: Option<Platform>) -> String {
    let default = if p == Some(Platform::Vmm) { "2" } else { "64" };
    std::env::var("NET_TEST_MIB").unwrap_or_else(|_| default.into())
}

fn expect_all_ok(what: &str, mib: &str, code: Option<i32>, stdout: &str, stderr: &str) {
    for line in ["tcp echo ok", "udp echo ok", &format!("sent {mib} MiB ok"), &format!("received {mib} MiB ok"), "reset mid-transfer ok", "nettest: all ok"] {
        assert!(stdout.contains(line), "{what}: no '{line}'\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains("FAILED") && !stderr.contains("FAILED"), "{what}\n{stdout}\n{stderr}");
    assert!(code.is_some(), "{what}: killed\n{stdout}\n{stderr}");
}

#[test]
fn nettest_on_the_host() {
    let (tcp, udp, stop) = server(None, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut cmd = Command::new(root().join("target/guest-c/nettest"));
    cmd.args(["127.0.0.1", &tcp.to_string(), &udp.to_string(), &mib(None)]);
    let (code, stdout, stderr) = run(cmd);
    stop.store(true, Ordering::Relaxed);
    expect_all_ok("host", &mib(None), code, &stdout, &stderr);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

/// nettest's IPv6 path on the host, over ::1 (1 MiB each way).
#[test]
fn nettest_on_the_host_ipv6() {
    let (tcp, udp, stop) = server(None, IpAddr::V6(Ipv6Addr::LOCALHOST));
    let mut cmd = Command::new(root().join("target/guest-c/nettest"));
    cmd.args(["::1", &tcp.to_string(), &udp.to_string(), "1"]);
    let (code, stdout, stderr) = run(cmd);
    stop.store(true, Ordering::Relaxed);
    expect_all_ok("host, IPv6", "1", code, &stdout, &stderr);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

/// nettest through a tap; `offload`: QEMU's virtio-net offers its checksum offloads (its
/// default), or none; `v6`: to the host's IPv6 link-local address on the tap (1 MiB each
/// way), else to its IPv4 address.
fn through_the_tap(p: Platform, offload: bool, v6: bool) {
    let tag = match (p, offload, v6) {
        (Platform::Vmm, _, false) => "vmm",
        (Platform::Vmm, _, true) => "vmm6",
        (_, _, true) => "qemu6",
        (_, true, _) => "qemu",
        (_, false, _) => "qemu-nocsum",
    };
    let Some(ns) = Netns::new(tag) else { return };
    let (tcp, udp, stop) = server(Some(&ns), if v6 { IpAddr::V6(HOST_IP6) } else { IpAddr::V4(HOST_IP) });
    let (target, mib) = if v6 { (format!("{HOST_IP6}%{GUEST_ETH0}"), "1".to_owned()) } else { (HOST_IP.to_string(), mib(Some(p))) };
    let cmdline = format!("ip={GUEST_IP}::{HOST_IP}:255.255.255.0::eth0:off init=/bin/nettest -- {target} {tcp} {udp} {mib}");
    let rootfs = rootfs();
    let cmd = match p {
        Platform::Vmm => {
            let mut c = Command::new(vmm_bin());
            c.args(["run", guest_elf().to_str().unwrap(), "--initrd", rootfs.to_str().unwrap(), "--net", "tap=tap0", "--timeout", "110", "--vcpus", &vmm_vcpus(), "--cmdline", &cmdline]);
            c
        }
        Platform::QemuTcg => {
            let mut c = qemu_command_smp(&guest_elf(), &cmdline, "tcg", &qemu_smp());
            c.args(["-initrd", rootfs.to_str().unwrap()]);
            let csum = if offload { "" } else { ",csum=off,guest_csum=off" };
            c.args(["-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no,vnet_hdr=on", "-device", &format!("virtio-net-device,netdev=net0,mac=52:54:00:12:34:56{csum}")]);
            c
        }
    };
    let (code, stdout, stderr) = run(ns.wrap(&cmd));
    stop.store(true, Ordering::Relaxed);
    expect_all_ok(&format!("{p:?}"), &mib, code, &stdout, &stderr);
    drop(ns);
}

#[test]
fn through_the_tap_vmm_kvm() {
    if tests::kvm_available() {
        through_the_tap(Platform::Vmm, true, false);
    }
}

#[test]
fn through_the_tap_qemu_tcg() {
    through_the_tap(Platform::QemuTcg, true, false);
}

/// TCP and UDP over IPv6 through the tap: the guest's link-local address on eth0 to the
/// host's (fe80::2, sin6_scope_id eth0's index).
#[test]
fn ipv6_through_the_tap_vmm_kvm() {
    if tests::kvm_available() {
        through_the_tap(Platform::Vmm, true, true);
    }
}

#[test]
fn ipv6_through_the_tap_qemu_tcg() {
    through_the_tap(Platform::QemuTcg, true, true);
}

/// The same without checksum offload: smoltcp computes and checks every checksum.
#[test]
fn through_the_tap_qemu_tcg_no_offload() {
    through_the_tap(Platform::QemuTcg, false, false);
}
