//! `run`: create + start; in the foreground, forward signals to the init, wait for it,
//! delete the container (unless --keep) and exit with its status (128+N if killed by N).

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};

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
    // A terminal with nobody to take it: strata takes it and proxies its own terminal.
    let own_console = if !a.detach && opts.console_socket.is_none() && wants_terminal(&opts.bundle) {
        let (own, theirs) = console::OwnConsole::new()?;
        opts.console_fd = Some(std::sync::Arc::new(theirs));
        Some(own)
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
    drop(opts);
    let tty = match own_console.map(console::OwnConsole::accept).transpose() {
        Ok(t) => t,
        Err(e) => {
            let _ = container::delete(store, id, true);
            return Err(e);
        }
    };
    crate::debug!("start {id}");
    if let Err(e) = container::start(store, id) {
        let _ = container::delete(store, id, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = console::wait_forwarding(state.pid, &forwarded, tty)?;
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
