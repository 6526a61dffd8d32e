//! `events`: the container's resource usage and OOM kills, in runc's JSON shape
//! (`{"type":"stats","id":..,"data":{..}}`, `{"type":"oom","id":..}`).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{load, ContainerState, Status, Store};
use crate::cgroups::stats::{self, Stats};
use crate::error::{Error, Result};

#[derive(Serialize, Debug)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// One stats event, now.
pub fn stats_once(store: &Store, id: &str) -> Result<Stats> {
    let (_locked, state, status) = load(store, id)?;
    check_alive(id, status)?;
    Ok(stats::collect(&state.cgroup))
}

/// Emits a stats event every `interval` (when `with_stats`), an "oom" event whenever
/// the OOM killer strikes in the cgroup, until the container stops or `emit` fails.
/// The container's lock is not held meanwhile: `delete` must not wait for us.
pub fn watch(store: &Store, id: &str, interval: Duration, emit: &mut dyn FnMut(&Event) -> Result<()>) -> Result<()> {
    let (locked, state, status) = load(store, id)?;
    check_alive(id, status)?;
    let dir = locked.dir.clone();
    drop(locked);
    let mut ooms = stats::oom_kills(&state.cgroup);
    let mut next_stats = Instant::now();
    let tick = interval.min(Duration::from_millis(100));
    while alive(&state, &dir) {
        let now_ooms = stats::oom_kills(&state.cgroup);
        if now_ooms > ooms {
            ooms = now_ooms;
            emit(&Event { kind: "oom", id, data: None })?;
        }
        if Instant::now() >= next_stats {
            emit(&Event { kind: "stats", id, data: Some(stats::collect(&state.cgroup)) })?;
            next_stats += interval;
        }
        std::thread::sleep(tick);
    }
    // An OOM kill that ended the container is its last event.
    if stats::oom_kills(&state.cgroup) > ooms {
        emit(&Event { kind: "oom", id, data: None })?;
    }
    Ok(())
}

fn alive(state: &ContainerState, dir: &std::path::Path) -> bool {
    dir.exists() && state.status(dir) != Status::Stopped
}

fn check_alive(id: &str, status: Status) -> Result<()> {
    if status == Status::Stopped {
        return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "report events (stopped)" });
    }
    Ok(())
}
