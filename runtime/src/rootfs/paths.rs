//! linux.maskedPaths (files hidden under /dev/null, directories under an empty
//! read-only tmpfs) and linux.readonlyPaths (bind-remounted read-only). Paths that
//! don't exist in the container are skipped, as the spec allows.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};

use super::mounts::remount_bind;
use super::resolve::fd_path;
use crate::error::{Error, Result};
use crate::sys::open_in_root;

pub fn mask(root: &OwnedFd, paths: &[String]) -> Result<()> {
    // The container's own /dev/null, as runc binds it (the host's where there is none).
    let null = open_in_root(root, Path::new("/dev/null"), OFlag::O_PATH).ok();
    let null = null.as_ref().map(fd_path).unwrap_or_else(|| "/dev/null".into());
    for (i, p) in paths.iter().enumerate() {
        let fd = match open_in_root(root, Path::new(p), OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::field(format!("linux.maskedPaths[{i}]"), format!("{p}: {}", e.desc()))),
        };
        let is_dir = nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        // An empty read-only tmpfs with the kernel's defaults, as runc mounts it.
        let result = if is_dir {
            mount(Some("tmpfs"), &fd_path(&fd), Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>)
        } else {
            mount(Some(&null), &fd_path(&fd), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        };
        result.map_err(|e| Error::field(format!("linux.maskedPaths[{i}]"), format!("{p}: {}", e.desc())))?;
    }
    Ok(())
}

pub fn make_readonly(root: &OwnedFd, paths: &[String]) -> Result<()> {
    for (i, p) in paths.iter().enumerate() {
        let field = || format!("linux.readonlyPaths[{i}]");
        let fd = match open_in_root(root, Path::new(p), OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::field(field(), format!("{p}: {}", e.desc()))),
        };
        let target = fd_path(&fd);
        mount(Some(&target), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| Error::field(field(), format!("{p}: {}", e.desc())))?;
        let mounted = open_in_root(root, Path::new(p), OFlag::O_PATH)
            .map_err(|e| Error::field(field(), format!("{p}: {}", e.desc())))?;
        // Read-only, keeping the flags it has (runc adds no nosuid/nodev/noexec here).
        remount_bind(fd_path(&mounted), MsFlags::MS_RDONLY)
            .map_err(|e| Error::field(field(), format!("{p}: {}", e.desc())))?;
    }
    Ok(())
}
