//! The lifecycle of runtime-spec runtime.md, driven through the CLI as an engine would:
//! status transitions, exit codes, and the host left clean after every path.

use serde_json::json;
use strata_integration::*;

#[test]
fn run_in_foreground_returns_the_exit_code_and_cleans_up() {
    let mut b = Bundle::new("run-exit");
    b.sh("echo out; echo err >&2; exit 3");
    let id = b.id("exit");
    let out = b.run(&id);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    b.assert_nothing_left(&id, None);
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    let mut b = Bundle::new("run-signal");
    b.args(&["sleep", "100"]);
    let id = b.id("sig");
    b.write_config();
    let mut child = b.command(&["run", "-b", b.dir.to_str().unwrap(), &id]).spawn().unwrap();
    b.wait_status(&id, "running");
    assert_ok(&output_of(b.command(&["kill", &id, "KILL"])), "kill KILL");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    b.assert_nothing_left(&id, None);
}

#[test]
fn run_forwards_signals_to_the_container() {
    let mut b = Bundle::new("run-forward");
    b.sh("trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done");
    let id = b.id("fwd");
    b.write_config();
    let mut child =
        b.command(&["run", "-b", b.dir.to_str().unwrap(), &id]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(42));
    b.assert_nothing_left(&id, None);
}

#[test]
fn create_start_kill_delete_walks_through_every_status() {
    let mut b = Bundle::new("lifecycle");
    b.sh("trap 'exit 0' TERM; while true; do sleep 0.05; done");
    b.config["annotations"] = json!({ "org.example.key": "value" });
    let id = b.id("life");
    let pid_file = b.dir.join("init.pid");
    let out = b.strata(&["create", "-b", b.dir.to_str().unwrap(), "--pid-file", pid_file.to_str().unwrap(), &id]);
    assert_ok(&out, "create");

    let st = b.state(&id).expect("state after create");
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    assert_eq!(st["rootfs"], b.dir.join("rootfs").to_str().unwrap());
    assert_eq!(st["annotations"]["org.example.key"], "value");
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    assert!(st["created"].as_str().unwrap().ends_with('Z'));
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && process_alive(pid));
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // Created means set up but not yet running the user's program.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sh", "the user process must not run before start");

    assert_ok(&output_of(b.command(&["start", &id])), "start");
    b.wait_status(&id, "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sh");
    // start on a running container is an error and changes nothing.
    let again = output_of(b.command(&["start", &id]));
    assert!(!again.status.success());
    assert!(stderr(&again).contains("running"), "{}", stderr(&again));
    // delete of a running container without --force is refused, container untouched.
    let del = output_of(b.command(&["delete", &id]));
    assert!(!del.status.success());
    assert_eq!(b.status(&id), "running");

    assert_ok(&output_of(b.command(&["kill", &id, "TERM"])), "kill TERM");
    b.wait_status(&id, "stopped");
    assert_eq!(b.state(&id).unwrap()["pid"], 0);
    let kill_stopped = output_of(b.command(&["kill", &id, "KILL"]));
    assert!(!kill_stopped.status.success(), "kill of a stopped container must fail");
    assert_ok(&output_of(b.command(&["delete", &id])), "delete");
    assert!(b.state(&id).is_none(), "state after delete");
    b.assert_nothing_left(&id, Some(pid));
}

#[test]
fn kill_accepts_names_with_and_without_sig_and_numbers() {
    for (n, sig) in ["SIGUSR1", "USR1", "10"].iter().enumerate() {
        let mut b = Bundle::new("killnames");
        b.sh("trap 'exit 9' USR1; touch /dev/shm/trap-set; while true; do sleep 0.05; done");
        let id = b.id(&format!("k{n}"));
        b.create(&id);
        assert_ok(&output_of(b.command(&["start", &id])), "start");
        // The shell is its pid namespace's init: a signal it has no handler for yet is
        // dropped by the kernel, so send it once the trap is set.
        let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap();
        let marker = std::path::PathBuf::from(format!("/proc/{pid}/root/dev/shm/trap-set"));
        assert!(strata_integration::engines::wait_until(5, || marker.exists()), "the trap was never set");
        assert_ok(&output_of(b.command(&["kill", &id, sig])), sig);
        b.wait_status(&id, "stopped");
        assert_ok(&output_of(b.command(&["delete", &id])), "delete");
    }
    let b = Bundle::new("killbad");
    let id = b.id("kbad");
    b.create(&id);
    let out = output_of(b.command(&["kill", &id, "NOSUCHSIG"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("NOSUCHSIG"));
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let mut b = Bundle::new("del-created");
    b.args(&["sleep", "100"]);
    let id = b.id("dc");
    b.create(&id);
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    assert_ok(&output_of(b.command(&["delete", &id])), "delete");
    b.assert_nothing_left(&id, Some(pid));
}

#[test]
fn delete_force_removes_a_running_container() {
    let mut b = Bundle::new("del-force");
    b.args(&["sleep", "100"]);
    let id = b.id("df");
    b.create(&id);
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete -f");
    b.assert_nothing_left(&id, Some(pid));
}

#[test]
fn detached_run_keeps_running_until_killed() {
    let mut b = Bundle::new("detach");
    b.args(&["sleep", "100"]);
    let id = b.id("det");
    let out = b.strata(&["run", "-d", "-b", b.dir.to_str().unwrap(), &id]);
    assert_ok(&out, "run -d");
    assert_eq!(b.status(&id), "running");
    assert_ok(&output_of(b.command(&["kill", &id, "KILL"])), "kill");
    b.wait_status(&id, "stopped");
    assert_ok(&output_of(b.command(&["delete", &id])), "delete");
}

#[test]
fn run_keep_leaves_a_stopped_container_to_inspect() {
    let mut b = Bundle::new("keep");
    b.sh("exit 0");
    let id = b.id("keep");
    let out = b.strata(&["run", "--keep", "-b", b.dir.to_str().unwrap(), &id]);
    assert_ok(&out, "run --keep");
    assert_eq!(b.status(&id), "stopped");
    assert_ok(&output_of(b.command(&["delete", &id])), "delete");
    b.assert_nothing_left(&id, None);
}

#[test]
fn list_shows_containers_in_table_json_and_quiet_forms() {
    let mut b = Bundle::new("list");
    b.args(&["sleep", "100"]);
    let (a, c) = (b.id("la"), b.id("lb"));
    b.create(&a);
    b.create(&c);
    let q = output_of(b.command(&["list", "-q"]));
    assert_eq!(stdout(&q), format!("{a}\n{c}\n"));
    let j = output_of(b.command(&["list", "-f", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["status"], "created");
    let t = stdout(&output_of(b.command(&["list"])));
    assert!(t.starts_with("ID"), "{t}");
    assert!(t.lines().any(|l| l.starts_with(&a) && l.contains("created")), "{t}");
}

#[test]
fn a_recycled_pid_never_reads_as_running() {
    let mut b = Bundle::new("recycled");
    b.args(&["sleep", "100"]);
    let id = b.id("rec");
    b.create(&id);
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    // Make the saved start time disagree, as it would for a new process on that pid.
    let path = b.root.join(&id).join("state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let pid = st["pid"].as_i64().unwrap() as i32;
    st["pid_start_time"] = json!(st["pid_start_time"].as_u64().unwrap() + 1);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(b.status(&id), "stopped");
    // And kill must not reach the process living on that pid.
    assert!(!output_of(b.command(&["kill", &id, "KILL"])).status.success());
    assert!(process_alive(pid));
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn concurrent_creates_of_one_id_let_exactly_one_win() {
    let mut b = Bundle::new("race");
    b.args(&["sleep", "100"]);
    b.write_config();
    let id = b.id("race");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let cmd = b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]);
            std::thread::spawn(move || output_of(cmd))
        })
        .collect();
    let outs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let wins = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{:?}", outs.iter().map(stderr).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(stderr(o).contains("already exists"), "{}", stderr(o));
    }
    assert_eq!(b.status(&id), "created");
}

#[test]
fn spec_features_and_version() {
    let dir = std::env::temp_dir().join(format!("strata-it-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("config.json"));
    let bin = strata_bin();
    let out = std::process::Command::new(&bin).args(["spec", "--rootless", "-b"]).arg(&dir).output().unwrap();
    assert_ok(&out, "spec --rootless");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert!(v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "user"));
    let again = std::process::Command::new(&bin).args(["spec", "-b"]).arg(&dir).output().unwrap();
    assert!(!again.status.success(), "spec must not overwrite config.json");
    std::fs::remove_dir_all(&dir).unwrap();

    let f = std::process::Command::new(&bin).arg("features").output().unwrap();
    let f: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["linux"]["namespaces"].as_array().unwrap().contains(&json!("time")));
    assert!(f["linux"]["capabilities"].as_array().unwrap().contains(&json!("CAP_SYS_ADMIN")));
    let v = stdout(&std::process::Command::new(&bin).arg("--version").output().unwrap());
    assert!(v.starts_with("strata version ") && v.contains("commit: ") && v.contains("spec: 1."), "{v}");
}

/// `strata spec` sets terminal: true; `run` in the foreground then gives the container
/// a pty and proxies the caller's terminal to it, like runc.
#[test]
fn run_with_a_terminal_proxies_the_callers_tty() {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let mut b = Bundle::new("run-tty");
    b.config["process"]["terminal"] = serde_json::json!(true);
    b.sh("read line; echo \"got $line on $(tty)\"; exit 5");
    b.write_config();
    let id = b.id("tty");
    let (mut master, mut slave) = (0, 0);
    assert_eq!(
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) },
        0
    );
    let slave_file = unsafe { std::fs::File::from_raw_fd(slave) };
    let mut cmd = b.command(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    cmd.stdin(slave_file.try_clone().unwrap()).stdout(slave_file.try_clone().unwrap()).stderr(slave_file);
    let mut child = cmd.spawn().unwrap();
    let mut m = unsafe { std::fs::File::from_raw_fd(master) };
    m.write_all(b"hello\r").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    // Read what reached our terminal (non-blocking: the child is gone).
    unsafe { libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("got hello on /dev/"), "{text:?}");
    b.assert_nothing_left(&id, None);
}

/// Containers on the default cgroup path share a `strata/` parent: whichever is deleted
/// first must neither fail nor leave its own cgroup in any hierarchy (v1 answers EBUSY
/// for a parent with children).
#[test]
fn deletes_around_a_shared_default_cgroup_parent_leave_nothing() {
    let mut a = Bundle::new("shared-a");
    a.args(&["sleep", "100"]);
    let mut b = Bundle::new("shared-b");
    b.args(&["sleep", "100"]);
    let (ida, idb) = (a.id("sa"), b.id("sb"));
    a.create(&ida);
    b.create(&idb);
    for (bundle, id) in [(&a, &ida), (&b, &idb)] {
        let t = std::time::Instant::now();
        assert_ok(&output_of(bundle.command(&["delete", "--force", id])), "delete");
        assert!(t.elapsed().as_secs() < 2, "delete stalled on the shared parent");
        bundle.assert_nothing_left(id, None);
    }
}
