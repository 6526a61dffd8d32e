//! Mounting and unmounting a bundle's overlay rootfs.
//!
//! The classic mount(2) data string is limited to one page, which caps how
//! many lowerdirs it can name. When the string would not fit, the layers are
//! passed one by one with the new mount API (fsconfig `lowerdir+`, Linux 6.8+).

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const PAGE_LIMIT: usize = 4000;
const EXTRA: &str = "index=off,redirect_dir=off,metacopy=off";

/// `lowers` topmost first.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let mut data = b"lowerdir=".to_vec();
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            data.push(b':');
        }
        data.extend(escape(l));
    }
    for (key, p) in [(&b",upperdir="[..], upper), (b",workdir=", work)] {
        data.extend(key);
        data.extend(escape(p));
    }
    data.extend(format!(",{EXTRA}").as_bytes());
    if data.len() < PAGE_LIMIT {
        return mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(OsStr::from_bytes(&data)))
            .map_err(|e| Error::sys("mount overlay", target, e));
    }
    mount_overlay_fsconfig(lowers, upper, work, target)
}

/// A path as the overlay option parser reads it: bytes as they are (not
/// necessarily UTF-8), with `\`, `:` (between lowerdirs) and `,` (between
/// options) escaped by a backslash.
fn escape(p: &Path) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.as_os_str().len());
    for &b in p.as_os_str().as_bytes() {
        if matches!(b, b'\\' | b':' | b',') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The new mount API: fsopen, fsconfig per option (and per layer),
/// fsmount, move_mount. Neither nix nor libc wraps them: raw syscalls.
fn mount_overlay_fsconfig(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let err = |op: &'static str| move |e: nix::Error| Error::sys(op, target, e);
    let cs =
        |s: &[u8]| CString::new(s).map_err(|_| Error::Invalid(format!("{}: NUL in an overlay path", target.display())));
    // SAFETY: the name is a NUL-terminated literal; the call returns a new fd or -1.
    let fs_fd = Errno::result(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })
        .map_err(err("fsopen overlay"))?;
    // SAFETY: fsopen just returned this fd and nothing else owns it.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(fs_fd as RawFd) };
    let set = |key: &[u8], val: &[u8]| -> Result<()> {
        let (key, val) = (cs(key)?, cs(val)?);
        // SAFETY: fs_fd is an open fs context; key and val are NUL-terminated and outlive the call.
        let r = unsafe {
            libc::syscall(libc::SYS_fsconfig, fs_fd.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), val.as_ptr(), 0)
        };
        Errno::result(r).map(drop).map_err(|e| Error::sys("fsconfig (needs Linux 6.8+ for many layers)", target, e))
    };
    // lowerdir+ appends below the previous ones: topmost first. It takes a path
    // as it is; upperdir and workdir are unescaped as in the mount(2) string
    // (fs/overlayfs/params.c: ovl_mount_dir vs ovl_mount_dir_noesc).
    for l in lowers {
        set(b"lowerdir+", l.as_os_str().as_bytes())?;
    }
    set(b"upperdir", &escape(upper))?;
    set(b"workdir", &escape(work))?;
    for opt in EXTRA.split(',') {
        let (k, v) = opt.split_once('=').unwrap();
        set(k.as_bytes(), v.as_bytes())?;
    }
    // SAFETY: fs_fd is an open fs context; the command takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, fs_fd.as_raw_fd(), FSCONFIG_CMD_CREATE, 0usize, 0usize, 0) };
    Errno::result(r).map_err(err("fsconfig create"))?;
    // SAFETY: fs_fd holds a created superblock; the call returns a new fd or -1.
    let mnt = Errno::result(unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })
        .map_err(err("fsmount"))?;
    // SAFETY: fsmount just returned this fd and nothing else owns it.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    let t = cs(target.as_os_str().as_bytes())?;
    // SAFETY: mnt is a detached mount; "" and t are NUL-terminated and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop).map_err(err("move_mount"))
}

/// Whether `p` is a mount point (/proc/self/mountinfo lists it).
pub fn is_mounted(p: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(p) else { return false };
    mounts().iter().any(|(point, _)| *point == canon)
}

/// Every mount of this mount namespace: its mount point and its super
/// options (for overlay, the layer dirs), both as bytes with the kernel's
/// escapes undone, so paths holding spaces, `\`, `:`, `,` or non-UTF-8 bytes
/// compare equal to the paths we hold.
pub fn mounts() -> Vec<(PathBuf, Vec<u8>)> {
    // The runtime's parser: bytes, octal escapes undone (strata::mountinfo).
    let Ok(all) = strata::mountinfo::read_self() else { return vec![] };
    all.into_iter().map(|m| (m.mount_point, unescape(&m.super_options))).collect()
}

/// Undoes `escape`: `\x` is `x`.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        out.push(if b == b'\\' { *it.next().unwrap_or(&b) } else { b });
    }
    out
}

/// Whether a mounted overlay names `dir` among its layers.
pub fn layer_in_use(dir: &Path) -> bool {
    let want = dir.as_os_str().as_bytes();
    mounts().iter().any(|(_, opts)| opts.windows(want.len()).any(|w| w == want))
}

/// Unmounts `p` if mounted; a busy mount is detached lazily.
pub fn unmount(p: &Path) -> Result<()> {
    while is_mounted(p) {
        match umount2(p, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => {
                umount2(p, MntFlags::MNT_DETACH).map_err(|e| Error::sys("umount", p, e))?
            }
            Err(e) => return Err(Error::sys("umount", p, e)),
        }
    }
    Ok(())
}
