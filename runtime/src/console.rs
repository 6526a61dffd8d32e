//! process.terminal with --console-socket: the init makes a pty on the container's own
//! devpts, sends the master to the socket with SCM_RIGHTS (what conmon and containerd's
//! shim wait for), and makes the slave its controlling terminal, stdio and /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::Box as ConsoleSize;

use crate::error::{Context, Error, Result};

/// Connects to the engine's console socket (before the clone: the path is on the host).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path).map_err(|e| Error::os(format!("--console-socket {}", path.display()), e))?;
    Ok(OwnedFd::from(stream))
}

/// In a container process (the init after pivot_root, or an exec'd process in the
/// container's mount namespace): make a pty on the container's devpts, hand the master
/// to the console socket, adopt the slave as controlling terminal and stdio. Only the
/// init also makes it /dev/console (`is_init`); an exec leaves that to the init.
pub fn setup(socket: &OwnedFd, size: Option<ConsoleSize>, is_init: bool) -> Result<()> {
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
    let name = slave_path.as_bytes();
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(name)], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .ctx(|| "send pty master to --console-socket")?;
    drop(master);

    let slave = nix::fcntl::open(slave_path.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, nix::sys::stat::Mode::empty())
        .ctx(|| format!("open {slave_path}"))?;
    if is_init {
        bind_dev_console(&slave_path);
    }
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

/// /dev/console becomes the pty (best effort: a /dev the config bind-mounted from
/// elsewhere may not allow it).
fn bind_dev_console(slave_path: &str) {
    let console = Path::new("/dev/console");
    if !console.exists() {
        let _ = std::fs::File::create(console);
    }
    let _ = mount(Some(slave_path), console, None::<&str>, MsFlags::MS_BIND, None::<&str>);
}

/// `run` in the foreground with a terminal and no --console-socket: strata itself is
/// the console socket's other end, then proxies its own stdio to the pty (runc's
/// behaviour for interactive use).
pub struct PtyListener {
    listener: std::os::unix::net::UnixListener,
    pub path: std::path::PathBuf,
}

impl PtyListener {
    pub fn new() -> Result<PtyListener> {
        let path = std::env::temp_dir().join(format!("strata-console-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| Error::os(format!("bind {}", path.display()), e))?;
        Ok(PtyListener { listener, path })
    }

    /// The pty master the init sent (it is queued before `create` returns).
    pub fn receive_master(&self) -> Result<OwnedFd> {
        let (conn, _) = self.listener.accept().map_err(|e| Error::os("accept console connection", e))?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .ctx(|| "receive pty master")?;
        for c in msg.cmsgs().ctx(|| "read control message")? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us.
                    return Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::Init("the container sent no terminal".into()))
    }
}

impl Drop for PtyListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Puts a terminal in raw mode for as long as the guard lives.
pub struct RawMode {
    fd: i32,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// None when `fd` is not a terminal.
    pub fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: the fd is one of our stdio fds, open for the process's lifetime.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let saved = nix::sys::termios::tcgetattr(bfd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(bfd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(bfd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to terminal `to` (on start and SIGWINCH).
pub fn copy_winsize(from: i32, to: i32) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid winsize buffers; failures (not a tty) are ignored.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}
