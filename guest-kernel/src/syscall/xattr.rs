//! Extended-attribute syscalls: set/get/list/remove, each by path (following a final
//! symlink), by path without following it (`l`), and by descriptor (`f`). The
//! io_uring ops share `set`, `get` and the name and value helpers.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::fs::{cwd_lookup, file};
use super::Ctx;
use crate::errno::*;
use crate::fs::file::O_PATH;
use crate::fs::xattr::{self, NAME_MAX, SIZE_MAX, XATTR_CREATE, XATTR_REPLACE};
use crate::fs::Node;
use crate::mm::uaccess;
use crate::task::{self, with_mm};

/// Which file a call acts on.
enum Target {
    Path { addr: u64, follow: bool },
    Fd(i32),
}

impl Target {
    fn node(&self) -> KResult<Arc<dyn Node>> {
        match *self {
            Target::Path { addr, follow } => cwd_lookup(&super::fs::user_path(addr)?, follow),
            Target::Fd(fd) => {
                let f = file(fd)?;
                if f.flags() & O_PATH != 0 {
                    return Err(EBADF);
                }
                Ok(Arc::clone(&f.node))
            }
        }
    }
}

/// An attribute name from user memory: ERANGE if empty or longer than XATTR_NAME_MAX.
pub fn user_name(addr: u64) -> KResult<String> {
    let bytes = with_mm(|mm| uaccess::read_cstring(mm, addr, NAME_MAX)).map_err(|e| if e == ENAMETOOLONG { ERANGE } else { e })?;
    if bytes.is_empty() {
        return Err(ERANGE);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A value to set, from user memory: E2BIG beyond XATTR_SIZE_MAX.
pub fn user_value(addr: u64, size: usize) -> KResult<Vec<u8>> {
    if size > SIZE_MAX {
        return Err(E2BIG);
    }
    let mut value = Vec::new();
    value.try_reserve_exact(size).map_err(|_| ENOMEM)?;
    value.resize(size, 0);
    task::copy_from_user(&mut value, addr)?;
    Ok(value)
}

/// The flags of a set: XATTR_CREATE, XATTR_REPLACE (EINVAL otherwise).
pub fn check_flags(flags: u32) -> KResult<()> {
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

pub fn set(node: &dyn Node, name: &str, value: &[u8], flags: u32) -> KResult<u64> {
    xattr::check(node, name, true)?;
    node.setxattr(name, Some(value), flags).map(|()| 0)
}

/// Copies attribute `name` to user memory `addr` of `size` bytes (size 0: only its
/// length): its length, ERANGE if it does not fit (E2BIG if even the largest buffer
/// would not).
pub fn get(node: &dyn Node, name: &str, addr: u64, size: usize) -> KResult<u64> {
    xattr::check(node, name, false)?;
    copy_out(node.getxattr(name)?, addr, size)
}

/// Copies a value or name list out as getxattr and listxattr do.
fn copy_out(data: Vec<u8>, addr: u64, size: usize) -> KResult<u64> {
    if size == 0 {
        return Ok(data.len() as u64);
    }
    if data.len() > size.min(SIZE_MAX) {
        return Err(if size >= SIZE_MAX { E2BIG } else { ERANGE });
    }
    task::copy_to_user(addr, &data)?;
    Ok(data.len() as u64)
}

fn do_set(t: Target, c: &Ctx) -> KResult<u64> {
    let flags = c.a[4] as u32;
    check_flags(flags)?;
    let name = user_name(c.a[1])?;
    let value = user_value(c.a[2], c.a[3] as usize)?;
    set(t.node()?.as_ref(), &name, &value, flags)
}

fn do_get(t: Target, c: &Ctx) -> KResult<u64> {
    let name = user_name(c.a[1])?;
    get(t.node()?.as_ref(), &name, c.a[2], c.a[3] as usize)
}

fn do_list(t: Target, c: &Ctx) -> KResult<u64> {
    copy_out(t.node()?.listxattr()?, c.a[1], c.a[2] as usize)
}

fn do_remove(t: Target, c: &Ctx) -> KResult<u64> {
    let name = user_name(c.a[1])?;
    let node = t.node()?;
    xattr::check(node.as_ref(), &name, true)?;
    node.setxattr(&name, None, 0).map(|()| 0)
}

fn path(c: &Ctx) -> Target {
    Target::Path { addr: c.a[0], follow: true }
}

fn lpath(c: &Ctx) -> Target {
    Target::Path { addr: c.a[0], follow: false }
}

fn fd(c: &Ctx) -> Target {
    Target::Fd(c.int(0))
}

pub fn setxattr(c: &mut Ctx) -> KResult<u64> {
    do_set(path(c), c)
}

pub fn lsetxattr(c: &mut Ctx) -> KResult<u64> {
    do_set(lpath(c), c)
}

pub fn fsetxattr(c: &mut Ctx) -> KResult<u64> {
    do_set(fd(c), c)
}

pub fn getxattr(c: &mut Ctx) -> KResult<u64> {
    do_get(path(c), c)
}

pub fn lgetxattr(c: &mut Ctx) -> KResult<u64> {
    do_get(lpath(c), c)
}

pub fn fgetxattr(c: &mut Ctx) -> KResult<u64> {
    do_get(fd(c), c)
}

pub fn listxattr(c: &mut Ctx) -> KResult<u64> {
    do_list(path(c), c)
}

pub fn llistxattr(c: &mut Ctx) -> KResult<u64> {
    do_list(lpath(c), c)
}

pub fn flistxattr(c: &mut Ctx) -> KResult<u64> {
    do_list(fd(c), c)
}

pub fn removexattr(c: &mut Ctx) -> KResult<u64> {
    do_remove(path(c), c)
}

pub fn lremovexattr(c: &mut Ctx) -> KResult<u64> {
    do_remove(lpath(c), c)
}

pub fn fremovexattr(c: &mut Ctx) -> KResult<u64> {
    do_remove(fd(c), c)
}
