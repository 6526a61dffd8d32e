//! The rest of config.json, checked from inside the container: sysctl, rlimits,
//! oomScoreAdj, mount options and propagation, devices, terminal; and the bad input
//! each field can carry.

use serde_json::json;
use strata_integration::*;

fn run_ok(b: &Bundle, name: &str) -> String {
    let id = b.id(name);
    let out = b.run(&id);
    assert_ok(&out, "run");
    b.assert_nothing_left(&id, None);
    stdout(&out)
}

fn create_fails(b: &Bundle, needle: &str) {
    b.write_config();
    let id = b.id("bad");
    let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]));
    assert!(!out.status.success(), "create succeeded, expected an error about {needle}");
    let err = stderr(&out);
    assert!(err.contains(needle), "{err:?} does not name {needle:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    b.assert_nothing_left(&id, None);
}

#[test]
fn namespaced_sysctls_apply_inside_and_not_on_the_host() {
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut b = Bundle::new("sysctl");
    let flipped = if host_forward.trim() == "1" { "0" } else { "1" };
    b.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": flipped, "kernel.shmmni": "1234" });
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    assert_eq!(run_ok(&b, "sysctl"), format!("{flipped}\n1234\n"));
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host_forward);
}

#[test]
fn host_scoped_sysctls_are_refused() {
    let mut b = Bundle::new("sysctl-host");
    b.config["linux"]["sysctl"] = json!({ "kernel.panic": "5" });
    create_fails(&b, "linux.sysctl.kernel.panic");
    let mut b = Bundle::new("sysctl-nonet");
    b.config["linux"]["namespaces"] = json!([{ "type": "mount" }, { "type": "pid" }]);
    b.config["hostname"] = json!(null);
    b.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    create_fails(&b, "linux.sysctl.net.ipv4.ip_forward");
}

#[test]
fn rlimits_and_oom_score_adj_apply() {
    let mut b = Bundle::new("rlimits");
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 768 },
        { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 }
    ]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.sh("ulimit -n; ulimit -Hn; ulimit -c; cat /proc/self/oom_score_adj");
    assert_eq!(run_ok(&b, "rl"), "512\n768\n0\n500\n");
}

#[test]
fn an_rlimit_the_host_will_not_grant_fails_create() {
    let host_hard: u64 = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).and_then(|v| v.parse().ok()))
        .unwrap();
    let mut b = Bundle::new("rlimit-high");
    b.config["process"]["rlimits"] =
        json!([{ "type": "RLIMIT_NOFILE", "soft": host_hard + 1000, "hard": host_hard + 1000 }]);
    // Root with CAP_SYS_RESOURCE could raise it: then there is nothing to refuse here.
    let caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = caps.lines().find(|l| l.starts_with("CapEff")).unwrap().split_whitespace().nth(1).unwrap().to_string();
    if u64::from_str_radix(&eff, 16).unwrap() & (1 << 24) != 0 {
        skip("rlimit above the hard limit", "this host lets root raise hard limits (CAP_SYS_RESOURCE)");
        return;
    }
    create_fails(&b, "process.rlimits[0]");
}

#[test]
fn bind_mount_options_and_propagation_show_in_mountinfo() {
    let mut b = Bundle::new("bindopts");
    let src = b.dir.join("shared-data");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), "data\n").unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({ "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "nodev", "noexec"] }),
        json!({ "destination": "/shared", "type": "bind", "source": src, "options": ["bind", "rshared"] }),
        json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700", "noatime"] }),
        json!({ "destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "rro"] }),
    ]);
    b.sh("cat /data/file; touch /data/x 2>/dev/null || echo data-ro; \
         awk '$5==\"/data\" {print $6}' /proc/self/mountinfo; \
         awk '$5==\"/shared\" {print $7}' /proc/self/mountinfo | cut -d: -f1; \
         awk '$2==\"/scratch\" {print $4}' /proc/self/mounts; stat -c %a /scratch; \
         touch /rro/y 2>/dev/null || echo rro-ro");
    let out = run_ok(&b, "bind");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "data");
    assert_eq!(lines[1], "data-ro");
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(lines[2].split(',').any(|f| f == flag), "/data lacks {flag}: {}", lines[2]);
    }
    assert_eq!(lines[3], "shared");
    assert!(lines[4].contains("size=1024k") && lines[4].contains("noatime"), "{}", lines[4]);
    assert_eq!(lines[5], "700");
    assert_eq!(lines[6], "rro-ro");
    assert!(!src.join("x").exists() && !src.join("y").exists());
}

#[test]
fn configured_devices_have_their_type_numbers_mode_and_owner() {
    let mut b = Bundle::new("devices");
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384, "uid": 1000, "gid": 1000 },
        { "path": "/dev/sub/loopx", "type": "b", "major": 7, "minor": 200, "fileMode": 432 },
        { "path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0 }
    ]);
    b.sh("stat -c '%F %t,%T %a %u:%g' /dev/fuse /dev/sub/loopx; stat -c %F /dev/myfifo");
    let out = run_ok(&b, "dev");
    assert_eq!(out, "character special file a,e5 600 1000:1000\nblock special file 7,c8 660 0:0\nfifo\n");
}

#[test]
fn bad_field_values_are_refused_with_the_field_named() {
    let mut b = Bundle::new("bad-device");
    b.config["linux"]["devices"] = json!([{ "path": "/dev/x", "type": "z", "major": 1, "minor": 1 }]);
    create_fails(&b, "linux.devices[0].type");

    // An option the runtime doesn't know is filesystem data: tmpfs refuses this one (on a
    // bind it is ignored, as runc does: mounts_fidelity.rs).
    let mut b = Bundle::new("bad-mountopt");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["no-such-option"]
    }));
    create_fails(&b, "mounts[7]");

    let mut b = Bundle::new("rel-dest");
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "destination": "relative/path", "type": "tmpfs", "source": "tmpfs" }));
    create_fails(&b, "mounts[7].destination");
}

#[test]
fn terminal_master_goes_to_the_console_socket() {
    use std::os::fd::FromRawFd;
    use std::os::unix::net::UnixListener;
    let mut b = Bundle::new("console");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({ "height": 30, "width": 100 });
    b.sh("tty; stty size; readlink /proc/self/fd/0 | cut -c1-9");
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = b.id("tty");
    b.write_config();
    let cmd = b.command(&["run", "--console-socket", sock.to_str().unwrap(), "-b", b.dir.to_str().unwrap(), &id]);
    let runner = std::thread::spawn(move || output_of(cmd));
    let (conn, _) = listener.accept().unwrap();
    let master = receive_fd(&conn);
    assert_eq!(unsafe { libc::isatty(master) }, 1, "received fd is not a terminal");
    let mut f = unsafe { std::fs::File::from_raw_fd(master) };
    let out = runner.join().unwrap();
    assert_ok(&out, "run with a terminal");
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut f, &mut text);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines[0].starts_with("/dev/pts/") || lines[0] == "/dev/console", "{text:?}");
    assert_eq!(lines[1], "30 100");
    assert_eq!(lines[2], "/dev/pts/");
}

/// Receives one fd sent with SCM_RIGHTS.
fn receive_fd(conn: &std::os::unix::net::UnixStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut data = [0u8; 256];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut cmsg = [0u8; 64];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    let hdr = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!hdr.is_null(), "no fd received");
    unsafe { *(libc::CMSG_DATA(hdr) as *const i32) }
}

#[test]
fn tmpcopyup_starts_the_tmpfs_with_the_directorys_contents() {
    let mut b = Bundle::new("copyup");
    let etc = b.dir.join("rootfs/etc/app");
    std::fs::create_dir_all(etc.join("sub")).unwrap();
    std::fs::write(etc.join("conf"), "key=value\n").unwrap();
    std::os::unix::fs::symlink("conf", etc.join("link")).unwrap();
    std::os::unix::fs::chown(etc.join("sub"), Some(1000), Some(1000)).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/etc/app", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]
    }));
    b.sh("awk '$2==\"/etc/app\" {print $3}' /proc/self/mounts; cat /etc/app/link; stat -c %u /etc/app/sub; echo new > /etc/app/new && echo writable");
    assert_eq!(run_ok(&b, "cu"), "tmpfs\nkey=value\n1000\nwritable\n");
    assert!(!etc.join("new").exists(), "the write went to the image, not the tmpfs");
}

#[test]
fn io_priority_scheduler_and_personality_apply() {
    let mut b = Bundle::new("attrs");
    b.config["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_IDLE", "priority": 0 });
    b.config["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 7 });
    b.config["linux"]["personality"] = json!({ "domain": "LINUX32" });
    b.sh("uname -m; awk '{print $19}' /proc/self/stat; cat /proc/self/sched | awk '$1==\"policy\" {print $3}'");
    b.config["process"]["user"] = json!({ "uid": 0, "gid": 0 });
    let out = run_ok(&b, "attrs");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "i686", "personality LINUX32 makes uname report a 32-bit machine");
    assert_eq!(lines[1], "7", "nice");
    if let Some(policy) = lines.get(2) {
        assert_eq!(*policy, "3", "SCHED_BATCH");
    }
}

#[test]
fn socket_activation_fds_and_env_pass_through() {
    let mut b = Bundle::new("listenfds");
    b.sh("echo $LISTEN_FDS $LISTEN_PID; readlink /proc/self/fd/3");
    b.write_config();
    let id = b.id("lfd");
    let file = std::fs::File::open("/etc/hostname").unwrap();
    // LISTEN_FDS counts only with LISTEN_PID naming the runtime (sd_listen_fds' rule):
    // `exec` keeps sh's pid.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""]).arg(&b.runtime).args(["--root", b.root.to_str().unwrap()]);
    cmd.args(["run", "-b", b.dir.to_str().unwrap(), &id]).stdin(std::process::Stdio::null());
    cmd.env("LISTEN_FDS", "1");
    pass_as_fd3(&mut cmd, &file);
    let out = output_of(cmd);
    assert_ok(&out, "run with LISTEN_FDS=1");
    assert_eq!(stdout(&out), "1 1\n/etc/hostname\n");
}

#[test]
fn idmapped_bind_mounts_shift_file_owners() {
    let mut b = Bundle::new("idmap");
    let src = b.dir.join("owned-by-root");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    std::os::unix::fs::chown(src.join("f"), Some(0), Some(0)).unwrap();
    let maps = json!([{ "containerID": 0, "hostID": 1000, "size": 10 }]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/idm", "type": "bind", "source": src, "options": ["bind", "idmap"],
        "uidMappings": maps, "gidMappings": maps
    }));
    b.sh("stat -c '%u:%g' /idm/f");
    assert_eq!(run_ok(&b, "idmap"), "1000:1000\n");
    // The files on disk are untouched.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(src.join("f")).unwrap().uid(), 0);

    let mut b = Bundle::new("idmap-nomaps");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/idm", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]
    }));
    create_fails(&b, "uidMappings");
}

#[test]
fn rootfs_propagation_modes_apply_to_the_container_root() {
    for (mode, want) in [("shared", "shared:"), ("unbindable", "unbindable"), ("private", "")] {
        let mut b = Bundle::new("rootprop");
        b.config["linux"]["rootfsPropagation"] = json!(mode);
        b.sh("awk '$5==\"/\" {for (i=7; $i!=\"-\"; i++) printf \"%s \", $i; print \"\"}' /proc/self/mountinfo");
        let out = run_ok(&b, "rp");
        if want.is_empty() {
            assert_eq!(out.trim(), "", "{mode}: {out}");
        } else {
            assert!(out.contains(want), "{mode}: / has optional fields {out:?}");
        }
    }
}

#[test]
fn unknown_or_ungrantable_capabilities_are_left_out_with_a_warning() {
    let mut b = Bundle::new("cap-unknown");
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NOT_A_CAP"]);
    b.config["process"]["capabilities"]["effective"] = json!(["CAP_KILL"]);
    b.config["process"]["capabilities"]["permitted"] = json!(["CAP_KILL"]);
    b.sh("grep CapBnd /proc/self/status | tr -s '\\t' ' '");
    let id = b.id("cu");
    let out = b.run(&id);
    assert_ok(&out, "run with an unknown capability");
    assert!(
        stderr(&out).contains("process.capabilities.bounding") && stderr(&out).contains("CAP_NOT_A_CAP"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "CapBnd: 0000000000000020\n");

    // A capability outside the runtime's own bounding set can't be granted: warned, left out.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status.lines().find(|l| l.starts_with("CapBnd")).unwrap().split_whitespace().nth(1).unwrap().to_string();
    if u64::from_str_radix(&bnd, 16).unwrap() & (1 << 24) != 0 {
        skip("ungrantable capability", "this host can grant CAP_SYS_RESOURCE");
        return;
    }
    let mut b = Bundle::new("cap-ungrantable");
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_SYS_RESOURCE"]);
    b.config["process"]["capabilities"]["permitted"] = json!(["CAP_KILL", "CAP_SYS_RESOURCE"]);
    b.config["process"]["capabilities"]["effective"] = json!(["CAP_KILL"]);
    b.sh("grep CapBnd /proc/self/status | tr -s '\\t' ' '");
    let id = b.id("cg");
    let out = b.run(&id);
    assert_ok(&out, "run with an ungrantable capability");
    assert!(stderr(&out).contains("CAP_SYS_RESOURCE"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "CapBnd: 0000000000000020\n");
}
