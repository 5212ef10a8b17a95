//! The kernel command line, with Linux's conventions where Linux has one.
//!
//! `init=/path` names the first program, words after `--` are its arguments,
//! `loglevel=N` (0-7, as Linux) or a level name sets the console log level,
//! `virtio_mmio.device=SIZE@BASE:IRQ` announces a virtio-mmio device (as QEMU microvm
//! and our VMM do), and `test=NAME[,NAME...]` runs built-in kernel tests (see `ktest`).
//! `root=/dev/vdX` mounts the ext2 on that disk at `/mnt/root` (read-only with `ro`).
//! `trace=SIZE[@BASE]` turns the tracepoints on (see `trace`).
//! Values may be double-quoted to hold spaces. `virtio_mmio.device=` is taken even after
//! `--`, because QEMU microvm appends it after the user's whole command line.

pub const MAX_VIRTIO: usize = 8;
pub const MAX_ARGS: usize = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    pub size: u64,
    pub base: u64,
    pub irq: u32,
}

pub struct Cmdline {
    pub raw: &'static str,
    pub init: Option<&'static str>,
    pub loglevel: log::LevelFilter,
    pub tests: Option<&'static str>,
    /// `root=`: the disk whose ext2 is mounted at `/mnt/root`; `ro`: read-only.
    pub root: Option<&'static str>,
    pub root_ro: bool,
    /// `tsc_khz=`: the TSC frequency, instead of measuring it.
    pub tsc_khz: Option<u64>,
    /// `epoch=`: wall-clock seconds at boot, when there is no RTC.
    pub epoch: Option<u64>,
    /// False with `lapic=notscdeadline` (Linux's name): the LAPIC timer stays in one-shot
    /// mode even where the CPU offers TSC-deadline.
    pub tsc_deadline: bool,
    /// `taskdump=SECS`: print every task's state every SECS seconds (hang hunting).
    pub taskdump: Option<u64>,
    /// `trace=SIZE[@BASE]`: tracepoints on, a ring of SIZE bytes per CPU, from BASE (memory
    /// the VMM reserved) or taken from RAM (`trace`).
    pub trace: Option<(u64, Option<u64>)>,
    /// `ip=`: eth0's address, in Linux's form (net::inet::stack::parse_ip).
    pub ip: Option<&'static str>,
    virtio: [VirtioMmioDevice; MAX_VIRTIO],
    nr_virtio: usize,
    args: [&'static str; MAX_ARGS],
    nr_args: usize,
    /// Words the kernel could not understand (reported once at boot).
    pub bad: Option<&'static str>,
}

impl Cmdline {
    pub fn parse(raw: &'static str) -> Self {
        let mut cmd = Self {
            raw,
            init: None,
            loglevel: log::LevelFilter::Info,
            tests: None,
            root: None,
            root_ro: false,
            tsc_khz: None,
            epoch: None,
            tsc_deadline: true,
            taskdump: None,
            trace: None,
            ip: None,
            virtio: [VirtioMmioDevice::default(); MAX_VIRTIO],
            nr_virtio: 0,
            args: [""; MAX_ARGS],
            nr_args: 0,
            bad: None,
        };
        let mut after_dashes = false;
        for word in Words(raw) {
            // QEMU microvm appends its devices at the very end, after any `--`: take them
            // wherever they are.
            if after_dashes && !word.starts_with("virtio_mmio.device=") {
                cmd.push_arg(word);
                continue;
            }
            if word == "--" {
                after_dashes = true;
                continue;
            }
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, unquote(v)),
                None => (word, ""),
            };
            let ok = match key {
                "init" => {
                    cmd.init = Some(value);
                    true
                }
                "loglevel" => parse_loglevel(value).map(|l| cmd.loglevel = l).is_some(),
                "tsc_khz" => parse_u64(value).map(|v| cmd.tsc_khz = Some(v)).is_some(),
                "epoch" => parse_u64(value).map(|v| cmd.epoch = Some(v)).is_some(),
                "taskdump" => parse_u64(value).filter(|&v| v > 0).map(|v| cmd.taskdump = Some(v)).is_some(),
                "trace" => match parse_size_at(value) {
                    Some((size, base)) => Some((size, Some(base))),
                    None => parse_size(value).map(|size| (size, None)),
                }
                .map(|t| cmd.trace = Some(t))
                .is_some(),
                "lapic" if value == "notscdeadline" => {
                    cmd.tsc_deadline = false;
                    true
                }
                "ip" => {
                    cmd.ip = Some(value);
                    true
                }
                "root" => {
                    cmd.root = Some(value);
                    true
                }
                "ro" | "rw" if value.is_empty() => {
                    cmd.root_ro = key == "ro";
                    true
                }
                "test" => {
                    cmd.tests = Some(value);
                    true
                }
                "virtio_mmio.device" => match parse_virtio(value) {
                    Some(dev) if cmd.nr_virtio < MAX_VIRTIO => {
                        cmd.virtio[cmd.nr_virtio] = dev;
                        cmd.nr_virtio += 1;
                        true
                    }
                    _ => false,
                },
                _ => true,
            };
            if !ok && cmd.bad.is_none() {
                cmd.bad = Some(word);
            }
        }
        cmd
    }

    fn push_arg(&mut self, word: &'static str) {
        if self.nr_args < MAX_ARGS {
            self.args[self.nr_args] = unquote(word);
            self.nr_args += 1;
        }
    }

    /// Arguments for init (the words after `--`).
    pub fn init_args(&self) -> &[&'static str] {
        &self.args[..self.nr_args]
    }

    /// virtio-mmio devices announced on the command line.
    pub fn virtio_devices(&self) -> &[VirtioMmioDevice] {
        &self.virtio[..self.nr_virtio]
    }

    /// Whether built-in test `name` was asked for; `Some(arg)` for `name` or `name:arg`.
    pub fn test(&self, name: &str) -> Option<&'static str> {
        self.tests?.split(',').find_map(|t| match t.split_once(':') {
            Some((n, arg)) if n == name => Some(arg),
            None if t == name => Some(""),
            _ => None,
        })
    }
}

/// Splits on spaces, keeping double-quoted runs together.
struct Words(&'static str);

impl Iterator for Words {
    type Item = &'static str;
    fn next(&mut self) -> Option<&'static str> {
        let s = self.0.trim_start_matches([' ', '\t', '\n']);
        if s.is_empty() {
            return None;
        }
        let mut quoted = false;
        let end = s
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                !quoted && (c == ' ' || c == '\t' || c == '\n')
            })
            .map_or(s.len(), |(i, _)| i);
        self.0 = &s[end..];
        Some(&s[..end])
    }
}

fn unquote(s: &'static str) -> &'static str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

fn parse_loglevel(value: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match value {
        "0" | "1" | "2" | "3" | "error" => Error,
        "4" | "warn" => Warn,
        "5" | "6" | "info" => Info,
        "7" | "debug" => Debug,
        "8" | "trace" => Trace,
        "off" => Off,
        _ => return None,
    })
}

/// `SIZE@BASE:IRQ`, each number decimal or 0x-hex, SIZE with an optional K/M suffix.
fn parse_virtio(value: &str) -> Option<VirtioMmioDevice> {
    let (at, irq) = value.rsplit_once(':')?;
    let (size, base) = parse_size_at(at)?;
    Some(VirtioMmioDevice { size, base, irq: u32::try_from(parse_u64(irq)?).ok()? })
}

/// `SIZE@BASE`.
fn parse_size_at(value: &str) -> Option<(u64, u64)> {
    let (size, base) = value.split_once('@')?;
    Some((parse_size(size)?, parse_u64(base)?))
}

/// A number with an optional K or M suffix.
fn parse_size(size: &str) -> Option<u64> {
    let (size, mult) = match size.as_bytes().last()? {
        b'K' | b'k' => (&size[..size.len() - 1], 1024),
        b'M' | b'm' => (&size[..size.len() - 1], 1024 * 1024),
        _ => (size, 1),
    };
    parse_u64(size)?.checked_mul(mult)
}

pub fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
