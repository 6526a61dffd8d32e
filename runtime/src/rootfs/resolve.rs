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
    let mut normal = path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    });
    let Some(name) = normal.next_back() else {
        return open_in_root(root, Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| err(path, e));
    };
    // ".." is skipped, as the walk always skipped it: the prefixes are rebuilt without it.
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
