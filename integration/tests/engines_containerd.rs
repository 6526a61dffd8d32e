//! containerd drives strata through its runc v2 shim: `ctr run --runc-binary` sets the
//! shim's `BinaryName` option, the same field a Kubernetes RuntimeClass handler's
//! `options.BinaryName` sets through the CRI plugin. Each scenario runs against strata
//! and against Debian's runc as the control, on a private containerd per test.

use std::process::{Command, Stdio};

use strata_integration::engines::{wait_until, Containerd, Runtime};
use strata_integration::{assert_ok, output_of, stderr, stdout};

strata_integration::scenarios!(
    run_returns_output_and_exit_codes,
    detached_exec_ps_metrics,
    tty_run_and_exec,
    kill_term_then_kill,
    pause_freezes_and_resume_thaws,
    read_only_env_cwd,
    bind_and_tmpfs_mounts,
    memory_limit_is_set_and_enforced,
    cap_drop_and_cap_add,
    seccomp_default_and_none,
    fifty_containers_in_a_row_leave_nothing,
    missing_binary_error_reaches_the_user,
    bad_mount_error_reaches_the_user,
);

/// Runs a ctr command under a pseudo-terminal (`script`): ctr's `-t` wants its own
/// stdin to be a console.
fn under_pty(c: &Containerd, args: &[String]) -> std::process::Output {
    let cmd = c.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    let mut s = Command::new("script");
    s.args(["-qfec", &line.join(" "), "/dev/null"]).stdin(Stdio::null());
    output_of(s)
}

fn cap_eff(out: &str) -> u64 {
    let line = out.lines().find(|l| l.starts_with("CapEff:")).unwrap_or_else(|| panic!("no CapEff in {out}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn run_returns_output_and_exit_codes(rt: &Runtime) {
    let c = Containerd::new(rt);
    let out = c.run(&[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"));
    let out = c.run(&[], &["true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    c.assert_nothing_left();
}

fn detached_exec_ps_metrics(rt: &Runtime) {
    let c = Containerd::new(rt);
    let name = c.run_detached("det", &[], &["sleep", "1000"]);
    assert_eq!(c.task_status(&name), "RUNNING");
    let out = c.ctr(&[
        "task",
        "exec",
        &c.fifo_dir_flag(),
        "--exec-id",
        "e1",
        "--cwd",
        "/tmp",
        &name,
        "sh",
        "-c",
        "pwd; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out), "/tmp\n");
    let out = c.ctr(&["task", "exec", &c.fifo_dir_flag(), "--exec-id", "e2", "--user", "1000", &name, "id", "-u"]);
    assert_ok(&out, "ctr task exec --user");
    assert_eq!(stdout(&out), "1000\n");

    let out = c.ctr(&["task", "ps", &name]);
    assert_ok(&out, "ctr task ps");
    let pids: Vec<_> = stdout(&out).lines().skip(1).filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    assert_eq!(pids.len(), 1, "one process: {pids:?}");
    let pid = pids[0].split_whitespace().next().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\u{0}1000\u{0}");

    let out = c.ctr(&["task", "metrics", &name]);
    assert_ok(&out, "ctr task metrics");
    let m = stdout(&out);
    let pids_current = m.lines().find(|l| l.starts_with("pids.current")).and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(pids_current, Some("1"), "metrics: {m}");
    let mem = m
        .lines()
        .find(|l| l.starts_with("memory.usage_in_bytes"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    assert!(mem.unwrap_or(0) > 0, "memory use: {m}");

    c.remove(&name);
    assert_eq!(stdout(&c.ctr(&["container", "ls", "-q"])), "");
    c.assert_nothing_left();
}

fn tty_run_and_exec(rt: &Runtime) {
    let c = Containerd::new(rt);
    let name = strata_integration::engines::unique("tty");
    let args = c.run_args("--rm", &name, &["-t"], &["sh", "-c", "tty; exit 6"]);
    let out = under_pty(&c, &args);
    assert_eq!(out.status.code(), Some(6), "ctr run -t: {} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("/dev/pts/0"), "ctr run -t: {:?}", stdout(&out));

    let name = c.run_detached("exect", &[], &["sleep", "1000"]);
    let fifo = c.fifo_dir_flag();
    let args: Vec<String> =
        ["task", "exec", &fifo, "-t", "--exec-id", "t1", &name, "sh", "-c", "tty; test -t 1 && echo is-a-tty"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let out = under_pty(&c, &args);
    assert_ok(&out, "ctr task exec -t");
    assert!(stdout(&out).contains("/dev/pts/"), "exec -t: {:?}", stdout(&out));
    assert!(stdout(&out).contains("is-a-tty"), "exec -t: {:?}", stdout(&out));
    c.remove(&name);
    c.assert_nothing_left();
}

fn kill_term_then_kill(rt: &Runtime) {
    let c = Containerd::new(rt);
    // A task that exits on SIGTERM: `ctr run` returns its exit code.
    let name = strata_integration::engines::unique("term");
    let args = c.run_args("--rm", &name, &[], &["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"]);
    let mut fg = c.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(Stdio::null()).spawn().unwrap();
    assert!(wait_until(15, || c.task_status(&name) == "RUNNING"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_ok(&c.ctr(&["task", "kill", "-s", "TERM", &name]), "ctr task kill -s TERM");
    let status = fg.wait().unwrap();
    assert_eq!(status.code(), Some(42));

    // A task that ignores SIGTERM survives it, and SIGKILL ends it with 137.
    let name = strata_integration::engines::unique("stubborn");
    let args = c.run_args("--rm", &name, &[], &["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]);
    let mut fg = c.command(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(Stdio::null()).spawn().unwrap();
    assert!(wait_until(15, || c.task_status(&name) == "RUNNING"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_ok(&c.ctr(&["task", "kill", "-s", "TERM", &name]), "ctr task kill -s TERM");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(c.task_status(&name), "RUNNING", "SIGTERM is ignored");
    assert_ok(&c.ctr(&["task", "kill", "-s", "KILL", &name]), "ctr task kill -s KILL");
    assert_eq!(fg.wait().unwrap().code(), Some(137));
    c.assert_nothing_left();
}

fn pause_freezes_and_resume_thaws(rt: &Runtime) {
    let c = Containerd::new(rt);
    let name = c.run_detached("pause", &[], &["sleep", "1000"]);
    let freezer = format!("/sys/fs/cgroup/freezer/{}/freezer.state", c.cgroup_path(&name));
    assert_ok(&c.ctr(&["task", "pause", &name]), "ctr task pause");
    assert_eq!(c.task_status(&name), "PAUSED");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    assert_ok(&c.ctr(&["task", "resume", &name]), "ctr task resume");
    assert_eq!(c.task_status(&name), "RUNNING");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");
    c.remove(&name);
    c.assert_nothing_left();
}

fn read_only_env_cwd(rt: &Runtime) {
    let c = Containerd::new(rt);
    let out = c.run(
        &["--read-only", "--env", "GREETING=hi there", "--cwd", "/home/user"],
        &["sh", "-c", "pwd; echo \"$GREETING\"; touch /etc/x; echo rc=$?"],
    );
    assert_ok(&out, "ctr run --read-only --env --cwd");
    assert_eq!(stdout(&out), "/home/user\nhi there\nrc=1\n");
    assert!(stderr(&out).contains("Read-only file system"), "stderr: {}", stderr(&out));
}

fn bind_and_tmpfs_mounts(rt: &Runtime) {
    let c = Containerd::new(rt);
    let rw = c.dir.join("vol-rw");
    let ro = c.dir.join("vol-ro");
    std::fs::create_dir(&rw).unwrap();
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("in"), "from-host\n").unwrap();
    let mrw = format!("type=bind,src={},dst=/rw,options=rbind:rw", rw.display());
    let mro = format!("type=bind,src={},dst=/ro,options=rbind:ro", ro.display());
    let out = c.run(
        &["--mount", &mrw, "--mount", &mro, "--mount", "type=tmpfs,src=tmpfs,dst=/scratch,options=size=1m"],
        &["sh", "-c", "echo from-container > /rw/out; cat /ro/in; touch /ro/x 2>/dev/null || echo ro-denied; grep ' /scratch ' /proc/mounts"],
    );
    assert_ok(&out, "ctr run --mount");
    let s = stdout(&out);
    assert!(s.starts_with("from-host\nro-denied\n"), "{s}");
    let tmpfs = s.lines().nth(2).unwrap_or("");
    assert!(tmpfs.starts_with("tmpfs /scratch tmpfs") && tmpfs.contains("size=1024k"), "tmpfs mount: {tmpfs}");
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "from-container\n");
    assert!(!ro.join("x").exists());
}

fn memory_limit_is_set_and_enforced(rt: &Runtime) {
    let c = Containerd::new(rt);
    // containerd's default spec mounts no cgroupfs: read the limit from the host.
    let name = c.run_detached("mem", &["--memory-limit", "33554432"], &["sleep", "1000"]);
    let file = format!("/sys/fs/cgroup/memory/{}/memory.limit_in_bytes", c.cgroup_path(&name));
    assert_eq!(std::fs::read_to_string(file).unwrap(), "33554432\n");
    c.remove(&name);
    let out = c.run(&["--memory-limit", "33554432"], &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    assert_eq!(out.status.code(), Some(137), "dd should be OOM-killed: {}", stderr(&out));
}

fn cap_drop_and_cap_add(rt: &Runtime) {
    let c = Containerd::new(rt);
    let default = cap_eff(&stdout(&c.run(&[], &["cat", "/proc/self/status"])));
    assert_ne!(default & 1, 0, "CAP_CHOWN is in containerd's default set");
    assert_eq!(default & (1 << 21), 0, "CAP_SYS_ADMIN is not");
    let out = c.run(
        &["--cap-drop", "CAP_CHOWN", "--cap-add", "CAP_SYS_ADMIN"],
        &["sh", "-c", "grep CapEff /proc/self/status; chown 1000 /tmp && echo chowned"],
    );
    assert_eq!(cap_eff(&stdout(&out)), (default & !1) | (1 << 21), "{}", stdout(&out));
    assert!(!stdout(&out).contains("chowned"), "chown without CAP_CHOWN succeeded");
}

fn seccomp_default_and_none(rt: &Runtime) {
    let c = Containerd::new(rt);
    let out = c.run(&[], &["grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("0"), "ctr runs unconfined by default: {}", stdout(&out));
    let out = c.run(&["--seccomp"], &["grep", "^Seccomp:", "/proc/self/status"]);
    assert_ok(&out, "ctr run --seccomp");
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("2"), "--seccomp: {}", stdout(&out));
    let out = c.run(&["--seccomp", "--cap-add", "CAP_SYS_ADMIN"], &["sh", "-c", "swapoff /dev/null 2>&1; true"]);
    assert!(stdout(&out).contains("Operation not permitted"), "swapoff under the default profile: {}", stdout(&out));
}

/// Through containerd's runc shim, which now and then loses a fast container's output
/// (see `Containerd::run_echoes`): two lost outputs in fifty are tolerated.
fn fifty_containers_in_a_row_leave_nothing(rt: &Runtime) {
    let c = Containerd::new(rt);
    c.run_echoes(50, 2);
    assert_eq!(stdout(&c.ctr(&["container", "ls", "-q"])), "");
    c.assert_nothing_left();
}

fn missing_binary_error_reaches_the_user(rt: &Runtime) {
    let c = Containerd::new(rt);
    let out = c.run(&[], &["/no/such/binary"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(rt.missing_binary_msg) && e.contains("/no/such/binary"),
        "ctr's stderr lacks {}'s message: {e}",
        rt.name
    );
    c.assert_nothing_left();
}

fn bad_mount_error_reaches_the_user(rt: &Runtime) {
    let c = Containerd::new(rt);
    let vol = c.dir.join("vol");
    std::fs::create_dir(&vol).unwrap();
    let m = format!("type=bind,src={},dst=/bin/busybox/sub,options=rbind", vol.display());
    let out = c.run(&["--mount", &m], &["true"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(rt.bad_mount_msg) && e.contains("/bin/busybox/sub"),
        "ctr's stderr lacks {}'s message: {e}",
        rt.name
    );
    c.assert_nothing_left();
}
