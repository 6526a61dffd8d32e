//! The init's last steps: take on the process's identity and limits, resolve the
//! program, block on the exec fifo until `start`, then exec with nothing but stdio
//! (and --preserve-fds) open.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::plan::ProcessPlan;
use super::syscalls::Sys;
use crate::capabilities;
use crate::error::{Context, Error, Result};
use crate::user;
use nix::fcntl::{AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{stat, Mode, SFlag};
use nix::unistd::{faccessat, AccessFlags};

/// The exec fifo's mode: writable by any container user (the init may no longer be
/// root when it opens it), readable only by the runtime.
pub const EXEC_FIFO_MODE: u32 = 0o622;

/// The program found, and the argv and envp the plan made.
pub struct Prepared<'a> {
    path: CString,
    argv: &'a [CString],
    envp: &'a [CString],
}

/// The process attributes that need no identity change: applied before the seccomp
/// filter goes in, so a profile never has to allow the calls they make.
pub fn prepare_unfiltered(plan: &ProcessPlan, sys: &mut impl Sys) -> Result<()> {
    super::attrs::apply(&plan.attrs, sys)?;
    user::apply_umask(&plan.user);
    Ok(())
}

/// Applies the identity (capabilities, user, cwd, noNewPrivileges) and resolves the
/// program so a missing one fails `create`, not `start`. Runs under an early seccomp
/// filter: it makes only the calls runc's init makes at the same point (prctl,
/// setgroups/setuid, chdir, getcwd, capget/capset, newfstatat, faccessat2).
pub fn prepare(plan: &ProcessPlan) -> Result<Prepared<'_>> {
    if let Some(c) = &plan.caps {
        capabilities::drop_bounding(c)?;
    }
    let cwd = &plan.cwd;
    let cwd_err = |e: nix::errno::Errno| Error::field("process.cwd", format!("{}: {}", cwd.display(), e.desc()));
    // As runc: enter the cwd while still privileged (the user may not be allowed to), and
    // if that was refused, again as the user (a directory only the user may enter).
    let entered = match nix::unistd::chdir(cwd) {
        Ok(()) => true,
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => false,
        Err(e) => return Err(cwd_err(e)),
    };
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1) };
    user::switch_to(&plan.user, plan.keep_groups)?;
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0) };

    if !entered {
        nix::unistd::chdir(cwd).map_err(cwd_err)?;
    }
    // A cwd reached through a leaked fd would read "(unreachable)" (CVE-2024-21626).
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        // A seccomp profile that denies getcwd fails here, as it fails runc's same check.
        Err(e) if e != nix::errno::Errno::ENOENT => {
            return Err(Error::field("process.cwd", format!("verify the working directory: {}", e.desc())))
        }
        _ => return Err(Error::field("process.cwd", format!("{} is outside the container", cwd.display()))),
    }

    if let Some(c) = &plan.caps {
        capabilities::apply(c)?;
    }
    if plan.no_new_privileges {
        // SAFETY: plain prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        nix::errno::Errno::result(r).map_err(|e| Error::field("process.noNewPrivileges", e.desc()))?;
    }

    let path = resolve_program(&plan.arg0, &plan.search_path)?;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::field("process.args[0]", "contains a NUL byte"))?;
    Ok(Prepared { path, argv: &plan.argv, envp: &plan.envp })
}

/// Finds args[0] the way execvp would, with the container's PATH, inside the container.
fn resolve_program(arg0: &str, path_var: &str) -> Result<PathBuf> {
    // stat (newfstatat) and faccessat2, not statx and access: the calls Go's LookPath
    // makes in runc's init, so a profile that suits runc suits us.
    let is_file =
        |p: &Path| stat(p).is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG);
    let executable = |p: &Path| is_file(p) && faccessat(AT_FDCWD, p, AccessFlags::X_OK, AtFlags::AT_EACCESS).is_ok();
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match stat(&p) {
            Err(_) => Err(Error::field("process.args[0]", format!("{arg0:?}: no such file in the container"))),
            Ok(_) if !executable(&p) => {
                Err(Error::field("process.args[0]", format!("{arg0:?}: not an executable file")))
            }
            Ok(_) => Ok(p),
        };
    }
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| executable(p))
        .ok_or_else(|| Error::field("process.args[0]", format!("{arg0:?}: executable file not found in $PATH")))
}

/// Blocks until `start` opens the fifo, runs `before_go`, then tells `start` we are going.
pub fn wait_for_start(host_proc: &OwnedFd, fifo: &OwnedFd, before_go: impl FnOnce() -> Result<()>) -> Result<()> {
    let path = format!("self/fd/{}", fifo.as_raw_fd());
    let w = nix::fcntl::openat(host_proc.as_fd(), path.as_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open exec fifo")?;
    // `start` is now waiting on the other end: its byte comes only if this succeeds,
    // so a failure (a startContainer hook) reaches it as end-of-file.
    before_go()?;
    nix::unistd::write(&w, b"0").ctx(|| "write exec fifo")?;
    Ok(())
}

/// The runtime's side of the fifo: opened without blocking so a dead init can't hang
/// `start`.
pub fn open_exec_fifo_reader(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))
}

/// Marks every fd but stdio and the preserved ones close-on-exec. Done before the
/// seccomp filter goes in (close_range is not in every profile); every fd the init
/// opens afterwards is close-on-exec from the start, so the exec still drops them all.
pub fn close_fds(preserve_fds: u32) -> Result<()> {
    for fd in 3..3 + preserve_fds as i32 {
        // SAFETY: fcntl on an fd number only reads or changes its flags; a number that is
        // not open just fails with EBADF.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        // A preserved fd must not be close-on-exec.
        let _ = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
    }
    crate::sys::close_range_from(3 + preserve_fds, true).ctx(|| "close_range")
}

impl Prepared<'_> {
    /// Program, argv and envp, for an exec through the trampoline.
    pub(super) fn parts(&self) -> (&std::ffi::CStr, &[CString], &[CString]) {
        (&self.path, self.argv, self.envp)
    }
}

/// The execve itself (after [`close_fds`]). The error reads as runc's:
/// `exec /bin/x: exec format error`.
pub fn execve(p: Prepared) -> Result<Infallible> {
    let err = nix::unistd::execve(&p.path, p.argv, p.envp).unwrap_err();
    Err(Error::Init(format!("exec {}: {}", p.path.to_string_lossy(), err.desc().to_lowercase())))
}
