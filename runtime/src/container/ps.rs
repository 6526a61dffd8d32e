//! `ps`: the processes of a container, i.e. of its cgroup and the cgroups below it.

use super::{load, Status, Store};
use crate::error::{Error, Result};

/// The pids (host pid namespace) of every process in the container.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let (_locked, state, status) = load(store, id)?;
    if status == Status::Stopped {
        return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "list processes (not running)" });
    }
    // With the host's cgroup (no container cgroup), listing would show host processes.
    state.cgroup.ensure_container_owned("list processes")?;
    let mut pids = state.cgroup.pids()?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}
