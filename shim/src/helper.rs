//! create and exec run in a forked, single-threaded helper process.
//!
//! Why: strata's create clones the container init from the calling process, fork-style
//! (no re-exec), and the init then runs Rust code that allocates until it execs; exec
//! forks the same way. The shim is multi-threaded (ttrpc workers, the reaper, the exit
//! monitor): at a raw clone another thread may hold the allocator's lock or a std
//! lock, and the child would inherit it locked forever. glibc's fork() takes the
//! malloc locks around the fork and resets them in the child, which has one thread:
//! from there strata's clone is the single-threaded case it was written for. The helper
//! exits once create (or exec) returns; the container's processes are reparented to the
//! shim, a child subreaper, which reaps them and reports their exits, as
//! containerd-shim-runc-v2 does with the processes runc leaves behind. Every other
//! operation (start, kill, pause, state, delete, stats, update) runs on the ttrpc
//! thread itself: none of them clones.

use std::io::{BufRead, BufReader};

use nix::fcntl::OFlag;

use crate::binlog::BinaryLog;
use crate::stdio::Stdio;

/// Runs `f` in a forked helper whose fds 0, 1, 2 are `stdio`; returns what `f` returned
/// (a pid, or the error's one-line message).
pub fn run(stdio: &Stdio, log: Option<&BinaryLog>, f: impl FnOnce() -> Result<i32, String>) -> Result<i32, String> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only opens files, runs strata's create/exec (single-threaded
    // from here on, see the module docs) and leaves with _exit.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork helper: {}", std::io::Error::last_os_error())),
        0 => {
            drop(r);
            let result = stdio.install(log).and_then(|()| f());
            let line = match result {
                Ok(pid) => format!("ok {pid}\n"),
                Err(e) => format!("err {}\n", e.replace('\n', " ")),
            };
            let _ = nix::unistd::write(&w, line.as_bytes());
            // SAFETY: leaves without running the shim's exit handlers or destructors.
            unsafe { libc::_exit(0) }
        }
        _ => {
            drop(w);
            // One line, not EOF: the container's init holds a copy of the write end
            // until it execs (strata closes every other fd then).
            let mut line = String::new();
            BufReader::new(std::fs::File::from(r)).read_line(&mut line).map_err(|e| format!("read helper: {e}"))?;
            match line.trim_end().split_once(' ') {
                Some(("ok", pid)) => pid.parse().map_err(|_| format!("helper sent {line:?}")),
                Some(("err", msg)) => Err(msg.to_string()),
                _ => Err("the create/exec helper died without an answer".into()),
            }
        }
    }
}
