//! `binary://` log URIs: containerd's logging-binary protocol, run as
//! containerd-shim-runc-v2 runs it (pkg/process NewBinaryIO). The binary at the URI's
//! path gets the process's stdout and stderr as the read ends of two pipes on fds 3
//! and 4, and on fd 5 the write end of a third, which it closes (or writes to) once it
//! is ready; the shim waits for that before the process starts. Its arguments are the
//! query's pairs (`?k=v&f` gives `k v f ""`), its environment CONTAINER_ID and
//! CONTAINER_NAMESPACE only, its own stdio /dev/null. The shim keeps the write ends
//! until the process is deleted, then sends the logger SIGTERM and waits for it.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// A running logging binary and the write ends of its output pipes.
pub struct BinaryLog {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub pid: i32,
}

/// The path and arguments of a `binary://PATH?QUERY` URI; None for any other URI.
pub fn parse(uri: &str) -> Option<(String, Vec<String>)> {
    let rest = uri.strip_prefix("binary://")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut args: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (unescape(k), unescape(v));
        // Go's url.Values: the first value of each key.
        if !seen.contains(&k) {
            seen.push(k.clone());
            args.extend([k, v]);
        }
    }
    Some((unescape(path), args))
}

/// Query-string percent decoding (`+` is a space), as Go's url.QueryUnescape.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl BinaryLog {
    /// Starts the logger of `uri` for container `id` and waits until it is ready.
    pub fn start(uri: &str, id: &str, namespace: &str) -> Result<BinaryLog, String> {
        let (path, args) = parse(uri).ok_or_else(|| format!("{uri}: not a binary:// log URI"))?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        // Above 5, so the dup2s onto 3, 4, 5 in the child never overwrite a source.
        let sources = [high(&out_r)?, high(&err_r)?, high(&ready_w)?];
        let raw = [sources[0].as_raw_fd(), sources[1].as_raw_fd(), sources[2].as_raw_fd()];
        let mut cmd = Command::new(&path);
        cmd.args(&args)
            .env_clear()
            .env("CONTAINER_ID", id)
            .env("CONTAINER_NAMESPACE", namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: dup2 only, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for (target, fd) in (3..).zip(raw) {
                    if libc::dup2(fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("start logging binary {path}: {e}"))?;
        let pid = child.id() as i32;
        // The shim's reaper collects it (the shim is a subreaper): never waited here.
        drop(child);
        drop((sources, out_r, err_r, ready_w));
        // Ready: a byte, or end-of-file once the logger has closed fd 5 (or died).
        let mut byte = [0u8; 1];
        std::fs::File::from(ready_r).read(&mut byte).map_err(|e| format!("wait for logging binary {path}: {e}"))?;
        Ok(BinaryLog { stdout: out_w, stderr: err_w, pid })
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A close-on-exec duplicate of `fd` numbered 10 or above.
fn high(fd: &OwnedFd) -> Result<OwnedFd, String> {
    let n = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(|e| format!("dup: {e}"))?;
    // SAFETY: fcntl just made this fd, owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(n) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_come_from_the_query_pairs() {
        let (path, args) = parse("binary:///usr/bin/log%20ger?id=a%2Fb&flag&x=1+2&id=again").unwrap();
        assert_eq!(path, "/usr/bin/log ger");
        assert_eq!(args, ["id", "a/b", "flag", "", "x", "1 2"]);
        assert_eq!(parse("binary:///bin/l"), Some(("/bin/l".to_string(), vec![])));
        assert_eq!(parse("file:///x"), None);
    }
}
