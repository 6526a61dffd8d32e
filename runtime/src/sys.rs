//! Thin wrappers over the system calls that libc and nix don't wrap the way we need:
//! a fork-style clone3 (or clone), openat2 confined to a root, close_range, pidfds, and the
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
/// can be born into new namespaces. Falls back to clone(2) where clone3 answers ENOSYS
/// or EPERM (seccomp profiles that predate clone3, Docker's among them, so strata can
/// run inside such a container).
///
/// # Safety
///
/// The child is a copy of the calling thread only. Either the caller is single-threaded
/// (strata's runtime always is when it clones: the child then owns every lock and the
/// allocator), or the child makes only async-signal-safe calls (no allocation, no lock)
/// until it execs or exits.
pub unsafe fn clone_fork(flags: u64) -> nix::Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    unsafe { clone_fork_into_cgroup(flags, None) }.map(|(forked, _)| forked)
}

/// [`clone_fork`], with the child born directly into the cgroup v2 directory
/// `cgroup_fd` (CLONE_INTO_CGROUP). The flag says whether it was: not after the fallback
/// to clone(2), which can't; the caller then joins the child by writing cgroup.procs.
///
/// # Safety
///
/// As [`clone_fork`].
pub unsafe fn clone_fork_into_cgroup(flags: u64, cgroup_fd: Option<RawFd>) -> nix::Result<(Forked, bool)> {
    match clone3(flags, cgroup_fd) {
        Err(Errno::ENOSYS) | Err(Errno::EPERM) => clone(flags).map(|forked| (forked, false)),
        r => r.map(|forked| (forked, cgroup_fd.is_some())),
    }
}

fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> nix::Result<Forked> {
    // SAFETY: clone_args is plain integers; all zero is its documented default.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a zero stack behaves like fork (the callers' contract covers
    // the child); the struct outlives the call.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut libc::clone_args, std::mem::size_of::<libc::clone_args>())
    };
    forked(ret)
}

fn clone(flags: u64) -> nix::Result<Forked> {
    let null = 0usize;
    // SAFETY: clone with a null stack behaves like fork (the callers' contract covers the
    // child); no tid pointers or TLS are passed.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, null, null, null, null) };
    forked(ret)
}

fn forked(ret: libc::c_long) -> nix::Result<Forked> {
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// How often a confined lookup is retried after the kernel's EAGAIN (below). Each retry
/// needs another rename or mount to land during a walk of a few microseconds, so this
/// bound is reached only under a deliberate flood, which then fails instead of spinning.
const OPEN_IN_ROOT_TRIES: usize = 1000;

/// Opens `path` inside `root` as if `root` were `/`: `..`, absolute names and symlinks
/// all stay inside (RESOLVE_IN_ROOT), and /proc magic links are refused.
///
/// The kernel answers a `..` with EAGAIN when any rename or mount anywhere on the machine
/// raced with the walk (it can't prove the `..` stayed inside); openat2(2) says to retry,
/// and on a busy host that race is routine, so we do.
pub fn open_in_root(root: impl AsFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(root.as_fd(), rel, how) {
            Err(Errno::EAGAIN | Errno::EINTR) if tries < OPEN_IN_ROOT_TRIES => tries += 1,
            result => return result,
        }
    }
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
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_fd().as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
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

    /// Under a filter that answers clone3 with ENOSYS (Docker's older profiles), the
    /// clone still happens, through clone(2), and reports the cgroup as not joined.
    #[test]
    fn clone_falls_back_to_clone_when_clone3_is_filtered() {
        let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
        let jeq = libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_clone3 as u32,
        };
        let prog = [
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0), // seccomp_data.nr
            jeq,
            stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
        // SAFETY: the test harness is multi-threaded: the child makes only raw system
        // calls (prctl, seccomp, clone, waitpid, _exit) and allocates nothing.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0 {
                    libc::_exit(3);
                }
                let code = match clone_fork_into_cgroup(0, Some(0)) {
                    Ok((Forked::Child, _)) => libc::_exit(7),
                    Ok((Forked::Parent(pid), in_cgroup)) => {
                        let mut status = 0;
                        libc::waitpid(pid, &mut status, 0);
                        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7 && !in_cgroup {
                            0
                        } else {
                            1
                        }
                    }
                    Err(_) => 2,
                };
                libc::_exit(code)
            },
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
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

    /// The kernel refuses a `..` under RESOLVE_IN_ROOT with EAGAIN whenever any rename or
    /// mount anywhere on the machine raced with the walk; on a busy host (CI runs tests in
    /// parallel) that made `create` fail with "Try again". Renames in a loop provoke it.
    #[test]
    fn open_in_root_survives_renames_elsewhere_on_the_machine() {
        let dir = std::env::temp_dir().join(format!("strata-sys-race-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("root/a")).unwrap();
        std::fs::create_dir_all(dir.join("root/b")).unwrap();
        std::fs::create_dir_all(dir.join("churn")).unwrap();
        let root = nix::fcntl::open(&dir.join("root"), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (stop, dir) = (stop.clone(), dir.join("churn"));
            std::thread::spawn(move || {
                std::fs::write(dir.join("x"), b"").unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(dir.join("x"), dir.join("y")).unwrap();
                    std::fs::rename(dir.join("y"), dir.join("x")).unwrap();
                }
            })
        };
        let deep = Path::new("a/../a/../a/../a/../a/../a/../a/../a/../b");
        let failures = (0..20_000).filter(|_| open_in_root(&root, deep, OFlag::O_PATH).is_err()).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(failures, 0, "open_in_root failed {failures} times of 20000 while renames ran");
    }
}
