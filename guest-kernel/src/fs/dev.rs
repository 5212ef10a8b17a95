//! Character devices in `/dev`: null, zero, urandom, and the console's tty (`crate::tty`)
//! as `console`, `tty` and `ttyS0`.

use alloc::sync::Arc;
use core::any::Any;

use super::ramfs::RamDir;
use super::{alloc_ino, FileType, IoBuf, Node, Stat};
use crate::errno::*;
use crate::tty::{TtyName, TtyNode};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Zero,
    Urandom,
}

pub struct CharDev {
    ino: u64,
    kind: Kind,
    rdev: u64,
}

/// Linux's `makedev` for small numbers.
const fn makedev(major: u64, minor: u64) -> u64 {
    (major << 8) | minor
}

impl Node for CharDev {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::CharDevice.mode_bits() | 0o666, nlink: 1, rdev: self.rdev, ..Stat::default() }
    }

    fn read(&self, _offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        match self.kind {
            Kind::Null => Ok(0),
            Kind::Zero | Kind::Urandom => {
                let mut chunk = [0u8; 256];
                let mut done = 0;
                while done < buf.len() {
                    let n = (buf.len() - done).min(chunk.len());
                    if self.kind == Kind::Urandom {
                        crate::random::fill(&mut chunk[..n]);
                    }
                    buf.put(done, &chunk[..n])?;
                    done += n;
                }
                Ok(done)
            }
        }
    }

    fn write(&self, _offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Ok(buf.len())
    }

    /// None of these devices ever sleeps.
    fn nowait(&self) -> bool {
        true
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn dev(kind: Kind, rdev: u64) -> Arc<CharDev> {
    Arc::new(CharDev { ino: alloc_ino(), kind, rdev })
}

static CONSOLE: crate::sync::SpinLock<Option<Arc<TtyNode>>> = crate::sync::SpinLock::new(None);

/// The console device (init's stdin, stdout and stderr).
pub fn console() -> Arc<dyn Node> {
    CONSOLE.lock().get_or_insert_with(|| TtyNode::new(TtyName::Console)).clone()
}

/// Creates `/dev` with its device nodes.
pub fn populate(root: &Arc<RamDir>) {
    let dir: Arc<dyn Node> = match root.lookup("dev") {
        Ok(d) => d,
        Err(_) => match root.create("dev", FileType::Directory, 0o755) {
            Ok(d) => d,
            Err(e) => return log::error!("cannot create /dev: {e:?}"),
        },
    };
    let Some(dir) = dir.as_any().downcast_ref::<RamDir>() else { return };
    for (name, node) in [
        ("null", dev(Kind::Null, makedev(1, 3)) as Arc<dyn Node>),
        ("zero", dev(Kind::Zero, makedev(1, 5))),
        ("urandom", dev(Kind::Urandom, makedev(1, 9))),
        ("random", dev(Kind::Urandom, makedev(1, 8))),
        ("console", console()),
        ("tty", TtyNode::new(TtyName::CurrentTty)),
        ("ttyS0", TtyNode::new(TtyName::TtyS0)),
    ] {
        let _ = dir.add(name, node);
    }
}

/// Adds a device node to `/dev` (drivers call this as they find devices).
pub fn add(name: &str, node: Arc<dyn Node>) {
    let root = super::ramfs::root();
    if let Ok(dir) = root.lookup("dev")
        && let Some(dir) = dir.as_any().downcast_ref::<RamDir>() {
            let _ = dir.add(name, node);
        }
}
