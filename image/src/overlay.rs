//! Mounting and unmounting a bundle's overlay rootfs.
//!
//! The classic mount(2) data string is limited to one page, which caps how
//! many lowerdirs it can name. When the string would not fit, the layers are
//! passed one by one with the new mount API (fsconfig `lowerdir+`, Linux 6.8+).

use crate::error::{Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const PAGE_LIMIT: usize = 4000;
const EXTRA: &str = "index=off,redirect_dir=off,metacopy=off";

/// `lowers` topmost first.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let lower = lowers.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
    let data = format!("lowerdir={lower},upperdir={},workdir={},{EXTRA}", upper.display(), work.display());
    if data.len() < PAGE_LIMIT {
        return mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
            .map_err(|e| Error::sys("mount overlay", target, e));
    }
    mount_overlay_fsconfig(lowers, upper, work, target)
}

fn mount_overlay_fsconfig(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let err = |op: &'static str| move |e: nix::Error| Error::sys(op, target, e);
    let cs = |s: &[u8]| CString::new(s).map_err(|_| Error::Invalid("NUL in path".into()));
    unsafe {
        let fs_fd = nix::errno::Errno::result(libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), 1 /* FSOPEN_CLOEXEC */)).map_err(err("fsopen overlay"))? as i32;
        let _close = CloseOnDrop(fs_fd);
        let set = |key: &CString, val: &CString| -> Result<()> {
            nix::errno::Errno::result(libc::syscall(libc::SYS_fsconfig, fs_fd, 1 /* FSCONFIG_SET_STRING */, key.as_ptr(), val.as_ptr(), 0))
                .map(drop)
                .map_err(|e| Error::sys("fsconfig (needs Linux 6.8+ for many layers)", target, e))
        };
        // lowerdir+ appends below the previous ones: topmost first.
        for l in lowers {
            set(&cs(b"lowerdir+")?, &cs(l.as_os_str().as_bytes())?)?;
        }
        set(&cs(b"upperdir")?, &cs(upper.as_os_str().as_bytes())?)?;
        set(&cs(b"workdir")?, &cs(work.as_os_str().as_bytes())?)?;
        for opt in EXTRA.split(',') {
            let (k, v) = opt.split_once('=').unwrap();
            set(&cs(k.as_bytes())?, &cs(v.as_bytes())?)?;
        }
        nix::errno::Errno::result(libc::syscall(libc::SYS_fsconfig, fs_fd, 6 /* FSCONFIG_CMD_CREATE */, 0usize, 0usize, 0))
            .map_err(err("fsconfig create"))?;
        let mnt = nix::errno::Errno::result(libc::syscall(libc::SYS_fsmount, fs_fd, 1 /* FSMOUNT_CLOEXEC */, 0)).map_err(err("fsmount"))? as i32;
        let _close_mnt = CloseOnDrop(mnt);
        let t = cs(target.as_os_str().as_bytes())?;
        nix::errno::Errno::result(libc::syscall(libc::SYS_move_mount, mnt, c"".as_ptr(), libc::AT_FDCWD, t.as_ptr(), 4 /* MOVE_MOUNT_F_EMPTY_PATH */))
            .map_err(err("move_mount"))?;
    }
    Ok(())
}

struct CloseOnDrop(i32);
impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

/// Whether `p` is a mount point (its device differs from its parent's, or
/// /proc/self/mountinfo lists it).
pub fn is_mounted(p: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(p) else { return false };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Unmounts `p` if mounted; a busy mount is detached lazily.
pub fn unmount(p: &Path) -> Result<()> {
    while is_mounted(p) {
        match umount2(p, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => umount2(p, MntFlags::MNT_DETACH).map_err(|e| Error::sys("umount", p, e))?,
            Err(e) => return Err(Error::sys("umount", p, e)),
        }
    }
    Ok(())
}
