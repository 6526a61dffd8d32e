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
/// it: close_range, memfd_create, execveat, statx, sendto/recvfrom, setresuid.
fn runc_allow_list(without: &[&str]) -> Value {
    let runc_init = "getdents64 getpid prctl fstat setgid setuid setgroups close futex write read \
                     capget capset openat fstatfs getcwd fcntl rt_sigreturn getppid newfstatat chdir epoll_ctl \
                     faccessat2 faccessat execve";
    let go_runtime = "nanosleep sched_yield mmap munmap madvise rt_sigprocmask rt_sigaction sigaltstack gettid tgkill \
                      exit exit_group clone epoll_pwait brk mprotect";
    let busybox =
        "arch_prctl set_tid_address set_robust_list rseq prlimit64 getuid uname readlink getrandom pread64 access";
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
        let want =
            Lifecycle { create_ok: true, start_ok: Some(true), status: "stopped".into(), stdout: "hello\n".into() };
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
    // create and start both succeed (the init was released before its exec failed).
    let seen = differential("badexec-start", |b, rt| {
        std::fs::write(b.dir.join("rootfs/bin/bad"), "not a program\n").unwrap();
        Command::new("chmod").arg("+x").arg(b.dir.join("rootfs/bin/bad")).status().unwrap();
        b.args(&["/bin/bad"]);
        create_and_start(b, rt)
    });
    assert_eq!((seen.create_ok, seen.start_ok, seen.status.as_str()), (true, Some(true), "stopped"));
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
            b.config["hooks"] =
                json!({ "startContainer": [{ "path": "/bin/mkdir", "args": ["mkdir", "/made-by-hook"] }] });
            let id = b.id("hookseccomp");
            let out = b.run(&id);
            (out.status.success(), b.dir.join("rootfs/made-by-hook").exists())
        });
        assert_eq!(seen, (false, false), "noNewPrivileges {nnp}");
    }
}

/// A net and a uts namespace made for the test, bind-mounted at DIR/net and DIR/uts
/// (the bundle unmounts them); returns their names as /proc/PID/ns shows them.
fn make_namespaces(dir: &std::path::Path) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    for f in ["net", "uts"] {
        File::create(dir.join(f)).unwrap();
    }
    let st = Command::new("unshare")
        .arg(format!("--net={}", dir.join("net").display()))
        .arg(format!("--uts={}", dir.join("uts").display()))
        .args(["hostname", "made-by-test"])
        .status()
        .unwrap();
    assert!(st.success(), "unshare --net --uts");
    let ino = |f: &str| std::fs::metadata(dir.join(f)).unwrap().ino();
    (format!("net:[{}]", ino("net")), format!("uts:[{}]", ino("uts")))
}

/// What each party saw when the config joins a net and a uts namespace by path.
#[derive(Debug, PartialEq)]
struct Joined {
    run_ok: bool,
    /// "host", "joined" or "other", for net then uts.
    prestart: Vec<String>,
    create_runtime: Vec<String>,
    create_container_cwd_is_rootfs: bool,
    container: Vec<String>,
    /// The container's `hostname`, and the joined namespace's once the container is gone.
    hostname: Option<String>,
    joined_hostname: String,
}

fn join_by_path(b: &mut Bundle, hostname: Option<&str>) -> Joined {
    let (net, uts) = make_namespaces(&b.dir);
    let (host_net, host_uts) = (ns_link("self", "net"), ns_link("self", "uts"));
    let label = |link: &str| match link {
        l if l == net || l == uts => "joined".to_string(),
        l if l == host_net || l == host_uts => "host".to_string(),
        l => format!("other {l}"),
    };
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        match ns["type"].as_str().unwrap() {
            "network" => ns["path"] = json!(b.dir.join("net")),
            "uts" => ns["path"] = json!(b.dir.join("uts")),
            _ => {}
        }
    }
    b.config["hostname"] = json!(hostname);
    let record = |kind: &str| {
        let out = b.dir.join(format!("{kind}.ns"));
        json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("readlink /proc/self/ns/net /proc/self/ns/uts > {}", out.display())] })
    };
    let cwd = b.dir.join("createContainer.cwd");
    b.config["hooks"] = json!({
        "prestart": [record("prestart")],
        "createRuntime": [record("createRuntime")],
        "createContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", format!("pwd > {}", cwd.display())] }],
    });
    b.sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname");
    let id = b.id("joinns");
    let out = b.run(&id);
    let read = |kind: &str| -> Vec<String> {
        std::fs::read_to_string(b.dir.join(format!("{kind}.ns"))).unwrap_or_default().lines().map(label).collect()
    };
    let seen = stdout(&out);
    let lines: Vec<&str> = seen.lines().collect();
    let joined_hostname =
        Command::new("nsenter").arg(format!("--uts={}", b.dir.join("uts").display())).arg("hostname").output().unwrap();
    Joined {
        run_ok: out.status.success(),
        prestart: read("prestart"),
        create_runtime: read("createRuntime"),
        create_container_cwd_is_rootfs: std::fs::read_to_string(&cwd)
            .is_ok_and(|c| c.trim() == b.dir.join("rootfs").to_str().unwrap()),
        container: lines.iter().take(2).map(|l| label(l)).collect(),
        hostname: lines.get(2).map(|h| h.to_string()),
        joined_hostname: stdout(&joined_hostname).trim().to_string(),
    }
}

/// Namespaces joined by path are the init's: prestart and createRuntime hooks run in
/// the runtime's own (the host's), the container in the joined ones; createContainer
/// hooks run in the container's root.
#[test]
fn namespaces_joined_by_path_are_the_inits_and_hooks_keep_the_runtimes() {
    let seen = differential("joinns", |b, _| join_by_path(b, None));
    let both = |s: &str| vec![s.to_string(), s.to_string()];
    assert!(seen.run_ok);
    assert_eq!((seen.prestart, seen.create_runtime, seen.container), (both("host"), both("host"), both("joined")));
    assert!(seen.create_container_cwd_is_rootfs);
    assert_eq!(seen.joined_hostname, "made-by-test");
}

/// runc sets `hostname` in a uts namespace joined by path.
#[test]
fn hostname_is_set_in_a_uts_namespace_joined_by_path() {
    let seen = differential("joinuts", |b, _| join_by_path(b, Some("set-by-runtime")));
    assert!(seen.run_ok);
    assert_eq!(seen.hostname.as_deref(), Some("set-by-runtime"));
    assert_eq!(seen.joined_hostname, "set-by-runtime");
}

/// A pid namespace joined by path (another container's) holds the init: the runtime
/// never enters it, the init forks once more to be in it.
#[test]
fn a_pid_namespace_joined_by_path_holds_the_container() {
    let seen = differential("joinpid", |b, _| {
        b.args(&["sleep", "100"]);
        let holder = b.id("holder");
        b.create(&holder);
        assert_ok(&output_of(b.command(&["start", &holder])), "start");
        let pid = b.state(&holder).unwrap()["pid"].as_i64().unwrap();
        for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
            }
        }
        b.sh("[ $$ != 1 ] && echo not-pid-1; cat /proc/1/comm");
        let id = b.id("joiner");
        let out = b.run(&id);
        (out.status.code(), stdout(&out))
    });
    assert_eq!(seen, (Some(0), "not-pid-1\nsleep\n".to_string()));
}

/// A new user namespace and a network namespace joined by path: the init joins the
/// network namespace with the host's privileges, then creates the user namespace.
#[test]
fn a_new_user_namespace_comes_after_the_joins() {
    let seen = differential("userjoin", |b, _| {
        let (net, _) = make_namespaces(&b.dir);
        let list = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        for ns in list.iter_mut() {
            if ns["type"] == "network" {
                ns["path"] = json!(b.dir.join("net"));
            }
        }
        list.push(json!({ "type": "user" }));
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        b.config["linux"]["uidMappings"] = map.clone();
        b.config["linux"]["gidMappings"] = map;
        // sysfs and cgroupfs can't be mounted for a network namespace the new user
        // namespace does not own (runc fails the same way).
        b.config["mounts"].as_array_mut().unwrap().retain(|m| !m["destination"].as_str().unwrap().starts_with("/sys"));
        b.sh("readlink /proc/self/ns/net; cat /proc/self/uid_map");
        let id = b.id("userjoin");
        let out = b.run(&id);
        let text = stdout(&out).replace(&net, "joined");
        (out.status.code(), text.split_whitespace().collect::<Vec<_>>().join(" "))
    });
    assert_eq!(seen, (Some(0), "joined 0 100000 65536".to_string()));
}

/// `run` in a private mount namespace made for the test (standing in for the host's:
/// without a mount namespace of its own, the container's mounts land in the runtime's),
/// with no mount namespace listed. Returns the exit code, the container's output with
/// its mount namespace named, and the mounts left under the bundle.
fn run_without_mount_ns(b: &mut Bundle, script: &str) -> (Option<i32>, String, Vec<String>) {
    b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "mount");
    // cgroupfs layouts differ between the runtimes (hybrid hierarchies): not the point here.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/sys/fs/cgroup");
    b.sh(&format!("[ $(readlink /proc/self/ns/mnt) = $MNT ] && echo runtimes-mount-ns; {script}"));
    b.write_config();
    let id = b.id("nomnt");
    let dir = b.dir.to_str().unwrap();
    let inner = format!(
        "MNT=$(readlink /proc/self/ns/mnt); sed -i \"s|\\\"TERM=xterm\\\"|\\\"TERM=xterm\\\", \\\"MNT=$MNT\\\"|\" {dir}/config.json; \
         {} --root {} run -b {dir} {id}; echo rc=$?; grep -c ' {dir}' /proc/self/mountinfo",
        b.runtime.display(),
        b.root.display(),
    );
    let out = output_of({
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", &inner]);
        c
    });
    let text = stdout(&out);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let left = lines.pop().unwrap_or_default();
    let rc = lines.pop().and_then(|l| l.strip_prefix("rc=").and_then(|c| c.parse().ok()));
    (rc, lines.join("\n"), vec![left])
}

/// No mount namespace listed: the container shares the runtime's, its root is a chroot
/// into the rootfs, and the config's mounts stay in the runtime's namespace (runc does
/// not undo them either).
#[test]
fn without_a_mount_namespace_the_container_shares_the_runtimes() {
    let seen = differential("nomnt", |b, _| {
        b.config["root"]["readonly"] = json!(false);
        b.config["linux"]["maskedPaths"] = json!([]);
        b.config["linux"]["readonlyPaths"] = json!([]);
        run_without_mount_ns(b, "ls /bin/busybox; cat /proc/1/comm")
    });
    assert_eq!(seen.0, Some(0), "{seen:?}");
    assert_eq!(seen.1, "runtimes-mount-ns\n/bin/busybox\ncat");
}

/// runc refuses maskedPaths and readonlyPaths without a mount namespace: they would
/// mask or remount the host's files.
#[test]
fn masked_paths_without_a_mount_namespace_are_refused() {
    let seen = differential("nomnt-masked", |b, _| run_without_mount_ns(b, "true"));
    assert_ne!(seen.0, Some(0));
}

/// root.readonly without a mount namespace: runc ignores it (the container writes into
/// the rootfs); the spec says the root MUST be read-only, and the bind mount of the
/// rootfs can be made so without touching anything else (conformance/README.md).
#[test]
fn without_a_mount_namespace_root_readonly_still_holds() {
    let mut b = Bundle::new("nomnt-ro");
    b.config["root"]["readonly"] = json!(true);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    let (rc, out, _) = run_without_mount_ns(&mut b, "touch /written 2>/dev/null || echo read-only");
    assert_eq!((rc, out.as_str()), (Some(0), "runtimes-mount-ns\nread-only"));
    assert!(!b.dir.join("rootfs/written").exists());
}

/// `exec` into a container under the same allow-list: the exec'd process makes only
/// runc's calls after its filter, too.
#[test]
fn exec_under_a_runc_allow_list_runs_as_under_runc() {
    let seen = differential("seccomp-exec", |b, _| {
        let mut profile = runc_allow_list(&[]);
        profile["syscalls"][0]["names"].as_array_mut().unwrap().push(json!("clock_nanosleep"));
        with_profile(b, profile, false, &["sleep", "100"]);
        let id = b.id("execseccomp");
        b.create(&id);
        assert_ok(&output_of(b.command(&["start", &id])), "start");
        let out = output_of(b.command(&["exec", &id, "echo", "from-exec"]));
        let _ = output_of(b.command(&["delete", "--force", &id]));
        (out.status.code(), stdout(&out))
    });
    assert_eq!(seen, (Some(0), "from-exec\n".to_string()));
}

/// A profile that kills execveat (runc execs with execve): the exec trampoline must not
/// go through execveat then.
#[test]
fn a_profile_that_kills_execveat_runs_as_under_runc() {
    let scenario = |b: &mut Bundle| {
        let profile = json!({ "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["execveat"], "action": "SCMP_ACT_KILL_PROCESS" }] });
        with_profile(b, profile, false, &["echo", "hello"]);
        let id = b.id("execveat");
        let out = b.run(&id);
        (out.status.code(), stdout(&out))
    };
    let seen = differential("kill-execveat", |b, _| scenario(b));
    assert_eq!(seen, (Some(0), "hello\n".to_string()));
    // Without /proc in the container either, strata still execs (directly, warned);
    // runc 1.1.5 fails there: it needs /proc/self/fd to close its fds.
    let mut b = Bundle::new("kill-execveat-noproc");
    b.config["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/proc");
    assert_eq!(scenario(&mut b), (Some(0), "hello\n".to_string()));
}

/// A runtime running where clone3 answers ENOSYS (inside a container under Docker's
/// older profiles): runc's Go never uses clone3; strata falls back to clone and still
/// puts the init in its cgroup.
#[test]
fn a_runtime_where_clone3_is_filtered_still_runs_containers() {
    let seen = differential("no-clone3", |b, _| {
        let id = b.id("noclone3");
        // Without a cgroup namespace, /proc/self/cgroup shows the host's path.
        b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
        b.sh(&format!("grep -q {id} /proc/self/cgroup && echo in-its-cgroup"));
        b.write_config();
        let mut c = Command::new(env!("CARGO_BIN_EXE_no-clone3"));
        c.arg(&b.runtime).arg("--root").arg(&b.root).args(["run", "-b", b.dir.to_str().unwrap(), &id]);
        let out = output_of(c);
        (out.status.code(), stdout(&out))
    });
    assert_eq!(seen, (Some(0), "in-its-cgroup\n".to_string()));
}
