//! Thin wrappers over the system calls that libc and nix don't wrap the way we need:
//! a fork-style clone3, openat2 confined to a root, close_range, pidfds, and the
//! start time of a pid (so a recycled pid never passes for the container's init).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// clone3's CLONE_INTO_CGROUP (libc's constant is typed too narrow).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What a fork-style clone returns: in the parent the child's pid, in the child nothing.
pub enum Forked {
    Parent(libc::pid_t),
    Child,
}

/// clone3 without a new stack: the child continues right here like after fork(2), but
/// can be born into new namespaces and, on cgroup v2, directly into its cgroup.
///
/// Safe to use only while the process is single-threaded (strata always is): the child
/// then owns every lock and allocator state it inherits.
pub fn clone_fork(flags: u64, cgroup_fd: Option<RawFd>) -> nix::Result<Forked> {
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a zero stack behaves like fork; the struct outlives the call.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut libc::clone_args, std::mem::size_of::<libc::clone_args>())
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// Opens `path` inside `root` as if `root` were `/`: `..`, absolute names and symlinks
/// all stay inside (RESOLVE_IN_ROOT), and /proc magic links are refused.
pub fn open_in_root(root: impl AsFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    nix::fcntl::openat2(root, rel, how)
}

/// Closes every fd from `first` up, or marks them close-on-exec when `cloexec` is set.
pub fn close_range_from(first: u32, cloexec: bool) -> nix::Result<()> {
    let flags = if cloexec { libc::CLOSE_RANGE_CLOEXEC as libc::c_int } else { 0 };
    // SAFETY: plain syscall on integers.
    Errno::result(unsafe { libc::close_range(first, u32::MAX, flags) }).map(drop)
}

/// A pidfd for `pid`: lets us wait for a process that isn't our child, race-free.
pub fn pidfd_open(pid: libc::pid_t) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the kernel hands us a new fd we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends a signal through a pidfd, so it can't reach a recycled pid.
pub fn pidfd_send_signal(pidfd: impl AsFd, sig: i32) -> nix::Result<()> {
    // SAFETY: plain syscall with a null siginfo.
    let r = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_fd().as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    Errno::result(r).map(drop)
}

/// Waits until the process behind `pidfd` has exited, up to `timeout_ms` (-1: forever).
/// Returns false on timeout.
pub fn pidfd_wait_exit(pidfd: impl AsFd, timeout_ms: i32) -> nix::Result<bool> {
    let mut pfd = libc::pollfd { fd: pidfd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        match Errno::result(r) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) => return Ok(n > 0),
        }
    }
}

/// How a pid looks in /proc/PID/stat: its state letter and its start time in clock ticks.
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Reads /proc/PID/stat; None when the pid does not exist.
pub fn proc_stat(pid: libc::pid_t) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // After the state, start time is field 22 of the whole line: the 19th here.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Makes a CString from a string that came from config.json, naming the field on a NUL.
pub fn cstring(field: &str, s: &str) -> crate::Result<CString> {
    CString::new(s).map_err(|_| crate::Error::field(field, "contains a NUL byte"))
}

/// The namespace type (CLONE_NEW*) of an open namespace file, or an error when the file
/// isn't a namespace at all.
pub fn namespace_type(fd: impl AsFd) -> nix::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::NS_GET_NSTYPE as _) };
    Errno::result(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_own_start_time_and_state() {
        let me = proc_stat(std::process::id() as i32).expect("own stat");
        assert!(me.start_time > 0);
        assert!(matches!(me.state, 'R' | 'S'));
        assert!(proc_stat(i32::MAX).is_none());
    }

    #[test]
    fn open_in_root_keeps_dotdot_and_symlinks_inside() {
        let dir = std::env::temp_dir().join(format!("strata-sys-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inside")).unwrap();
        std::os::unix::fs::symlink("/", dir.join("escape")).unwrap();
        let root = nix::fcntl::open(&dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        // "/escape/inside" must resolve to DIR/inside, not to the host's /inside.
        let fd = open_in_root(&root, Path::new("/escape/../../inside"), OFlag::O_PATH).unwrap();
        let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(target, dir.join("inside"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
