//! The last step of every container process (init and exec): close what must not
//! pass, install the seccomp filter if it goes in late, execve. With noNewPrivileges
//! the filter is installed here, after the runtime's last own syscalls, so a profile
//! never has to allow what strata needs (close_range, the fifo, the listener hand-off
//! excepted); without it, the filter is already in (see [`crate::seccomp`]).

use std::convert::Infallible;

use super::exec::{self, Prepared};
use crate::error::Result;
use crate::seccomp::Filter;

pub fn exec_with_seccomp(p: Prepared, preserve_fds: u32, seccomp: Option<&Filter>) -> Result<Infallible> {
    match seccomp {
        Some(f) if !f.install_early() => {
            exec::close_fds(preserve_fds)?;
            f.install()?;
            exec::execve(p)
        }
        _ => exec::exec(p, preserve_fds),
    }
}

/// The early install point: before capabilities and the user are changed.
pub fn install_early(seccomp: Option<&Filter>) -> Result<()> {
    match seccomp {
        Some(f) if f.install_early() => f.install(),
        _ => Ok(()),
    }
}
