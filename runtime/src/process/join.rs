//! `exec`'s process: a fork of strata that joins a running container and becomes the
//! requested process, without re-executing the runtime (no /proc/self/exe, nothing
//! for a container to overwrite: the CVE-2019-5736 class).
//!
//! ```text
//! strata exec ──fork──> joiner: non-dumpable, setns user→…→mnt
//!                         └─fork──> process: in the pid/time namespaces, prepare()
//!                                   (rlimits, caps, user, cwd, nnp), Ready, wait Go,
//!                                   seccomp, execve
//! ```
//! setns(CLONE_NEWPID) and setns(CLONE_NEWTIME) only apply to children, hence the
//! second fork. The joiner reports the process's pid and exits. Between Ready and Go
//! the runtime moves the process into the container's cgroup from the host side: no
//! container code has run yet, and a paused (frozen) container can't stall the
//! setup, only the exec itself. After Go the process reports only failures (its end
//! of the channel closes on execve: EOF means exec'd).

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Process, Spec};

use super::plan::ProcessPlan;
use super::real_sys::RealSys;
use super::sync::{self, Channel, Message};
use crate::error::{Context, Error, Result};
use crate::rootfs::BindSources;
use crate::seccomp::Filter;
use crate::sys::{clone_fork, Forked};

/// A namespace of the container's init to enter (only those that differ from ours).
pub struct NsJoin {
    pub flag: CloneFlags,
    pub name: &'static str,
    pub fd: OwnedFd,
}

pub struct JoinOptions<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub process: &'a Process,
    /// In setns order: user first, mnt last.
    pub namespaces: Vec<NsJoin>,
    /// cgroup.procs files to write our pid to (one per hierarchy).
    pub cgroup_procs: Vec<PathBuf>,
    pub seccomp: Option<&'a Filter>,
    pub preserve_fds: u32,
    /// Connected --console-socket when the process wants a terminal.
    pub console_socket: Option<OwnedFd>,
    /// False for a frozen container: return once the process is in the cgroup.
    pub wait_for_exec: bool,
}

/// Starts the process; returns its pid (in our pid namespace) once it has exec'd.
/// The joiner is reaped here; the process is a child of the caller only if the
/// caller is a child subreaper (the foreground `exec` is).
pub fn spawn_exec(opts: &JoinOptions) -> Result<i32> {
    // The process's limits, identity and program, decided before the fork.
    let plan = super::plan::process(opts.spec, opts.process, crate::rootless::Caller::current())?;
    let (mut parent, mut child) = sync::pair()?;
    let first_free = 3 + opts.preserve_fds as i32;
    parent.move_above(first_free)?;
    child.move_above(first_free)?;
    // SAFETY: the runtime is single-threaded; the child owns what it inherits.
    let joiner = match unsafe { clone_fork(0) }.ctx(|| "fork to join the container")? {
        Forked::Child => {
            drop(parent);
            let err = match join(opts, &plan, &child) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child.send(&Message::Failed(err.to_string()));
            // SAFETY: leave without running the runtime's destructors.
            unsafe { libc::_exit(1) }
        }
        Forked::Parent(pid) => pid,
    };
    drop(child);
    // The joiner's Pid and the process's Ready race each other: take both, any order.
    let (mut pid, mut ready) = (None, false);
    let outcome = loop {
        if pid.is_some() && ready {
            break Ok(());
        }
        match parent.recv() {
            Ok(Some(Message::Pid(p))) => {
                pid = Some(p);
                // The process reads this before installing a NOTIFY filter.
                if let Some(n) = opts.seccomp.and_then(|f| f.notify.as_ref()) {
                    if let Err(e) = n.publish(p, agent_state(opts, p)) {
                        break Err(e);
                    }
                }
            }
            Ok(Some(Message::Ready)) => ready = true,
            Ok(Some(Message::Failed(m))) => break Err(Error::Init(m)),
            Ok(_) => break Err(Error::Init("exec: the process went away while joining the container".into())),
            Err(e) => break Err(e),
        }
    };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(joiner), None);
    if let Err(e) = outcome {
        if let Some(p) = pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
        }
        return Err(e);
    }
    let pid = pid.expect("received");
    for procs in &opts.cgroup_procs {
        if let Err(e) = std::fs::write(procs, pid.to_string()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            return Err(Error::os(format!("join cgroup: write {}", procs.display()), e));
        }
    }
    parent.send(&Message::Go)?;
    if !opts.wait_for_exec {
        return Ok(pid);
    }
    match parent.recv()? {
        None => Ok(pid),
        Some(Message::Failed(m)) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Err(Error::Init(m))
        }
        Some(m) => Err(Error::Init(format!("exec: unexpected message {m:?}"))),
    }
}

/// What a seccomp agent receives with a NOTIFY listener of an exec'd process.
fn agent_state(opts: &JoinOptions, pid: i32) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": opts.spec.version(),
        "id": opts.id,
        "status": "running",
        "pid": pid,
        "annotations": opts.spec.annotations().clone().unwrap_or_default(),
    })
}

/// The joiner: namespaces, then the fork into the pid namespace.
fn join(opts: &JoinOptions, plan: &ProcessPlan, ch: &Channel) -> Result<Infallible> {
    // Nothing in the container may open our /proc entries (exe is the host's strata).
    // SAFETY: plain prctl calls with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    for ns in &opts.namespaces {
        nix::sched::setns(ns.fd.as_fd(), ns.flag).ctx(|| format!("join the container's {} namespace", ns.name))?;
    }
    // SAFETY: the joiner is a single-threaded clone of the single-threaded runtime.
    match unsafe { clone_fork(0) }.ctx(|| "fork into the container's pid namespace")? {
        Forked::Parent(pid) => {
            let _ = ch.send(&Message::Pid(pid));
            // SAFETY: the joiner is done.
            unsafe { libc::_exit(0) }
        }
        Forked::Child => become_process(opts, plan, ch),
    }
}

/// The process: identity, limits, seccomp, execve.
fn become_process(opts: &JoinOptions, plan: &ProcessPlan, ch: &Channel) -> Result<Infallible> {
    // SAFETY: plain prctl calls with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, 0);
    }
    super::reset_signals();
    if let Some(socket) = &opts.console_socket {
        crate::console::setup(socket, plan.console_size, false)?;
    }
    let no_sources = BindSources::default();
    super::exec::prepare_unfiltered(plan, &mut RealSys::new(&no_sources))?;
    let tramp = super::finish::before_filter(opts.preserve_fds)?;
    super::finish::install_early(opts.seccomp)?;
    let prepared = super::exec::prepare(plan)?;
    ch.send(&Message::Ready)?;
    match ch.recv()? {
        Some(Message::Go) => {}
        _ => return Err(Error::Init("exec: the runtime went away before the process could start".into())),
    }
    super::finish::install_late(opts.seccomp)?;
    super::finish::execve(prepared, tramp, opts.seccomp)
}
