//! What to boot and how: the VMM's configuration, built by `main.rs` from the command line.

use std::path::PathBuf;
use std::time::Duration;

/// Default guest memory: 256 MiB.
pub const DEFAULT_MEM: u64 = 256 << 20;
/// Smallest guest memory accepted: the low 1 MiB (boot data) plus room for a kernel.
pub const MIN_MEM: u64 = 2 << 20;
/// Largest guest memory accepted.
pub const MAX_MEM: u64 = 64 << 30;
/// Most vCPUs accepted.
pub const MAX_VCPUS: u8 = 64;
/// Default `--blk-poll-us`: how long a virtio-blk device busy-polls a polled queue (the
/// guest's IOPOLL queue) after its last work, in microseconds. Measured on our KVM host
/// (docs/DESIGN.md, "Busy polling"): the guest's kernel takes ~1-4 ms between two
/// batches of an IOPOLL+SQPOLL ring there, so a window under that catches nothing; 5 ms
/// catches nearly all of them. It costs one host thread spinning for at most that long
/// after the guest's last polled request, and nothing for interrupt-driven queues.
pub const DEFAULT_BLK_POLL_US: u32 = 5000;
/// Largest `--blk-poll-us` accepted (1 s): a bound on the host CPU a polled queue can take
/// after the guest's last request.
pub const MAX_BLK_POLL_US: u32 = 1_000_000;

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub mem_bytes: u64,
    pub vcpus: u8,
    pub cmdline: String,
    pub initrd: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub kvm_device: PathBuf,
    /// virtio-blk disks, in order: the first is /dev/vda in a Linux guest.
    pub disks: Vec<DiskConfig>,
    /// virtio-9p shares, tags resolved.
    pub shares: Vec<ShareConfig>,
    /// How long virtio-blk devices busy-poll a polled queue after its last work (zero:
    /// never; `--blk-poll-us`).
    pub blk_poll: Duration,
    /// Whether each thread runs under its seccomp filter (`--no-seccomp` turns them off).
    pub seccomp: bool,
    /// Serve a GDB remote stub on this local port (`--gdb`; see `gdb`).
    pub gdb: Option<u16>,
    /// Write a Perfetto timeline of the run here (`--trace`; see `trace`).
    pub trace: Option<PathBuf>,
    /// A virtio-net device on a host tap (`--net`; at most one).
    pub net: Option<NetConfig>,
}

/// `--disk FILE[,ro][,engine=sync|uring|volatile][,direct=on|off][,eio=FIRST-LAST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    pub read_only: bool,
    /// The host I/O engine; `None`: io_uring when the host has it, else sync.
    pub engine: Option<DiskEngine>,
    /// `direct=on`: the file is opened with O_DIRECT (the host's page cache is bypassed).
    pub direct: bool,
    /// For tests: `eio=FIRST-LAST`, sectors whose reads and writes fail with EIO (served
    /// by the test engine).
    pub eio: Option<(u64, u64)>,
}

/// How a disk's host I/O is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskEngine {
    /// pread/pwrite/fdatasync on the device thread, one request at a time.
    Sync,
    /// The host's io_uring, many requests in flight.
    Uring,
    /// For tests: the sync engine holding writes in memory until FLUSH (lost when the
    /// VMM dies; see `block::engine_test`).
    Volatile,
}

/// `--share DIR[,tag=NAME][,ro]`. `tag` is None until [`resolve_share_tags`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareConfig {
    pub path: PathBuf,
    pub tag: Option<String>,
    pub read_only: bool,
}

/// `--net tap=NAME[,mac=XX:XX:XX:XX:XX:XX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The host tap interface: opened if it exists, else created (which takes
    /// CAP_NET_ADMIN).
    pub tap: String,
    /// The guest's MAC address (the device's config space).
    pub mac: [u8; 6],
}

/// The guest's MAC address when `--net` names none (QEMU's default).
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Longest interface name (Linux's IFNAMSIZ less the terminating NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// The tag of the first share when it names none.
pub const DEFAULT_SHARE_TAG: &str = "share";
/// Longest mount tag (QEMU's limit).
pub const MAX_TAG_LEN: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("a file or directory name is needed before the options")]
    NoPath,
    #[error("unknown option {0:?} (accepted: {1})")]
    Unknown(String, &'static str),
    #[error("{0:?} is given twice")]
    Twice(&'static str),
    #[error("engine {0:?} is not sync, uring or volatile")]
    BadEngine(String),
    #[error("eio {0:?} is not FIRST-LAST (sectors, FIRST <= LAST)")]
    BadEio(String),
    #[error("eio= is served by the test engine: engine=uring cannot go with it")]
    EioWithUring,
    #[error("direct {0:?} is not on or off")]
    BadDirect(String),
    #[error("tag {0:?} is not 1 to 255 characters without commas, '=' or spaces")]
    BadTag(String),
    #[error("--share {0}: a second share needs tag=NAME")]
    TagNeeded(String),
    #[error("two shares have the tag {0:?}")]
    DuplicateTag(String),
    #[error("--share {0} and --share {1} overlap (one contains the other)")]
    Overlap(String, String),
    #[error("tap=NAME is needed")]
    NoTap,
    #[error("tap name {0:?} is not 1 to 15 characters without '/', ':', '%' or spaces (nor . or ..)")]
    BadTapName(String),
    #[error("mac {0:?} is not six hex bytes XX:XX:XX:XX:XX:XX")]
    BadMac(String),
    #[error("mac {0} is not a unicast address (the first byte must be even, and not all zeros)")]
    MacNotUnicast(String),
    #[error("--net is given twice: one network device at most")]
    NetTwice,
}

/// Splits `PATH[,opt]...`; a path cannot contain commas.
fn split_options(text: &str) -> Result<(PathBuf, Vec<&str>), OptionError> {
    let mut parts = text.split(',');
    let path = parts.next().filter(|p| !p.is_empty()).ok_or(OptionError::NoPath)?;
    Ok((PathBuf::from(path), parts.collect()))
}

pub fn parse_disk(text: &str) -> Result<DiskConfig, OptionError> {
    let (path, options) = split_options(text)?;
    let (mut read_only, mut engine, mut direct, mut eio) = (false, None, None, None);
    for opt in options {
        if let Some(value) = opt.strip_prefix("eio=") {
            if eio.is_some() {
                return Err(OptionError::Twice("eio"));
            }
            let range = value.split_once('-').and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
            eio = Some(range.filter(|(a, b)| a <= b).ok_or_else(|| OptionError::BadEio(value.to_owned()))?);
            continue;
        }
        if let Some(value) = opt.strip_prefix("direct=") {
            if direct.is_some() {
                return Err(OptionError::Twice("direct"));
            }
            direct = Some(match value {
                "on" => true,
                "off" => false,
                _ => return Err(OptionError::BadDirect(value.to_owned())),
            });
            continue;
        }
        if let Some(name) = opt.strip_prefix("engine=") {
            if engine.is_some() {
                return Err(OptionError::Twice("engine"));
            }
            engine = Some(match name {
                "sync" => DiskEngine::Sync,
                "uring" => DiskEngine::Uring,
                "volatile" => DiskEngine::Volatile,
                _ => return Err(OptionError::BadEngine(name.to_owned())),
            });
            continue;
        }
        match opt {
            "ro" if read_only => return Err(OptionError::Twice("ro")),
            "ro" => read_only = true,
            other => return Err(OptionError::Unknown(other.to_owned(), "ro, engine=sync|uring, direct=on|off")),
        }
    }
    if eio.is_some() && engine == Some(DiskEngine::Uring) {
        return Err(OptionError::EioWithUring);
    }
    Ok(DiskConfig { path, read_only, engine, direct: direct.unwrap_or(false), eio })
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= MAX_TAG_LEN && !tag.contains([',', '=', ' ', '\t', '\n', '\0'])
}

pub fn parse_share(text: &str) -> Result<ShareConfig, OptionError> {
    let (path, options) = split_options(text)?;
    let (mut tag, mut read_only) = (None, false);
    for opt in options {
        if let Some(name) = opt.strip_prefix("tag=") {
            if tag.is_some() {
                return Err(OptionError::Twice("tag"));
            }
            if !valid_tag(name) {
                return Err(OptionError::BadTag(name.to_owned()));
            }
            tag = Some(name.to_owned());
        } else if opt == "ro" {
            if read_only {
                return Err(OptionError::Twice("ro"));
            }
            read_only = true;
        } else {
            return Err(OptionError::Unknown(opt.to_owned(), "tag=NAME, ro"));
        }
    }
    Ok(ShareConfig { path, tag, read_only })
}

/// Gives the first share without a tag the default one; any other share must name its
/// own, and tags must differ.
pub fn resolve_share_tags(shares: &mut [ShareConfig]) -> Result<(), OptionError> {
    let mut seen = std::collections::HashSet::new();
    for (i, share) in shares.iter_mut().enumerate() {
        let tag = match (&share.tag, i) {
            (Some(tag), _) => tag.clone(),
            (None, 0) => DEFAULT_SHARE_TAG.to_owned(),
            (None, _) => return Err(OptionError::TagNeeded(share.path.display().to_string())),
        };
        if !seen.insert(tag.clone()) {
            return Err(OptionError::DuplicateTag(tag));
        }
        share.tag = Some(tag);
    }
    Ok(())
}

/// Whether `name` is a name Linux accepts for a network interface (`dev_valid_name`),
/// without `%` (which would make TUNSETIFF pick a new name of its own).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c == '%' || c == '\0' || c.is_whitespace())
}

/// Parses `XX:XX:XX:XX:XX:XX` (hex, either case); only unicast addresses.
fn parse_mac(text: &str) -> Result<[u8; 6], OptionError> {
    let bad = || OptionError::BadMac(text.to_owned());
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        // Two hex digits (from_str_radix alone would take "+f").
        let part = parts.next().filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())).ok_or_else(bad)?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(OptionError::MacNotUnicast(text.to_owned()));
    }
    Ok(mac)
}

pub fn parse_net(text: &str) -> Result<NetConfig, OptionError> {
    let (mut tap, mut mac) = (None, None);
    for opt in text.split(',') {
        if let Some(name) = opt.strip_prefix("tap=") {
            if tap.is_some() {
                return Err(OptionError::Twice("tap"));
            }
            if !valid_ifname(name) {
                return Err(OptionError::BadTapName(name.to_owned()));
            }
            tap = Some(name.to_owned());
        } else if let Some(value) = opt.strip_prefix("mac=") {
            if mac.is_some() {
                return Err(OptionError::Twice("mac"));
            }
            mac = Some(parse_mac(value)?);
        } else {
            return Err(OptionError::Unknown(opt.to_owned(), "tap=NAME, mac=XX:XX:XX:XX:XX:XX"));
        }
    }
    Ok(NetConfig { tap: tap.ok_or(OptionError::NoTap)?, mac: mac.unwrap_or(DEFAULT_MAC) })
}

/// The one `--net` of the command line, if any: a second is refused.
pub fn single_net(mut nets: Vec<NetConfig>) -> Result<Option<NetConfig>, OptionError> {
    if nets.len() > 1 {
        return Err(OptionError::NetTwice);
    }
    Ok(nets.pop())
}

/// Refuses two shares of which one contains the other (or both are the same directory):
/// through the outer one the guest could move a directory out of the inner one under a
/// fid of it. Directories are compared by identity (device and inode) along each share's
/// resolved path, so symlinks do not hide an overlap. Paths that cannot be resolved are
/// left for opening the shares to report.
pub fn check_share_overlap(shares: &[ShareConfig]) -> Result<(), OptionError> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    // Each share: its own identity, and those of it and all its ancestors.
    let resolved: Vec<_> = shares
        .iter()
        .filter_map(|s| {
            let real = std::fs::canonicalize(&s.path).ok()?;
            Some((s, id(&real)?, real.ancestors().filter_map(id).collect::<Vec<_>>()))
        })
        .collect();
    for (i, (a, a_id, a_up)) in resolved.iter().enumerate() {
        for (b, b_id, b_up) in &resolved[i + 1..] {
            if a_up.contains(b_id) || b_up.contains(a_id) {
                return Err(OptionError::Overlap(a.path.display().to_string(), b.path.display().to_string()));
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// the size is empty
    #[error("empty size")]
    Empty,
    #[error("{0:?} is not a size (examples: 256M, 1G, 65536K; a bare number means MiB)")]
    Invalid(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a memory size the way QEMU's `-m` does: a bare number is MiB; suffixes
/// K, M, G, T (optionally followed by `B` or `iB`) are binary multiples.
pub fn parse_mem_size(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| SizeError::Invalid(text.to_owned()))?;
    let shift = match suffix.trim_end_matches("iB").trim_end_matches('B').to_ascii_uppercase().as_str() {
        "" | "M" => 20,
        "K" => 10,
        "G" => 30,
        "T" => 40,
        _ => return Err(SizeError::Invalid(text.to_owned())),
    };
    number.checked_mul(1 << shift).ok_or_else(|| SizeError::Overflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mem_size("256"), Ok(256 << 20));
        assert_eq!(parse_mem_size("256M"), Ok(256 << 20));
        assert_eq!(parse_mem_size("1G"), Ok(1 << 30));
        assert_eq!(parse_mem_size("64k"), Ok(64 << 10));
        assert_eq!(parse_mem_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_mem_size("512MB"), Ok(512 << 20));
        assert!(matches!(parse_mem_size("lots"), Err(SizeError::Invalid(_))));
        assert!(matches!(parse_mem_size("12Q"), Err(SizeError::Invalid(_))));
        assert!(matches!(parse_mem_size("-1"), Err(SizeError::Invalid(_))));
        assert_eq!(parse_mem_size(""), Err(SizeError::Empty));
        assert!(matches!(parse_mem_size("99999999999T"), Err(SizeError::Overflow(_))));
    }

    #[test]
    fn disks() {
        assert_eq!(parse_disk("d.img"), Ok(DiskConfig { path: "d.img".into(), read_only: false, engine: None, direct: false, eio: None }));
        assert_eq!(parse_disk("/x/d.img,ro"), Ok(DiskConfig { path: "/x/d.img".into(), read_only: true, engine: None, direct: false, eio: None }));
        let d = parse_disk("d,engine=uring,ro").unwrap();
        assert_eq!((d.read_only, d.engine), (true, Some(DiskEngine::Uring)));
        assert_eq!(parse_disk("d,engine=sync").unwrap().engine, Some(DiskEngine::Sync));
        assert_eq!(parse_disk("d,engine=aio"), Err(OptionError::BadEngine("aio".into())));
        assert_eq!(parse_disk("d,engine="), Err(OptionError::BadEngine(String::new())));
        assert_eq!(parse_disk("d,engine=sync,engine=uring"), Err(OptionError::Twice("engine")));
        assert_eq!(parse_disk(""), Err(OptionError::NoPath));
        assert_eq!(parse_disk(",ro"), Err(OptionError::NoPath));
        assert_eq!(parse_disk("d,ro,ro"), Err(OptionError::Twice("ro")));
        assert!(matches!(parse_disk("d,rw"), Err(OptionError::Unknown(..))));
        assert!(matches!(parse_disk("d,"), Err(OptionError::Unknown(..))));
        let d = parse_disk("d,direct=on,engine=sync").unwrap();
        assert_eq!((d.direct, d.engine, d.read_only), (true, Some(DiskEngine::Sync), false));
        assert!(!parse_disk("d,ro,direct=off").unwrap().direct);
        assert_eq!(parse_disk("d,direct=yes"), Err(OptionError::BadDirect("yes".into())));
        assert_eq!(parse_disk("d,direct="), Err(OptionError::BadDirect(String::new())));
        assert_eq!(parse_disk("d,direct=on,direct=off"), Err(OptionError::Twice("direct")));
        assert!(matches!(parse_disk("d,direct"), Err(OptionError::Unknown(..))));
        let d = parse_disk("d,engine=volatile,eio=8-15").unwrap();
        assert_eq!((d.engine, d.eio), (Some(DiskEngine::Volatile), Some((8, 15))));
        assert_eq!(parse_disk("d,eio=3").unwrap_err(), OptionError::BadEio("3".into()));
        assert_eq!(parse_disk("d,eio=9-8").unwrap_err(), OptionError::BadEio("9-8".into()));
        assert_eq!(parse_disk("d,eio=1-2,engine=uring").unwrap_err(), OptionError::EioWithUring);
    }

    #[test]
    fn shares() {
        let s = parse_share("/s,tag=data,ro").unwrap();
        assert_eq!(s, ShareConfig { path: "/s".into(), tag: Some("data".into()), read_only: true });
        assert_eq!(parse_share("/s").unwrap().tag, None);
        assert_eq!(parse_share("/s,tag="), Err(OptionError::BadTag(String::new())));
        assert_eq!(parse_share("/s,tag=a,tag=b"), Err(OptionError::Twice("tag")));
        assert!(matches!(parse_share("/s,size=3"), Err(OptionError::Unknown(..))));
        assert!(matches!(parse_share(&format!("/s,tag={}", "x".repeat(256))), Err(OptionError::BadTag(_))));

        let mut v = vec![parse_share("/a").unwrap(), parse_share("/b,tag=b").unwrap()];
        resolve_share_tags(&mut v).unwrap();
        assert_eq!(v[0].tag.as_deref(), Some("share"));
        let mut v = vec![parse_share("/a").unwrap(), parse_share("/b").unwrap()];
        assert_eq!(resolve_share_tags(&mut v), Err(OptionError::TagNeeded("/b".into())));
        let mut v = vec![parse_share("/a").unwrap(), parse_share("/b,tag=share").unwrap()];
        assert_eq!(resolve_share_tags(&mut v), Err(OptionError::DuplicateTag("share".into())));
    }

    #[test]
    fn nets() {
        let n = parse_net("tap=vt0").unwrap();
        assert_eq!(n, NetConfig { tap: "vt0".into(), mac: DEFAULT_MAC });
        let n = parse_net("mac=02:AB:cd:00:01:ff,tap=tap-guest.15").unwrap();
        assert_eq!(n, NetConfig { tap: "tap-guest.15".into(), mac: [0x02, 0xab, 0xcd, 0x00, 0x01, 0xff] });
        assert_eq!(parse_net(&format!("tap={}", "x".repeat(15))).unwrap().tap.len(), 15);
        assert_eq!(parse_net(""), Err(OptionError::Unknown(String::new(), "tap=NAME, mac=XX:XX:XX:XX:XX:XX")));
        assert_eq!(parse_net("mac=02:00:00:00:00:01"), Err(OptionError::NoTap));
        assert!(matches!(parse_net("vt0"), Err(OptionError::Unknown(..))));
        assert!(matches!(parse_net("tap=vt0,"), Err(OptionError::Unknown(..))));
        assert!(matches!(parse_net("tap=vt0,queues=2"), Err(OptionError::Unknown(..))));
        assert_eq!(parse_net("tap=a,tap=b"), Err(OptionError::Twice("tap")));
        assert_eq!(parse_net("tap=a,mac=02:00:00:00:00:01,mac=02:00:00:00:00:02"), Err(OptionError::Twice("mac")));
        for name in ["", ".", "..", "a/b", "a:1", "tap%d", "a b", "a\tb", "sixteen-chars-xx"] {
            assert_eq!(parse_net(&format!("tap={name}")), Err(OptionError::BadTapName(name.into())), "{name:?}");
        }
        for mac in ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:5", "52:54:00:12:34:567", "52-54-00-12-34-56", "52:54:00:12:34:zz", "+2:54:00:12:34:56"] {
            assert_eq!(parse_net(&format!("tap=t,mac={mac}")), Err(OptionError::BadMac(mac.into())), "{mac:?}");
        }
        for mac in ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"] {
            assert_eq!(parse_net(&format!("tap=t,mac={mac}")), Err(OptionError::MacNotUnicast(mac.into())), "{mac:?}");
        }
        // One line each, naming what is wrong.
        assert_eq!(OptionError::NetTwice.to_string(), "--net is given twice: one network device at most");
        assert_eq!(single_net(vec![]), Ok(None));
        assert_eq!(single_net(vec![n.clone()]), Ok(Some(n.clone())));
        assert_eq!(single_net(vec![n.clone(), n]), Err(OptionError::NetTwice));
    }

    #[test]
    fn overlapping_shares() {
        let tmp = crate::devices::virtio::test_util::TempDir::new("overlap");
        let (a, b, c) = (tmp.path().join("a"), tmp.path().join("a/b"), tmp.path().join("c"));
        std::fs::create_dir_all(&b).unwrap();
        std::fs::create_dir(&c).unwrap();
        std::os::unix::fs::symlink(&b, tmp.path().join("link")).unwrap();
        let shares = |paths: &[&std::path::Path]| -> Vec<ShareConfig> {
            paths.iter().map(|p| ShareConfig { path: p.to_path_buf(), tag: None, read_only: false }).collect()
        };
        let overlap = |x: &std::path::Path, y: &std::path::Path| {
            Err(OptionError::Overlap(x.display().to_string(), y.display().to_string()))
        };
        assert_eq!(check_share_overlap(&shares(&[&a, &b])), overlap(&a, &b));
        assert_eq!(check_share_overlap(&shares(&[&c, &b, &a])), overlap(&b, &a));
        assert_eq!(check_share_overlap(&shares(&[&a, &a])), overlap(&a, &a));
        let link = tmp.path().join("link");
        assert_eq!(check_share_overlap(&shares(&[&a, &link])), overlap(&a, &link));
        let dotted = tmp.path().join("c/../a/b/..");
        assert_eq!(check_share_overlap(&shares(&[&b, &dotted])), overlap(&b, &dotted));
        // Siblings, and a name that shares a prefix but not a directory, are fine.
        std::fs::create_dir(tmp.path().join("ab")).unwrap();
        assert_eq!(check_share_overlap(&shares(&[&a, &c, &tmp.path().join("ab")])), Ok(()));
        assert_eq!(check_share_overlap(&shares(&[&b, &c, &tmp.path().join("missing")])), Ok(()));
    }
}
