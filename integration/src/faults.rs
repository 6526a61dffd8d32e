//! Fault-injection helpers: stop strata at a named checkpoint (STRATA_TEST_PAUSE_AT,
//! see the runtime's `container::checkpoint`), SIGKILL it, and run commands that must
//! not hang.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// Spawns `cmd` with STRATA_TEST_PAUSE_AT=`checkpoint` and returns once it has stopped there.
pub fn stopped_at(mut cmd: Command, checkpoint: &str) -> Child {
    cmd.env("STRATA_TEST_PAUSE_AT", checkpoint).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if proc_state(child.id()) == Some('T') {
            return child;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("strata exited ({st}) before reaching checkpoint {checkpoint}");
        }
        if Instant::now() > deadline {
            kill9(child);
            panic!("strata never reached checkpoint {checkpoint}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn kill9(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` to completion, failing the test if it takes more than `secs` (a command
/// that waits on a wedged id). Output goes through files, as in `output_of`.
pub fn bounded(mut cmd: Command, secs: u64) -> Output {
    let base =
        std::env::temp_dir().join(format!("strata-faults-{}-{:?}", std::process::id(), std::thread::current().id()));
    let (o, e) = (base.with_extension("out"), base.with_extension("err"));
    cmd.stdout(std::fs::File::create(&o).unwrap()).stderr(std::fs::File::create(&e).unwrap());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > Duration::from_secs(secs) {
            kill9(child);
            panic!("{cmd:?} hung for over {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output { status, stdout: std::fs::read(&o).unwrap(), stderr: std::fs::read(&e).unwrap() };
    let _ = std::fs::remove_file(&o);
    let _ = std::fs::remove_file(&e);
    out
}
