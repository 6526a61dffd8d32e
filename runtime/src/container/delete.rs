//! `delete`: remove a stopped container (a created one too, as runc does; a running one
//! only with --force, killing it first), its cgroup and its state directory.

use super::kill::kill_all;
use super::{signal_init, ContainerState, Status, Store};
use crate::error::{Error, Result};
use crate::hooks;
use crate::sys::{pidfd_open, pidfd_wait_exit};

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let locked = store.open(id)?;
    let state = match locked.load() {
        Ok(s) => s,
        // A create that died half-way: nothing runs, only the directory is left.
        Err(Error::NotFound(_)) if force => return locked.remove(),
        Err(e) => return Err(e),
    };
    let status = state.status(&locked.dir);
    match status {
        // The init is gone, but without a pid namespace its children may not be.
        Status::Stopped if !state.cgroup.pids().unwrap_or_default().is_empty() => stop(&state)?,
        Status::Stopped => {}
        Status::Created => stop(&state)?,
        Status::Running | Status::Paused | Status::Creating if force => stop(&state)?,
        _ => return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "delete (use --force)" }),
    }
    state.cgroup.remove()?;
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
    // Without its own pid namespace the init's death leaves the rest running: kill the
    // whole cgroup when it's the container's own.
    if state.cgroup.ensure_container_owned("kill").is_ok() {
        kill_all(state, libc::SIGKILL)?;
        thaw(state);
    }
    signal_init(state, libc::SIGKILL)?;
    if let Some(fd) = pidfd {
        let _ = pidfd_wait_exit(&fd, 10_000);
    }
    Ok(())
}

/// A frozen task can't die: thaw after signalling so SIGKILL lands.
fn thaw(state: &ContainerState) {
    let _ = crate::cgroups::freezer::thaw(&state.cgroup);
}
