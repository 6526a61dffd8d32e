//! `containerd-shim-strata-v2`: the containerd shim v2 for strata. containerd starts it
//! for `runtime_type = "io.containerd.strata.v2"`; it serves the shim task API over
//! ttrpc (the containerd project's `containerd-shim` crate, synchronous API: no async
//! runtime) and runs every container operation through strata's library in-process,
//! where containerd-shim-runc-v2 execs a runtime binary per operation.
//!
//! - [`service`]: the task API (create, start, exec, kill, wait, delete ...) and exit events
//! - [`helper`]: create and exec run in a forked single-threaded helper (why: see there)
//! - [`stdio`]: containerd's fifos, `file://` log URIs, the console socket and pty copying
//! - [`metrics`]: strata's cgroup stats as containerd's cgroups v1 `Metrics`

mod helper;
mod metrics;
mod service;
mod stdio;

fn main() {
    containerd_shim::run::<service::Shim>(service::RUNTIME_ID, None)
}
