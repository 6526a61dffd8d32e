//! `exec`: run another process in a running container: check its status, build the
//! process, open the init's namespaces (only those that differ from ours) and
//! cgroup, compile its seccomp profile, then [`process::spawn_exec`]. In the
//! foreground, signals go to the process and its exit status comes back
//! (128+N when killed by N); detached, its pid goes to --pid-file.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub use super::exec_process::ExecProcessArgs;
use super::{load, ContainerState, Status, Store};
use crate::error::{Context, Error, Result};
use crate::process::{self, JoinOptions, NsJoin};
use crate::sys::proc_stat;

#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub process: ExecProcessArgs,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// runc's --cgroup: `PATH` or `CONTROLLER[,CONTROLLER]:PATH`, below the container's cgroup.
    pub cgroups: Vec<String>,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

/// Namespaces in the order they are entered: user first (it grants the rights for
/// the rest), mnt last (after it, host paths are gone).
const NAMESPACES: [(&str, CloneFlags); 8] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Signals that stay with strata: faults are about strata itself.
const NOT_FORWARDED: [Signal; 5] = [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGTRAP];

/// Runs the process; returns its exit code (foreground) or 0 once started (detach).
pub fn exec(store: &Store, id: &str, o: &ExecOptions) -> Result<i32> {
    for (flag, v) in [("--apparmor", &o.apparmor), ("--process-label", &o.process_label)] {
        if v.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::Refused(format!("{flag}: this host has no AppArmor/SELinux support in strata")));
        }
    }
    process::check_preserved_fds(o.preserve_fds)?;
    let (locked, state, status) = load(store, id)?;
    match status {
        Status::Stopped => return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "exec" }),
        Status::Paused if !o.ignore_paused => {
            return Err(Error::WrongStatus {
                id: id.into(),
                status: status.to_string(),
                op: "exec (pass --ignore-paused)",
            })
        }
        _ => {}
    }
    let mut process = super::exec_process::build(&state.config, &o.process)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && o.console_socket.is_none() && o.detach {
        return Err(Error::Refused("exec --tty --detach needs --console-socket".into()));
    }
    let seccomp = crate::seccomp::compile(&state.config, process.no_new_privileges().unwrap_or(false))?;
    let namespaces = open_namespaces(&state)?;
    let cgroup_procs = cgroup_procs(&state, &o.cgroups)?;
    // In the foreground without --console-socket the pty comes back to us and we proxy
    // the caller's terminal, as runc does.
    let (own_console, console_socket): (_, Option<OwnedFd>) = match (&o.console_socket, terminal) {
        (Some(path), true) => (None, Some(crate::console::connect(path)?)),
        (None, true) => {
            let (own, theirs) = crate::console::OwnConsole::new()?;
            // It runs before we have its pty: it starts with our size (runc's resize).
            if let Some(size) = own.size() {
                process.set_console_size(Some(size));
            }
            (Some(own), Some(theirs))
        }
        _ => (None, None),
    };

    let mut forwarded = SigSet::all();
    for s in NOT_FORWARDED {
        forwarded.remove(s);
    }
    if !o.detach {
        // Block before the process exists so no signal is lost; it unblocks its own.
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).ctx(|| "block signals")?;
        // The process is forked by a helper that exits: adopt it to wait for it.
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    }
    let join = JoinOptions {
        id,
        spec: &state.config,
        process: &process,
        namespaces,
        cgroup_procs,
        seccomp: seccomp.as_ref(),
        preserve_fds: o.preserve_fds,
        console_socket,
        // A frozen process can't exec until `resume`: don't wait for it then.
        wait_for_exec: status != Status::Paused,
    };
    let pid = process::spawn_exec(&join)?;
    if let Some(path) = &o.pid_file {
        // runc: a process nobody can find through its pid file is killed, not left running.
        if let Err(e) = super::create::write_pid_file(path, pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            return Err(e);
        }
    }
    // Other commands on this container (kill, delete) must not wait for our process.
    drop(locked);
    if o.detach {
        return Ok(0);
    }
    if let Some(own) = own_console {
        let tty = own.accept().inspect_err(|_| {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        })?;
        return crate::console::wait_forwarding(pid, &forwarded, Some(tty));
    }
    wait_forwarding(pid, &forwarded)
}

/// Opens /proc/PID/ns/* of the init for every namespace that isn't already ours, and
/// checks afterwards that PID is still the init (not a recycled pid).
fn open_namespaces(state: &ContainerState) -> Result<Vec<NsJoin>> {
    let mut out = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{}/ns/{name}", state.pid);
        let ours = format!("/proc/self/ns/{name}");
        let (t, o) = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(t), Ok(o)) => (t, o),
            // The kernel lacks this namespace type.
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // Never skip a namespace we may not look at: the process would run outside it.
            (Err(e), _) | (_, Err(e)) => return Err(Error::os(format!("stat {theirs}"), e)),
        };
        if t.dev() == o.dev() && t.ino() == o.ino() {
            continue;
        }
        let fd = nix::fcntl::open(theirs.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| format!("open {theirs}"))?;
        out.push(NsJoin { flag, name, fd });
    }
    if proc_stat(state.pid).is_none_or(|s| s.start_time != state.pid_start_time) {
        return Err(Error::WrongStatus { id: state.id.clone(), status: "stopped".into(), op: "exec" });
    }
    Ok(out)
}

/// The cgroup.procs files the process joins: the container's cgroup in every
/// hierarchy, or the named sub-cgroups of it (which must exist, as in runc).
fn cgroup_procs(state: &ContainerState, subs: &[String]) -> Result<Vec<PathBuf>> {
    // runc: a controller the container has no hierarchy for (any, on cgroup v2) is an error.
    for s in subs {
        let controllers = s.split_once(':').map(|(c, _)| c).unwrap_or_default();
        for c in controllers.split(',').filter(|c| !c.is_empty()) {
            if !state.cgroup.dirs.iter().any(|d| d.controllers.iter().any(|have| have == c)) {
                return Err(Error::Refused(format!("--cgroup {s}: unknown controller {c:?}")));
            }
        }
    }
    let mut out = Vec::new();
    for dir in &state.cgroup.dirs {
        let mut target = dir.full();
        for s in subs {
            let (controllers, path) = match s.split_once(':') {
                Some((c, p)) => (Some(c), p),
                None => (None, s.as_str()),
            };
            let applies = controllers.is_none_or(|c| c.split(',').any(|c| dir.controllers.iter().any(|d| d == c)));
            if !applies {
                continue;
            }
            let rel = PathBuf::from(path.trim_start_matches('/'));
            if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(Error::Refused(format!("--cgroup {s}: must be a path below the container's cgroup")));
            }
            target = dir.full().join(rel);
            if !target.is_dir() {
                return Err(Error::Refused(format!("--cgroup {s}: {} does not exist", target.display())));
            }
        }
        out.push(target.join("cgroup.procs"));
    }
    Ok(out)
}

/// Forwards signals to `pid` until it exits; its exit code, or 128+N if killed by N.
fn wait_forwarding(pid: i32, set: &SigSet) -> Result<i32> {
    let target = Pid::from_raw(pid);
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == target => return Ok(code),
                Ok(WaitStatus::Signaled(p, s, _)) if p == target => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let sig = set.wait().ctx(|| "wait for signals")?;
        if sig != Signal::SIGCHLD {
            // Our (possibly zombie) child: its pid can't be reused before we reap it.
            let _ = kill(target, sig);
        }
    }
}
