//! The init's setup sequence, with runc as the oracle: which system calls it makes
//! once the container's seccomp filter is in, what a failing exec after `start`
//! looks like, and what runs under the filter.

use std::fs::File;
use std::process::Command;

use serde_json::{json, Value};
use strata_integration::*;

/// What runc 1.1.5's init calls after installing the filter without noNewPrivileges
/// (strace of `runc init`'s locked thread), the Go runtime's own calls, and what
/// busybox's `echo` needs: an allow-list a real runc user could have written. Not in
/// it: close_range, memfd_create, execveat, statx, sendto/recvfrom. The identity calls
/// are setuid/setgid for runc and setresuid/setresgid for strata: both are allowed.
fn runc_allow_list(without: &[&str]) -> Value {
    let runc_init = "getdents64 getpid prctl fstat setgid setuid setresgid setresuid setgroups close futex write read \
                     capget capset openat fstatfs getcwd fcntl rt_sigreturn getppid newfstatat chdir epoll_ctl \
                     faccessat2 faccessat execve";
    let go_runtime = "nanosleep sched_yield mmap munmap madvise rt_sigprocmask rt_sigaction sigaltstack gettid tgkill \
                      exit exit_group clone epoll_pwait brk mprotect";
    let busybox = "arch_prctl set_tid_address set_robust_list rseq prlimit64 getuid uname readlink getrandom pread64 access";
    let names: Vec<&str> = [runc_init, go_runtime, busybox]
        .iter()
        .flat_map(|s| s.split_whitespace())
        .filter(|n| !without.contains(n))
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }],
    })
}

/// The outcome of create, start and the container's life, as the caller sees it.
#[derive(Debug, PartialEq)]
struct Lifecycle {
    create_ok: bool,
    start_ok: Option<bool>,
    /// `state`'s status once the container is done ("<none>" when create failed).
    status: String,
    /// What the container wrote to the stdout it inherited from `create`.
    stdout: String,
}

/// create (stdout and stderr to files in the bundle), start, wait for the end.
fn create_and_start(b: &mut Bundle, rt: &str) -> Lifecycle {
    b.write_config();
    let id = b.id("order");
    let (out, err) = (b.dir.join("create.out"), b.dir.join("create.err"));
    let st = b
        .command(&["create", "-b", b.dir.to_str().unwrap(), &id])
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .status()
        .unwrap();
    let create_ok = st.success();
    let mut start_ok = None;
    if create_ok {
        let o = output_of(b.command(&["start", &id]));
        start_ok = Some(o.status.success());
        for _ in 0..500 {
            if b.status(&id) == "stopped" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    } else {
        eprintln!("{rt}: create failed: {}", std::fs::read_to_string(&err).unwrap_or_default());
        b.assert_nothing_left(&id, None);
    }
    let status = b.status(&id);
    Lifecycle { create_ok, start_ok, status, stdout: std::fs::read_to_string(&out).unwrap_or_default() }
}

fn with_profile(b: &mut Bundle, profile: Value, nnp: bool, args: &[&str]) {
    b.config["linux"]["seccomp"] = profile;
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.args(args);
}

#[test]
fn a_runc_allow_list_without_close_range_runs_the_container_as_under_runc() {
    for nnp in [false, true] {
        let seen = differential("seccomp-order", |b, _| {
            with_profile(b, runc_allow_list(&[]), nnp, &["echo", "hello"]);
            create_and_start(b, "")
        });
        let want = Lifecycle { create_ok: true, start_ok: Some(true), status: "stopped".into(), stdout: "hello\n".into() };
        assert_eq!(seen, want, "noNewPrivileges {nnp}");
    }
}

#[test]
fn a_profile_that_denies_getcwd_fails_create_as_under_runc() {
    let seen = differential("seccomp-getcwd", |b, rt| {
        with_profile(b, runc_allow_list(&["getcwd"]), false, &["echo", "hello"]);
        create_and_start(b, rt)
    });
    assert!(!seen.create_ok);
}

/// `run` of a program that exists and is executable but that the kernel can't exec.
fn run_unexecutable(b: &mut Bundle, profile: Option<Value>) -> (Option<i32>, bool) {
    std::fs::write(b.dir.join("rootfs/bin/bad"), "not a program\n").unwrap();
    Command::new("chmod").arg("+x").arg(b.dir.join("rootfs/bin/bad")).status().unwrap();
    if let Some(p) = profile {
        with_profile(b, p, false, &["/bin/bad"]);
    }
    b.args(&["/bin/bad"]);
    let id = b.id("badexec");
    let out = b.run(&id);
    let said = stderr(&out).lines().any(|l| l.ends_with("exec /bin/bad: exec format error"));
    (out.status.code(), said)
}

#[test]
fn an_exec_that_fails_after_start_exits_1_with_runcs_message() {
    let seen = differential("badexec", |b, _| run_unexecutable(b, None));
    assert_eq!(seen, (Some(1), true));
    let seen = differential("badexec-seccomp", |b, _| run_unexecutable(b, Some(runc_allow_list(&[]))));
    assert_eq!(seen, (Some(1), true));
}

/// runc runs startContainer hooks after installing the filter, with or without
/// noNewPrivileges: a hook that mkdirs under a profile denying mkdir fails the run.
#[test]
fn start_container_hooks_run_under_the_containers_filter() {
    for nnp in [false, true] {
        let seen = differential("hook-seccomp", |b, _| {
            let profile = json!({ "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" }] });
            with_profile(b, profile, nnp, &["true"]);
            b.config["root"]["readonly"] = json!(false);
            b.config["hooks"] = json!({ "startContainer": [{ "path": "/bin/mkdir", "args": ["mkdir", "/made-by-hook"] }] });
            let id = b.id("hookseccomp");
            let out = b.run(&id);
            (out.status.success(), b.dir.join("rootfs/made-by-hook").exists())
        });
        assert_eq!(seen, (false, false), "noNewPrivileges {nnp}");
    }
}
