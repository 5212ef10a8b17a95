//! `mount` and `umount2` (CAP_SYS_ADMIN) for what lives in memory: a new `proc`, an
//! empty `tmpfs` or `ramfs` (a RAM directory), `devtmpfs` (the kernel's `/dev`), bind
//! mounts of a directory (MS_BIND), and a virtio 9p share by its tag (`9p`, options
//! `trans=virtio`, `version=9p2000.L`, `access=client`, `cache=none`: what this client
//! does; others EINVAL); and one disk file system, `ext2` on a virtio disk
//! (`mount -t ext2 /dev/vda DIR`, MS_RDONLY honoured; `ext3` and `ext4` by name mount
//! only an image that needs nothing ext2 lacks and has no journal, else ENODEV). MS_REMOUNT of a mount
//! point succeeds and changes nothing. The mount point must be a directory of the RAM
//! tree: its entry in the parent directory is swapped for the mounted one, and
//! `umount2` swaps it back (an ext2 is written back and marked clean first). A mount
//! does not pin the files open under it (no EBUSY).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Ctx;
use crate::errno::*;
use crate::fs::ramfs::RamDir;
use crate::fs::{self, FileType, Node};
use crate::mm::uaccess;
use crate::sync::SpinLock;
use crate::task::{cred, current_process, with_mm};

const MS_RDONLY: u64 = 0x1;
const MS_REMOUNT: u64 = 0x20;
const MS_BIND: u64 = 0x1000;

struct Mount {
    path: String,
    parent: Arc<dyn Node>,
    name: String,
    /// What the mount point's entry held before.
    covered: Arc<dyn Node>,
    /// The disk file system mounted there, written back at umount.
    ext2: Option<Arc<fs::ext2::Ext2Fs>>,
}

static MOUNTS: SpinLock<Vec<Mount>> = SpinLock::new(Vec::new());

fn cwd() -> String {
    current_process().cwd.lock().clone()
}

fn user_string(addr: u64) -> KResult<String> {
    if addr == 0 {
        return Ok(String::new());
    }
    let bytes = with_mm(|mm| uaccess::read_cstring(mm, addr, 4095))?;
    String::from_utf8(bytes).map_err(|_| EINVAL)
}

/// `mount(source, target, fstype, flags, data)`.
pub fn mount(c: &mut Ctx) -> KResult<u64> {
    let cwd = cwd();
    let (source, target, kind, flags) = (user_string(c.a[0])?, super::fs::user_path(c.a[1])?, user_string(c.a[2])?, c.a[3]);
    let (node, path) = fs::path::lookup_with_path(&cwd, &target, true)?;
    if node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    if !cred::capable(cred::CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    if flags & MS_REMOUNT != 0 {
        return if fs::proc::is_mount_point(&path) { Ok(0) } else { Err(EINVAL) };
    }
    let mut ext2 = None;
    let (new, kind): (Arc<dyn Node>, &'static str) = if flags & MS_BIND != 0 {
        let from = fs::lookup(&cwd, &source, true)?;
        if from.file_type() != FileType::Directory {
            return Err(ENOTDIR);
        }
        (from, "none")
    } else {
        match kind.as_str() {
            "proc" => (fs::proc::new_root(), "proc"),
            "tmpfs" => (RamDir::new(0o1777), "tmpfs"),
            "ramfs" => (RamDir::new(0o755), "ramfs"),
            "devtmpfs" => (fs::lookup("/", "/dev", true)?, "devtmpfs"),
            "9p" => {
                nine_p_options(&user_string(c.a[4])?)?;
                (fs::p9::share_root(&source)?, "9p")
            }
            "ext2" | "ext3" | "ext4" => {
                if path == "/" {
                    return Err(EBUSY);
                }
                let dev = fs::lookup(&cwd, &source, true)?;
                let (disk_fs, root) = fs::ext2::mount_device(&dev, flags & MS_RDONLY != 0, kind != "ext2")?;
                ext2 = Some(disk_fs);
                (root, "ext2")
            }
            _ => return Err(ENODEV),
        }
    };
    let options = match (kind, &ext2) {
        ("9p", _) => "rw,trans=virtio",
        (_, Some(e)) if e.read_only => "ro",
        _ => "rw",
    };
    if path == "/" {
        return Err(EBUSY);
    }
    let device = if source.is_empty() { String::from("none") } else { source };
    let r = attach(path, new, &device, kind, options, ext2.clone());
    if r.is_err()
        && let Some(e) = ext2
    {
        let _ = e.unmount();
    }
    r.map(|()| 0)
}

/// Puts `new` at `path` (a directory of the RAM tree) and lists it in `/proc/mounts`.
fn attach(path: String, new: Arc<dyn Node>, device: &str, kind: &'static str, options: &'static str, ext2: Option<Arc<fs::ext2::Ext2Fs>>) -> KResult<()> {
    let (parent, name, _) = fs::path::lookup_parent("/", &path)?;
    let Some(dir) = parent.as_any().downcast_ref::<RamDir>() else {
        log::info!("mount on {path}: only directories of the RAM tree can be mount points");
        return Err(EINVAL);
    };
    let covered = dir.detach(&name)?;
    if let Err(e) = dir.link(&name, new) {
        let _ = dir.link(&name, covered);
        return Err(e);
    }
    fs::proc::add_mount(device, &path, kind, options);
    MOUNTS.lock().push(Mount { path, parent, name, covered, ext2 });
    Ok(())
}

/// `root=/dev/vdX` on the kernel command line (`ro` for read-only): the ext2 on that disk
/// at `/mnt/root`, as an initramfs would mount the real root before switching to it
/// (there is no switch_root here: the initramfs stays `/`).
pub fn mount_root(device: &str, read_only: bool) -> KResult<()> {
    let dev = fs::lookup("/", device, true)?;
    let (disk_fs, root) = fs::ext2::mount_device(&dev, read_only, false)?;
    let top = fs::ramfs::root();
    let mnt = match top.lookup("mnt") {
        Ok(m) => m,
        Err(_) => top.create("mnt", FileType::Directory, 0o755)?,
    };
    if mnt.lookup("root").is_err() {
        mnt.create("root", FileType::Directory, 0o755)?;
    }
    let options = if disk_fs.read_only { "ro" } else { "rw" };
    let r = attach(String::from("/mnt/root"), root, device, "ext2", options, Some(Arc::clone(&disk_fs)));
    if r.is_err() {
        let _ = disk_fs.unmount();
    }
    r
}

/// The options of a 9p mount: only those that describe what this client does.
fn nine_p_options(data: &str) -> KResult<()> {
    for opt in data.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "trans=virtio" | "version=9p2000.L" | "access=client" | "cache=none" | "rw" => {}
            _ => {
                log::info!("mount -t 9p: option {opt:?} is not supported");
                return Err(EINVAL);
            }
        }
    }
    Ok(())
}

/// `umount2(target, flags)`: the latest mount at `target` goes.
pub fn umount2(c: &mut Ctx) -> KResult<u64> {
    let target = super::fs::user_path(c.a[0])?;
    let (_, path) = fs::path::lookup_with_path(&cwd(), &target, true)?;
    if !cred::capable(cred::CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    let mount = {
        let mut mounts = MOUNTS.lock();
        let i = mounts.iter().rposition(|m| m.path == path).ok_or(EINVAL)?;
        mounts.remove(i)
    };
    let dir = mount.parent.as_any().downcast_ref::<RamDir>().ok_or(EINVAL)?;
    let _ = dir.detach(&mount.name);
    dir.link(&mount.name, mount.covered)?;
    fs::proc::remove_mount(&path);
    match mount.ext2 {
        Some(e) => e.unmount().map(|()| 0),
        None => Ok(0),
    }
}
