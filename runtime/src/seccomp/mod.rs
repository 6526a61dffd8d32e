//! Seccomp from `linux.seccomp`: [`profile`] checks the profile and turns it into
//! rules, [`bpf`] emits the classic BPF program, [`notify`] hands a NOTIFY listener to
//! the profile's agent. [`compile`] runs in the runtime before the clone, so a bad
//! profile fails before anything on the system changes; the child only calls
//! [`Filter::install`], the one syscall (plus the listener hand-off) left to do.
//!
//! Where it is installed, as runc does: with noNewPrivileges, late (after the
//! process's own setup, before the exec fifo and the startContainer hooks, which run
//! under it); without it the kernel demands CAP_SYS_ADMIN, so it goes in before the
//! capabilities are dropped ([`Filter::install_early`] says which). Either way the
//! process makes only calls runc's init also makes once the filter is in (see
//! `process::finish`).

mod bpf;
pub mod notify;
mod profile;
mod tables;

use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag, Spec};

use crate::error::{Error, Result};
pub use profile::{convert, Action, Rules};

/// A compiled filter, ready to install in a child of the runtime.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    /// Set when a rule notifies: where the listener fd goes.
    pub notify: Option<notify::Listener>,
    /// False when the process keeps noNewPrivileges off.
    late: bool,
    /// The native filter lets execveat through whatever its arguments.
    execveat_allowed: bool,
}

/// Compiles the spec's `linux.seccomp`, if any, for a process whose noNewPrivileges is `nnp`.
pub fn compile(spec: &Spec, nnp: bool) -> Result<Option<Filter>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => compile_profile(s, nnp).map(Some),
        None => Ok(None),
    }
}

pub fn compile_profile(s: &LinuxSeccomp, nnp: bool) -> Result<Filter> {
    let rules = profile::convert(s)?;
    let program = bpf::emit(&rules)?;
    let mut flags: libc::c_ulong = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only meaningful with a listener; added below when there is one.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    let notify = if rules.has_notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            // TSYNC and NEW_LISTENER together need TSYNC_ESRCH (the fd can't name a thread).
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
        if s.flags().iter().flatten().any(|f| *f == LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv) {
            flags |= libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
        let path = s.listener_path().clone().expect("checked by convert");
        Some(notify::Listener::new(path, s.listener_metadata().clone().unwrap_or_default())?)
    } else {
        None
    };
    let execveat_allowed = always_passes(&rules, libc::SYS_execveat as u32);
    Ok(Filter { program, flags, notify, late: nnp, execveat_allowed })
}

/// Whether the native filter lets syscall `nr` through for any arguments: conditional
/// rules are tried first, then the first unconditional one, then the default.
fn always_passes(rules: &Rules, nr: u32) -> bool {
    let passes = |a: Action| matches!(a, Action::Allow | Action::Log);
    match rules.arches.get(&profile::NATIVE).and_then(|by_nr| by_nr.get(&nr)) {
        None => passes(rules.default),
        Some(list) => {
            list.iter().all(|r| passes(r.action)) && (list.iter().any(|r| r.conds.is_empty()) || passes(rules.default))
        }
    }
}

impl Filter {
    /// True when the filter must go in before capabilities are dropped.
    pub fn install_early(&self) -> bool {
        !self.late
    }

    /// The process may call execveat under this filter (any arguments), so the exec
    /// trampoline needs no /proc.
    pub fn allows_execveat(&self) -> bool {
        self.execveat_allowed
    }

    /// The number of BPF instructions (for benchmarks and tests).
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Installs the filter on the calling thread; with a NOTIFY rule, sends the
    /// listener to the agent (with the state the runtime published before).
    pub fn install(&self) -> Result<()> {
        let prog = libc::sock_fprog { len: self.program.len() as u16, filter: self.program.as_ptr() as *mut _ };
        let mut flags = self.flags;
        loop {
            // SAFETY: the program outlives the call; the kernel copies it.
            let r = unsafe {
                libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &prog as *const libc::sock_fprog)
            };
            match nix::errno::Errno::result(r) {
                Ok(fd) => {
                    if let Some(n) = &self.notify {
                        // SAFETY: with NEW_LISTENER the kernel returns a new fd we own.
                        let listener = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                        n.send(listener)?;
                    }
                    return Ok(());
                }
                // Kernels before 5.19 lack WAIT_KILLABLE_RECV: install without it.
                Err(nix::errno::Errno::EINVAL) if flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 => {
                    flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
                }
                Err(nix::errno::Errno::EACCES) => {
                    return Err(Error::field(
                        "linux.seccomp",
                        "installing the filter needs noNewPrivileges or CAP_SYS_ADMIN",
                    ))
                }
                Err(e) => return Err(Error::field("linux.seccomp", format!("install filter: {}", e.desc()))),
            }
        }
    }
}

/// The `linux.seccomp` part of `strata features` (runc's shape). Foreign
/// architectures are accepted in profiles and ignored, so only the ones filtered are
/// listed; WAIT_KILLABLE_RECV is used whenever the kernel has it.
pub fn features() -> serde_json::Value {
    let flags = [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ];
    serde_json::json!({
        "enabled": true,
        "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "knownFlags": flags,
        "supportedFlags": flags,
    })
}

#[cfg(test)]
mod tests;
