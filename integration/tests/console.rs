//! The terminal a container gets, compared with runc: through --console-socket (what
//! engines use) for the init and for `exec -t`, and the caller's own terminal when
//! strata is the other end of the pty (`run`, `exec -t` in the foreground).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Output;

use serde_json::json;
use strata_integration::*;

/// Listens on BUNDLE/console.sock, runs `cmd(socket)`, and returns its output and
/// what the container wrote to the pty whose master came through the socket.
fn through_console_socket(b: &Bundle, cmd: impl FnOnce(&Path) -> Output) -> (Output, String) {
    let sock = b.dir.join("console.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_fd(&conn)
    });
    let out = cmd(&sock);
    let master = receiver.join().unwrap();
    let _ = std::fs::remove_file(&sock);
    (out, master_text(master))
}

/// Everything left in the pty, read until its slave side is gone (EIO), with the
/// terminal's \r\n turned back into \n.
fn master_text(master: OwnedFd) -> String {
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn recv_fd(conn: &std::os::unix::net::UnixStream) -> OwnedFd {
    let mut buf = [0u8; 256];
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr points at live buffers for the duration of the call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg);
        assert!(libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        assert!(!hdr.is_null(), "no fd received");
        OwnedFd::from_raw_fd(*(libc::CMSG_DATA(hdr) as *const i32))
    }
}

/// Owner, group and mode of the process's terminal and of /dev/console.
const SHOW_TTY: &str = "stat -c '%u:%g:%a' $(tty); stat -c '%u:%g:%a' /dev/console; id -u";

/// `docker run -it --user 1000`: the pty handed to the init belongs to the user (runc:
/// 1000:5:620; the group stays devpts' gid=5).
#[test]
fn the_inits_terminal_belongs_to_the_process_user() {
    differential("tty-owner", |b, _rt| {
        b.config["process"]["terminal"] = json!(true);
        b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        b.sh(SHOW_TTY);
        b.write_config();
        let id = b.id("tty");
        let dir = b.dir.to_str().unwrap().to_string();
        let (create, text) = through_console_socket(b, |sock| {
            let create = output_of(b.command(&["create", "--console-socket", sock.to_str().unwrap(), "-b", &dir, &id]));
            assert_ok(&create, "create");
            assert_ok(&output_of(b.command(&["start", &id])), "start");
            create
        });
        b.wait_status(&id, "stopped");
        assert_ok(&output_of(b.command(&["delete", &id])), "delete");
        b.assert_nothing_left(&id, None);
        (create.status.code(), text)
    });
}

/// `docker exec -it --user 1000`: the same for a process joining the container (runc
/// takes --console-socket only with --detach, as engines call it).
#[test]
fn an_exec_terminal_belongs_to_the_process_user() {
    differential("exec-tty-owner", |b, _rt| {
        b.args(&["sleep", "1000"]);
        let id = b.id("etty");
        b.create(&id);
        assert_ok(&output_of(b.command(&["start", &id])), "start");
        let (exec, text) = through_console_socket(b, |sock| {
            output_of(b.command(&["exec", "-d", "-t", "--console-socket", sock.to_str().unwrap(), "-u", "1000:1000", &id, "sh", "-c", SHOW_TTY]))
        });
        assert_ok(&output_of(b.command(&["delete", "-f", &id])), "delete");
        b.assert_nothing_left(&id, None);
        (exec.status.code(), text)
    });
}

/// Without a terminal, the stdio the caller passed is given to the user the same way
/// (runc chowns it, keeping the group; /dev/null is left alone), so a process running
/// as 1000 can reopen /dev/stdout. What is left on the host: the files' owners.
#[test]
fn stdio_files_are_given_to_the_process_user_as_runc_does() {
    use std::os::unix::fs::MetadataExt;
    differential("stdio-owner", |b, _rt| {
        b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        b.sh("echo again > /dev/stdout; stat -L -c %u:%g /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2");
        b.write_config();
        let id = b.id("stdio");
        let (out_path, err_path) = (b.dir.join("out.txt"), b.dir.join("err.txt"));
        let mut create = b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]);
        create.stdout(std::fs::File::create(&out_path).unwrap()).stderr(std::fs::File::create(&err_path).unwrap());
        assert!(create.status().unwrap().success(), "create: {}", std::fs::read_to_string(&err_path).unwrap());
        assert_ok(&output_of(b.command(&["start", &id])), "start");
        b.wait_status(&id, "stopped");
        assert_ok(&output_of(b.command(&["delete", &id])), "delete");
        b.assert_nothing_left(&id, None);
        let owner = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        (std::fs::read_to_string(&out_path).unwrap(), std::fs::read_to_string(&err_path).unwrap(), owner(&out_path), owner(&err_path))
    });
}
