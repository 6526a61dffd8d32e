//! SCMP_ACT_NOTIFY: the filter's listener fd goes to the agent at `listenerPath` with
//! SCM_RIGHTS, together with runc's `ContainerProcessState` JSON (ociVersion, fds,
//! pid, metadata, state), so agents written for runc work unchanged.
//!
//! The socket is connected by the runtime before the clone (a bad listenerPath fails
//! `create` early, and the path is resolved on the host, not in the container). The
//! pid is only known after the clone, so the runtime passes the finished JSON to the
//! child through a pipe; the child sends it with the fd right after installing.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::json;

use crate::error::{Context, Error, Result};

pub struct Listener {
    pub path: PathBuf,
    pub metadata: String,
    socket: UnixStream,
    state_rx: OwnedFd,
    state_tx: OwnedFd,
}

impl Listener {
    pub fn new(path: PathBuf, metadata: String) -> Result<Listener> {
        let socket = UnixStream::connect(&path)
            .map_err(|e| Error::field("linux.seccomp.listenerPath", format!("{}: {e}", path.display())))?;
        let (state_rx, state_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe for seccomp state")?;
        Ok(Listener { path, metadata, socket, state_rx, state_tx })
    }

    /// Runtime side, once the process's pid is known: the message the agent will get.
    /// `state` is the runtime-spec state document of the container.
    pub fn publish(&self, pid: i32, state: serde_json::Value) -> Result<()> {
        let msg = json!({
            "ociVersion": crate::OCI_VERSION,
            "fds": ["seccompFd"],
            "pid": pid,
            "metadata": self.metadata,
            "state": state,
        });
        let body = serde_json::to_vec(&msg).map_err(|e| Error::os("encode seccomp state", std::io::Error::other(e)))?;
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend(body);
        let mut tx = std::fs::File::from(self.state_tx.try_clone().ctx(|| "dup seccomp state pipe")?);
        tx.write_all(&framed).ctx(|| "pass seccomp state to the process")
    }

    /// Child side: sends the listener fd and the published state to the agent.
    pub fn send(&self, listener: OwnedFd) -> Result<()> {
        let mut rx = std::fs::File::from(self.state_rx.try_clone().ctx(|| "dup seccomp state pipe")?);
        let mut len = [0u8; 4];
        rx.read_exact(&mut len).ctx(|| "read seccomp state")?;
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        rx.read_exact(&mut body).ctx(|| "read seccomp state")?;
        let fds = [listener.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(self.socket.as_raw_fd(), &[IoSlice::new(&body)], &cmsg, MsgFlags::empty(), None).map_err(
            |e| {
                Error::field(
                    "linux.seccomp.listenerPath",
                    format!("send listener to {}: {}", self.path.display(), e.desc()),
                )
            },
        )?;
        Ok(())
    }
}
