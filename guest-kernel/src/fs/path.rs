//! Path resolution: from the root or the working directory, through `.`, `..` and
//! symbolic links (at most 40, then ELOOP), as Linux's namei does.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{ramfs, FileType, Node};
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

fn walk(start: &str, path: &str, follow_last: bool, depth: &mut u32) -> KResult<(Arc<dyn Node>, String)> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    // The working directory is kept canonical (no symlinks), so a relative path is the
    // same walk from the root with the directory in front.
    let full;
    let path = if path.starts_with('/') {
        path
    } else {
        full = alloc::format!("{start}/{path}");
        &full
    };
    // The directories walked so far, for `..`, with the canonical path of each.
    let mut stack: Vec<(Arc<dyn Node>, String)> = Vec::new();
    let mut node: Arc<dyn Node> = ramfs::root();
    let mut walked = String::from("/");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let trailing_slash = path.ends_with('/');
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if node.file_type() != FileType::Directory {
            return Err(ENOTDIR);
        }
        match *part {
            "." => continue,
            ".." => {
                if let Some((parent, parent_path)) = stack.pop() {
                    node = parent;
                    walked = parent_path;
                }
                continue;
            }
            p if p.len() > NAME_MAX => return Err(ENAMETOOLONG),
            _ => {}
        }
        let child = node.lookup(part)?;
        if child.file_type() == FileType::Symlink && (!last || follow_last || trailing_slash) {
            *depth += 1;
            if *depth > MAX_SYMLINKS {
                return Err(ELOOP);
            }
            let target = child.readlink()?;
            let (n, w) = walk(&walked, &target, true, depth)?;
            stack.push((Arc::clone(&node), walked.clone()));
            node = n;
            walked = w;
            continue;
        }
        stack.push((Arc::clone(&node), walked.clone()));
        walked = normalize(&walked, part);
        node = child;
    }
    if trailing_slash && node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    Ok((node, walked))
}

/// The node at `path`, relative to `cwd`; `follow` follows a final symlink.
pub fn lookup(cwd: &str, path: &str, follow: bool) -> KResult<Arc<dyn Node>> {
    walk(cwd, path, follow, &mut 0).map(|(n, _)| n)
}

/// The node and its canonical absolute path.
pub fn lookup_with_path(cwd: &str, path: &str, follow: bool) -> KResult<(Arc<dyn Node>, String)> {
    walk(cwd, path, follow, &mut 0)
}

/// The directory that holds the last component of `path`, and that component.
pub fn lookup_parent(cwd: &str, path: &str) -> KResult<(Arc<dyn Node>, String, String)> {
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
    let (node, walked) = walk(cwd, dir, true, &mut 0)?;
    if node.file_type() != FileType::Directory {
        return Err(ENOTDIR);
    }
    Ok((node, String::from(name), walked))
}
