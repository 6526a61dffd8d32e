//! Making and opening paths *inside* the container's rootfs, where the rootfs may hold
//! hostile symlinks: every lookup is confined with RESOLVE_IN_ROOT, and the result is
//! an fd that mounts then target through /proc/self/fd (CVE-2021-30465 class; see
//! `process::real_sys`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::sys::open_in_root;

/// Opens `path` inside `root` with O_PATH.
pub fn open_path(root: &OwnedFd, path: &Path) -> nix::Result<OwnedFd> {
    open_in_root(root, path, OFlag::O_PATH)
}

/// Makes every missing directory of `path` inside `root` and returns an O_PATH fd on
/// the last one. A dangling symlink on the way is followed the way the kernel would
/// resolve it inside the root, and its target made.
pub fn mkdir_all(root: &OwnedFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    mkdir_all_depth(root, path, mode, 0)
}

fn mkdir_all_depth(root: &OwnedFd, path: &Path, mode: u32, depth: u32) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(err(path, Errno::ELOOP));
    }
    // From the end: most targets exist (the rootfs's /dev, /proc), or only their last
    // component is missing (a new mount's mountpoints: /dev/pts, /sys/fs/cgroup/cpu): a
    // lookup or three instead of one per prefix. Each lookup is confined to the root, so
    // resolving the whole path ends where resolving its prefixes in turn would.
    if path.components().any(|c| c == Component::ParentDir) {
        return mkdir_all_by_prefix(root, path, mode, depth);
    }
    let mut normal = path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    });
    let Some(name) = normal.next_back() else {
        return open_in_root(root, Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| err(path, e));
    };
    let parent: PathBuf = std::iter::once(Component::RootDir.as_os_str()).chain(normal).collect();
    let full = parent.join(name);
    match open_in_root(root, &full, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Err(Errno::ENOENT) => {}
        found => return found.map_err(|e| err(&full, e)),
    }
    let dir = mkdir_all_depth(root, &parent, mode, depth)?;
    match nix::sys::stat::mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(mode)) {
        Ok(()) => {}
        // Something is there yet doesn't resolve: a dangling symlink.
        Err(Errno::EEXIST) => {
            let target = nix::fcntl::readlinkat(dir.as_fd(), name).map_err(|e| err(&full, e))?;
            let target = parent.join(PathBuf::from(target));
            mkdir_all_depth(root, &target, mode, depth + 1)?;
        }
        Err(e) => return Err(err(&full, e)),
    }
    open_in_root(root, &full, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| err(&full, e))
}

/// [`mkdir_all`] of a path with `..` in it: each prefix, `..` kept, is looked up in turn,
/// so the kernel takes a `..` after whatever the components before it resolved to
/// (symlinks included), as runc's path resolution does; a missing component is made in
/// the directory its prefix resolved to.
fn mkdir_all_by_prefix(root: &OwnedFd, path: &Path, mode: u32, depth: u32) -> Result<OwnedFd> {
    let mut prefix = PathBuf::from("/");
    let mut dir = open_in_root(root, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| err(path, e))?;
    for c in path.components() {
        let Component::Normal(name) = c else {
            if c == Component::ParentDir {
                prefix.push("..");
                dir = open_in_root(root, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| err(&prefix, e))?;
            }
            continue;
        };
        let parent = prefix.clone();
        prefix.push(name);
        match open_in_root(root, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(&prefix, e)),
        }
        match nix::sys::stat::mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(mode)) {
            Ok(()) => {}
            // Something is there yet doesn't resolve: a dangling symlink, made relative
            // to the prefix it sits in.
            Err(Errno::EEXIST) => {
                let target = nix::fcntl::readlinkat(dir.as_fd(), name).map_err(|e| err(&prefix, e))?;
                mkdir_all_depth(root, &parent.join(PathBuf::from(target)), mode, depth + 1)?;
            }
            Err(e) => return Err(err(&prefix, e)),
        }
        dir = open_in_root(root, &prefix, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| err(&prefix, e))?;
    }
    Ok(dir)
}

/// Makes an empty file at `path` inside `root` (parents included) unless something is
/// already there, and returns an O_PATH fd on it.
pub fn create_file(root: &OwnedFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    if let Ok(fd) = open_path(root, path) {
        return Ok(fd);
    }
    let parent = mkdir_all(root, path.parent().unwrap_or(Path::new("/")), 0o755)?;
    let name = path.file_name().ok_or_else(|| Error::os(format!("create {}", path.display()), Errno::EINVAL))?;
    match nix::fcntl::openat(
        parent.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(err(path, e)),
    }
    open_path(root, path).map_err(|e| err(path, e))
}

fn err(path: &Path, e: Errno) -> Error {
    Error::os(format!("{} (inside rootfs)", path.display()), e)
}
