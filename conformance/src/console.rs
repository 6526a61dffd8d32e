//! The receiving end of `--console-socket`: a unix socket on which the runtime sends
//! the pty master (SCM_RIGHTS); everything read from the master comes back as text.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};

/// Listens at `path`; the receiver yields the console output once the pty closes
/// (or the error that stopped it).
pub fn listen(path: &Path) -> std::io::Result<Receiver<Result<String, String>>> {
    let l = UnixListener::bind(path)?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let r = (|| {
            let (s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
            let fd = recv_fd(s.as_raw_fd())?;
            // SAFETY: fd was just received and is owned by nobody else.
            let mut master = unsafe { std::fs::File::from_raw_fd(fd) };
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match master.read(&mut buf) {
                    Ok(0) | Err(_) => break, // EIO once the last slave closes
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        })();
        let _ = tx.send(r);
    });
    Ok(rx)
}

/// Receives one file descriptor sent with SCM_RIGHTS on `sock`.
fn recv_fd(sock: RawFd) -> Result<RawFd, String> {
    let mut data = [0u8; 512];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr points at live buffers for the duration of recvmsg.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        if libc::recvmsg(sock, &mut msg, 0) < 0 {
            return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err("no SCM_RIGHTS message on the console socket".into());
        }
        Ok(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))
    }
}
