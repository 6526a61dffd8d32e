//! The process's stdio as containerd gives it: fifo paths (ctr, the CRI plugin), a
//! `file://` or `binary://` ([`crate::binlog`]) log URI, or nothing. Without a terminal the container gets the fifos
//! themselves (no copying through the shim): stdout and stderr are opened read-write,
//! as containerd-shim-runc-v2 keeps a reader open, so a writer never gets EPIPE once
//! the client that opened the fifo has gone (`ctr run -d`). With a terminal, strata
//! sends the pty master over a console socket and the shim copies between it and the
//! fifos.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::binlog::BinaryLog;

#[derive(Clone, Debug, Default)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

impl Stdio {
    /// In the helper: fds 0, 1, 2 become the container's stdio (/dev/null with a
    /// terminal: strata gives the container the pty's slave); a `binary://` log's
    /// output is its logger's pipes.
    pub fn install(&self, log: Option<&BinaryLog>) -> Result<(), String> {
        let (i, o, e) = match log {
            _ if self.terminal => (dev_null()?, dev_null()?, dev_null()?),
            Some(l) => (open_in(&self.stdin)?, dup(&l.stdout)?, dup(&l.stderr)?),
            None => (open_in(&self.stdin)?, open_out(&self.stdout)?, open_out(&self.stderr)?),
        };
        for (fd, target) in [(i, 0), (o, 1), (e, 2)] {
            // SAFETY: dup2 onto the stdio numbers of this single-threaded helper.
            if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
                return Err(format!("dup2 stdio: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

impl Stdio {
    /// The shim's own hold on the output fifos while the process runs (see
    /// [`crate::table::Proc::keep`]): fifos only, not logs or a terminal's.
    pub fn keep_open(&self) -> Vec<File> {
        if self.terminal {
            return Vec::new();
        }
        [&self.stdout, &self.stderr]
            .into_iter()
            .filter(|p| !p.is_empty() && !p.contains("://"))
            .filter_map(|p| OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(p).ok())
            .collect()
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, String> {
    fd.try_clone().map_err(|e| format!("dup: {e}"))
}

fn dev_null() -> Result<OwnedFd, String> {
    File::options().read(true).write(true).open("/dev/null").map(OwnedFd::from).map_err(|e| format!("/dev/null: {e}"))
}

/// The stdin fifo, read end. Non-blocking open (the writer may not be there yet), then
/// blocking reads.
fn open_in(path: &str) -> Result<OwnedFd, String> {
    if path.is_empty() {
        return dev_null();
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("open stdin {path}: {e}"))?;
    set_blocking(f.as_raw_fd());
    Ok(f.into())
}

/// stdout/stderr: a fifo (read-write, see the module docs) or a `file://` log.
fn open_out(uri: &str) -> Result<OwnedFd, String> {
    if uri.is_empty() {
        return dev_null();
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map(OwnedFd::from)
            .map_err(|e| format!("open log {path}: {e}"));
    }
    if uri.contains("://") {
        return Err(format!("{uri}: only fifos, file:// and binary:// logs are supported by strata's shim"));
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(uri)
        .map(OwnedFd::from)
        .map_err(|e| format!("open {uri}: {e}"))
}

fn set_blocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
}

/// A unix socket strata's create/exec connects to and sends the pty master over
/// (runc's --console-socket). Short path under the temp dir: bundle paths can exceed
/// the 108 bytes of a socket address.
pub struct ConsoleSocket {
    listener: UnixListener,
    pub path: PathBuf,
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket, String> {
        let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("strata-shim-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        Ok(ConsoleSocket { listener, path })
    }

    /// The master strata sent (queued before create/exec returned).
    pub fn receive(&self) -> Result<OwnedFd, String> {
        self.listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let (conn, _) = self.listener.accept().map_err(|e| format!("accept console connection: {e}"))?;
        conn.set_nonblocking(false).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(|e| format!("receive pty master: {e}"))?;
        for c in msg.cmsgs().map_err(|e| e.to_string())? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err("the container sent no terminal".into())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A process's pty master and the two threads copying it to and from the fifos.
pub struct Pty {
    master: File,
    done: Arc<AtomicBool>,
}

impl Pty {
    /// Copies the terminal's output to the stdout fifo or log (a `binary://` log's pipe).
    pub fn start(master: OwnedFd, io: &Stdio, log: Option<&BinaryLog>) -> Result<Arc<Pty>, String> {
        let master = File::from(master);
        let done = Arc::new(AtomicBool::new(false));
        let out = match log {
            Some(l) => dup(&l.stdout).map(File::from)?,
            None => open_out(&io.stdout).map(File::from)?,
        };
        let mut reader = master.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            let mut out = out;
            let mut buf = [0u8; 8192];
            // EIO once every slave fd is closed: the process and its children are gone.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        if !io.stdin.is_empty() {
            // Read-write: the read end never sees EOF between two writers; CloseIO or
            // the process's exit ends the copy.
            let input = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&io.stdin)
                .map_err(|e| format!("open stdin {}: {e}", io.stdin))?;
            let mut writer = master.try_clone().map_err(|e| e.to_string())?;
            let done = done.clone();
            std::thread::spawn(move || copy_stdin(input, &mut writer, &done));
        }
        Ok(Arc::new(Pty { master, done }))
    }

    pub fn resize(&self, width: u32, height: u32) {
        let ws = libc::winsize { ws_row: height as u16, ws_col: width as u16, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ with a valid winsize on our master fd.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// CloseIO: the client's stdin is done; the terminal's reader gets end-of-file.
    pub fn close_stdin(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            let _ = (&self.master).write_all(&[4]);
        }
    }

    /// The process exited: stop the stdin copy.
    pub fn stop(&self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

fn copy_stdin(mut input: File, master: &mut File, done: &AtomicBool) {
    let mut buf = [0u8; 8192];
    while !done.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd { fd: input.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
            continue;
        }
        match input.read(&mut buf) {
            Ok(n @ 1..) if !done.load(Ordering::SeqCst) => {
                if master.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}
