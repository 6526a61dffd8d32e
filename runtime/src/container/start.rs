//! `start`: release a created container's init by reading its exec fifo.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::{checkpoint, load, Status, Store, EXEC_FIFO};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::process::open_exec_fifo_reader;

pub fn start(store: &Store, id: &str) -> Result<()> {
    let (locked, state, status) = load(store, id)?;
    if status != Status::Created {
        return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "start (not created)" });
    }
    let fifo_path = locked.dir.join(EXEC_FIFO);
    checkpoint("start:loaded");
    release_init(&fifo_path, || state.status(&locked.dir) != Status::Stopped)?;
    checkpoint("start:released");
    std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
    let spec = &state.config;
    if !hooks::Kind::Poststart.of(spec).is_empty() {
        let json = hooks::state_json(spec, id, "running", state.pid, &state.bundle);
        hooks::run_warn(hooks::Kind::Poststart, spec, &json);
    }
    Ok(())
}

/// Opens the fifo (the init's blocked open then completes) and reads its one byte,
/// giving up if the init dies meanwhile.
fn release_init(fifo_path: &Path, alive: impl Fn() -> bool) -> Result<()> {
    let fifo = open_exec_fifo_reader(fifo_path)?;
    let mut pfd = libc::pollfd { fd: fifo.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 100) };
        if n > 0 {
            let mut byte = [0u8; 1];
            match nix::unistd::read(&fifo, &mut byte) {
                Ok(1) => return Ok(()),
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(Error::os("read exec fifo", e)),
            }
        }
        if !alive() {
            return Err(Error::Init(
                "container init exited before it could start (a startContainer hook failed, or the init was killed)"
                    .into(),
            ));
        }
    }
}
