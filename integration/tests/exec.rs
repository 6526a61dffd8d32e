//! `strata exec` end to end: the process lands in the init's namespaces and cgroup,
//! takes the flags' user/env/cwd/caps, returns its exit status, detaches with a pid
//! file, talks through a console socket, refuses stopped/paused/unknown containers,
//! and never exposes the host strata binary to the container (CVE-2019-5736 class).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use serde_json::json;
use strata_integration::*;

/// A started container running `sleep 1000`.
fn running(b: &mut Bundle, name: &str) -> (String, String) {
    b.args(&["sleep", "1000"]);
    let id = b.id(name);
    b.create(&id);
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap().to_string();
    (id, pid)
}

fn exec(b: &Bundle, args: &[&str]) -> std::process::Output {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    output_of(b.command(&full))
}

const NAMESPACES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "uts", "user", "time"];

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_init() {
    for userns in [false, true] {
        let mut b = Bundle::new("ns");
        if userns {
            b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "user" }));
            b.config["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
            b.config["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
        }
        let (id, pid) = running(&mut b, "ns");
        let script =
            format!("for n in {}; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup", NAMESPACES.join(" "));
        let out = exec(&b, &[&id, "sh", "-c", &script]);
        assert_ok(&out, "exec");
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        for (i, ns) in NAMESPACES.iter().enumerate() {
            assert_eq!(lines[i], ns_link(&pid, ns), "{ns} (userns={userns})");
        }
        // Inside the init's cgroup namespace both see the same paths.
        let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let exec_cg: Vec<&str> = lines[NAMESPACES.len()..].to_vec();
        assert_eq!(exec_cg.len(), init_cg.lines().count(), "{text}");
        assert!(exec_cg.iter().all(|l| l.ends_with(":/")), "exec'd process sits at its cgroup ns root: {text}");
        if userns {
            let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
            assert!(map.contains("200000"), "{map}");
        }
    }
}

#[test]
fn exit_codes_and_death_by_signal_come_back() {
    let mut b = Bundle::new("codes");
    let (id, _) = running(&mut b, "codes");
    assert_eq!(exec(&b, &[&id, "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(exec(&b, &[&id, "true"]).status.code(), Some(0));
    assert_eq!(exec(&b, &[&id, "sh", "-c", "kill -9 $$"]).status.code(), Some(137));
    let missing = exec(&b, &[&id, "/no/such/program"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no such file"), "{}", stderr(&missing));
}

#[test]
fn user_env_cwd_groups_and_caps_flags_apply() {
    let mut b = Bundle::new("flags");
    let (id, _) = running(&mut b, "flags");
    let out = exec(
        &b,
        &[
            "-u",
            "1000:1001",
            "-g",
            "44",
            "-e",
            "FOO=bar",
            "-e",
            "HOME=/home/x",
            "--cwd",
            "/dev",
            &id,
            "sh",
            "-c",
            "id -u; id -g; id -G; echo $FOO $HOME; echo $PATH; pwd",
        ],
    );
    assert_ok(&out, "exec");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    assert!(lines[2].split(' ').any(|g| g == "44"), "{text}");
    assert_eq!(lines[3], "bar /home/x");
    assert!(lines[4].contains("/bin"), "the container's env is kept: {text}");
    assert_eq!(lines[5], "/dev");

    // Capability sets from /proc/self/status: the config's for run's init and plain
    // exec, plus CAP_SYS_ADMIN (bit 21) with --cap; noNewPrivileges with --no-new-privs.
    let caps = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend([id.as_str(), "sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"]);
        let out = exec(&b, &full);
        assert_ok(&out, "exec caps");
        stdout(&out)
    };
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap();
    let init = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let init_eff = init.lines().find(|l| l.starts_with("CapEff")).unwrap().to_string();
    let plain = caps(&[]);
    assert!(plain.contains(&init_eff), "exec gets the config's caps: {plain} vs {init_eff}");
    let eff = |s: &str| {
        u64::from_str_radix(s.lines().find(|l| l.starts_with("CapEff")).unwrap().split_whitespace().nth(1).unwrap(), 16)
            .unwrap()
    };
    assert_eq!(eff(&plain) & (1 << 21), 0);
    let added = caps(&["--cap", "CAP_SYS_ADMIN", "--no-new-privs"]);
    assert_eq!(eff(&added), eff(&plain) | (1 << 21), "{added}");
    assert!(added.contains("NoNewPrivs:\t1"), "{added}");
}

#[test]
fn process_file_replaces_the_process() {
    let mut b = Bundle::new("pfile");
    let (id, _) = running(&mut b, "pfile");
    let file = b.dir.join("process.json");
    let p = json!({ "args": ["sh", "-c", "echo $WHO; pwd; id -u"], "env": ["WHO=file", "PATH=/bin"], "cwd": "/proc",
                    "user": { "uid": 5, "gid": 5 }, "terminal": false });
    std::fs::write(&file, p.to_string()).unwrap();
    let out = exec(&b, &["--process", file.to_str().unwrap(), &id]);
    assert_ok(&out, "exec -p");
    assert_eq!(stdout(&out), "file\n/proc\n5\n");
}

#[test]
fn detach_writes_the_pid_file_and_the_process_lives_in_the_container() {
    let mut b = Bundle::new("detach");
    let (id, init) = running(&mut b, "detach");
    let pid_file = b.dir.join("exec.pid");
    let t0 = std::time::Instant::now();
    let out = exec(&b, &["-d", "--pid-file", pid_file.to_str().unwrap(), &id, "sleep", "1000"]);
    assert_ok(&out, "exec -d");
    assert!(t0.elapsed().as_secs() < 5, "detach returned at once");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert!(process_alive(pid.parse().unwrap()));
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");
    for ns in NAMESPACES {
        assert_eq!(ns_link(&pid, ns), ns_link(&init, ns), "{ns}");
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    // delete --force takes the exec'd process down with the container.
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!process_alive(pid.parse().unwrap()), "exec'd process outlived the container");
}

#[test]
fn unknown_stopped_and_paused_containers_are_refused() {
    let mut b = Bundle::new("refuse");
    let out = exec(&b, &["no-such-container", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    b.args(&["true"]);
    let stopped = b.id("stopped");
    b.create(&stopped);
    assert_ok(&output_of(b.command(&["start", &stopped])), "start");
    b.wait_status(&stopped, "stopped");
    let out = exec(&b, &[&stopped, "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));

    let (id, _) = running(&mut b, "paused");
    assert_ok(&output_of(b.command(&["pause", &id])), "pause");
    let out = exec(&b, &[&id, "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    // --ignore-paused: the process is made (frozen) and runs once resumed.
    let out = exec(&b, &["--ignore-paused", "-d", &id, "sh", "-c", "echo ran > /dev/shm/flag"]);
    assert_ok(&out, "exec --ignore-paused");
    // A task joining a frozen v1 freezer makes it FREEZING until the task is frozen too.
    b.wait_status(&id, "paused");
    assert_ok(&output_of(b.command(&["resume", &id])), "resume");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = stdout(&exec(&b, &[&id, "cat", "/dev/shm/flag"]));
        if seen == "ran\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(seen, "ran\n");
}

#[test]
fn the_container_seccomp_profile_applies_to_exec() {
    let mut b = Bundle::new("seccomp");
    b.config["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 36 }] });
    let (id, _) = running(&mut b, "seccomp");
    let out = exec(&b, &[&id, "sh", "-c", "mkdir /dev/shm/d 2>&1; grep Seccomp: /proc/self/status"]);
    assert_ok(&out, "exec");
    let text = stdout(&out);
    assert!(text.contains("File name too long"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
}

#[test]
fn tty_exec_sends_a_pty_master_to_the_console_socket() {
    let mut b = Bundle::new("tty");
    let (id, _) = running(&mut b, "tty");
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let master = recv_fd(&conn);
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Reads until the slave side is gone (EIO).
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let out = exec(
        &b,
        &[
            "-t",
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            "tty; test -t 0 && echo stdin-is-tty; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = reader.join().unwrap();
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("stdin-is-tty"), "{text:?}");
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
        assert!(libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) > 0);
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS);
        OwnedFd::from_raw_fd(*(libc::CMSG_DATA(c) as *const i32))
    }
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split(' ').next().unwrap().to_string()
}

/// CVE-2019-5736 class: a container process must never open the host strata binary
/// for writing through /proc/PID/exe of a strata process, neither the init waiting
/// for `start` (pid 1 of the container) nor the short-lived strata fork that `exec`
/// puts into the container's pid namespace before execve.
#[test]
fn the_host_strata_binary_cannot_be_opened_for_writing_from_inside() {
    // A private copy of the binary, so a failure can't break other tests.
    let mut b = Bundle::new("cve-5736");
    let bin = b.dir.join("strata-copy");
    std::fs::copy(strata_bin(), &bin).unwrap();
    let before = sha256(&bin);
    b.args(&["sleep", "1000"]);
    b.write_config();
    let run = |args: &[&str]| {
        output_of({
            let mut c = Command::new(&bin);
            c.arg("--root").arg(&b.root).args(args).stdin(std::process::Stdio::null());
            c
        })
    };

    // 1. Container created, not started: pid 1 is strata's init waiting on the fifo.
    let id = b.id("cve");
    assert_ok(&run(&["create", "-b", b.dir.to_str().unwrap(), &id]), "create");
    let probe = "cat /proc/1/comm; readlink /proc/1/exe || echo exe-hidden; \
                 (echo x > /proc/1/exe) 2>&1 && echo WROTE || echo refused";
    let out = run(&["exec", &id, "sh", "-c", probe]);
    assert_ok(&out, "exec into the created container");
    let text = stdout(&out);
    assert!(text.starts_with("strata"), "pid 1 is strata's init before start: {text}");
    assert!(text.contains("exe-hidden"), "the init's exe link must not resolve: {text}");
    assert!(text.contains("refused") && !text.contains("WROTE"), "{text}");

    // 2. Started, an attacker loops over every pid while execs come and go.
    assert_ok(&run(&["start", &id]), "start");
    let attacker = "while [ ! -e /dev/shm/stop ]; do for p in /proc/[0-9]*; do \
                    c=$(cat $p/comm 2>/dev/null); [ \"$c\" = strata-copy ] && echo saw >> /dev/shm/log; \
                    (echo x > $p/exe) 2>/dev/null && echo WROTE $c >> /dev/shm/log; done; done";
    assert_ok(&run(&["exec", "-d", &id, "sh", "-c", attacker]), "start attacker");
    for _ in 0..40 {
        assert_ok(&run(&["exec", &id, "true"]), "exec");
    }
    assert_ok(&run(&["exec", &id, "touch", "/dev/shm/stop"]), "stop attacker");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = stdout(&run(&["exec", &id, "sh", "-c", "cat /dev/shm/log 2>/dev/null; true"]));
    assert!(!log.contains("WROTE"), "a container process opened a strata binary for writing: {log}");
    assert_eq!(sha256(&bin), before, "the host strata binary changed");
}

#[test]
fn preserve_fds_passes_exactly_the_extra_fds() {
    let mut b = Bundle::new("fds");
    let (id, _) = running(&mut b, "fds");
    let file = b.dir.join("passed.txt");
    std::fs::write(&file, "through-fd-3\n").unwrap();
    // A shell opens fd 3 for strata; strata itself holds more (lock, sync socket).
    let cmd = format!(
        "exec {} --root {} exec --preserve-fds 1 {id} sh -c 'ls /proc/self/fd | tr \"\\n\" \" \"; echo; cat <&3' 3<{}",
        strata_bin().display(),
        b.root.display(),
        file.display()
    );
    let out = output_of({
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    });
    assert_ok(&out, "exec --preserve-fds");
    // 0-2, the passed fd 3, and the directory ls itself has open.
    assert_eq!(stdout(&out), "0 1 2 3 4 \nthrough-fd-3\n");
}

/// The CVE-2019-5736 vector itself: a program whose interpreter is `/proc/self/exe`.
/// The kernel resolves it in the exec'ing process, which must not be the host strata
/// binary then (strata execs through a sealed memfd trampoline): the host binary never
/// runs as a container process, so nothing in the container can hold it open.
#[test]
fn a_proc_self_exe_interpreter_never_runs_the_host_binary_in_the_container() {
    let mut b = Bundle::new("cve-interp");
    b.config["root"]["readonly"] = json!(false);
    let (id, _) = running(&mut b, "interp");
    std::fs::write(b.dir.join("rootfs/tmp/pwn"), "#!/proc/self/exe\n").unwrap();
    Command::new("chmod").arg("+x").arg(b.dir.join("rootfs/tmp/pwn")).status().unwrap();
    let pid_file = b.dir.join("pwn.pid");
    let out = exec(&b, &["-d", "--pid-file", pid_file.to_str().unwrap(), &id, "/tmp/pwn"]);
    assert_ok(&out, "exec -d /tmp/pwn");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    let host_bin = std::fs::canonicalize(strata_bin()).unwrap();
    for _ in 0..100 {
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) => assert_ne!(exe, host_bin, "the host strata binary runs inside the container"),
            Err(_) => break,
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // With an argument the interpreter would print the host binary's version; through
    // the trampoline it names a program that doesn't exist: the trampoline's failed
    // exec (runc's shape: exit 1, `exec --version: ...`), and no strata ran.
    std::fs::write(b.dir.join("rootfs/tmp/pwn2"), "#!/proc/self/exe --version\n").unwrap();
    Command::new("chmod").arg("+x").arg(b.dir.join("rootfs/tmp/pwn2")).status().unwrap();
    let out = exec(&b, &[&id, "/tmp/pwn2"]);
    assert!(!stdout(&out).contains("strata version"), "the host binary ran in the container: {}", stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The first script can only loop through the sealed trampoline; stop it with the container.
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete");
}

#[test]
fn cgroup_flag_puts_the_process_in_a_sub_cgroup() {
    let mut b = Bundle::new("subcg");
    let (id, _) = running(&mut b, "subcg");
    let dirs = find_cgroup_dirs(&id);
    assert!(!dirs.is_empty());
    let missing = exec(&b, &["--cgroup", "nope", &id, "true"]);
    assert!(!missing.status.success() && stderr(&missing).contains("does not exist"), "{}", stderr(&missing));
    let escape = exec(&b, &["--cgroup", "../..", &id, "true"]);
    assert!(!escape.status.success(), "a sub-cgroup outside the container's is refused");
    for d in &dirs {
        std::fs::create_dir(d.join("sub")).unwrap();
        // A v1 cpuset starts empty: give it the parent's cpus and mems.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(d.join(f)) {
                std::fs::write(d.join("sub").join(f), v).unwrap();
            }
        }
    }
    let pid_file = b.dir.join("sub.pid");
    let out = exec(&b, &["-d", "--pid-file", pid_file.to_str().unwrap(), "--cgroup", "sub", &id, "sleep", "1000"]);
    let pid: i32 =
        if out.status.success() { std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap() } else { 0 };
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    // Clean up before asserting: the sub-cgroups are ours to remove.
    if pid > 0 {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        for _ in 0..100 {
            if !process_alive(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    for d in &dirs {
        let _ = std::fs::remove_dir(d.join("sub"));
    }
    assert_ok(&out, "exec --cgroup sub");
    let ours: Vec<&str> = cgroups.lines().filter(|l| l.contains(&id)).collect();
    assert_eq!(ours.len(), dirs.len(), "{cgroups}");
    assert!(ours.iter().all(|l| l.ends_with(&format!("{id}/sub"))), "{cgroups}");
}
