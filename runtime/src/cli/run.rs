//! `run`: create + start; in the foreground, forward signals to the init, wait for it,
//! delete the container (unless --keep) and exit with its status (128+N if killed by N).

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

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

pub fn run(store: &Store, a: &RunArgs) -> Result<i32> {
    let id = &a.create.id;
    let mut forwarded = SigSet::all();
    for s in NOT_FORWARDED {
        forwarded.remove(s);
    }
    if !a.detach {
        // Block before the init exists so no signal is lost; the init unblocks its own.
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).ctx(|| "block signals")?;
        // An init forked inside a joined user namespace is our grandchild: reap it too.
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    }
    let state = container::create(store, id, &a.create.options())?;
    if let Err(e) = container::start(store, id) {
        let _ = container::delete(store, id, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = wait_forwarding(state.pid, &forwarded)?;
    if !a.keep {
        container::delete(store, id, true)?;
    }
    Ok(code)
}

fn wait_forwarding(init: i32, set: &SigSet) -> Result<i32> {
    let init_pid = Pid::from_raw(init);
    loop {
        let sig = set.wait().ctx(|| "wait for signals")?;
        if sig != Signal::SIGCHLD {
            // The init is our (possibly zombie) child: its pid can't be reused yet.
            let _ = kill(init_pid, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == init_pid => return Ok(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == init_pid => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
