//! `delete`: remove a stopped container (a created one too, as runc does; a running one
//! only with --force, killing it first), its cgroup and its state directory.

use super::kill::kill_all;
use super::{checkpoint, signal_init, ContainerState, Locked, Status, Store};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::hooks;
use crate::sys::{pidfd_open, pidfd_send_signal, pidfd_wait_exit, proc_stat};

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let locked = store.open(id)?;
    checkpoint("delete:locked");
    let state = match locked.load() {
        Ok(s) => s,
        // A create that died half-way, or a state.json lost or corrupted: clean up from
        // what the directory still tells.
        Err(Error::NotFound(_) | Error::Config { .. }) if force => return remove_remains(locked),
        Err(e) => return Err(e),
    };
    let status = state.status(&locked.dir);
    let shared = shares_cgroup(&state, status);
    match status {
        // The init is gone, but without a pid namespace its children may not be.
        Status::Stopped if !state.cgroup.pids().unwrap_or_default().is_empty() => stop(&state)?,
        Status::Stopped => {}
        Status::Created => stop(&state)?,
        Status::Running | Status::Paused | Status::Creating if force => stop(&state)?,
        _ => return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "delete (use --force)" }),
    }
    checkpoint("delete:stopped");
    if shared {
        // The cgroup is a pod's, holding other containers too: theirs as well as ours.
        crate::logging::warn(&format!("container {id}: its cgroup holds other containers' processes; left in place"));
    } else {
        state.cgroup.remove()?;
    }
    checkpoint("delete:cgroup-removed");
    crate::intelrdt::remove(&state.config, id);
    locked.remove()?;
    let spec = &state.config;
    if !hooks::Kind::Poststop.of(spec).is_empty() {
        let json = hooks::state_json(spec, id, "stopped", 0, &state.bundle);
        hooks::run_warn(hooks::Kind::Poststop, spec, &json);
    }
    Ok(())
}

/// SIGKILLs the container and waits until its init is gone.
fn stop(state: &ContainerState) -> Result<()> {
    let pidfd = pidfd_open(state.pid).ok();
    let owned = state.cgroup.ensure_container_owned("kill").is_ok();
    // With a pid namespace of its own, the init's death takes every process of the
    // container with it, and the cgroup may hold other containers' processes (a pod's
    // cgroupsPath): signal the init alone, as runc does. Without one, the rest would
    // run on: kill the whole cgroup when it's the container's own.
    if owned && !has_own_pid_namespace(state) {
        kill_all(state, libc::SIGKILL)?;
    }
    signal_init(state, libc::SIGKILL)?;
    if owned {
        thaw(state);
    }
    if let Some(fd) = pidfd {
        let _ = pidfd_wait_exit(&fd, 10_000);
    }
    Ok(())
}

/// True when the config gives the container a new pid namespace (not one joined by path).
fn has_own_pid_namespace(state: &ContainerState) -> bool {
    let namespaces = state.config.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    namespaces.is_some_and(|ns| {
        ns.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none())
    })
}

/// True when the container's cgroup also holds processes of other containers (a
/// cgroupsPath shared by a pod's containers, each with its own pid namespace): those
/// are in another pid namespace than the init's, or any at all once the init's
/// namespace is gone. Such a cgroup is left in place, where runc logs its failed removal.
fn shares_cgroup(state: &ContainerState, status: Status) -> bool {
    if !has_own_pid_namespace(state) {
        return false;
    }
    let pids = state.cgroup.pids().unwrap_or_default();
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let ours = if matches!(status, Status::Stopped) { None } else { ns(state.pid) };
    match ours {
        Some(ours) => pids.iter().any(|&p| ns(p).is_some_and(|n| n != ours)),
        None => !pids.is_empty(),
    }
}

/// `delete -f` without a usable state.json: kills the init the footprint names (if its
/// start time still matches) and everything in the cgroup it names, removes the cgroup
/// directories create made, then the state directory. runc leaves all of it running.
fn remove_remains(locked: Locked) -> Result<()> {
    let footprint = locked.footprint().unwrap_or_default();
    let init = footprint.pid.zip(footprint.pid_start_time).and_then(|(pid, start)| {
        let fd = pidfd_open(pid).ok()?;
        // The pidfd pins the pid: a matching start time means it is still our init.
        proc_stat(pid).is_some_and(|s| s.start_time == start).then_some(fd)
    });
    if let Some(fd) = &init {
        let _ = pidfd_send_signal(fd, libc::SIGKILL);
    }
    if let Some(cgroup) = &footprint.cgroup {
        kill_cgroup(cgroup);
    }
    if let Some(fd) = &init {
        let _ = pidfd_wait_exit(fd, 10_000);
    }
    if let Some(cgroup) = &footprint.cgroup {
        cgroup.remove()?;
    }
    locked.remove()
}

/// SIGKILLs every process in a container-owned cgroup until it is empty (a task may be
/// forking meanwhile), for at most a few seconds.
fn kill_cgroup(cgroup: &Cgroup) {
    if cgroup.ensure_container_owned("kill").is_err() {
        return;
    }
    for _ in 0..200 {
        let pids = cgroup.pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = crate::cgroups::freezer::thaw(cgroup);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A frozen task can't die: thaw after signalling so SIGKILL lands.
fn thaw(state: &ContainerState) {
    let _ = crate::cgroups::freezer::thaw(&state.cgroup);
}
