//! `kill`: signal the init (through a pidfd, so a recycled pid is never hit) or, with
//! --all, every process of the container's cgroup.

use nix::sys::signal::{kill as sys_kill, Signal};
use nix::unistd::Pid;

use super::{load, ContainerState, Status, Store};
use crate::error::{Error, Result};
use crate::sys::{pidfd_open, pidfd_send_signal, proc_stat};

/// Signal 0 only checks that the target exists (a liveness probe), as kill(2).
pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Result<()> {
    let (_locked, state, status) = load(store, id)?;
    if all {
        // Like runc, --all works on a stopped container too: when the init exits,
        // containerd's shim sends `kill --all ID 9` to reap what is left in its cgroup.
        kill_all(&state, sig)?;
    } else if matches!(status, Status::Created | Status::Running | Status::Paused) {
        signal_init(&state, sig)?;
    } else {
        return Err(Error::NotRunning { id: id.into(), status: status.to_string() });
    }
    // A frozen task only dies once thawed: a SIGKILL to a paused container thaws it.
    if status == Status::Paused && sig == libc::SIGKILL {
        crate::cgroups::freezer::thaw(&state.cgroup)?;
    }
    Ok(())
}

/// Signals the init if it is still the process we started.
pub fn signal_init(state: &ContainerState, sig: i32) -> Result<()> {
    let pidfd = match pidfd_open(state.pid) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(Error::os(format!("pidfd_open {}", state.pid), e)),
    };
    // The pidfd now pins the pid: check it still is our init.
    if proc_stat(state.pid).is_none_or(|s| s.start_time != state.pid_start_time) {
        return Ok(());
    }
    match pidfd_send_signal(&pidfd, sig) {
        // Died since the pidfd was opened (delete -f kills the cgroup first): done.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::os(format!("signal {sig} to pid {}", state.pid), e)),
    }
}

/// Signals every process in the container's cgroup; refused for a cgroup that is the
/// host's (root or the runtime's own). The cgroup is frozen meanwhile (as runc does) so
/// that a process forking in a loop can't outrun the signal.
pub fn kill_all(state: &ContainerState, sig: i32) -> Result<()> {
    state.cgroup.ensure_container_owned("kill --all")?;
    // A paused container stays paused (a SIGKILL thaws it in `kill`).
    let froze = !state.cgroup.is_frozen() && crate::cgroups::freezer::freeze(&state.cgroup).is_ok();
    let result = signal_pids(state, sig);
    if froze {
        crate::cgroups::freezer::thaw(&state.cgroup)?;
    }
    result
}

fn signal_pids(state: &ContainerState, sig: i32) -> Result<()> {
    let signal = Signal::try_from(sig).ok();
    for pid in state.cgroup.pids()? {
        match sys_kill(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(Error::os(format!("signal {sig} to pid {pid}"), e)),
        }
    }
    Ok(())
}
