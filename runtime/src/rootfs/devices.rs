//! /dev inside the container: the devices every container gets (null, zero, full,
//! random, urandom, tty), `linux.devices`, and the /dev/fd, std* and ptmx symlinks.
//! In a user namespace the kernel forbids mknod, so devices are bind-mounted from the
//! host instead (what runc does).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::resolve::{create_file, fd_path, mkdir_all};
use crate::error::{Error, Result};

struct Device {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

const DEFAULTS: [(&str, u64, u64); 6] =
    [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)];

/// runc's rule: the default devices are made unless the config bind-mounts /dev itself.
pub fn wants_default_devices(mounts: &[Mount]) -> bool {
    !mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options().as_ref().is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind")))
    })
}

pub fn create_defaults(root: &OwnedFd, in_user_ns: bool) -> Result<()> {
    for (path, major, minor) in DEFAULTS {
        let dev = Device { path: path.into(), kind: SFlag::S_IFCHR, major, minor, mode: 0o666, uid: 0, gid: 0 };
        create(root, &dev, in_user_ns).map_err(|e| Error::os(format!("create {path}"), e))?;
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/core", "/proc/kcore"),
    ] {
        // A kernel without CONFIG_PROC_KCORE has no /proc/kcore: no dangling link (runc's rule).
        if link == "/dev/core" && !Path::new("/proc/kcore").exists() {
            continue;
        }
        let dir = mkdir_all(root, Path::new("/dev"), 0o755)?;
        let name = &link[5..];
        match nix::unistd::symlinkat(target, dir.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::os(format!("symlink {link}"), e)),
        }
    }
    Ok(())
}

pub fn create_configured(root: &OwnedFd, devices: &[LinuxDevice], in_user_ns: bool) -> Result<()> {
    for (i, d) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => return Err(Error::field(format!("{field}.type"), "\"a\" is not a device type")),
        };
        if !d.path().starts_with("/dev") {
            return Err(Error::field(format!("{field}.path"), format!("{} is not under /dev", d.path().display())));
        }
        let dev = Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(root, &dev, in_user_ns).map_err(|e| Error::field(field, format!("{}: {}", d.path().display(), e.desc())))?;
    }
    Ok(())
}

fn create(root: &OwnedFd, dev: &Device, in_user_ns: bool) -> std::result::Result<(), Errno> {
    let parent_path = dev.path.parent().unwrap_or(Path::new("/dev"));
    let name = dev.path.file_name().ok_or(Errno::EINVAL)?;
    let parent = mkdir_all(root, parent_path, 0o755).map_err(|_| Errno::ENOENT)?;
    if in_user_ns {
        let target = create_file(root, &dev.path, 0o000).map_err(|_| Errno::EACCES)?;
        return mount(Some(&dev.path), &fd_path(&target), None::<&str>, MsFlags::MS_BIND, None::<&str>);
    }
    // Replace whatever the image shipped at that path.
    match nix::unistd::unlinkat(parent.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    mknodat(parent.as_fd(), name, dev.kind, Mode::from_bits_truncate(dev.mode), makedev(dev.major, dev.minor))?;
    // mknod honours the umask: set the mode exactly, then the owner.
    nix::sys::stat::fchmodat(
        parent.as_fd(),
        name,
        Mode::from_bits_truncate(dev.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    fchownat(parent.as_fd(), name, Some(Uid::from_raw(dev.uid)), Some(Gid::from_raw(dev.gid)), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}
