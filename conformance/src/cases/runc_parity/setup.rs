//! Namespaces joined by path and what hooks see, seccomp ordering, /dev and bind corner cases, cwd, the pty owner.

use super::*;

// ---- namespaces and hooks ----

pub(super) fn no_mount_ns(ctx: &mut Ctx) -> R {
    drop_ns(ctx, "mount");
    ctx.config["linux"]["maskedPaths"] = json!([]);
    ctx.config["linux"]["readonlyPaths"] = json!([]);
    ctx.sh("readlink /proc/self/ns/mnt");
    let id = ctx.id();
    ctx.write_config();
    let inner = format!(
        "readlink /proc/self/ns/mnt; '{}' --root '{}' run --bundle '{}' {id}; echo rc=$?",
        ctx.env.runtime.display(),
        ctx.env.root.display(),
        ctx.bundle()
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &inner]);
    let o = run_cmd(c, &ctx.env.work, ctx.env.next());
    let lines: Vec<&str> = o.stdout.lines().collect();
    if !o.ok() || lines.len() < 2 {
        return skip(format!("cannot make a private mount namespace to run in: {}", o.brief()));
    }
    let (ns, rc) = (lines[0], lines[lines.len() - 1]);
    ensure!(rc == "rc=0", "run without a mount namespace: {rc}: {}", o.stderr.trim().lines().last().unwrap_or(""));
    ensure!(ns != super::super::host_ns("mnt"), "unshare did not make a mount namespace");
    ensure!(
        lines.len() == 3 && lines[1] == ns,
        "the container's mount namespace is {:?}, the runtime's {ns}",
        &lines[1..lines.len() - 1]
    );
    Ok(())
}

/// A host helper in new namespaces (`unshare FLAGS sh -c SCRIPT`); its pid.
pub(super) fn ns_helper(ctx: &mut Ctx, flags: &[&str], script: &str) -> Result<u32, Fail> {
    let mut argv = vec!["unshare"];
    argv.extend_from_slice(flags);
    argv.extend_from_slice(&["sh", "-c", script]);
    ctx.helper(&argv)
}

pub(super) fn link(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|p| p.display().to_string()).unwrap_or_default()
}

pub(super) fn hostname_joined(ctx: &mut Ctx) -> R {
    let pid = ns_helper(ctx, &["-u"], "hostname made-by-case; exec sleep 1000")?;
    let uts = link(pid, "uts");
    if uts.is_empty() || uts == super::super::host_ns("uts") {
        return skip("host could not make a uts namespace with unshare -u");
    }
    let path = format!("/proc/{pid}/ns/uts");
    set_ns(ctx, "uts", Some(&path));
    ctx.config["hostname"] = json!("set-by-runtime");
    ctx.sh("readlink /proc/self/ns/uts; hostname");
    let out = run_ok(ctx)?;
    ensure!(
        out.split_whitespace().eq([uts.as_str(), "set-by-runtime"]),
        "container saw {out:?}, want {uts} set-by-runtime"
    );
    let o = std::process::Command::new("nsenter").arg(format!("--uts={path}")).arg("hostname").output();
    let joined = o.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    ensure!(joined == "set-by-runtime", "the joined namespace's hostname is {joined:?}");
    Ok(())
}

pub(super) fn join_pid(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let holder = ctx.id();
    started(ctx, &holder)?;
    let pid = pid_of(ctx, &holder)?;
    set_ns(ctx, "pid", Some(&format!("/proc/{pid}/ns/pid")));
    ctx.sh("[ $$ != 1 ] && echo not-pid-1; cat /proc/1/comm");
    let out = run_ok(ctx)?;
    ensure!(out == "not-pid-1\nsleep\n", "in the joined pid namespace the container printed {out:?}");
    Ok(())
}

pub(super) fn userns_after_join(ctx: &mut Ctx) -> R {
    need_ns(ctx, "user", "user")?;
    let pid = ns_helper(ctx, &["-n"], "exec sleep 1000")?;
    let net = link(pid, "net");
    if net.is_empty() || net == super::super::host_ns("net") {
        return skip("host could not make a net namespace with unshare -n");
    }
    set_ns(ctx, "network", Some(&format!("/proc/{pid}/ns/net")));
    set_ns(ctx, "user", None);
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    ctx.config["linux"]["uidMappings"] = map.clone();
    ctx.config["linux"]["gidMappings"] = map;
    // sysfs can't be mounted for a network namespace the new user namespace doesn't own.
    ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "sysfs");
    ctx.sh("readlink /proc/self/ns/net; cat /proc/self/uid_map");
    let out = run_ok(ctx)?;
    ensure!(
        out.split_whitespace().eq([net.as_str(), "0", "100000", "65536"]),
        "the container printed {out:?}, want {net} and the uid map"
    );
    Ok(())
}

pub(super) fn need_hook(ctx: &Ctx, kind: &str) -> R {
    if ctx.env.feature_lists("/hooks", kind) == Some(false) {
        return skip(format!("runtime features does not list hook {kind}"));
    }
    Ok(())
}

pub(super) fn hooks_runtime_ns(ctx: &mut Ctx) -> R {
    need_hook(ctx, "prestart")?;
    need_hook(ctx, "createRuntime")?;
    let pid = ns_helper(ctx, &["-n", "-u"], "exec sleep 1000")?;
    let (net, uts) = (link(pid, "net"), link(pid, "uts"));
    let (host_net, host_uts) = (super::super::host_ns("net"), super::super::host_ns("uts"));
    if net == host_net || uts == host_uts || net.is_empty() {
        return skip("host could not make net and uts namespaces with unshare -n -u");
    }
    set_ns(ctx, "network", Some(&format!("/proc/{pid}/ns/net")));
    set_ns(ctx, "uts", Some(&format!("/proc/{pid}/ns/uts")));
    let rec = |kind: &str, dir: &Path| {
        let f = dir.join(format!("{kind}.ns")).display().to_string();
        json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("readlink /proc/self/ns/net /proc/self/ns/uts > {f}")] })
    };
    ctx.config["hooks"] =
        json!({ "prestart": [rec("prestart", &ctx.dir)], "createRuntime": [rec("createRuntime", &ctx.dir)] });
    ctx.sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts");
    let out = run_ok(ctx)?;
    ensure!(
        out.split_whitespace().eq([net.as_str(), uts.as_str()]),
        "the container is in {out:?}, want the joined {net} {uts}"
    );
    for kind in ["prestart", "createRuntime"] {
        let seen = std::fs::read_to_string(ctx.dir.join(format!("{kind}.ns"))).unwrap_or_default();
        ensure!(
            seen.split_whitespace().eq([host_net.as_str(), host_uts.as_str()]),
            "{kind} hook saw {seen:?}, want the runtime's {host_net} {host_uts}"
        );
    }
    Ok(())
}

pub(super) fn cc_cwd(ctx: &mut Ctx) -> R {
    need_hook(ctx, "createContainer")?;
    let f = ctx.dir.join("cc.cwd");
    ctx.config["hooks"] = json!({ "createContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", format!("pwd -P > {}", f.display())] }] });
    ctx.args(&["true"]);
    run_ok(ctx)?;
    let got = std::fs::read_to_string(&f).map_err(|e| format!("the hook wrote no cwd: {e}"))?;
    let rootfs = ctx.dir.join("rootfs");
    let real = std::fs::canonicalize(&rootfs).unwrap_or(rootfs.clone());
    ensure!(
        got.trim() == rootfs.display().to_string() || got.trim() == real.display().to_string(),
        "createContainer hook's cwd is {:?}, want the rootfs {}",
        got.trim(),
        rootfs.display()
    );
    Ok(())
}

pub(super) fn sc_seccomp(ctx: &mut Ctx) -> R {
    need_hook(ctx, "startContainer")?;
    ctx.config["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" }] });
    ctx.config["process"]["noNewPrivileges"] = json!(false);
    ctx.config["hooks"] = json!({ "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "mkdir /made-by-hook; echo $? > /hook-ran"] }] });
    ctx.args(&["true"]);
    let id = ctx.id();
    let o = ctx.run(&id);
    ensure!(ctx.rootfs("/hook-ran").exists(), "the startContainer hook did not run: {}", o.brief());
    ensure!(!ctx.rootfs("/made-by-hook").exists(), "the startContainer hook's mkdir got past the container's filter");
    Ok(())
}

/// What runc 1.1.5's init calls after installing the filter without noNewPrivileges,
/// the Go runtime's calls and busybox `echo`'s: an allow-list a runc user could have
/// written (from integration/tests/init_order.rs). Not in it: close_range, memfd_create,
/// execveat, statx, sendto/recvfrom, setresuid.
pub(super) fn runc_allow_list() -> Value {
    let names = "getdents64 getpid prctl fstat setgid setuid setgroups close futex write read capget capset openat fstatfs \
                 getcwd fcntl rt_sigreturn getppid newfstatat chdir epoll_ctl faccessat2 faccessat execve \
                 nanosleep sched_yield mmap munmap madvise rt_sigprocmask rt_sigaction sigaltstack gettid tgkill \
                 exit exit_group clone epoll_pwait brk mprotect \
                 arch_prctl set_tid_address set_robust_list rseq prlimit64 getuid uname readlink getrandom pread64 access";
    json!({ "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": names.split_whitespace().collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW" }] })
}

pub(super) fn seccomp_allow_list(ctx: &mut Ctx) -> R {
    if ctx.env.features.as_ref().and_then(|f| f.pointer("/linux/seccomp/enabled")) == Some(&json!(false)) {
        return skip("runtime features says seccomp is not enabled");
    }
    ctx.config["linux"]["seccomp"] = runc_allow_list();
    ctx.config["process"]["noNewPrivileges"] = json!(false);
    ctx.args(&["echo", "hello"]);
    let out = run_ok(ctx)?;
    ensure!(out == "hello\n", "the container printed {out:?}");
    Ok(())
}

// ---- mounts, cwd, console ----

pub(super) fn ro_dev(ctx: &mut Ctx) -> R {
    for m in ctx.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    ctx.sh("touch /dev/x 2>/dev/null && echo dev-rw || echo dev-ro; \
            awk '$5==\"/dev/pts\"' /proc/self/mountinfo | grep -q ' - devpts ' && echo devpts; \
            touch /dev/shm/x && echo shm-rw; echo > /dev/null && echo null-ok");
    let out = run_ok(ctx)?;
    ensure!(out.split_whitespace().eq(["dev-ro", "devpts", "shm-rw", "null-ok"]), "the container saw {out:?}");
    Ok(())
}

pub(super) fn userns_bind(ctx: &mut Ctx) -> R {
    use std::os::unix::fs::PermissionsExt;
    need_ns(ctx, "user", "user")?;
    set_ns(ctx, "user", None);
    let map = json!([{ "containerID": 0, "hostID": 300000, "size": 65536 }]);
    ctx.config["linux"]["uidMappings"] = map.clone();
    ctx.config["linux"]["gidMappings"] = map;
    let st = std::process::Command::new("chown").args(["-R", "300000:300000"]).arg(ctx.rootfs("")).status();
    ensure!(matches!(st, Ok(s) if s.success()), "chown of the rootfs failed");
    let mut srcs = vec![];
    for (name, owner) in [("root-only", 0), ("someone-else", 1234)] {
        let d = ctx.dir.join(name);
        std::fs::create_dir_all(d.join("data")).map_err(|e| format!("{e}"))?;
        std::fs::write(d.join("data/f"), format!("{name}\n")).map_err(|e| format!("{e}"))?;
        std::os::unix::fs::chown(&d, Some(owner), Some(owner)).map_err(|e| format!("{e}"))?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("{e}"))?;
        srcs.push(d.join("data").display().to_string());
    }
    super::super::add_mount(
        ctx,
        json!({ "destination": "/a", "type": "bind", "source": srcs[0], "options": ["rbind"] }),
    );
    super::super::add_mount(
        ctx,
        json!({ "destination": "/b", "type": "bind", "source": srcs[1], "options": ["bind", "ro"] }),
    );
    ctx.sh("cat /a/f /b/f");
    let out = run_ok(ctx)?;
    ensure!(out == "root-only\nsomeone-else\n", "the container read {out:?}");
    Ok(())
}

pub(super) fn cwd_root_only(ctx: &mut Ctx) -> R {
    use std::os::unix::fs::PermissionsExt;
    let secret = ctx.rootfs("/secret");
    std::fs::create_dir_all(secret.join("sub")).map_err(|e| format!("{e}"))?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("{e}"))?;
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    ctx.config["process"]["cwd"] = json!("/secret/sub");
    ctx.sh("pwd; id -u");
    let out = run_ok(ctx)?;
    ensure!(out.split_whitespace().eq(["/secret/sub", "1000"]), "the container printed {out:?}");
    Ok(())
}

pub(super) fn console_owner(ctx: &mut Ctx) -> R {
    ctx.config["process"]["terminal"] = json!(true);
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    ctx.sh("stat -c 'owner=%u' $(tty)");
    let sock = ctx.dir.join("console.sock");
    let rx = crate::console::listen(&sock).map_err(|e| format!("console socket: {e}"))?;
    let id = ctx.id();
    let s = sock.display().to_string();
    let o = ctx.create(&id, &["--console-socket", &s]);
    ensure!(o.ok(), "create with --console-socket failed: {}", o.brief());
    let o = ctx.start(&id);
    ensure!(o.ok(), "start failed: {}", o.brief());
    let out = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no pty master received, or it never closed".to_string())??;
    let owner = out.lines().map(|l| l.trim_end_matches('\r')).find_map(|l| l.strip_prefix("owner="));
    ensure!(owner == Some("1000"), "the pty's owner is {owner:?}, want 1000 (console: {out:.200})");
    Ok(())
}
