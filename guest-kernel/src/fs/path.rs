//! Path resolution: from the root or the working directory, through `.`, `..` and
//! symbolic links (at most 40, then ELOOP), as Linux's namei does, with search
//! permission needed on each directory passed through.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{perm, ramfs, FileType, Node};
use crate::errno::*;

const MAX_SYMLINKS: u32 = 40;
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// Joins `path` to `cwd` (if relative) and removes `.`, `..` and empty parts lexically.
pub fn normalize(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let base = if path.starts_with('/') { "" } else { cwd };
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = String::from("/");
    out.push_str(&parts.join("/"));
    out
}

/// openat2's `resolve` flags (RESOLVE_NO_MAGICLINKS has nothing to refuse here: there
/// are no magic links such as `/proc/self/fd/N`).
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;
pub const RESOLVE_ALL: u64 =
    RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_CACHED;
const SCOPED: u64 = RESOLVE_BENEATH | RESOLVE_IN_ROOT;

/// The limits of one walk: its `resolve` flags, the directory it may not leave (BENEATH,
/// IN_ROOT) and the mount it may not leave (NO_XDEV).
struct Scope {
    flags: u64,
    root: String,
    mount: usize,
}

impl Scope {
    fn new(start: &str, path: &str, flags: u64) -> KResult<Self> {
        let root = String::from(if flags & SCOPED != 0 { start } else { "/" });
        let mut mount = 0;
        if flags & RESOLVE_NO_XDEV != 0 {
            let from = if path.starts_with('/') && flags & RESOLVE_IN_ROOT == 0 { "/" } else { start };
            mount = node_at(from)?.mount_id();
        }
        Ok(Self { flags, root, mount })
    }

    fn check_mount(&self, node: &Arc<dyn Node>) -> KResult<()> {
        if self.flags & RESOLVE_NO_XDEV != 0 && node.mount_id() != self.mount {
            return Err(EXDEV);
        }
        Ok(())
    }
}

/// The node at canonical path `path` (absolute, without `.`, `..` or symbolic links).
fn node_at(path: &str) -> KResult<Arc<dyn Node>> {
    let mut node: Arc<dyn Node> = ramfs::root();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        node = node.lookup(part)?;
    }
    Ok(node)
}

fn walk(start: &str, path: &str, follow_last: bool, depth: &mut u32, scope: &Scope) -> KResult<(Arc<dyn Node>, String)> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    // An absolute path starts at the root: the scope's with IN_ROOT, none with BENEATH.
    // The working directory and dirfds are kept canonical (no symlinks).
    let base = match path.starts_with('/') {
        false => start,
        true if scope.flags & RESOLVE_IN_ROOT != 0 => &scope.root,
        true if scope.flags & RESOLVE_BENEATH != 0 => return Err(EXDEV),
        true => "/",
    };
    let mut node = node_at(base)?;
    let mut walked = String::from(base);
    // The directories walked so far, for `..`, with the canonical path of each.
    let mut stack: Vec<(Arc<dyn Node>, String)> = Vec::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let trailing_slash = path.ends_with('/');
    let walker = perm::walker();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if node.file_type() != FileType::Directory {
            return Err(ENOTDIR);
        }
        // Every directory passed through must be searchable (`.` and `..` too).
        perm::may_search(&walker, &*node)?;
        match *part {
            "." => continue,
            ".." => {
                if scope.flags & SCOPED != 0 && walked == scope.root {
                    // BENEATH may not climb out; IN_ROOT's `..` of the root is the root.
                    if scope.flags & RESOLVE_BENEATH != 0 {
                        return Err(EXDEV);
                    }
                    continue;
                }
                if let Some((parent, parent_path)) = stack.pop() {
                    node = parent;
                    walked = parent_path;
                } else if walked != "/" {
                    walked = normalize(&walked, "..");
                    node = node_at(&walked)?;
                }
                scope.check_mount(&node)?;
                continue;
            }
            p if p.len() > NAME_MAX => return Err(ENAMETOOLONG),
            _ => {}
        }
        if scope.flags & RESOLVE_CACHED != 0 && !node.lookup_cached() {
            return Err(EAGAIN);
        }
        let child = node.lookup(part)?;
        if child.file_type() == FileType::Symlink && (!last || follow_last || trailing_slash) {
            if scope.flags & RESOLVE_NO_SYMLINKS != 0 {
                return Err(ELOOP);
            }
            *depth += 1;
            if *depth > MAX_SYMLINKS {
                return Err(ELOOP);
            }
            let target = child.readlink()?;
            let (n, w) = walk(&walked, &target, true, depth, scope)?;
            stack.push((Arc::clone(&node), walked.clone()));
            node = n;
            walked = w;
            continue;
        }
        scope.check_mount(&child)?;
        stack.push((Arc::clone(&node), walked.clone()));
        walked = normalize(&walked, part);
        node = child;
    }
    if trailing_slash && node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    Ok((node, walked))
}

/// The node at `path` from `cwd` within the limits of openat2's `resolve` flags, and its
/// canonical absolute path; `follow` follows a final symlink.
pub fn resolve(cwd: &str, path: &str, follow: bool, resolve: u64) -> KResult<(Arc<dyn Node>, String)> {
    walk(cwd, path, follow, &mut 0, &Scope::new(cwd, path, resolve)?)
}

/// The node at `path`, relative to `cwd`; `follow` follows a final symlink.
pub fn lookup(cwd: &str, path: &str, follow: bool) -> KResult<Arc<dyn Node>> {
    resolve(cwd, path, follow, 0).map(|(n, _)| n)
}

/// The node and its canonical absolute path.
pub fn lookup_with_path(cwd: &str, path: &str, follow: bool) -> KResult<(Arc<dyn Node>, String)> {
    resolve(cwd, path, follow, 0)
}

/// The directory that holds the last component of `path`, and that component.
pub fn lookup_parent(cwd: &str, path: &str) -> KResult<(Arc<dyn Node>, String, String)> {
    resolve_parent(cwd, path, 0)
}

/// `lookup_parent` within the limits of `resolve` flags.
pub fn resolve_parent(cwd: &str, path: &str, resolve: u64) -> KResult<(Arc<dyn Node>, String, String)> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        // The root itself: callers creating or removing it get EEXIST/EBUSY from Linux.
        return Err(EEXIST);
    }
    let (dir, name) = match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", trimmed),
    };
    if name.len() > NAME_MAX {
        return Err(ENAMETOOLONG);
    }
    let (node, walked) = walk(cwd, dir, true, &mut 0, &Scope::new(cwd, dir, resolve)?)?;
    if node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    Ok((node, String::from(name), walked))
}
