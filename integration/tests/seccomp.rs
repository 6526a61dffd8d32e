//! linux.seccomp end to end: each action observed from inside a container, argument
//! filters with a call that must pass and one that must not, the real default profile
//! podman derives from containers-common (with runc as the oracle), and bad profiles
//! refused before anything is made. `sysprobe NR ARGS` (integration/src/bin) makes the
//! exact raw syscall a rule is about and prints `ok RET` or `errno N`.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use strata_integration::*;

const MKDIR: u32 = 83;
const RMDIR: u32 = 84;
const PERSONALITY: u32 = 135;
const SWAPOFF: u32 = 168;
const ADD_KEY: u32 = 248;
const SOCKET: u32 = 41;

/// A bundle whose rootfs has /bin/sysprobe, running `script` under `seccomp`.
fn bundle(name: &str, seccomp: Value, script: &str) -> Bundle {
    let mut b = Bundle::new(name);
    std::fs::copy(env!("CARGO_BIN_EXE_sysprobe"), b.dir.join("rootfs/bin/sysprobe")).unwrap();
    b.config["linux"]["seccomp"] = seccomp;
    b.sh(script);
    b
}

fn run_ok(b: &Bundle, name: &str) -> String {
    let id = b.id(name);
    let out = b.run(&id);
    assert_ok(&out, "run");
    stdout(&out)
}

fn allow_all_but(rules: Value) -> Value {
    json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules })
}

#[test]
fn errno_rules_return_eperm_or_their_errno_ret() {
    let mut profile = allow_all_but(json!([
        { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" },
        { "names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 36 },
    ]));
    // Every filter flag the kernel takes for a filter without a listener.
    profile["flags"] =
        json!(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
    let b = bundle(
        "errno",
        profile,
        &format!("mkdir /dev/shm/d 2>&1; test -d /dev/shm/d && echo exists; sysprobe {MKDIR} 0; sysprobe {RMDIR} 0; sysprobe 39"),
    );
    let out = run_ok(&b, "errno");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("Operation not permitted"), "{out}");
    // mkdir(NULL) would be EFAULT unfiltered; the rule answers first.
    assert_eq!(lines[1], "errno 1", "{out}");
    assert_eq!(lines[2], "errno 36", "{out}");
    assert!(lines[3].starts_with("ok "), "getpid is untouched: {out}");
}

#[test]
fn argument_filters_pass_and_refuse_by_value() {
    // personality(PER_LINUX32 family) refused via a masked compare; queries and 0 pass.
    let b = bundle(
        "args",
        allow_all_but(json!([{ "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
            "args": [{ "index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ" }] },
            { "names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7,
            "args": [{ "index": 0, "value": 4096, "op": "SCMP_CMP_GT" }] }])),
        &format!(
            "for a in 0xffffffff 8 0x108 0 0x20008; do sysprobe {PERSONALITY} $a; done; sysprobe {RMDIR} 0x1001; sysprobe {RMDIR} 4096"
        ),
    );
    let out = run_ok(&b, "args");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ok "), "query passes: {out}");
    assert_eq!(lines[1], "errno 22", "{out}");
    assert_eq!(lines[2], "errno 22", "0x108 & 0xff == 8: {out}");
    assert!(lines[3].starts_with("ok "), "personality(0) passes: {out}");
    assert_eq!(lines[4], "errno 22", "0x20008 & 0xff == 8: {out}");
    assert_eq!(lines[5], "errno 7", "rmdir(0x1001) > 4096: {out}");
    assert_eq!(lines[6], "errno 14", "rmdir(4096) passes the filter, EFAULT from the kernel: {out}");
}

#[test]
fn kill_actions_kill_and_trap_delivers_a_catchable_sigsys() {
    for (action, want) in [
        ("SCMP_ACT_KILL", "rc=159"),
        ("SCMP_ACT_KILL_THREAD", "rc=159"),
        ("SCMP_ACT_KILL_PROCESS", "rc=159"),
        ("SCMP_ACT_TRAP", "caught SIGSYS\nrc=0"),
    ] {
        let b = bundle(
            "kill",
            allow_all_but(json!([{ "names": ["rmdir"], "action": action }])),
            &format!("SYSPROBE_CATCH_SIGSYS=1 sysprobe {RMDIR} 0; echo rc=$?"),
        );
        let out = run_ok(&b, "kill");
        assert_eq!(out.trim(), want, "{action}");
    }
}

#[test]
fn trace_without_a_tracer_fails_the_call_with_enosys() {
    let b = bundle(
        "trace",
        allow_all_but(json!([{ "names": ["rmdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 5 }])),
        &format!("sysprobe {RMDIR} 0; echo rc=$?"),
    );
    // No ptracer attached: the kernel skips the call and answers ENOSYS.
    assert_eq!(run_ok(&b, "trace"), "errno 38\nrc=0\n");
}

/// A reader of the kernel's audit records through the audit netlink multicast group
/// (AUDIT_NLGRP_READLOG, the one journald reads), opened before the container runs.
/// Not the kernel log: printk rate-limits audit lines (10 in 5 s) and its ring buffer
/// rotates, and with CI's tests in parallel either hid a SECCOMP_RET_LOG line.
struct AuditRecords(std::os::fd::OwnedFd);

impl AuditRecords {
    const AUDIT_SECCOMP: u16 = 1326;

    fn open() -> AuditRecords {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket call; on success the fd is ours.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_AUDIT) };
        assert!(fd >= 0, "audit netlink socket: {}", std::io::Error::last_os_error());
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid; we set family and group.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = 1; // AUDIT_NLGRP_READLOG
        let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        // SAFETY: addr lives across the call and len is its size.
        let r = unsafe { libc::bind(fd_raw(&fd), &addr as *const _ as *const libc::sockaddr, len) };
        assert_eq!(r, 0, "bind to the audit log group: {}", std::io::Error::last_os_error());
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        let tvlen = std::mem::size_of::<libc::timeval>() as u32;
        // SAFETY: tv lives across the call and tvlen is its size.
        unsafe {
            libc::setsockopt(fd_raw(&fd), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv as *const _ as *const _, tvlen)
        };
        AuditRecords(fd)
    }

    /// Waits up to `secs` for a seccomp record `wanted` accepts.
    fn seccomp_record(&self, secs: u64, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut buf = vec![0u8; 16384];
        while std::time::Instant::now() < deadline {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(fd_raw(&self.0), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue; // the receive timeout: look at the deadline again
            }
            let mut msg = &buf[..n as usize];
            while msg.len() >= 16 {
                let len = u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(msg[4..6].try_into().unwrap());
                if len < 16 || len > msg.len() {
                    break;
                }
                let text = String::from_utf8_lossy(&msg[16..len]);
                if kind == Self::AUDIT_SECCOMP && wanted(&text) {
                    return Some(text.into_owned());
                }
                // Records are 4-byte aligned, but the last one of a datagram may end unpadded.
                msg = &msg[((len + 3) & !3).min(msg.len())..];
            }
        }
        None
    }
}

fn fd_raw(fd: &std::os::fd::OwnedFd) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

#[test]
fn log_action_lets_the_call_succeed_and_logs_it() {
    let audit = AuditRecords::open();
    let b = bundle(
        "log",
        allow_all_but(json!([{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG" }])),
        "mkdir /dev/shm/logged && test -d /dev/shm/logged && echo made",
    );
    assert_eq!(run_ok(&b, "log").trim(), "made");
    // SECCOMP_RET_LOG's record: the call (mkdir, 83) and the action (0x7ffc0000).
    let record = audit.seccomp_record(5, |r| {
        r.contains(&format!(" syscall={MKDIR} ")) && r.contains("code=0x7ffc0000") && r.contains("comm=\"mkdir\"")
    });
    assert!(record.is_some(), "no audit record for the logged mkdir");
}

#[test]
fn default_kill_with_an_allow_list() {
    let mut profile = podman_default_profile();
    profile["defaultAction"] = json!("SCMP_ACT_KILL_PROCESS");
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "mkdir" && n != "mkdirat");
        }
    }
    let b = bundle("defkill", profile, "ls / >/dev/null && echo shell-works; mkdir /dev/shm/x; echo rc=$?");
    assert_eq!(run_ok(&b, "defkill"), "shell-works\nrc=159\n");
}

#[test]
fn unknown_syscall_names_are_skipped_with_a_debug_line() {
    let b = bundle(
        "unknown",
        allow_all_but(
            json!([{ "names": ["no_such_syscall_xyz", "rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5 }]),
        ),
        &format!("sysprobe {RMDIR} 0"),
    );
    let log = b.dir.join("debug.log");
    let id = b.id("unknown");
    b.write_config();
    let out = output_of({
        let mut c = b.command(&["--debug", "--log", log.to_str().unwrap(), "run", "-b", b.dir.to_str().unwrap(), &id]);
        c.env("STRATA_TEST", "1");
        c
    });
    assert_ok(&out, "run");
    assert_eq!(stdout(&out).trim(), "errno 5");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("no_such_syscall_xyz"), "no debug line: {text}");
}

#[test]
fn bad_action_or_op_is_refused_naming_the_field_and_nothing_is_left() {
    for (rules, field) in [
        (
            json!([{ "names": ["read"], "action": "SCMP_ACT_ALLOW" }, { "names": ["mkdir"], "action": "SCMP_ACT_BOGUS" }]),
            "linux.seccomp.syscalls[1].action",
        ),
        (
            json!([{ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES" }] }]),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!([{ "names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{ "index": 9, "value": 1, "op": "SCMP_CMP_EQ" }] }]),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
    ] {
        let b = bundle("bad", allow_all_but(rules), "true");
        let id = b.id("bad");
        let out = b.strata(&["create", "-b", b.dir.to_str().unwrap(), &id]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(field), "{field}: {}", stderr(&out));
        b.assert_nothing_left(&id, None);
    }
}

#[test]
fn notify_hands_the_listener_to_the_agent_which_answers() {
    let mut b = bundle("notify", json!(null), &format!("sysprobe {MKDIR} 0; sysprobe {RMDIR} 0"));
    let sock = b.dir.join("agent.sock");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-42",
        // With a listener, TSYNC needs TSYNC_ESRCH and WAIT_KILLABLE_RECV applies.
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }],
    });
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || agent::serve_one(listener, -(libc::ENAMETOOLONG)));
    let out = run_ok(&b, "notify");
    assert_eq!(out, "errno 36\nerrno 14\n", "mkdir answered by the agent, rmdir untouched");
    let (state, answered) = agent.join().unwrap();
    assert_eq!(answered, vec![MKDIR as i32]);
    assert_eq!(state["metadata"], "meta-42");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert!(state["state"]["id"].as_str().unwrap().contains("notify"), "{state}");
    assert!(state["pid"].as_i64().unwrap() > 0);
}

#[test]
fn notify_reaches_the_agent_for_exec_processes_too() {
    let mut b = bundle("notify-exec", json!(null), "true");
    b.args(&["sleep", "1000"]);
    let sock = b.dir.join("agent.sock");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "syscalls": [{ "names": ["rmdir"], "action": "SCMP_ACT_NOTIFY" }],
    });
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let agents = std::thread::spawn(move || {
        // First the init's listener, then the exec'd process's: each answered on its own thread.
        let (first, _) = listener.accept().unwrap();
        let init = std::thread::spawn(move || agent::serve(first, -(libc::ENOEXEC)));
        let exec = agent::serve_one(listener, -(libc::E2BIG));
        (init, exec)
    });
    let id = b.id("notify-exec");
    b.create(&id);
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    let out = output_of(b.command(&["exec", &id, "sysprobe", &RMDIR.to_string(), "0"]));
    assert_ok(&out, "exec");
    assert_eq!(stdout(&out), "errno 7\n", "the exec'd process's rmdir was answered by its agent");
    let (init, (state, answered)) = agents.join().unwrap();
    assert_eq!(answered, vec![RMDIR as i32]);
    assert_eq!(state["state"]["id"], id.as_str());
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete");
    let (_, init_answered) = init.join().unwrap();
    assert!(init_answered.is_empty(), "sleep never calls rmdir: {init_answered:?}");
}

/// A minimal seccomp agent: takes the listener and state, answers every notification
/// with `error` until the container goes away.
mod agent {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    pub fn serve_one(l: UnixListener, error: i32) -> (serde_json::Value, Vec<i32>) {
        serve(l.accept().unwrap().0, error)
    }

    pub fn serve(conn: std::os::unix::net::UnixStream, error: i32) -> (serde_json::Value, Vec<i32>) {
        let mut buf = vec![0u8; 65536];
        let mut cmsg = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr points at live buffers for the duration of the call.
        let (n, fd) = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cmsg);
            let n = libc::recvmsg(conn.as_raw_fd(), &mut msg, 0);
            assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
            let c = libc::CMSG_FIRSTHDR(&msg);
            assert!(!c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS, "no fd passed");
            (n as usize, OwnedFd::from_raw_fd(*(libc::CMSG_DATA(c) as *const i32)))
        };
        let state: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        let mut answered = Vec::new();
        loop {
            // SAFETY: plain structs for the notify ioctls.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
            if r < 0 {
                break; // every process under the filter is gone
            }
            answered.push(req.data.nr);
            let mut resp = libc::seccomp_notif_resp { id: req.id, val: 0, error, flags: 0 };
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        }
        (state, answered)
    }
}

/// The linux.seccomp podman writes into config.json: containers-common's seccomp.json
/// resolved the way podman resolves it (archMap for amd64, includes/excludes against
/// podman's default capabilities, comments and helper keys dropped).
fn podman_default_profile() -> Value {
    let path = Path::new("/usr/share/containers/seccomp.json");
    assert!(path.exists(), "{} is missing: apt-get install containers-common (hack/deps)", path.display());
    let raw: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let caps = PODMAN_CAPS;
    let arches: Vec<Value> = raw["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["architecture"] == "SCMP_ARCH_X86_64")
        .map(|m| {
            let mut v = vec![m["architecture"].clone()];
            v.extend(m["subArchitectures"].as_array().unwrap().iter().cloned());
            v
        })
        .unwrap();
    let has = |list: &Value, want: &dyn Fn(&str) -> bool| {
        list.as_array().is_some_and(|l| l.iter().any(|x| want(x.as_str().unwrap())))
    };
    let all = |list: &Value, want: &dyn Fn(&str) -> bool| {
        list.as_array().is_none_or(|l| l.iter().all(|x| want(x.as_str().unwrap())))
    };
    let mut syscalls = Vec::new();
    for s in raw["syscalls"].as_array().unwrap() {
        let (inc, exc) = (&s["includes"], &s["excludes"]);
        let cap_ok = |c: &str| caps.contains(&c);
        let arch_ok = |a: &str| a == "amd64";
        if !all(&inc["caps"], &cap_ok)
            || (inc["arches"].as_array().is_some_and(|a| !a.is_empty()) && !has(&inc["arches"], &arch_ok))
        {
            continue;
        }
        if has(&exc["caps"], &cap_ok) || has(&exc["arches"], &arch_ok) {
            continue;
        }
        let mut rule = json!({ "names": s["names"], "action": s["action"] });
        if let Some(e) = s.get("errnoRet") {
            rule["errnoRet"] = e.clone();
        }
        if s["args"].as_array().is_some_and(|a| !a.is_empty()) {
            rule["args"] = s["args"].clone();
        }
        syscalls.push(rule);
    }
    json!({ "defaultAction": raw["defaultAction"], "defaultErrnoRet": raw["defaultErrnoRet"], "architectures": arches, "syscalls": syscalls })
}

/// containers.conf's default_capabilities.
const PODMAN_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The probes for podman's profile: a busybox shell working, a call outside the allow
/// list (ENOSYS, the defaultErrnoRet), explicit ERRNO rules, and the syscalls that
/// appear under several rules (personality, socket).
fn podman_probe_script() -> String {
    format!(
        "echo hi | cat >/dev/null && ls / >/dev/null && mkdir /dev/shm/p && rmdir /dev/shm/p && echo shell-works
         sysprobe {ADD_KEY} 0; sysprobe {SWAPOFF} 0
         for a in 0 8 0x20000 0x20008 0xffffffff 4 0x400000; do sysprobe {PERSONALITY} $a; done
         sysprobe {SOCKET} 16 3 9; sysprobe {SOCKET} 16 3 0; sysprobe {SOCKET} 1 1 0; sysprobe {SOCKET} 2 2 9"
    )
}

fn podman_like(b: &mut Bundle) {
    let caps: Vec<&str> = PODMAN_CAPS.to_vec();
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(caps);
    }
    // podman's default: no noNewPrivileges, so the filter goes in before caps drop.
    b.config["process"]["noNewPrivileges"] = json!(false);
}

#[test]
fn podman_default_profile_runs_busybox_and_matches_runc() {
    check_podman_profile(podman_default_profile());
}

/// The profile exactly as podman writes it: taken from the config.json of a container
/// podman (with runc) made, then run under strata and runc.
#[test]
fn podmans_own_config_json_profile_runs_busybox_and_matches_runc() {
    use strata_integration::engines::{runc, Podman};
    let p = Podman::new(&runc());
    let name = p.run_detached("seccomp-src", &[], &["sleep", "1000"]);
    let dir = p.inspect(&name, "{{.StaticDir}}");
    let config: Value = serde_json::from_slice(&std::fs::read(Path::new(&dir).join("config.json")).unwrap()).unwrap();
    let _ = p.podman(&["rm", "-f", "-t", "0", &name]);
    let profile = config["linux"]["seccomp"].clone();
    assert_eq!(profile["defaultErrnoRet"], 38, "podman's profile: {profile}");
    check_podman_profile(profile);
}

fn check_podman_profile(profile: Value) {
    let mut b = bundle("podman", profile, &podman_probe_script());
    podman_like(&mut b);
    let ours = run_ok(&b, "podman");
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(lines[0], "shell-works", "{ours}");
    assert_eq!(lines[1], "errno 38", "outside the allow list: defaultErrnoRet: {ours}");
    assert_eq!(lines[2], "errno 1", "swapoff's explicit ERRNO rule: {ours}");
    assert!(lines[3].starts_with("ok ") && lines[4].starts_with("ok "), "{ours}");
    assert_eq!(lines[8], "errno 38", "personality(4) matches no rule: {ours}");
    assert_eq!(lines[10], "errno 22", "socket(AF_NETLINK, _, NETLINK_AUDIT): {ours}");

    // The oracle: runc on the same bundle and profile prints the same.
    let runc_root = b.dir.join("runc-root");
    b.write_config();
    let id = format!("{}-runc", b.id("podman"));
    let out = output_of({
        let mut c = Command::new("runc");
        c.arg("--root")
            .arg(&runc_root)
            .args(["run", "-b", b.dir.to_str().unwrap(), &id])
            .stdin(std::process::Stdio::null());
        c
    });
    let _ = Command::new("runc").arg("--root").arg(&runc_root).args(["delete", "-f", &id]).output();
    assert_ok(&out, "runc run");
    assert_eq!(ours, stdout(&out), "strata and runc disagree on podman's profile");
}
