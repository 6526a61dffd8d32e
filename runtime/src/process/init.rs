//! The container init, from the clone to the exec. Each step is one function call in
//! the order config-linux.md and runc's behaviour imply; any error is sent back to the
//! runtime whole and the init exits.

use std::convert::Infallible;
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{setresgid, setresuid, Gid, Uid};

use super::exec;
use super::sync::{Channel, Message};
use super::InitOptions;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces;
use crate::rootfs::{self, BindSources, RootfsContext};
use crate::sys::{clone_fork, Forked};

/// Runs in the cloned child and never returns.
pub fn run(opts: &InitOptions, sources: &BindSources, ch: Channel) -> ! {
    let err = match setup_and_exec(opts, sources, &ch) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ch.send(&Message::Failed(err.to_string()));
    // SAFETY: leave without running the runtime's destructors or atexit handlers.
    unsafe { libc::_exit(1) }
}

fn setup_and_exec(opts: &InitOptions, sources: &BindSources, ch: &Channel) -> Result<Infallible> {
    super::reset_signals();
    // Until the exec, no other process may open our /proc entries (/proc/PID/exe is the
    // runtime binary: CVE-2019-5736). execve makes the workload dumpable again.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
    // Die with `create` while setting up; cleared just before reporting ready.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Opened while our credentials are still the runtime's: as root of a new user
    // namespace the state directory may be out of reach.
    let fifo: OwnedFd = nix::fcntl::open(&opts.exec_fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", opts.exec_fifo.display()))?;
    let plan = &opts.namespaces;

    namespaces::enter(&plan.joins_in_init)?;
    let unshare_now = plan.unshare_flags - CloneFlags::CLONE_NEWCGROUP - CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    if !unshare_now.is_empty() {
        unshare(unshare_now).ctx(|| "unshare namespaces")?;
    }
    if plan.fork_for_pid {
        if plan.new_pid {
            unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare pid namespace")?;
        }
        // SAFETY: the init is single-threaded (a clone of the single-threaded runtime).
        match unsafe { clone_fork(0) }.ctx(|| "fork init into its pid namespace")? {
            Forked::Parent(pid) => {
                let _ = ch.send(&Message::Pid(pid));
                // SAFETY: the intermediate process is done.
                unsafe { libc::_exit(0) }
            }
            Forked::Child => {}
        }
    } else if plan.init_reports_pid {
        // The runtime maps the user namespace we just unshared: tell it we did. Still in
        // the runtime's pid namespace, getpid is the pid it knows.
        ch.send(&Message::Pid(nix::unistd::getpid().as_raw()))?;
    }

    // The runtime maps our ids and places us in the cgroup, then says go.
    match ch.recv()? {
        Some(Message::Go) => {}
        _ => return Err(Error::Init("runtime went away before the init could start".into())),
    }
    if plan.in_user_ns() {
        become_namespace_root()?;
    }
    if plan.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace")?;
    }
    if plan.new_time {
        enter_new_time_namespace(opts)?;
    }
    if plan.has_uts() {
        // In a joined uts namespace too: runc sets the names wherever the init's is.
        set_names(opts)?;
    }
    if !opts.no_new_keyring {
        join_session_keyring()?;
    }

    // The host's /proc: sysctls are written through it (they follow the writer's
    // namespaces) and the fifo is reopened through it after pivot_root.
    let host_proc: OwnedFd = nix::fcntl::open("/proc", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open /proc")?;
    crate::sysctl::apply(opts.spec, &host_proc)?;

    let rootfs_ctx = RootfsContext {
        spec: opts.spec,
        bundle: opts.bundle,
        rootfs: opts.rootfs,
        cgroup: opts.cgroup,
        new_cgroup_ns: plan.new_cgroup,
        in_user_ns: plan.in_user_ns(),
        no_pivot: opts.no_pivot,
        own_mount_ns: plan.has_mount(),
        sources,
    };
    rootfs::prepare(&rootfs_ctx)?;
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
    rootfs::enter(&rootfs_ctx)?;
    if let Some(socket) = &opts.console_socket {
        let size = opts.spec.process().as_ref().and_then(|p| p.console_size());
        crate::console::setup(socket, size, true)?;
    }

    let process = opts.spec.process().as_ref().ok_or_else(|| Error::field("process", "is required"))?;
    crate::mempolicy::apply(opts.spec)?;
    exec::prepare_unfiltered(opts.spec, process)?;
    let tramp = super::finish::before_filter(opts.preserve_fds)?;
    // From the early filter on, the init makes only the calls runc's init makes after
    // its own: a profile that runs under runc runs here.
    super::finish::install_early(opts.seccomp.as_ref())?;
    let prepared = exec::prepare(process)?;

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

/// A fresh session keyring, so containers don't share the runtime's keys (runc's
/// default; --no-new-keyring skips it). Kernels or sandboxes without keyrings are fine.
fn join_session_keyring() -> Result<()> {
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no pointers we own.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_JOIN_SESSION_KEYRING, 0usize) };
    match nix::errno::Errno::result(r) {
        Ok(_) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EPERM) | Err(nix::errno::Errno::EACCES) => Ok(()),
        Err(e) => Err(Error::os("join session keyring", e)),
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

/// In a new (or joined) user namespace, become its root before setting things up.
fn become_namespace_root() -> Result<()> {
    let root = Gid::from_raw(0);
    setresgid(root, root, root).ctx(|| "setgid 0 in user namespace (is gid 0 mapped?)")?;
    let root = Uid::from_raw(0);
    setresuid(root, root, root).ctx(|| "setuid 0 in user namespace (is uid 0 mapped?)")
}

fn set_names(opts: &InitOptions) -> Result<()> {
    if let Some(h) = opts.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| Error::field("hostname", format!("{h:?}: {}", e.desc())))?;
    }
    if let Some(d) = opts.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length of a live string.
        let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
        nix::errno::Errno::result(r).map_err(|e| Error::field("domainname", format!("{d:?}: {}", e.desc())))?;
    }
    Ok(())
}

/// Unshares a time namespace and writes linux.timeOffsets; the exec moves us into it.
fn enter_new_time_namespace(opts: &InitOptions) -> Result<()> {
    unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)).ctx(|| "unshare time namespace")?;
    let offsets = opts.spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref());
    let mut text = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        if !matches!(clock.as_str(), "monotonic" | "boottime") {
            return Err(Error::field(format!("linux.timeOffsets.{clock}"), "only monotonic and boottime can be offset"));
        }
        text.push_str(&format!("{clock} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
    }
    if !text.is_empty() {
        std::fs::write("/proc/self/timens_offsets", text).map_err(|e| Error::field("linux.timeOffsets", e.to_string()))?;
    }
    Ok(())
}
