//! `tmpcopyup` (runc's extension): a tmpfs mounted over a directory starts with a copy
//! of what the directory held, owners, modes and links included. Every step is
//! relative to directory fds, so nothing in the image can redirect the copy.

use std::os::fd::{AsFd, OwnedFd};

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use crate::error::{Error, Result};

/// Copies the tree under `from` into `to` (both directory fds).
pub fn copy_tree(from: &OwnedFd, to: &OwnedFd) -> Result<()> {
    copy_dir(from, to, 0).map_err(|e| Error::os("tmpcopyup", e))
}

fn copy_dir(from: &OwnedFd, to: &OwnedFd, depth: u32) -> nix::Result<()> {
    if depth > 128 {
        return Err(nix::errno::Errno::ELOOP);
    }
    let mut dir = Dir::from_fd(nix::unistd::dup(from)?)?;
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .flatten()
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .map(|e| e.file_name().to_owned())
        .collect();
    for name in names {
        let name = name.as_c_str();
        let st = fstatat(from.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
            SFlag::S_IFDIR => {
                mkdirat(to.as_fd(), name, mode)?;
                let src = nix::fcntl::openat(
                    from.as_fd(),
                    name,
                    OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let dst = nix::fcntl::openat(
                    to.as_fd(),
                    name,
                    OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                copy_dir(&src, &dst, depth + 1)?;
            }
            SFlag::S_IFREG => {
                let src = nix::fcntl::openat(
                    from.as_fd(),
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let dst = nix::fcntl::openat(
                    to.as_fd(),
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    mode,
                )?;
                let mut src = std::fs::File::from(src);
                let mut dst = std::fs::File::from(dst);
                std::io::copy(&mut src, &mut dst)
                    .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(from.as_fd(), name)?;
                nix::unistd::symlinkat(target.as_os_str(), to.as_fd(), name)?;
            }
            kind => mknodat(to.as_fd(), name, kind, mode, st.st_rdev)?,
        }
        fchownat(
            to.as_fd(),
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) != SFlag::S_IFLNK {
            // chown clears setuid/setgid: set the mode last.
            fchmodat(to.as_fd(), name, mode, FchmodatFlags::NoFollowSymlink).or_else(|e| {
                if e == nix::errno::Errno::EOPNOTSUPP {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
    }
    Ok(())
}
