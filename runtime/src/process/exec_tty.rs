//! `exec --tty`: a new pty on the container's devpts (we are in its mount namespace),
//! the master sent to --console-socket, the slave as controlling terminal and stdio.
//! Unlike the init's console, /dev/console is left alone: it belongs to the init.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::Box as ConsoleSize;

use crate::error::{Context, Error, Result};

pub fn setup(socket: &OwnedFd, size: Option<ConsoleSize>) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).ctx(|| "open /dev/ptmx")?;
    grantpt(&master).ctx(|| "grantpt")?;
    unlockpt(&master).ctx(|| "unlockpt")?;
    let slave_path = ptsname_r(&master).ctx(|| "ptsname")?;
    if let Some(size) = size {
        let ws = libc::winsize { ws_row: size.height() as u16, ws_col: size.width() as u16, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: valid fd and winsize struct.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        nix::errno::Errno::result(r).map_err(|e| Error::field("process.consoleSize", e.desc()))?;
    }
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(slave_path.as_bytes())], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .ctx(|| "send pty master to --console-socket")?;
    drop(master);
    let slave = nix::fcntl::open(slave_path.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, nix::sys::stat::Mode::empty())
        .ctx(|| format!("open {slave_path}"))?;
    nix::unistd::setsid().ctx(|| "setsid")?;
    // SAFETY: TIOCSCTTY on an open tty fd.
    let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(r).ctx(|| "make the pty the controlling terminal")?;
    for target in 0..3 {
        // SAFETY: dup2 onto the stdio numbers.
        let r = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        nix::errno::Errno::result(r).ctx(|| "dup pty onto stdio")?;
    }
    Ok(())
}
