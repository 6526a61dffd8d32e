//! The init's setup sequence as an interpreter of the [`InitPlan`]: each function is
//! one stretch of the sequence between two points where the init talks to the runtime
//! (see [`super::init`]), and makes its system calls only through [`Sys`].

use nix::sched::CloneFlags;

use super::plan::InitPlan;
use super::syscalls::{ProcWriteError, Sys};
use crate::error::{Context, Error, Result};
use crate::namespaces::{spec_name, NamespacePlan};
use crate::rootfs;

const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// Right after the clone: join the namespaces given by path (user first), then unshare
/// the new ones the clone could not make (all but cgroup and time, which wait for the
/// cgroup placement).
pub fn join_namespaces(ns: &NamespacePlan, sys: &mut impl Sys) -> Result<()> {
    for j in &ns.joins_in_init {
        sys.setns(j).ctx(|| format!("join {} namespace", spec_name(j.typ)))?;
    }
    let now = ns.unshare_flags - CloneFlags::CLONE_NEWCGROUP - CLONE_NEWTIME;
    if !now.is_empty() {
        sys.unshare(now).ctx(|| "unshare namespaces")?;
    }
    Ok(())
}

/// Once mapped and placed in the cgroup: identity in the user namespace, the cgroup
/// and time namespaces, names, keyring, sysctls, then the rootfs (all but the root
/// switch). The prestart/createRuntime hooks come next.
pub fn after_go(plan: &InitPlan, sys: &mut impl Sys) -> Result<()> {
    if plan.become_root {
        sys.become_root()?;
    }
    if plan.unshare_cgroup {
        sys.unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace")?;
    }
    if let Some(offsets) = &plan.time_offsets {
        // The exec moves us into it.
        sys.unshare(CLONE_NEWTIME).ctx(|| "unshare time namespace")?;
        if !offsets.is_empty() {
            sys.write_proc("self/timens_offsets", offsets.as_bytes())
                .map_err(|e| Error::field("linux.timeOffsets", std::io::Error::from(errno(e)).to_string()))?;
        }
    }
    set_names(plan, sys)?;
    if plan.join_keyring {
        sys.join_session_keyring()?;
    }
    // Through the init's /proc: the values land in the namespaces of the writer.
    for s in &plan.sysctls {
        sys.write_proc(&s.path, s.value.as_bytes()).map_err(|e| {
            let msg = match e {
                ProcWriteError::Open(e) => e.desc().to_string(),
                ProcWriteError::Write(e) => format!("{:?}: {}", s.value, std::io::Error::from(e)),
            };
            Error::field(format!("linux.sysctl.{}", s.key), msg)
        })?;
    }
    rootfs::prepare(&plan.rootfs, sys)
}

fn set_names(plan: &InitPlan, sys: &mut impl Sys) -> Result<()> {
    if let Some(h) = &plan.hostname {
        sys.sethostname(h).map_err(|e| Error::field("hostname", format!("{h:?}: {}", e.desc())))?;
    }
    if let Some(d) = &plan.domainname {
        sys.setdomainname(d).map_err(|e| Error::field("domainname", format!("{d:?}: {}", e.desc())))?;
    }
    Ok(())
}

/// After the createContainer hooks: the root switch and what follows it.
pub fn enter_root(plan: &InitPlan, sys: &mut impl Sys) -> Result<()> {
    rootfs::enter(&plan.rootfs, sys)
}

fn errno(e: ProcWriteError) -> nix::errno::Errno {
    match e {
        ProcWriteError::Open(e) | ProcWriteError::Write(e) => e,
    }
}
