//! Idmapped bind mounts (`idmap`/`ridmap` options, mount uidMappings/gidMappings):
//! the source tree is cloned with open_tree, given the id mapping of a user namespace
//! made just for it, and moved onto the destination.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxIdMapping;

use crate::sys::{clone_fork, Forked};

/// A user namespace with the given maps, as an fd (the process that made it is gone).
pub fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, String> {
    let step = |what: &'static str| move |e: Errno| format!("{what}: {}", e.desc());
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(step("pipe"))?;
    let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(step("pipe"))?;
    // SAFETY: called from the single-threaded runtime or init; the child owns what it inherits.
    let pid = match unsafe { clone_fork(libc::CLONE_NEWUSER as u64) }.map_err(step("clone a user namespace"))? {
        Forked::Child => {
            // The init may sit in its own pid namespace while /proc is still the host's:
            // tell the parent our pid as that /proc knows it, then wait.
            let me = std::fs::read_link("/proc/self").map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = nix::unistd::write(&ready_w, me.as_bytes());
            drop(ready_w);
            drop(hold_w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&hold_r, &mut b);
            // SAFETY: leave the helper without running any destructor.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent(pid) => pid,
    };
    drop(ready_w);
    let result = (|| {
        let mut buf = [0u8; 32];
        let n = nix::unistd::read(&ready_r, &mut buf).map_err(step("wait for the user namespace"))?;
        let proc_pid = String::from_utf8_lossy(&buf[..n]).into_owned();
        let render = |maps: &[LinuxIdMapping]| -> String {
            maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
        };
        std::fs::write(format!("/proc/{proc_pid}/uid_map"), render(uid)).map_err(|e| format!("uidMappings: {e}"))?;
        std::fs::write(format!("/proc/{proc_pid}/gid_map"), render(gid)).map_err(|e| format!("gidMappings: {e}"))?;
        nix::fcntl::open(
            format!("/proc/{proc_pid}/ns/user").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(step("open the user namespace"))
    })();
    drop(hold_w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}

/// Binds `source` (recursively with `recursive`) onto the directory or file `target`
/// (an O_PATH fd inside the rootfs) with the id mapping of `userns`.
pub fn bind(source: &Path, target: &OwnedFd, recursive: bool, userns: &OwnedFd) -> Result<(), String> {
    let step = |what: &'static str| move |e: Errno| format!("{what}: {}", e.desc());
    let src = CString::new(source.as_os_str().as_encoded_bytes()).map_err(|_| "source has a NUL byte".to_string())?;
    let rec = if recursive { libc::AT_RECURSIVE as u32 } else { 0 };
    // SAFETY: valid C string; the kernel returns a new fd we then own.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | rec,
        )
    };
    let tree = Errno::result(tree).map_err(step("open_tree"))? as i32;
    // SAFETY: open_tree just returned this fd and nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(tree) };
    // SAFETY: mount_attr is plain integers; all zeroes is its "change nothing" value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = libc::MOUNT_ATTR_IDMAP;
    attr.userns_fd = userns.as_raw_fd() as u64;
    let empty = CString::default();
    // SAFETY: valid fds, empty path with AT_EMPTY_PATH, attr outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 },
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r).map_err(step("mount_setattr idmap"))?;
    // SAFETY: valid fds and empty C strings with the EMPTY_PATH flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop).map_err(step("move_mount"))
}
