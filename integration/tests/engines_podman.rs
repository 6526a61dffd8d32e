//! podman (with conmon) drives strata end to end. Every scenario runs twice: against
//! strata and against Debian's runc as the control, so a failure that shows up under
//! both is the setup's, and one under strata alone is strata's. Each scenario asserts
//! what a podman user sees (output, exit codes, inspect fields) and, where it matters,
//! what the host sees (cgroup values, leftovers).

use std::time::Instant;

use strata_integration::engines::{Podman, Runtime, IMAGE};
use strata_integration::{assert_ok, stderr, stdout};

strata_integration::scenarios!(
    run_returns_output_and_exit_codes,
    detached_logs_exec_top_stats,
    exec_with_a_tty,
    stop_sends_sigterm_then_sigkill_after_the_timeout,
    kill_delivers_the_signal,
    pause_freezes_and_unpause_thaws,
    restart_runs_the_process_again,
    read_only_rootfs,
    user_workdir_env,
    bind_volumes_and_tmpfs,
    memory_and_pids_limits_are_set_and_enforced,
    update_changes_the_limits_of_a_running_container,
    cap_drop_and_cap_add,
    seccomp_default_and_unconfined,
    tty_run,
    interactive_tty_reads_what_the_user_types,
    fifty_containers_in_a_row_leave_nothing,
    missing_binary_error_reaches_the_user,
    bad_mount_error_reaches_the_user,
);

/// CapEff from /proc/self/status as printed inside the container.
fn cap_eff(out: &str) -> u64 {
    let line = out.lines().find(|l| l.starts_with("CapEff:")).unwrap_or_else(|| panic!("no CapEff in {out}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn run_returns_output_and_exit_codes(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(&[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"), "stderr: {}", stderr(&out));
    let out = p.run(&[], &["true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let out = p.run(&[], &["false"]);
    assert_eq!(out.status.code(), Some(1), "a container that exits non-zero: {}", stderr(&out));
    p.assert_nothing_left();
}

fn detached_logs_exec_top_stats(rt: &Runtime) {
    let p = Podman::new(rt);
    let name = p.run_detached("det", &[], &["sh", "-c", "echo hello-from-detached; exec sleep 1000"]);
    assert!(p.wait_log(&name, "hello-from-detached"), "logs: {}", stdout(&p.podman(&["logs", &name])));
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");

    let out = p.podman(&["exec", "-e", "X=42", &name, "sh", "-c", "echo exec:$X; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out), "exec:42\n");

    let out = p.podman(&["exec", "--user", "1000:1000", "--workdir", "/home/user", &name, "sh", "-c", "id -u; pwd"]);
    assert_ok(&out, "podman exec --user --workdir");
    assert_eq!(stdout(&out), "1000\n/home/user\n");

    let out = p.podman(&["top", &name, "pid", "args"]);
    assert_ok(&out, "podman top");
    assert!(stdout(&out).contains("sleep 1000"), "top: {}", stdout(&out));

    let out = p.podman(&["stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", &name]);
    assert_ok(&out, "podman stats");
    let s = stdout(&out);
    assert!(s.starts_with("1 "), "stats should count the one process: {s}");
    assert!(!s.contains(" 0B /"), "stats should show memory use: {s}");

    let out = p.podman(&["rm", "-f", "-t", "0", &name]);
    assert_ok(&out, "podman rm -f");
    let out = p.podman(&["ps", "-a", "-q"]);
    assert_eq!(stdout(&out), "", "rm leaves no container");
    p.assert_nothing_left();
}

fn exec_with_a_tty(rt: &Runtime) {
    let p = Podman::new(rt);
    let name = p.run_detached("exect", &[], &["sleep", "1000"]);
    let out = p.podman(&["exec", "-t", &name, "sh", "-c", "tty; test -t 1 && echo is-a-tty"]);
    assert_ok(&out, "podman exec -t");
    let s = stdout(&out);
    assert!(s.contains("/dev/pts/"), "exec -t: {s}");
    assert!(s.contains("is-a-tty"), "exec -t: {s}");
    let out = p.podman(&["exec", &name, "sh", "-c", "test -t 1 || echo not-a-tty"]);
    assert_eq!(stdout(&out), "not-a-tty\n", "plain exec has no tty: {}", stderr(&out));
}

fn stop_sends_sigterm_then_sigkill_after_the_timeout(rt: &Runtime) {
    let p = Podman::new(rt);
    // A process that exits on SIGTERM: stop returns quickly with its exit code.
    let polite = p.run_detached(
        "polite",
        &[],
        &["sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done"],
    );
    assert!(p.wait_log(&polite, "ready"));
    let t = Instant::now();
    assert_ok(&p.podman(&["stop", "-t", "20", &polite]), "podman stop");
    assert!(t.elapsed().as_secs() < 10, "SIGTERM should have stopped it: {:?}", t.elapsed());
    assert_eq!(p.inspect(&polite, "{{.State.ExitCode}}"), "42");
    assert!(p.wait_log(&polite, "got-term"));

    // A process that ignores SIGTERM: SIGKILL after the 2 s timeout.
    let stubborn =
        p.run_detached("stubborn", &[], &["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"]);
    assert!(p.wait_log(&stubborn, "ready"));
    let t = Instant::now();
    let out = p.podman(&["stop", "-t", "2", &stubborn]);
    assert_ok(&out, "podman stop");
    let took = t.elapsed();
    assert!(took.as_millis() >= 1900, "SIGKILL came before the timeout: {took:?}");
    assert!(took.as_secs() < 15, "stop took {took:?}");
    assert_eq!(p.inspect(&stubborn, "{{.State.ExitCode}}"), "137");
    assert_eq!(p.inspect(&stubborn, "{{.State.Status}}"), "exited");
    assert_ok(&p.podman(&["rm", &polite, &stubborn]), "podman rm");
    p.assert_nothing_left();
}

fn kill_delivers_the_signal(rt: &Runtime) {
    let p = Podman::new(rt);
    let name =
        p.run_detached("kill", &[], &["sh", "-c", "trap 'exit 10' USR1; echo ready; while true; do sleep 0.1; done"]);
    assert!(p.wait_log(&name, "ready"));
    assert_ok(&p.podman(&["kill", "-s", "USR1", &name]), "podman kill -s USR1");
    assert_ok(&p.podman(&["wait", &name]), "podman wait");
    assert_eq!(p.inspect(&name, "{{.State.ExitCode}}"), "10");

    let name = p.run_detached("killk", &[], &["sleep", "1000"]);
    assert_ok(&p.podman(&["kill", &name]), "podman kill");
    assert_ok(&p.podman(&["wait", &name]), "podman wait");
    assert_eq!(p.inspect(&name, "{{.State.ExitCode}}"), "137");
}

fn pause_freezes_and_unpause_thaws(rt: &Runtime) {
    let p = Podman::new(rt);
    let name = p.run_detached("pause", &[], &["sleep", "1000"]);
    let freezer = p.cgroup_dir(&name, "freezer").join("freezer.state");
    assert_ok(&p.podman(&["pause", &name]), "podman pause");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "paused");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    assert_ok(&p.podman(&["unpause", &name]), "podman unpause");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");
    // A paused container can still be removed by force.
    assert_ok(&p.podman(&["pause", &name]), "podman pause");
    assert_ok(&p.podman(&["rm", "-f", "-t", "0", &name]), "podman rm -f of a paused container");
    p.assert_nothing_left();
}

fn restart_runs_the_process_again(rt: &Runtime) {
    let p = Podman::new(rt);
    let vol = p.dir.join("restart-vol");
    std::fs::create_dir(&vol).unwrap();
    let v = format!("{}:/data", vol.display());
    let name = p.run_detached("restart", &["-v", &v], &["sh", "-c", "echo start >> /data/log; exec sleep 1000"]);
    assert!(strata_integration::engines::wait_until(10, || std::fs::read_to_string(vol.join("log"))
        .unwrap_or_default()
        == "start\n"));
    assert_ok(&p.podman(&["restart", "-t", "0", &name]), "podman restart");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    assert!(
        strata_integration::engines::wait_until(10, || std::fs::read_to_string(vol.join("log")).unwrap_or_default()
            == "start\nstart\n"),
        "the process did not run again: {:?}",
        std::fs::read_to_string(vol.join("log"))
    );
}

fn read_only_rootfs(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(&["--read-only"], &["sh", "-c", "touch /etc/x; echo rc=$?; touch /tmp/ok && echo tmp-writable"]);
    assert_ok(&out, "podman run --read-only");
    assert_eq!(stdout(&out), "rc=1\ntmp-writable\n");
    assert!(stderr(&out).contains("Read-only file system"), "stderr: {}", stderr(&out));
}

fn user_workdir_env(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(
        &["--user", "1000:1000", "--workdir", "/home/user", "-e", "GREETING=hi there"],
        &["sh", "-c", "id -u; id -g; pwd; echo \"$GREETING\""],
    );
    assert_ok(&out, "podman run --user --workdir -e");
    assert_eq!(stdout(&out), "1000\n1000\n/home/user\nhi there\n");
}

fn bind_volumes_and_tmpfs(rt: &Runtime) {
    let p = Podman::new(rt);
    let rw = p.dir.join("vol-rw");
    let ro = p.dir.join("vol-ro");
    std::fs::create_dir(&rw).unwrap();
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("in"), "from-host\n").unwrap();
    let (vrw, vro) = (format!("{}:/rw", rw.display()), format!("{}:/ro:ro", ro.display()));
    let out = p.run(
        &["-v", &vrw, "-v", &vro, "--tmpfs", "/scratch:size=1m,mode=1777"],
        &["sh", "-c", "echo from-container > /rw/out; cat /ro/in; touch /ro/x 2>/dev/null || echo ro-denied; grep ' /scratch ' /proc/mounts"],
    );
    assert_ok(&out, "podman run -v --tmpfs");
    let s = stdout(&out);
    assert!(s.starts_with("from-host\nro-denied\n"), "{s}");
    let tmpfs = s.lines().nth(2).unwrap_or("");
    assert!(tmpfs.starts_with("tmpfs /scratch tmpfs"), "tmpfs mount: {tmpfs}");
    assert!(tmpfs.contains("size=1024k"), "tmpfs size: {tmpfs}");
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "from-container\n");
    assert!(!ro.join("x").exists());
}

fn memory_and_pids_limits_are_set_and_enforced(rt: &Runtime) {
    let p = Podman::new(rt);
    let limits = ["--memory", "32m", "--memory-swap", "32m", "--pids-limit", "20"];
    let out =
        p.run(&limits, &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"]);
    assert_ok(&out, "podman run --memory --pids-limit");
    assert_eq!(stdout(&out), "33554432\n20\n");
    // More processes than pids.max: forks fail inside the container.
    // busybox sh gives up at the first failed fork; it prints a line per started child.
    let out = p.run(&limits, &["sh", "-c", "for i in $(seq 30); do sleep 3 & echo $i; done"]);
    let started = stdout(&out).lines().count();
    assert!((15..20).contains(&started), "30 forks under pids.max=20 started {started}: {}", stderr(&out));
    assert!(stderr(&out).contains("can't fork"), "stderr: {}", stderr(&out));
    // A 100 MiB buffer in a 32 MiB cgroup: the OOM killer ends it.
    let out = p.run(&limits, &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    assert_eq!(out.status.code(), Some(137), "dd should be OOM-killed: {}", stderr(&out));
}

/// `podman update` hands the new resources to the runtime's `update --resources`.
fn update_changes_the_limits_of_a_running_container(rt: &Runtime) {
    let p = Podman::new(rt);
    let name = p.run_detached("update", &["--memory", "32m"], &["sleep", "1000"]);
    let mem = p.cgroup_dir(&name, "memory").join("memory.limit_in_bytes");
    let shares = p.cgroup_dir(&name, "cpu").join("cpu.shares");
    assert_eq!(std::fs::read_to_string(&mem).unwrap(), "33554432\n");
    let out = p.podman(&["update", "--memory", "64m", "--cpu-shares", "512", &name]);
    assert_ok(&out, "podman update");
    assert_eq!(std::fs::read_to_string(&mem).unwrap(), "67108864\n");
    assert_eq!(std::fs::read_to_string(&shares).unwrap(), "512\n");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
}

fn cap_drop_and_cap_add(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(&["--cap-drop", "ALL", "--cap-add", "NET_RAW"], &["cat", "/proc/self/status"]);
    assert_ok(&out, "podman run --cap-drop ALL --cap-add NET_RAW");
    assert_eq!(cap_eff(&stdout(&out)), 1 << 13, "only CAP_NET_RAW");
    let out = p.run(&[], &["cat", "/proc/self/status"]);
    let default = cap_eff(&stdout(&out));
    assert_ne!(default & 1, 0, "CAP_CHOWN is in podman's default set");
    let out = p
        .run(&["--cap-drop", "CHOWN"], &["sh", "-c", "grep CapEff /proc/self/status; chown 1000 /tmp && echo chowned"]);
    assert_eq!(cap_eff(&stdout(&out)), default & !1, "default minus CAP_CHOWN");
    assert!(!stdout(&out).contains("chowned"), "chown without CAP_CHOWN succeeded");
}

fn seccomp_default_and_unconfined(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(&[], &["grep", "^Seccomp:", "/proc/self/status"]);
    assert_ok(&out, "podman run");
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("2"), "default profile is a filter: {}", stdout(&out));
    // The default profile denies swapoff even with CAP_SYS_ADMIN: EPERM, not the kernel's EINVAL.
    let out = p.run(&["--cap-add", "SYS_ADMIN"], &["sh", "-c", "swapoff /dev/null 2>&1; true"]);
    assert!(stdout(&out).contains("Operation not permitted"), "swapoff under the default profile: {}", stdout(&out));
    let out = p.run(&["--security-opt", "seccomp=unconfined"], &["grep", "^Seccomp:", "/proc/self/status"]);
    assert_ok(&out, "podman run --security-opt seccomp=unconfined");
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("0"), "unconfined: {}", stdout(&out));
    let out = p.run(
        &["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"],
        &["sh", "-c", "swapoff /dev/null 2>&1; true"],
    );
    assert!(stdout(&out).contains("Invalid argument"), "swapoff unconfined reaches the kernel: {}", stdout(&out));
}

fn tty_run(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(&["-t"], &["sh", "-c", "tty; test -t 0 && test -t 1 && echo both-ttys; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    // The terminal turns \n into \r\n: the output went through the container's pty.
    assert_eq!(stdout(&out), "/dev/pts/0\r\nboth-ttys\r\n");
}

/// `podman run -it` as a user at a terminal: `script` gives podman a pty for its stdin,
/// the typed line reaches the container's shell through conmon and strata's console.
fn interactive_tty_reads_what_the_user_types(rt: &Runtime) {
    let p = Podman::new(rt);
    let parent = format!("/{}", p.cgroup_parent);
    let cmd = p.command(&[
        "run",
        "--rm",
        "-it",
        "--network",
        "none",
        "--cgroup-parent",
        &parent,
        IMAGE,
        "sh",
        "-c",
        "read x; echo got:$x; exit 4",
    ]);
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    // timeout: a lost keystroke must fail the test, not hang it.
    let mut child = std::process::Command::new("timeout")
        .args(["60", "script", "-qfec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(4), "podman run -it: {:?}", stdout(&out));
    assert!(stdout(&out).contains("got:hello\r\n"), "podman run -it: {:?}", stdout(&out));
}

fn fifty_containers_in_a_row_leave_nothing(rt: &Runtime) {
    let p = Podman::new(rt);
    for i in 0..50 {
        let out = p.run(&[], &["sh", "-c", &format!("echo n{i}")]);
        assert_ok(&out, &format!("container {i}"));
        assert_eq!(stdout(&out), format!("n{i}\n"));
    }
    let out = p.podman(&["ps", "-a", "-q"]);
    assert_eq!(stdout(&out), "");
    p.assert_nothing_left();
}

fn missing_binary_error_reaches_the_user(rt: &Runtime) {
    let p = Podman::new(rt);
    let out = p.run(&[], &["/no/such/binary"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(&*rt.path.to_string_lossy()) && e.contains(rt.missing_binary_msg),
        "podman's stderr lacks {}'s message: {e}",
        rt.name
    );
    assert!(e.contains("/no/such/binary"), "{e}");
    p.assert_nothing_left();
}

fn bad_mount_error_reaches_the_user(rt: &Runtime) {
    let p = Podman::new(rt);
    let vol = p.dir.join("vol");
    std::fs::create_dir(&vol).unwrap();
    // The destination is below a regular file of the image: only the runtime finds out.
    let v = format!("{}:/bin/busybox/sub", vol.display());
    let out = p.run(&["-v", &v], &["true"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(&*rt.path.to_string_lossy()) && e.contains(rt.bad_mount_msg),
        "podman's stderr lacks {}'s message: {e}",
        rt.name
    );
    assert!(e.contains("/bin/busybox/sub"), "{e}");
    p.assert_nothing_left();
}
