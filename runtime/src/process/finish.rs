//! The last step of every container process (init and exec): close what must not
//! pass, install the seccomp filter if it goes in late, execve through the
//! [`super::trampoline`] (so /proc/self/exe is never the host binary while the
//! kernel resolves the program's interpreter). With noNewPrivileges the filter is
//! installed here, after the runtime's last own syscalls, so a profile only has to
//! allow execveat/execve; without it, the filter is already in (see
//! [`crate::seccomp`]).

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use nix::errno::Errno;

use super::exec::{self, Prepared};
use super::trampoline;
use crate::error::{Error, Result};
use crate::seccomp::Filter;

pub fn exec_with_seccomp(p: Prepared, preserve_fds: u32, seccomp: Option<&Filter>) -> Result<Infallible> {
    // Made before the filter: a profile need not allow memfd_create.
    let tramp = trampoline::memfd().ok();
    exec::close_fds(preserve_fds)?;
    if let Some(f) = seccomp.filter(|f| !f.install_early()) {
        f.install()?;
    }
    execve(p, tramp)
}

fn execve(p: Prepared, tramp: Option<OwnedFd>) -> Result<Infallible> {
    if let Some(t) = &tramp {
        let (path, argv, envp) = p.parts();
        match trampoline::execve(t, path, argv, envp) {
            // A kernel or filter without execveat: the plain execve below.
            Errno::ENOSYS | Errno::EPERM | Errno::EACCES => {}
            e => return Err(Error::os(format!("exec {path:?} (through the exec trampoline)"), e)),
        }
    }
    exec::execve(p)
}

/// The early install point: before capabilities and the user are changed.
pub fn install_early(seccomp: Option<&Filter>) -> Result<()> {
    match seccomp {
        Some(f) if f.install_early() => f.install(),
        _ => Ok(()),
    }
}
