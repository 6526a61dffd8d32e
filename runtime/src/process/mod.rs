//! Starting the container's init without re-executing the runtime: the parent builds
//! the init's [`plan::InitPlan`] from config.json, then one fork-style clone3 (clone
//! where a seccomp profile refuses clone3) into the new namespaces, after which the
//! child runs [`init::run`], an interpreter of that plan over the [`syscalls::Sys`]
//! calls ([`steps`], [`crate::rootfs::apply`]); the child joins the namespaces given by
//! path. The parent writes the id maps ([`id_maps`]), places the
//! child in its cgroup (unless the clone did), tells it to go on, runs the prestart and
//! createRuntime hooks in its own namespaces when asked, and waits for "ready" or the
//! child's own error.

mod attrs;
mod exec;
mod finish;
pub mod id_maps;
mod init;
mod join;
pub mod plan;
mod real_sys;
#[cfg(test)]
pub(crate) mod recorder;
#[cfg(test)]
mod rootless_tests;
#[cfg(test)]
mod sequence_tests;
mod steps;
pub mod sync;
pub mod syscalls;
mod trampoline;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces::NamespacePlan;
use crate::sys::{clone_fork_into_cgroup, Forked};
use sync::Message;

pub use exec::{open_exec_fifo_reader, EXEC_FIFO_MODE};
pub use join::{spawn_exec, JoinOptions, NsJoin};

/// Everything the init needs, prepared before the clone.
pub struct InitOptions<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    /// The exec fifo (create passes /proc/self/fd/N: the state root may be closed to the
    /// init's user namespace); the init blocks on it until `start`.
    pub exec_fifo: PathBuf,
    pub cgroup: &'a Cgroup,
    pub namespaces: NamespacePlan,
    pub no_pivot: bool,
    /// fds 3 .. 3+N pass to the container.
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// Connected --console-socket when process.terminal is set.
    pub console_socket: Option<OwnedFd>,
    /// linux.seccomp, compiled before the clone.
    pub seccomp: Option<crate::seccomp::Filter>,
    /// Who runs strata: an unprivileged caller gets a rootless plan.
    pub caller: crate::rootless::Caller,
}

/// Clones the init and drives it to "ready". On error the caller kills `pid` (if any)
/// and cleans up; the error is the init's own message where it sent one. The channel
/// returned must get a final Go once the container is recorded: until then the init
/// exits if the channel closes (the caller died).
pub fn spawn_init(opts: &InitOptions) -> std::result::Result<(i32, sync::Channel), (Option<i32>, Error)> {
    if opts.no_pivot && !opts.namespaces.has_mount() {
        // MS_MOVE over / in the runtime's own mount namespace would replace the host's root.
        return Err((None, Error::Refused("--no-pivot needs a mount namespace in linux.namespaces".into())));
    }
    let (mut parent, mut child) = sync::pair().map_err(|e| (None, e))?;
    let first_free = 3 + opts.preserve_fds as i32;
    parent.move_above(first_free).and_then(|_| child.move_above(first_free)).map_err(|e| (None, e))?;

    let cgroup_fd: Option<OwnedFd> = match opts.cgroup.unified_only_dir() {
        Some(dir) => Some(
            nix::fcntl::open(&dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open cgroup {}", dir.display()))
                .map_err(|e| (None, e))?,
        ),
        None => None,
    };
    // Opened as host root now: the init may run as a user that can't reach them.
    let bind_sources = crate::rootfs::open_bind_sources(
        opts.spec,
        opts.bundle,
        opts.namespaces.in_user_ns(),
        opts.caller.is_rootless(),
    )
    .map_err(|e| (None, e))?;
    // Everything the init will do that config.json decides, decided now.
    let plan = plan::build(opts, &bind_sources).map_err(|e| (None, e))?;
    // How the id maps get written (an unprivileged caller may need newuidmap).
    let id_map_plan = if opts.namespaces.new_user {
        Some(id_maps::plan_for_current(opts.spec, &opts.caller).map_err(|e| (None, e))?)
    } else {
        None
    };
    let flags = opts.namespaces.clone_flags.bits() as u64;
    // The clone site's rule: the child is a copy of this one thread. strata's CLI is
    // single-threaded, so today the child owns the allocator and every lock. A caller
    // with threads (an in-process shim) gets a child that must not allocate or take a
    // lock until it execs: what the init needs is prepared above (the plan, the open
    // fds, the compiled seccomp program) and the interpreter (steps, rootfs::apply,
    // RealSys) only reads it, formatting fd paths on the stack. What still allocates
    // after the clone: error messages, the hooks (they fork and exec), capability sets,
    // the console and the exec's argv: a multi-threaded caller must first make those
    // allocation-free, or fork from a single-threaded helper.
    // SAFETY: the runtime is single-threaded; the child owns what it inherits.
    let forked = unsafe { clone_fork_into_cgroup(flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd())) };
    let (pid, in_cgroup) = match forked {
        Ok((Forked::Child, _)) => {
            drop(parent);
            init::run(opts, &plan, &bind_sources, child)
        }
        Ok((Forked::Parent(pid), in_cgroup)) => (pid, in_cgroup),
        Err(e) => return Err((None, Error::os("clone container init", e))),
    };
    // The one observable sign of the path taken (the VM checks and hack/bench grep it).
    crate::debug!(
        "init {pid}: {}",
        if in_cgroup { "born in its cgroup (clone3 CLONE_INTO_CGROUP)" } else { "cloned, then moved into its cgroup" }
    );
    drop(child);
    drop(bind_sources);
    let mut pid = pid;
    let fail = |pid: i32, e: Error| (Some(pid), e);

    if opts.namespaces.init_reports_pid {
        // The init's namespaces are set; with an extra fork, the first child only
        // forked the real init into its pid namespace and exits.
        match parent.recv().map_err(|e| fail(pid, e))? {
            Some(Message::Pid(p)) => {
                if p != pid {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                }
                pid = p;
            }
            other => return Err(fail(pid, unexpected(other))),
        }
    }
    if let Some(maps) = &id_map_plan {
        id_maps::write(maps, pid).map_err(|e| fail(pid, e))?;
    }
    if !in_cgroup {
        opts.cgroup.add_pid(pid).map_err(|e| fail(pid, e))?;
    }
    // linux.netDevices: moved by the runtime while the init waits in its new namespace.
    crate::netdev::move_into(opts.spec, pid).map_err(|e| fail(pid, e))?;
    if let Some(n) = opts.seccomp.as_ref().and_then(|f| f.notify.as_ref()) {
        n.publish(pid, notify_state(opts, pid)).map_err(|e| fail(pid, e))?;
    }
    parent.send(&Message::Go).map_err(|e| fail(pid, e))?;
    let mut msg = parent.recv().map_err(|e| fail(pid, e))?;
    if msg == Some(Message::Hooks) {
        run_runtime_hooks(opts, pid).map_err(|e| fail(pid, e))?;
        parent.send(&Message::Go).map_err(|e| fail(pid, e))?;
        msg = parent.recv().map_err(|e| fail(pid, e))?;
    }
    match msg {
        Some(Message::Ready) => Ok((pid, parent)),
        other => Err(fail(pid, unexpected(other))),
    }
}

/// The fds to pass on must be open now: otherwise the runtime's own files (the lock,
/// the sync socket) would take those numbers and leak into the container.
pub fn check_preserved_fds(n: u32) -> Result<()> {
    for fd in 3..3 + n as i32 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Refused(format!("--preserve-fds {n}: fd {fd} is not open")));
        }
    }
    Ok(())
}

/// Whether the init must stop for prestart/createRuntime hooks (skipped when none).
pub(crate) fn has_runtime_hooks(spec: &Spec) -> bool {
    !hooks::Kind::Prestart.of(spec).is_empty() || !hooks::Kind::CreateRuntime.of(spec).is_empty()
}

fn run_runtime_hooks(opts: &InitOptions, pid: i32) -> Result<()> {
    let state = hooks::state_json(opts.spec, opts.id, "creating", pid, opts.bundle);
    hooks::run(hooks::Kind::Prestart, opts.spec, &state)?;
    hooks::run(hooks::Kind::CreateRuntime, opts.spec, &state)
}

/// Empty signal mask, default dispositions, for every container process (init and
/// exec): nothing the runtime did (Rust ignores SIGPIPE; `run` and the foreground
/// `exec` block the signals they forward) may leak into the container.
fn reset_signals() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: restoring the default disposition is always sound.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

fn unexpected(m: Option<Message>) -> Error {
    match m {
        Some(Message::Failed(msg)) => Error::Init(msg),
        None => Error::Init("container init exited during setup".into()),
        Some(m) => Error::Init(format!("unexpected message from container init: {m:?}")),
    }
}

/// The state a seccomp agent receives with the listener (status "creating", as runc).
fn notify_state(opts: &InitOptions, pid: i32) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": opts.spec.version(),
        "id": opts.id,
        "status": "creating",
        "pid": pid,
        "bundle": opts.bundle,
        "annotations": opts.spec.annotations().clone().unwrap_or_default(),
    })
}
