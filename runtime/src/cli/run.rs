//! `run`: create + start; in the foreground, forward signals to the init, wait for it,
//! delete the container (unless --keep) and exit with its status (128+N if killed by N).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console;
use crate::container::{self, Store};
use crate::error::{Context, Result};

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: super::create::Args,
    /// Return once the container has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (foreground only).
    #[arg(long)]
    pub keep: bool,
}

/// Signals that stay with strata: faults are about strata itself.
const NOT_FORWARDED: [Signal; 5] = [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGTRAP];

pub fn run(store: &Store, a: &RunArgs, systemd_cgroup: bool) -> Result<i32> {
    let id = &a.create.id;
    let mut forwarded = SigSet::all();
    for s in NOT_FORWARDED {
        forwarded.remove(s);
    }
    let mut opts = a.create.options();
    opts.systemd_cgroup = systemd_cgroup;
    // A terminal with nobody to take it: strata takes it and proxies its own stdio.
    let pty = if !a.detach && opts.console_socket.is_none() && wants_terminal(&opts.bundle) {
        let listener = console::PtyListener::new()?;
        opts.console_socket = Some(listener.path.clone());
        Some(listener)
    } else {
        None
    };
    if !a.detach {
        // Block before the init exists so no signal is lost; the init unblocks its own.
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).ctx(|| "block signals")?;
        // An init forked inside a joined user namespace is our grandchild: reap it too.
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    }
    super::create::debug_asked("run", &a.create);
    let state = container::create(store, id, &opts)?;
    super::create::debug_created(&state);
    let master = match &pty {
        Some(listener) => match listener.receive_master() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = container::delete(store, id, true);
                return Err(e);
            }
        },
        None => None,
    };
    drop(pty);
    crate::debug!("start {id}");
    if let Err(e) = container::start(store, id) {
        let _ = container::delete(store, id, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = wait_forwarding(state.pid, &forwarded, master)?;
    if !a.keep {
        container::delete(store, id, true)?;
    }
    Ok(code)
}

/// process.terminal of the bundle's config (a bad config is reported by create itself).
fn wants_terminal(bundle: &std::path::Path) -> bool {
    crate::config::parse_spec_file(&bundle.join("config.json"))
        .ok()
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false)
}

/// Waits for the init, forwarding signals to it and, with a pty, copying stdin to the
/// pty and the pty to stdout. Returns the init's exit code (128+N if killed by N).
fn wait_forwarding(init: i32, set: &SigSet, master: Option<OwnedFd>) -> Result<i32> {
    let init_pid = Pid::from_raw(init);
    let sigfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ctx(|| "signalfd")?;
    let _raw = master.as_ref().and_then(|_| console::RawMode::enter(0));
    if let Some(m) = &master {
        console::copy_winsize(0, m.as_raw_fd());
    }
    let mut master_open = master.is_some();
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (&master, master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.ctx(|| "poll")?,
        };
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        if ready.get(1).copied().unwrap_or(false) && master_open {
            let m = master.as_ref().expect("master");
            master_open = pump(m.as_fd(), 1, &mut buf);
        }
        if stdin_open && ready.last().copied().unwrap_or(false) && ready.len() == 3 {
            let m = master.as_ref().expect("master");
            stdin_open = pump(stdin, m.as_raw_fd(), &mut buf);
        }
        if ready[0] {
            while let Ok(Some(info)) = sigfd.read_signal() {
                let sig = info.ssi_signo as i32;
                match sig {
                    libc::SIGCHLD => {
                        if let Some(code) = reap(init_pid) {
                            // Whatever the container printed last is still in the pty.
                            if let (Some(m), true) = (&master, master_open) {
                                while pump(m.as_fd(), 1, &mut buf) {}
                            }
                            return Ok(code);
                        }
                    }
                    libc::SIGWINCH if master.is_some() => console::copy_winsize(0, master.as_ref().expect("master").as_raw_fd()),
                    // The init is our (possibly zombie) child: its pid can't be reused yet.
                    _ => {
                        let _ = Signal::try_from(sig).map(|s| kill(init_pid, s));
                    }
                }
            }
        }
    }
}

/// Copies one read's worth from `from` to fd `to`; false at end of file or error.
fn pump(from: std::os::fd::BorrowedFd, to: i32, buf: &mut [u8]) -> bool {
    match nix::unistd::read(from, buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            // SAFETY: `to` is an open fd of ours (stdout or the pty master).
            let out = unsafe { std::os::fd::BorrowedFd::borrow_raw(to) };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                match nix::unistd::write(out, rest) {
                    Ok(w) => rest = &rest[w..],
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// Reaps exited children; the init's exit code once it is among them.
fn reap(init_pid: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init_pid => return Some(code),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == init_pid => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
