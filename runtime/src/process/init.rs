//! The container init, from the clone to the exec: the driver of the interpreter. It
//! talks to the runtime on the sync channel (Pid, Go, Hooks, Ready) and between those
//! points runs the plan's steps ([`steps`], through [`RealSys`]) in the order
//! config-linux.md and runc's behaviour imply; any error is sent back to the runtime
//! whole and the init exits.
//!
//! Still made directly here, not through `Sys` (next candidates for the trait): the
//! pid-namespace fork, the prctls, the createContainer/startContainer hooks, the
//! console, and the identity change and exec under the seccomp filter
//! ([`exec::prepare`], [`super::finish`]), which must make exactly runc's system calls.

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::exec;
use super::plan::InitPlan;
use super::real_sys::RealSys;
use super::steps;
use super::sync::{Channel, Message};
use super::syscalls::Sys;
use super::InitOptions;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::rootfs::BindSources;
use crate::sys::{clone_fork, Forked};

/// Runs in the cloned child and never returns.
pub fn run(opts: &InitOptions, plan: &InitPlan, sources: &BindSources, ch: Channel) -> ! {
    let err = match setup_and_exec(opts, plan, sources, &ch) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ch.send(&Message::Failed(err.to_string()));
    // SAFETY: leave without running the runtime's destructors or atexit handlers.
    unsafe { libc::_exit(1) }
}

fn setup_and_exec(opts: &InitOptions, plan: &InitPlan, sources: &BindSources, ch: &Channel) -> Result<Infallible> {
    super::reset_signals();
    // Until the exec, no other process may open our /proc entries (/proc/PID/exe is the
    // runtime binary: CVE-2019-5736). execve makes the workload dumpable again.
    // Except for an unprivileged runtime (see InitPlan::stay_dumpable).
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, plan.stay_dumpable as libc::c_ulong) };
    // Die with `create` while setting up; cleared just before reporting ready.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Opened while our credentials are still the runtime's: as root of a new user
    // namespace the state directory may be out of reach.
    let fifo: OwnedFd = nix::fcntl::open(&opts.exec_fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", opts.exec_fifo.display()))?;
    let ns = &opts.namespaces;
    let mut sys = RealSys::new(sources);

    steps::join_namespaces(ns, &mut sys)?;
    if ns.fork_for_pid {
        if ns.new_pid {
            sys.unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare pid namespace")?;
        }
        // SAFETY: the init is single-threaded (a clone of the runtime's one thread).
        match unsafe { clone_fork(0) }.ctx(|| "fork init into its pid namespace")? {
            Forked::Parent(pid) => {
                let _ = ch.send(&Message::Pid(pid));
                // SAFETY: the intermediate process is done.
                unsafe { libc::_exit(0) }
            }
            Forked::Child => {}
        }
    } else if ns.init_reports_pid {
        // The runtime maps the user namespace we just unshared: tell it we did. Still in
        // the runtime's pid namespace, getpid is the pid it knows.
        ch.send(&Message::Pid(nix::unistd::getpid().as_raw()))?;
    }

    // The runtime maps our ids and places us in the cgroup, then says go.
    match ch.recv()? {
        Some(Message::Go) => {}
        _ => return Err(Error::Init("runtime went away before the init could start".into())),
    }
    steps::after_go(plan, &mut sys)?;
    // The init's /proc from before the root changes: the fifo is reopened through it.
    let host_proc = sys.take_host_proc().ctx(|| "open /proc")?;
    if super::has_runtime_hooks(opts.spec) {
        ch.send(&Message::Hooks)?;
        match ch.recv()? {
            Some(Message::Go) => {}
            _ => return Err(Error::Init("runtime went away while running hooks".into())),
        }
    }
    // Hooks get our pid as the host sees it: the host's /proc still answers /proc/self.
    let own_pid = host_pid();
    let hook_state = || hooks::state_json(opts.spec, opts.id, "creating", own_pid, opts.bundle);
    // createContainer hooks run in the container's root, as runc's do.
    nix::unistd::chdir(opts.rootfs).ctx(|| format!("chdir {}", opts.rootfs.display()))?;
    if !hooks::Kind::CreateContainer.of(opts.spec).is_empty() {
        hooks::run(hooks::Kind::CreateContainer, opts.spec, &hook_state())?;
    }
    steps::enter_root(plan, &mut sys)?;
    if let Some(socket) = &opts.console_socket {
        crate::console::setup(socket, plan.process.console_size, true)?;
    }

    crate::mempolicy::apply(opts.spec)?;
    exec::prepare_unfiltered(&plan.process, &mut sys)?;
    let tramp = super::finish::before_filter(opts.preserve_fds)?;
    // From the early filter on, the init makes only the calls runc's init makes after
    // its own: a profile that runs under runc runs here.
    super::finish::install_early(opts.seccomp.as_ref())?;
    let prepared = exec::prepare(&plan.process)?;

    // SAFETY: plain prctl; from here on the init must outlive `create`.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0) };
    super::finish::install_late(opts.seccomp.as_ref())?;
    ch.send(&Message::Ready)?;
    wait_until_recorded(ch);

    // Nobody listens on the channel any more: failures from here go to stderr.
    let start_hooks = || {
        if hooks::Kind::StartContainer.of(opts.spec).is_empty() {
            return Ok(());
        }
        let state = hooks::state_json(opts.spec, opts.id, "created", own_pid, opts.bundle);
        hooks::run(hooks::Kind::StartContainer, opts.spec, &state)
    };
    let err = match exec::wait_for_start(&host_proc, &fifo, start_hooks) {
        Ok(()) => {
            drop(fifo);
            drop(host_proc);
            match super::finish::execve(prepared, tramp, opts.seccomp.as_ref()) {
                Ok(never) => match never {},
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    // runc's init prints its error and exits 1 the same way (`exec /bin/x: ...`).
    eprintln!("{err}");
    // SAFETY: leave without running the runtime's destructors.
    unsafe { libc::_exit(1) }
}

/// Waits for `create` to record us (state.json, --pid-file) and say Go. If it dies
/// first, nothing could find, start or delete us: end-of-file on the channel, we exit.
/// (The death signal can't cover this: it must be off before `create` may exit, and a
/// fork into a new pid namespace clears it anyway.) A bare read: seccomp may be in.
fn wait_until_recorded(ch: &Channel) {
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: reads into a live buffer of the given length.
        match unsafe { libc::read(ch.raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } {
            // SAFETY: leave without running the runtime's destructors.
            0 => unsafe { libc::_exit(1) },
            n if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR => continue,
            _ => return,
        }
    }
}

/// Our pid in the runtime's pid namespace, read before pivot_root through the host's
/// /proc (getpid would answer 1 inside a new pid namespace).
fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        // SAFETY: getpid has no preconditions.
        .unwrap_or_else(|| unsafe { libc::getpid() })
}
