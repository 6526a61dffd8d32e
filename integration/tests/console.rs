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
    (out, master.map(master_text).unwrap_or_default())
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

/// The fd sent with SCM_RIGHTS; None when the peer sent none.
fn recv_fd(conn: &std::os::unix::net::UnixStream) -> Option<OwnedFd> {
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
        (!hdr.is_null()).then(|| OwnedFd::from_raw_fd(*(libc::CMSG_DATA(hdr) as *const i32)))
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
            output_of(b.command(&[
                "exec",
                "-d",
                "-t",
                "--console-socket",
                sock.to_str().unwrap(),
                "-u",
                "1000:1000",
                &id,
                "sh",
                "-c",
                SHOW_TTY,
            ]))
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
        (
            std::fs::read_to_string(&out_path).unwrap(),
            std::fs::read_to_string(&err_path).unwrap(),
            owner(&out_path),
            owner(&err_path),
        )
    });
}

/// Runs `line` (a shell command line) under `script`, i.e. with a real terminal as its
/// stdin/stdout/stderr, sized 33x99. Returns what reached the terminal, with the
/// terminal's \r dropped.
fn at_a_terminal(line: &str) -> String {
    let full = format!("stty rows 33 cols 99; {line}");
    let mut child = std::process::Command::new("timeout")
        .args(["60", "script", "-qfec", &full, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Our end of script's stdin stays open (no EOF typed) until it is done.
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_ne!(out.status.code(), Some(124), "timed out: {line}: {}", stdout(&out));
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

fn cli(b: &Bundle) -> String {
    format!("{} --root {}", b.runtime.display(), b.root.display())
}

/// What the container's terminal looks like from inside: the pty (not /dev/console),
/// -onlcr (runc clears it on a pty it proxies), and the caller's size.
const TTY_PROBE: &str = "tty | cut -c1-9; stty -a | grep -o .onlcr; stty size; test -t 0 && echo stdin-tty";
const PROBED: &str = "/dev/pts/\n-onlcr\n33 99\nstdin-tty\n";

/// runc sets the pty up concurrently with the process (exec) and its goroutines race
/// busybox's stty now and then ("stty: standard input: ..."): that noise is dropped.
fn without_stty_noise(text: &str) -> String {
    text.lines().filter(|l| !l.starts_with("stty: ")).map(|l| format!("{l}\n")).collect()
}

/// `run` in the foreground with process.terminal and no --console-socket: strata holds
/// the pty and proxies the terminal it was started from, like runc; also when stdin
/// isn't that terminal. Without any terminal both refuse before making anything.
#[test]
fn run_proxies_the_callers_terminal_as_runc_does() {
    let raw = std::cell::RefCell::new(Vec::new());
    differential("run-own-tty", |b, rt| {
        b.config["process"]["terminal"] = json!(true);
        b.sh(&format!("{TTY_PROBE}; exit 3"));
        b.write_config();
        let mut seen = Vec::new();
        for stdin in ["", "</dev/null"] {
            let id = b.id("rt");
            let text = at_a_terminal(&format!("{} run -b {} {id} {stdin}; echo rc=$?", cli(b), b.dir.display()));
            b.assert_nothing_left(&id, None);
            // runc sets the window size after the process starts and sometimes loses
            // that race: compare without the size line (strata's is checked below).
            let steady = without_stty_noise(&text);
            let is_size = |l: &str| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u32>().is_ok());
            seen.push(steady.lines().filter(|l| !is_size(l)).map(|l| format!("{l}\n")).collect::<String>());
            if rt == "strata" {
                raw.borrow_mut().push(text);
            }
        }
        let id = b.id("nott");
        let out = b.run(&id);
        b.assert_nothing_left(&id, None);
        (seen, out.status.success(), stdout(&out))
    });
    assert_eq!(*raw.borrow(), vec![format!("{PROBED}rc=3\n"); 2], "strata, noise included");
}

/// `exec -t` without --console-socket in the foreground (what a user types): the same
/// proxying, the process's exit code, stdin not a terminal is fine; process.consoleSize
/// gives way to the caller's size (strata sets it before the process runs; runc races
/// it). Without any terminal both refuse.
#[test]
fn exec_tty_uses_the_callers_terminal_as_runc_does() {
    let raw = std::cell::RefCell::new(Vec::new());
    differential("exec-own-tty", |b, rt| {
        b.args(&["sleep", "1000"]);
        let id = b.id("et");
        b.create(&id);
        assert_ok(&output_of(b.command(&["start", &id])), "start");
        let process = json!({ "terminal": true, "consoleSize": { "height": 30, "width": 100 }, "cwd": "/",
            "user": { "uid": 0, "gid": 0 }, "env": ["PATH=/bin"], "args": ["sh", "-c", format!("{TTY_PROBE}; exit 5")] });
        std::fs::write(b.dir.join("process.json"), process.to_string()).unwrap();
        let mut seen = Vec::new();
        for args in [
            format!("-t {id} sh -c '{TTY_PROBE}; exit 4'"),
            format!("-t {id} sh -c '{TTY_PROBE}' </dev/null"),
            format!("-p {} {id}", b.dir.join("process.json").display()),
        ] {
            let text = at_a_terminal(&format!("{} exec {args}; echo rc=$?", cli(b)));
            // runc's pty settings race the process here: compare the steady parts.
            seen.push(
                text.lines()
                    .filter(|l| l.starts_with("/dev/") || l.starts_with("stdin-") || l.starts_with("rc="))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            if rt == "strata" {
                raw.borrow_mut().push(text);
            }
        }
        let no_terminal = output_of(b.command(&["exec", "-t", &id, "true"]));
        assert_ok(&output_of(b.command(&["delete", "-f", &id])), "delete");
        b.assert_nothing_left(&id, None);
        (seen, no_terminal.status.success())
    });
    let want: Vec<String> = ["rc=4\n", "rc=0\n", "rc=5\n"].iter().map(|rc| format!("{PROBED}{rc}")).collect();
    assert_eq!(*raw.borrow(), want, "strata, noise included");
}

/// A stdin that never stops being readable (`yes |`) while the container neither reads
/// it nor keeps its terminal open: strata must neither block writing to the pty nor
/// spin, and must exit with the container's code as soon as it exits. (What the pty
/// echoes of stdin meanwhile is timing, not compared; runc copies stdin into the pty
/// until the end and uses a CPU second or two doing so.)
#[test]
fn a_stdin_that_stays_readable_neither_stalls_nor_spins() {
    let cpu = std::cell::Cell::new(std::time::Duration::ZERO);
    differential("yes-stdin", |b, _rt| {
        b.config["process"]["terminal"] = json!(true);
        b.sh("echo started; exec >/dev/null 2>&1 </dev/null; sleep 3; exit 4");
        b.write_config();
        let id = b.id("yes");
        let t = std::time::Instant::now();
        let line = format!("yes | /usr/bin/time -f cpu=%U+%S {} run -b {} {id}; echo rc=$?", cli(b), b.dir.display());
        let text = at_a_terminal(&line);
        let elapsed = t.elapsed();
        b.assert_nothing_left(&id, None);
        let used = text.lines().find_map(|l| l.split("cpu=").nth(1)).expect("time's report");
        let (user, sys) = used.split_once('+').unwrap();
        cpu.set(std::time::Duration::from_secs_f64(
            user.trim().parse::<f64>().unwrap() + sys.trim().parse::<f64>().unwrap(),
        ));
        (text.contains("started") && text.ends_with("rc=4\n"), elapsed < std::time::Duration::from_secs(20))
    });
    assert!(cpu.get() < std::time::Duration::from_millis(500), "strata used {:?} of CPU in 3 s", cpu.get());
}

/// A read-only /dev still gets the terminal bound on /dev/console (runc makes the mount
/// point before /dev turns read-only).
#[test]
fn a_read_only_dev_still_gets_dev_console() {
    differential("ro-dev-console", |b, _rt| {
        for m in b.config["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
        b.config["process"]["terminal"] = json!(true);
        b.sh("stat -c '%F %t' /dev/console; tty | cut -c1-9; touch /dev/x 2>/dev/null || echo dev-ro");
        b.write_config();
        let id = b.id("rdc");
        let dir = b.dir.to_str().unwrap().to_string();
        let (create, text) = through_console_socket(b, |sock| {
            let create = output_of(b.command(&["create", "--console-socket", sock.to_str().unwrap(), "-b", &dir, &id]));
            if create.status.success() {
                assert_ok(&output_of(b.command(&["start", &id])), "start");
            } else {
                // Nobody will send a terminal: unblock the receiver.
                let _ = std::os::unix::net::UnixStream::connect(b.dir.join("console.sock"));
            }
            create
        });
        if create.status.success() {
            b.wait_status(&id, "stopped");
            assert_ok(&output_of(b.command(&["delete", &id])), "delete");
        }
        b.assert_nothing_left(&id, None);
        (create.status.code(), text)
    });
}
