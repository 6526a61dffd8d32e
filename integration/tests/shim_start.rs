//! The shim binary's `start` action, which containerd runs for every container (and a
//! kubelet's StartContainer waits on), must exit whatever signals reach it as it ends.
//!
//! The regression: containerd-shim (the crate) tears down its signal iterator by closing
//! the self-pipe's read end before it unregisters the handlers. A signal in between (in
//! a pod, the SIGCHLD of the shim process `start` spawned, which exits at once because
//! the pod's shim already serves the socket) made the handler's send() fail with EPIPE
//! and raise SIGPIPE, handled by the same handler: `start` spun forever and the CRI
//! StartContainer never answered (2 runs in 3 of engines_cri's pods in parallel).
//!
//! The window is microseconds wide, so the test widens the odds: many `start` actions,
//! several at a time, each under a storm of SIGCHLD until it exits. Before the fix, about
//! one `start` in 600 spun here; the test runs 1600.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_integration::shim::{shim_dir, SHIM_BIN};

const THREADS: usize = 4;
const RUNS_PER_THREAD: usize = 400;

/// Runs one `start` action in `bundle` under SIGCHLD until it exits (true) or 5 s pass
/// (false: it is killed).
fn start_under_signals(shim: &Path, bundle: &Path, id: &str) -> bool {
    std::fs::create_dir_all(bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let mut child = Command::new(shim)
        .args(["-namespace", "shim-start-test", "-id", id, "-publish-binary", "/bin/true", "-address"])
        .arg(bundle.join("containerd.sock"))
        .arg("start")
        // Nothing listens there: the shim `start` spawns gives up at once and exits.
        .env("TTRPC_ADDRESS", bundle.join("ttrpc.sock"))
        .current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        // SAFETY: plain kill(2) of our own unreaped child.
        unsafe { libc::kill(child.id() as i32, libc::SIGCHLD) };
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[test]
fn start_action_exits_under_a_storm_of_signals() {
    let shim = shim_dir().join(SHIM_BIN);
    let dir = std::env::temp_dir().join(format!("strata-shim-start-{}", std::process::id()));
    let hung: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (shim, dir) = (&shim, &dir);
                s.spawn(move || {
                    (0..RUNS_PER_THREAD)
                        .filter(|i| {
                            let id = format!("c{t}-{i}");
                            !start_under_signals(shim, &dir.join(&id), &id)
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(hung, 0, "{hung} of {} start actions never exited", THREADS * RUNS_PER_THREAD);
}
