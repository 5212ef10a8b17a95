//! Extended attributes (Linux's fs/xattr.c): the checks every file system shares, and
//! the in-memory store of the RAM file system.
//!
//! Names are `namespace.name`: `user.` (regular files and directories only: elsewhere
//! EPERM to set, ENODATA to read), `trusted.` and `security.` are stored; `system.` names
//! (POSIX ACLs) and unknown namespaces are EOPNOTSUPP, as on a file system without ACLs.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{FileType, Node};
use crate::errno::*;
use crate::sync::SpinLock;

pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;
/// Longest name (Linux's XATTR_NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Largest value, and largest list (XATTR_SIZE_MAX, XATTR_LIST_MAX).
pub const SIZE_MAX: usize = 65536;
/// Most bytes of names and values one RAM file keeps (beyond: ENOSPC).
const NODE_BUDGET: usize = 1 << 20;

/// Checks `name`'s namespace for `node` (`write`: set or remove) as Linux's
/// xattr_permission and xattr_resolve_name do.
pub fn check(node: &dyn Node, name: &str, write: bool) -> KResult<()> {
    let known = ["user.", "trusted.", "security."].iter().any(|p| name.starts_with(p) && name.len() > p.len());
    if !known {
        return Err(EOPNOTSUPP);
    }
    if name.starts_with("user.") && !matches!(node.file_type(), FileType::Regular | FileType::Directory) {
        return Err(if write { EPERM } else { ENODATA });
    }
    Ok(())
}

/// The attributes of one RAM file system node.
pub struct Xattrs(SpinLock<BTreeMap<String, Vec<u8>>>);

impl Default for Xattrs {
    fn default() -> Self {
        Self(SpinLock::new(BTreeMap::new()))
    }
}

impl Xattrs {
    pub fn get(&self, name: &str) -> KResult<Vec<u8>> {
        self.0.lock().get(name).cloned().ok_or(ENODATA)
    }

    /// Sets `name` (XATTR_CREATE: only if absent, EEXIST; XATTR_REPLACE: only if
    /// present, ENODATA), or with `None` removes it (ENODATA if absent).
    pub fn set(&self, name: &str, value: Option<&[u8]>, flags: u32) -> KResult<()> {
        let mut map = self.0.lock();
        let Some(value) = value else { return map.remove(name).map(drop).ok_or(ENODATA) };
        match (map.contains_key(name), flags) {
            (true, XATTR_CREATE) => return Err(EEXIST),
            (false, XATTR_REPLACE) => return Err(ENODATA),
            _ => {}
        }
        let used: usize = map.iter().filter(|(k, _)| k.as_str() != name).map(|(k, v)| k.len() + v.len()).sum();
        if used + name.len() + value.len() > NODE_BUDGET {
            return Err(ENOSPC);
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(value.len()).map_err(|_| ENOMEM)?;
        copy.extend_from_slice(value);
        map.insert(String::from(name), copy);
        Ok(())
    }

    /// The names, each followed by a NUL (listxattr's format).
    pub fn list(&self) -> Vec<u8> {
        let map = self.0.lock();
        let mut out = Vec::new();
        for name in map.keys() {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        out
    }
}

/// The `Node` xattr methods of a node that keeps its attributes in a field `xattrs`.
macro_rules! stored_xattrs {
    () => {
        fn getxattr(&self, name: &str) -> KResult<alloc::vec::Vec<u8>> {
            self.xattrs.get(name)
        }

        fn setxattr(&self, name: &str, value: Option<&[u8]>, flags: u32) -> KResult<()> {
            self.xattrs.set(name, value, flags)
        }

        fn listxattr(&self) -> KResult<alloc::vec::Vec<u8>> {
            Ok(self.xattrs.list())
        }
    };
}
pub(crate) use stored_xattrs;
