//! `pause` / `resume`: freeze and thaw every process of the container's cgroup. The
//! status "paused" is read back from the freezer itself (see [`super::state`]).

use super::{load, Status, Store};
use crate::cgroups::freezer;
use crate::error::{Error, Result};

pub fn pause(store: &Store, id: &str) -> Result<()> {
    let (_locked, state, status) = load(store, id)?;
    if status != Status::Running {
        return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "pause (not running)" });
    }
    freezer::freeze(&state.cgroup)
}

pub fn resume(store: &Store, id: &str) -> Result<()> {
    let (_locked, state, status) = load(store, id)?;
    if status != Status::Paused {
        return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "resume (not paused)" });
    }
    freezer::thaw(&state.cgroup)
}
