//! `containerd-shim-strata-v2`: the containerd shim v2 for strata. containerd starts it
//! for `runtime_type = "io.containerd.strata.v2"`; it serves the shim task API over
//! ttrpc (the containerd project's `containerd-shim` crate, synchronous API: no async
//! runtime) and runs every container operation through strata's library in-process,
//! where containerd-shim-runc-v2 execs a runtime binary per operation.
//!
//! - [`service`]: containerd's start/delete actions, one shim per pod
//! - [`table`]: the containers and processes a shim serves, their exits and events
//! - [`task`]: the task API (create, start, exec, kill, wait, delete ...)
//! - [`helper`]: create and exec run in a forked single-threaded helper (why: see there)
//! - [`stdio`]: containerd's fifos, `file://` log URIs, the console socket and pty copying
//! - [`binlog`]: `binary://` log URIs (a logging binary fed through pipes)
//! - [`oom`]: TaskOOM events from the containers' memory cgroups
//! - [`metrics`]: strata's cgroup stats as containerd's cgroups v1 `Metrics`
//! - [`trim`]: a waiting shim keeps only the code it runs resident

mod binlog;
mod helper;
mod metrics;
mod oom;
mod service;
mod stdio;
mod table;
mod task;
mod trim;

fn main() {
    // One malloc arena: a dozen threads (ttrpc, reaper, exit monitor) that allocate
    // little would otherwise each touch an arena of their own.
    // SAFETY: mallopt before any thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    containerd_shim::run::<service::Shim>(service::RUNTIME_ID, None)
}
