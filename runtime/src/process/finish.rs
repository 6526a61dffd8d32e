//! The last steps of every container process (init and exec), in runc's order around
//! the seccomp filter: [`before_filter`] does what no profile should have to allow
//! (the trampoline memfd, close-on-exec for every fd); the filter goes in early
//! ([`install_early`], before capabilities are dropped: without noNewPrivileges the
//! kernel demands CAP_SYS_ADMIN) or late ([`install_late`], before the exec fifo and
//! the startContainer hooks, as runc); [`execve`] is the last call, through the
//! [`super::trampoline`] (so /proc/self/exe is never the host binary while the kernel
//! resolves the program's interpreter).

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use super::exec::{self, Prepared};
use super::trampoline;
use crate::error::Result;
use crate::seccomp::Filter;

/// Creates the exec trampoline and marks every fd but stdio and the preserved ones
/// close-on-exec. Without the trampoline the exec still works, unprotected: warned.
pub fn before_filter(preserve_fds: u32) -> Result<Option<OwnedFd>> {
    let tramp = match trampoline::memfd() {
        Ok(fd) => Some(fd),
        Err(e) => {
            crate::logging::warn(&format!(
                "exec trampoline unavailable (memfd: {}): the container program is exec'd directly",
                e.desc()
            ));
            None
        }
    };
    exec::close_fds(preserve_fds)?;
    Ok(tramp)
}

/// The early install point: before capabilities and the user are changed.
pub fn install_early(seccomp: Option<&Filter>) -> Result<()> {
    match seccomp {
        Some(f) if f.install_early() => f.install(),
        _ => Ok(()),
    }
}

/// The late install point (noNewPrivileges): after the process's own setup, before
/// the exec fifo, so startContainer hooks run under the filter as they do with runc.
pub fn install_late(seccomp: Option<&Filter>) -> Result<()> {
    match seccomp {
        Some(f) if !f.install_early() => f.install(),
        _ => Ok(()),
    }
}

/// Execs the program through the trampoline, or directly when that fails (warned).
/// The trampoline is exec'd with execveat where the seccomp filter (if any) surely lets
/// it through, else with execve of /proc/self/fd/N: a profile may deny or kill
/// execveat where runc's plain execve passes.
pub fn execve(p: Prepared, tramp: Option<OwnedFd>, seccomp: Option<&Filter>) -> Result<Infallible> {
    if let Some(t) = &tramp {
        let (path, argv, envp) = p.parts();
        // Each returns only on failure; /proc is the second way in.
        if seccomp.is_none_or(|f| f.allows_execveat()) {
            trampoline::execve(t, path, argv, envp);
        }
        let e = trampoline::execve_via_proc(t, path, argv, envp);
        crate::logging::warn(&format!(
            "exec trampoline failed ({}): the container program is exec'd directly",
            e.desc()
        ));
    }
    exec::execve(p)
}
