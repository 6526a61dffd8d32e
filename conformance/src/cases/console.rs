//! config.md "Process" terminal and consoleSize with runc's `--console-socket`; and
//! the runc command-line contract for `--pid-file` and `--preserve-fds`.

use super::Entry;
use crate::ensure;
use crate::harness::{Ctx, Fail, R};
use serde_json::{json, Value};
use std::time::Duration;

pub const CASES: &[Entry] = &[
    (
        "terminal_pty",
        "config.md §Process terminal: true attaches a pseudoterminal to the process (sent on --console-socket)",
        |c| pty(c, None),
    ),
    ("console_size", "config.md §Process consoleSize: the console size in characters of the terminal", |c| {
        pty(c, Some((30, 100)))
    }),
    ("no_terminal_not_tty", "config.md §Process terminal: false (default) attaches no pseudoterminal", no_tty),
    ("pid_file", "runc(8) create --pid-file: the file holds the container process's pid (runc CLI contract)", pid_file),
    (
        "preserve_fds",
        "runc(8) run --preserve-fds N / runtime-linux.md §File descriptors (MAY): N extra fds from 3 are passed",
        preserve_fds,
    ),
];

/// Creates and starts a terminal container running the probe, returns its report.
fn pty(ctx: &mut Ctx, size: Option<(u16, u16)>) -> R {
    ctx.config["process"]["terminal"] = json!(true);
    if let Some((h, w)) = size {
        ctx.config["process"]["consoleSize"] = json!({ "height": h, "width": w });
    }
    ctx.args(&["/strata-probe"]);
    let sock = ctx.dir.join("console.sock");
    let rx = crate::console::listen(&sock).map_err(|e| format!("console socket: {e}"))?;
    let id = ctx.id();
    let s = sock.display().to_string();
    let o = ctx.create(&id, &["--console-socket", &s]);
    ensure!(o.ok(), "create with --console-socket failed: {}", o.brief());
    let o = ctx.start(&id);
    ensure!(o.ok(), "start failed: {}", o.brief());
    let out = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no pty master received, or it never closed".to_string())??;
    let line = out.lines().map(|l| l.trim_end_matches('\r')).find(|l| l.starts_with('{'));
    let r: Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| Fail::NotOk(format!("no report on the console: {out:.200}")))?;
    ensure!(r["tty"]["isatty"] == true, "stdin is not a tty: {}", r["tty"]);
    if let Some((h, w)) = size {
        ensure!(
            r["tty"]["rows"] == h && r["tty"]["cols"] == w,
            "console is {}x{}, want {h}x{w}",
            r["tty"]["rows"],
            r["tty"]["cols"]
        );
    }
    Ok(())
}

fn no_tty(ctx: &mut Ctx) -> R {
    let r = ctx.probe(&[])?;
    ensure!(r["tty"]["isatty"] == false, "stdin is a tty");
    Ok(())
}

fn pid_file(ctx: &mut Ctx) -> R {
    let id = ctx.id();
    let p = ctx.dir.join("pidfile").display().to_string();
    let o = ctx.create(&id, &["--pid-file", &p]);
    ensure!(o.ok(), "create --pid-file failed: {}", o.brief());
    let pid = ctx.state(&id)?["pid"].clone();
    let got = std::fs::read_to_string(&p).unwrap_or_default();
    ensure!(
        pid.as_i64().map(|p| p.to_string()).as_deref() == Some(got.trim()),
        "pid file holds {got:?}, state pid is {pid}"
    );
    Ok(())
}

fn preserve_fds(ctx: &mut Ctx) -> R {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    ctx.args(&["/strata-probe"]);
    let id = ctx.id();
    ctx.write_config();
    let extra = std::fs::File::open("/dev/null").unwrap();
    let fd = extra.as_raw_fd();
    let mut c = std::process::Command::new(&ctx.env.runtime);
    c.arg("--root").arg(&ctx.env.root).args(["run", "--preserve-fds", "1", "--bundle", &ctx.bundle(), &id]);
    // SAFETY: dup2 and fcntl are async-signal-safe; they run in the child between fork
    // and exec. dup2(3, 3) would keep FD_CLOEXEC, so an fd that already is 3 is
    // cleared instead.
    unsafe {
        c.pre_exec(move || {
            let r = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    };
    let o = crate::harness::run_cmd(c, &ctx.env.work, ctx.env.next());
    let r: Value = o
        .stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("run --preserve-fds 1 failed: {}", o.brief()))?;
    ensure!(r["fds"] == json!([0, 1, 2, 3]), "open fds are {}, want [0,1,2,3]", r["fds"]);
    Ok(())
}
