//! `ps`: the processes of a container, i.e. of its cgroup and the cgroups below it.

use super::{load, Store};
use crate::error::Result;

/// The pids (host pid namespace) of every process in the container. A stopped
/// container lists what is left in its cgroup (often nothing), as runc does.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let (_locked, state, _status) = load(store, id)?;
    // With the host's cgroup (no container cgroup), listing would show host processes.
    state.cgroup.ensure_container_owned("list processes")?;
    let mut pids = state.cgroup.pids()?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}
