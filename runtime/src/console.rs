//! process.terminal with --console-socket: the init makes a pty on the container's own
//! devpts, sends the master to the socket with SCM_RIGHTS (what conmon and containerd's
//! shim wait for), and makes the slave its controlling terminal, stdio and /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
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
    if PROXIED.load(Ordering::Relaxed) {
        let mut t = tcgetattr(&master).ctx(|| "tcgetattr pty")?;
        t.output_flags.remove(OutputFlags::ONLCR);
        tcsetattr(&master, SetArg::TCSANOW, &t).ctx(|| "clear ONLCR on the pty")?;
    }
    if let Some(size) = size {
        let ws =
            libc::winsize { ws_row: size.height() as u16, ws_col: size.width() as u16, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: valid fd and winsize struct.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        nix::errno::Errno::result(r).map_err(|e| Error::field("process.consoleSize", e.desc()))?;
    }
    let fds = [master.as_raw_fd()];
    let name = slave_path.as_bytes();
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
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

/// Set by a runtime that will proxy the pty itself ([`OwnConsole::new`]); the container
/// process it then forks inherits it and clears ONLCR on the new pty before anything
/// runs there, as runc's proxy does (the caller's terminal adds the \r). A pty sent to
/// an engine's --console-socket keeps the kernel's defaults.
static PROXIED: AtomicBool = AtomicBool::new(false);

/// The container's pty coming back to strata itself (`run`, or `exec -t`, in the
/// foreground without --console-socket), as runc does: strata proxies the terminal it
/// was started from. The master arrives on a socketpair, so nobody else can hand us a
/// terminal or take the container's.
pub struct OwnConsole {
    ours: OwnedFd,
    host: OwnedFd,
}

impl OwnConsole {
    /// Finds the caller's terminal first (none: an error, before anything is made) and
    /// returns the socket end the container sends its master on.
    pub fn new() -> Result<(OwnConsole, OwnedFd)> {
        let host = host_terminal()?;
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .ctx(|| "create the console socketpair")?;
        PROXIED.store(true, Ordering::Relaxed);
        Ok((OwnConsole { ours, host }, theirs))
    }

    /// The caller's terminal size, for a process that starts running before we get its
    /// pty (`exec`): given as its consoleSize, the pty has it from the start.
    pub fn size(&self) -> Option<ConsoleSize> {
        // SAFETY: winsize is plain data; all zeroes is a valid value.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and winsize buffer.
        if unsafe { libc::ioctl(self.host.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } != 0 {
            return None;
        }
        oci_spec::runtime::BoxBuilder::default().height(ws.ws_row).width(ws.ws_col).build().ok()
    }

    /// The master the container sent (queued before `create`/`exec` returned); the
    /// caller's terminal goes raw and lends its size to the pty.
    pub fn accept(self) -> Result<Terminal> {
        let master = receive_master(&self.ours)?;
        copy_winsize(self.host.as_raw_fd(), master.as_raw_fd());
        let raw = RawMode::enter(self.host.as_raw_fd());
        Ok(Terminal { _raw: raw, master, host: self.host })
    }
}

/// A pty master strata proxies, and the caller's terminal (raw while this lives).
pub struct Terminal {
    // Declared first: restores the terminal before `host` closes.
    _raw: Option<RawMode>,
    master: OwnedFd,
    host: OwnedFd,
}

/// runc's choice of the caller's terminal: stderr, stdout or stdin, whichever is one
/// first (they may be redirected), else the controlling terminal.
fn host_terminal() -> Result<OwnedFd> {
    for fd in [2, 1, 0] {
        // SAFETY: stdio fds stay open for the process's lifetime; isatty only queries.
        if unsafe { libc::isatty(fd) } == 1 {
            // SAFETY: as above.
            let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
            return bfd.try_clone_to_owned().ctx(|| "dup the terminal");
        }
    }
    nix::fcntl::open("/dev/tty", OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| {
            Error::field(
                "process.terminal",
                format!("no terminal to attach to (open /dev/tty: {}): pass --console-socket", e.desc()),
            )
        })
}

fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .ctx(|| "receive the pty master")?;
    for c in msg.cmsgs().ctx(|| "read control message")? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us and nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::Init("the container sent no terminal".into()))
}

/// Puts a terminal in raw mode for as long as the guard lives.
pub struct RawMode {
    fd: i32,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// None when `fd` is not a terminal.
    pub fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: the caller keeps `fd` open for the guard's lifetime.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = tcgetattr(bfd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        // Output processing stays on, as with runc: the container's "\n" (its pty has
        // -onlcr) still reaches the terminal as "\r\n".
        raw.output_flags = saved.output_flags;
        tcsetattr(bfd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        let bfd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = tcsetattr(bfd, SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to terminal `to` (on start and SIGWINCH).
pub fn copy_winsize(from: i32, to: i32) {
    // SAFETY: winsize is plain data; all zeroes is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid winsize buffers; failures (not a tty) are ignored.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Waits for `pid` (our child, or adopted as a subreaper), forwarding the signals in
/// `set` to it; with `tty`, copies stdin to the pty and the pty to stdout meanwhile.
/// Returns its exit code (128+N if killed by N).
///
/// Writes to the pty never block (a container that doesn't read its stdin can't stall
/// us), and stdin is read only when the last read has reached the pty, so a stdin that
/// stays readable neither spins the loop nor piles up.
pub fn wait_forwarding(pid: i32, set: &SigSet, tty: Option<Terminal>) -> Result<i32> {
    let pid = Pid::from_raw(pid);
    let sigfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ctx(|| "signalfd")?;
    if let Some(t) = &tty {
        nix::fcntl::fcntl(&t.master, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .ctx(|| "pty master O_NONBLOCK")?;
    }
    // SAFETY: stdin stays open for the process's lifetime.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let (mut master_open, mut stdin_open) = (tty.is_some(), tty.is_some());
    // Read from stdin, not yet written to the pty.
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let (mut at_master, mut at_stdin) = (None, None);
        if let (Some(t), true) = (&tty, master_open) {
            let events = if pending.is_empty() { PollFlags::POLLIN } else { PollFlags::POLLIN | PollFlags::POLLOUT };
            at_master = Some(fds.len());
            fds.push(PollFd::new(t.master.as_fd(), events));
            if stdin_open && pending.is_empty() {
                at_stdin = Some(fds.len());
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            r => r.ctx(|| "poll")?,
        };
        let revents = |at: Option<usize>| at.and_then(|i| fds[i].revents()).unwrap_or(PollFlags::empty());
        let (signals, from_master, from_stdin) = (revents(Some(0)), revents(at_master), revents(at_stdin));
        drop(fds);
        if let Some(t) = &tty {
            if from_master.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                master_open = copy_out(&t.master, &mut buf);
            }
            if master_open && from_master.contains(PollFlags::POLLOUT) {
                match nix::unistd::write(&t.master, &pending) {
                    Ok(n) => drop(pending.drain(..n)),
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    // Nobody on the other side any more: stdin has nowhere to go.
                    Err(_) => {
                        pending.clear();
                        stdin_open = false;
                    }
                }
            }
            if !from_stdin.is_empty() {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
        }
        if signals.is_empty() {
            continue;
        }
        while let Ok(Some(info)) = sigfd.read_signal() {
            let sig = info.ssi_signo as i32;
            match sig {
                libc::SIGCHLD => {
                    if let Some(code) = reap(pid) {
                        // Whatever the container printed last is still in the pty.
                        if let (Some(t), true) = (&tty, master_open) {
                            while copy_out(&t.master, &mut buf) {}
                        }
                        drop(tty);
                        return Ok(code);
                    }
                }
                libc::SIGWINCH if tty.is_some() => {
                    let t = tty.as_ref().expect("checked");
                    copy_winsize(t.host.as_raw_fd(), t.master.as_raw_fd());
                }
                // Our (possibly zombie) child: its pid can't be reused before we reap it.
                _ => {
                    let _ = Signal::try_from(sig).map(|s| kill(pid, s));
                }
            }
        }
    }
}

/// Copies what the pty master has to stdout; false once the pty is gone (EIO: every
/// slave fd closed) or stdout is, true when it simply has nothing more right now.
fn copy_out(master: &OwnedFd, buf: &mut [u8]) -> bool {
    match nix::unistd::read(master, buf) {
        Ok(0) => false,
        Ok(n) => {
            // SAFETY: stdout stays open for the process's lifetime.
            let out = unsafe { BorrowedFd::borrow_raw(1) };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                match nix::unistd::write(out, rest) {
                    Ok(w) => rest = &rest[w..],
                    Err(Errno::EINTR) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
        Err(Errno::EAGAIN | Errno::EINTR) => true,
        Err(_) => false,
    }
}

/// Reaps exited children; `pid`'s exit code once it is among them.
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
