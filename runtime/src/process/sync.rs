//! The runtime <-> init channel: a SEQPACKET socketpair, one message per packet, so
//! the init's own error reaches `create` whole and a dead init reads as end-of-file.
//! The init's packets go through plain read(2)/write(2): it still talks on the channel
//! under the container's seccomp filter, and a profile written for runc (whose init
//! talks on its pipe with read/write) need not allow sendto/recvfrom.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::error::{Context, Error, Result};

#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// runtime -> init: ids are mapped and the cgroup is joined; carry on.
    Go,
    /// init -> runtime, when it unshared a user namespace or forked into its pid
    /// namespace: its namespaces are set; the pid of the real init.
    Pid(i32),
    /// init -> runtime: namespaces and mounts are made: run prestart/createRuntime
    /// hooks, then say Go.
    Hooks,
    /// init -> runtime: set up and waiting for `start`.
    Ready,
    /// init -> runtime: setup failed with this message.
    Failed(String),
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Go => vec![b'G'],
            Message::Pid(p) => [&[b'P'][..], &p.to_le_bytes()].concat(),
            Message::Ready => vec![b'R'],
            Message::Hooks => vec![b'H'],
            Message::Failed(m) => [&[b'F'][..], m.as_bytes()].concat(),
        }
    }

    fn decode(b: &[u8]) -> Option<Message> {
        match b.split_first()? {
            (b'G', []) => Some(Message::Go),
            (b'R', []) => Some(Message::Ready),
            (b'H', []) => Some(Message::Hooks),
            (b'P', rest) => Some(Message::Pid(i32::from_le_bytes(rest.try_into().ok()?))),
            (b'F', rest) => Some(Message::Failed(String::from_utf8_lossy(rest).into_owned())),
            _ => None,
        }
    }
}

pub struct Channel {
    fd: OwnedFd,
    /// The runtime's end: sends with MSG_NOSIGNAL, so a dead init is an error, never a
    /// SIGPIPE (which `run` blocks and would forward). The init's end writes: an init
    /// whose runtime is gone may as well die of SIGPIPE.
    runtime_end: bool,
}

/// A connected pair: (runtime end, init end). Both close on exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .ctx(|| "create sync socketpair")?;
    Ok((Channel { fd: a, runtime_end: true }, Channel { fd: b, runtime_end: false }))
}

impl Channel {
    pub fn send(&self, m: &Message) -> Result<()> {
        let packet = m.encode();
        loop {
            let r = if self.runtime_end {
                send(self.fd.as_raw_fd(), &packet, MsgFlags::MSG_NOSIGNAL)
            } else {
                nix::unistd::write(&self.fd, &packet)
            };
            match r {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(drop).ctx(|| "send on sync socket"),
            }
        }
    }

    /// The next message; None when the other end is gone (the init died).
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; 8192];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    return Message::decode(&buf[..n])
                        .map(Some)
                        .ok_or_else(|| Error::Init("garbled message from container init".into()))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::os("receive on sync socket", e)),
            }
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_fd().as_raw_fd()
    }

    /// Moves the socket to an fd number at or above `min` (out of the way of
    /// `--preserve-fds`).
    pub fn move_above(&mut self, min: i32) -> Result<()> {
        if self.raw_fd() >= min {
            return Ok(());
        }
        let fd = nix::fcntl::fcntl(&self.fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min)).ctx(|| "dup sync socket")?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
        self.fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Go,
            Message::Ready,
            Message::Hooks,
            Message::Pid(4242),
            Message::Failed("mount /proc: EPERM".into()),
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        let (a, b) = pair().unwrap();
        a.send(&Message::Failed("x".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::Failed("x".into())));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
