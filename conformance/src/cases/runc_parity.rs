//! runc's observable behaviour where engines depend on it or the spec is loose, ported
//! from the differential integration tests (integration/tests/runc_cli.rs, init_order.rs,
//! cgroup_fidelity.rs, mounts_fidelity.rs, console.rs, inside.rs): the command-line
//! contract (kill --all, kill 0, exec exit codes, ps, list, state), the device cgroup's
//! reading of access strings, cgroup cleanup and frozen cgroups, namespaces joined by
//! path and what hooks see, seccomp ordering, /dev and bind corner cases, the pty owner.

use super::namespaces::need_ns;
use super::{drop_ns, expect_error, set_ns, Entry};
use crate::ensure;
use crate::harness::{not_ok, run_cmd, skip, Ctx, Fail, Out, R};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub const CASES: &[Entry] = &[
    ("kill_all_stopped_kills_leftovers", "runc(8) CLI contract: `kill --all ID KILL` on a stopped container exits 0 and kills what is left in its cgroup; plain `kill` of it fails (runtime.md §Kill MUST)", kill_all_stopped),
    ("kill_zero_running", "runc(8) CLI contract: `kill ID 0` (and `kill --all ID 0`) on a running container exits 0 and changes nothing (a liveness probe)", kill_zero),
    ("exec_pid_file_unwritable_leaves_nothing", "runc(8) CLI contract: `exec -d --pid-file` that can't write the file fails and leaves no process behind in the container", exec_pidfile),
    ("exec_status_passes_through", "runc(8) CLI contract: `exec` exits with the program's own status", exec_status),
    ("exec_missing_container_255", "runc(8) CLI contract: `exec` that fails in the runtime (no such container) exits 255", exec_missing),
    ("exec_paused_255", "runc(8) CLI contract: `exec` in a paused container is refused with exit 255", exec_paused),
    ("exec_process_file_default_user", "runc(8) CLI contract: `exec -p` of a process without `user` runs as 0:0 (config.md §POSIX process user, Go zero value), not as config.json's user", exec_default_user),
    ("ps_stopped_ok", "runc(8) CLI contract: `ps` of a stopped container exits 0 (nothing left to list)", ps_stopped),
    ("list_json_compact", "runc(8) CLI contract: `list -f json` is one compact JSON line with runc's fields (ociVersion id pid status bundle rootfs created owner)", list_json),
    ("state_runc_fields", "runtime.md §State (REQUIRED ociVersion id status pid bundle) and runc(8) state: rootfs, created (RFC 3339), owner (runc 1.1: \"\")", state_fields),
    ("devices_access_is_a_set", "config-linux.md §Allowed Device List access (MUST apply): access is a set of r, w, m; \"rrr\" allows read only (runc reading)", |c| device_case(c, "rrr")),
    ("devices_deny_all_keeps_listed_node", "config-linux.md §Allowed Device List (MUST apply in order): a deny-all keeps a linux.devices node unopenable for write (runc reading)", |c| device_case(c, "deny")),
    ("devices_unknown_access_letters_ignored", "config-linux.md §Allowed Device List access: letters other than r, w, m are ignored, \"rwa\" is read and write (runc reading)", |c| device_case(c, "rwa")),
    ("devices_default_without_rules", "config-linux.md §Allowed Device List with §Default Devices: without linux.resources.devices only the default devices are allowed (runc reading: the cgroup starts deny-all)", |c| device_case(c, "none")),
    ("devices_deny_exception_on_allow_all", "config-linux.md §Allowed Device List (MUST apply in order): allow-all then deny b 7:0 w denies write, keeps read", |c| device_case(c, "allow-all")),
    ("devices_wildcard_hole_refused", "config-linux.md §Allowed Device List: a deny inside an earlier wildcard allow (b *:* then b 7:0 w) is refused, not silently ignored (runc)", |c| device_case(c, "hole")),
    ("delete_force_removes_sub_cgroups", "runtime.md §Delete (MUST delete the resources created during create) / runc(8) delete --force: sub-cgroups the container made go with it", sub_cgroups),
    ("delete_force_shared_cgroup_keeps_other", "runc(8) CLI contract: `delete --force` of one of two containers sharing a cgroupsPath leaves the other running", shared_cgroup),
    ("frozen_cgroup_refused", "runtime.md §Create (MUST generate an error when unable to create the environment): a frozen cgroupsPath is refused within 10 s, not hung in (runc: \"container's cgroup unexpectedly frozen\")", |c| frozen(c, false)),
    ("frozen_parent_refused", "runtime.md §Create (MUST generate an error when unable to create the environment): a cgroupsPath under a frozen parent (born frozen) is refused within 10 s", |c| frozen(c, true)),
    ("absent_mount_inherited", "config-linux.md §Namespaces (MUST): a type not in the array MUST be inherited from the runtime (mount; run inside a private mount namespace made by the case)", no_mount_ns),
    ("hostname_in_joined_uts", "config.md §Hostname with config-linux.md §Namespaces path: hostname is set in a uts namespace joined by path", hostname_joined),
    ("join_pid_path_holds_container", "config-linux.md §Namespaces path (MUST): the process is placed in a pid namespace joined by path (another container's), not as its pid 1", join_pid),
    ("new_user_after_joined_network", "config-linux.md §Namespaces and §User namespace mappings: a new user namespace with a network namespace joined by path; the join happens first", userns_after_join),
    ("hooks_keep_runtime_ns_when_joining", "config.md §prestart, §createRuntime Hooks (MUST be called in the runtime namespace): they see the runtime's net and uts while the container joins others by path", hooks_runtime_ns),
    ("create_container_hook_cwd_is_rootfs", "config.md §createContainer Hooks (called in the container namespace, before pivot_root); runc(8): their working directory is the rootfs", cc_cwd),
    ("start_container_hook_under_seccomp", "config.md §startContainer Hooks (MUST be executed in the container namespace) with config-linux.md §Seccomp: runc runs them under the container's filter", sc_seccomp),
    ("seccomp_before_caps_drop", "config-linux.md §Seccomp with noNewPrivileges false: a runc-style allow-list without close_range etc. still runs the container", seccomp_allow_list),
    ("readonly_dev_with_devpts", "config.md §Mounts (MUST mount in order, options apply): a read-only /dev with devpts, shm and mqueue below it works", ro_dev),
    ("userns_bind_unreachable_source", "config.md §Mounts bind with config-linux.md §User namespace mappings: a bind source the container's root can't reach (0700, host root's) still mounts", userns_bind),
    ("cwd_only_root_can_enter", "config.md §Process cwd (REQUIRED) and user: a cwd only root may enter is entered before the switch to process.user (runc)", cwd_root_only),
    ("console_owned_by_user", "config.md §Process terminal, user with runc(8) --console-socket: the pty handed over belongs to process.user's uid", console_owner),
];

fn sleeper(ctx: &mut Ctx) {
    ctx.args(&["sleep", "1000"]);
}

/// create and start, both required to succeed.
fn started(ctx: &mut Ctx, id: &str) -> R {
    ctx.create_ok(id)?;
    let o = ctx.start(id);
    ensure!(o.ok(), "start failed: {}", o.brief());
    Ok(())
}

fn pid_of(ctx: &Ctx, id: &str) -> Result<i32, Fail> {
    let s = ctx.state(id)?;
    s["pid"].as_i64().filter(|p| *p > 0).map(|p| p as i32).ok_or_else(|| Fail::NotOk(format!("state has no pid: {s}")))
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

fn gone_soon(pid: i32) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits up to 5 s for a file the container writes (a whole line).
fn read_soon(p: &Path) -> Result<String, Fail> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return Ok(s);
            }
        }
        if Instant::now() > end {
            return not_ok(format!("{} never written", p.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `run` with the current config, which must succeed; its stdout.
fn run_ok(ctx: &mut Ctx) -> Result<String, Fail> {
    let id = ctx.id();
    let o = ctx.run(&id);
    ensure!(o.ok(), "run failed: {}", o.brief());
    Ok(o.stdout)
}

fn cgroups_path(ctx: &Ctx) -> String {
    ctx.config["linux"]["cgroupsPath"].as_str().unwrap_or("").to_string()
}

// ---- kill, exec, ps, list, state ----

fn kill_all_stopped(ctx: &mut Ctx) -> R {
    // No pid namespace: the init's death leaves its child running in the cgroup.
    ctx.config["linux"]["namespaces"] =
        json!([{ "type": "mount" }, { "type": "ipc" }, { "type": "uts" }, { "type": "network" }]);
    ctx.sh("sleep 1000 & echo $! > /child; exec sleep 2000");
    let id = ctx.id();
    started(ctx, &id)?;
    let child: i32 = read_soon(&ctx.rootfs("/child"))?.trim().parse().map_err(|e| format!("/child: {e}"))?;
    let init = pid_of(ctx, &id)?;
    // SAFETY: kill(2) on the container's init pid, read from state.
    unsafe { libc::kill(init, libc::SIGKILL) };
    ctx.wait_status(&id, "stopped")?;
    expect_error(&ctx.kill(&id, "KILL"), "plain kill of a stopped container")?;
    ensure!(alive(child), "the background process {child} died with the init: nothing left to test");
    let o = ctx.rt(&["kill", "--all", &id, "KILL"]);
    ensure!(o.ok(), "kill --all of a stopped container: {}", o.brief());
    ensure!(gone_soon(child), "pid {child}, left in the container's cgroup, survived kill --all");
    Ok(())
}

fn kill_zero(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let o = ctx.kill(&id, "0");
    ensure!(o.ok(), "kill ID 0 of a running container: {}", o.brief());
    let o = ctx.rt(&["kill", "--all", &id, "0"]);
    ensure!(o.ok(), "kill --all ID 0 of a running container: {}", o.brief());
    ensure!(ctx.status(&id) == "running", "status after kill 0 is {}", ctx.status(&id));
    Ok(())
}

fn exec_status(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let o = ctx.rt(&["exec", &id, "sh", "-c", "exit 3"]);
    ensure!(o.code == Some(3), "exec of `exit 3` gave {}", o.brief());
    Ok(())
}

fn exec_pidfile(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let bad = ctx.dir.join("no/such/dir/p").display().to_string();
    let o = ctx.rt(&["exec", "-d", "--pid-file", &bad, &id, "sleep", "999"]);
    ensure!(!o.ok(), "exec -d with an unwritable --pid-file succeeded");
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = ctx.rt(&["ps", "-f", "json", &id]);
        let pids: Vec<i32> =
            serde_json::from_str(ps.stdout.trim()).map_err(|e| format!("ps -f json ({e}): {}", ps.brief()))?;
        if pids.len() == 1 {
            return Ok(());
        }
        if Instant::now() > end {
            return not_ok(format!("the container still holds {pids:?} 5 s after the failed exec"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exec_missing(ctx: &mut Ctx) -> R {
    let o = ctx.rt(&["exec", "no-such-container-xyz", "true"]);
    ensure!(o.code == Some(255), "exec in a missing container gave {}, want exit 255", o.brief());
    Ok(())
}

fn exec_paused(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let p = ctx.rt(&["pause", &id]);
    if !p.ok() {
        return skip(format!("pause failed: {}", p.brief()));
    }
    let o = ctx.rt(&["exec", &id, "true"]);
    let r = ctx.rt(&["resume", &id]);
    ensure!(o.code == Some(255), "exec in a paused container gave {}, want exit 255", o.brief());
    ensure!(r.ok(), "resume failed: {}", r.brief());
    Ok(())
}

fn exec_default_user(ctx: &mut Ctx) -> R {
    ctx.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let p = ctx.dir.join("process.json");
    let proc_json =
        json!({ "args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"] });
    std::fs::write(&p, proc_json.to_string()).map_err(|e| format!("write process.json: {e}"))?;
    let o = ctx.rt(&["exec", "-p", &p.display().to_string(), &id]);
    ensure!(o.ok(), "exec -p failed: {}", o.brief());
    ensure!(o.stdout.split_whitespace().eq(["0", "0"]), "exec -p without user ran as uid/gid {:?}, want 0 0", o.stdout);
    Ok(())
}

fn ps_stopped(ctx: &mut Ctx) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    started(ctx, &id)?;
    ctx.wait_status(&id, "stopped")?;
    let o = ctx.rt(&["ps", &id]);
    ensure!(o.ok(), "ps of a stopped container: {}", o.brief());
    let o = ctx.rt(&["ps", "-f", "json", &id]);
    ensure!(o.ok(), "ps -f json of a stopped container: {}", o.brief());
    let v: Value =
        serde_json::from_str(o.stdout.trim()).map_err(|e| format!("ps -f json is not JSON ({e}): {:?}", o.stdout))?;
    ensure!(v.is_null() || v == json!([]), "ps -f json of a stopped container lists {v}");
    Ok(())
}

const RUNC_FIELDS: &[&str] = &["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"];

/// Checks the fields runc prints for a running container.
fn runc_fields(ctx: &Ctx, e: &Value, what: &str) -> R {
    for k in RUNC_FIELDS {
        ensure!(e.get(k).is_some(), "{what} lacks {k}: {e}");
    }
    let bundle = ctx.bundle();
    let rootfs = ctx.dir.join("rootfs").display().to_string();
    ensure!(e["status"] == "running" && e["pid"].as_i64() > Some(0), "{what}: status/pid {} {}", e["status"], e["pid"]);
    ensure!(e["bundle"] == bundle.as_str(), "{what}: bundle {}, want {bundle}", e["bundle"]);
    ensure!(e["rootfs"] == rootfs.as_str(), "{what}: rootfs {}, want {rootfs}", e["rootfs"]);
    let created = e["created"].as_str().unwrap_or("");
    ensure!(
        created.len() >= 20
            && created.as_bytes()[10] == b'T'
            && (created.ends_with('Z') || created[19..].contains(['+', '-'])),
        "{what}: created {created:?} is not RFC 3339"
    );
    // runc 1.1's `state` prints "owner": "" (only `list` fills it in).
    let owners: &[&str] = if what == "state" { &["root", ""] } else { &["root"] };
    ensure!(owners.iter().any(|o| e["owner"] == *o), "{what}: owner {}, want {owners:?}", e["owner"]);
    Ok(())
}

fn list_json(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let o = ctx.rt(&["list", "-f", "json"]);
    ensure!(o.ok(), "list -f json: {}", o.brief());
    let text = o.stdout.trim_end_matches('\n');
    ensure!(!text.contains('\n') && !text.contains("\": "), "list -f json is not one compact line: {text:.300}");
    let v: Value = serde_json::from_str(text).map_err(|e| format!("list -f json is not JSON ({e})"))?;
    let e = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id.as_str()))
        .ok_or_else(|| Fail::NotOk(format!("list -f json has no {id}: {text:.300}")))?;
    runc_fields(ctx, e, "list -f json")
}

fn state_fields(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let s = ctx.state(&id)?;
    ensure!(s["id"] == id.as_str() && s["ociVersion"].is_string(), "state id/ociVersion: {s}");
    runc_fields(ctx, &s, "state")
}

// ---- device cgroup ----

/// Opens (no I/O) /dev/kmsg for write, /dev/loop0 for read then write, /dev/null for
/// read, in the container, under `rules`; "0" for each open that worked, "1" if not.
fn device_case(ctx: &mut Ctx, variant: &str) -> R {
    for (p, w) in [("/dev/loop0", false), ("/dev/kmsg", true)] {
        let ok = std::fs::OpenOptions::new().read(!w).write(w).open(p).is_ok();
        if !ok {
            return skip(format!("the host can't open {p} itself (no loop driver?)"));
        }
    }
    ctx.config["linux"]["devices"] = json!([
        { "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438 },
        { "path": "/dev/loop0", "type": "b", "major": 7, "minor": 0, "fileMode": 438 },
    ]);
    let deny = json!({ "allow": false, "access": "rwm" });
    let (rules, want) = match variant {
        "rrr" => (
            json!([deny, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rrr" },
                   { "allow": true, "type": "b", "major": 7, "minor": 0, "access": "rrr" }]),
            "1010",
        ),
        "rwa" => (json!([deny, { "allow": true, "type": "b", "major": 7, "minor": 0, "access": "rwa" }]), "1000"),
        "allow-all" => (
            json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "b", "major": 7, "minor": 0, "access": "w" }]),
            "0010",
        ),
        "hole" => (
            json!([deny, { "allow": true, "type": "b", "access": "rwm" }, { "allow": false, "type": "b", "major": 7, "minor": 0, "access": "w" }]),
            "refused",
        ),
        _ => (json!([deny]), "1110"),
    };
    if variant == "none" {
        ctx.config["linux"]["resources"].as_object_mut().unwrap().remove("devices");
    } else {
        ctx.config["linux"]["resources"]["devices"] = rules;
    }
    ctx.sh("for o in 'exec 3>/dev/kmsg' 'exec 3</dev/loop0' 'exec 3>/dev/loop0' 'exec 3</dev/null'; do \
            if sh -c \"$o\" 2>/dev/null; then echo -n 0; else echo -n 1; fi; done");
    if want == "refused" {
        let id = ctx.id();
        return expect_error(&ctx.run(&id), "a deny rule inside an earlier wildcard allow");
    }
    let got = run_ok(ctx)?;
    ensure!(got.trim() == want, "opens (kmsg w, loop0 r, loop0 w, null r; 0 = opened) are {}, want {want}", got.trim());
    Ok(())
}

// ---- cgroups: delete --force, shared and frozen cgroups ----

fn sub_cgroups(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let pid = pid_of(ctx, &id)?;
    let path = cgroups_path(ctx);
    let dirs = crate::cgroup::dirs_of(&path);
    ensure!(!dirs.is_empty(), "no cgroup {path} to make sub-cgroups in");
    for d in &dirs {
        let deep = d.join("sub/deeper");
        std::fs::create_dir_all(&deep).map_err(|e| format!("mkdir {}: {e}", deep.display()))?;
        let s = d.display().to_string();
        if crate::cgroup::is_v2() || s.starts_with("/sys/fs/cgroup/memory/") || s.starts_with("/sys/fs/cgroup/pids/") {
            std::fs::write(deep.join("cgroup.procs"), pid.to_string())
                .map_err(|e| format!("moving the init to {}: {e}", deep.display()))?;
        }
    }
    let o = ctx.rt(&["delete", "--force", &id]);
    ensure!(o.ok(), "delete --force: {}", o.brief());
    let left = crate::cgroup::dirs_of(&path);
    ensure!(left.is_empty(), "delete --force left {left:?}");
    ensure!(gone_soon(pid), "the init {pid} survived delete --force");
    Ok(())
}

fn shared_cgroup(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let (a, b) = (ctx.id(), ctx.id());
    ctx.config["linux"]["cgroupsPath"] = json!(format!("{}/pod-{a}", ctx.env.cgroup_parent()));
    started(ctx, &a)?;
    started(ctx, &b)?;
    let pb = pid_of(ctx, &b)?;
    let o = ctx.rt(&["delete", "--force", &a]);
    ensure!(o.ok(), "delete --force of the first: {}", o.brief());
    ensure!(
        ctx.status(&b) == "running" && alive(pb),
        "the second container is {} after the first's delete --force",
        ctx.status(&b)
    );
    Ok(())
}

/// `RUNTIME --root ROOT ARGS...` killed after `secs`.
fn bounded(ctx: &Ctx, secs: u32, args: &[&str]) -> Out {
    let mut c = std::process::Command::new("timeout");
    c.args(["-s", "KILL", &secs.to_string()]).arg(&ctx.env.runtime).arg("--root").arg(&ctx.env.root).args(args);
    run_cmd(c, &ctx.env.work, ctx.env.next())
}

fn frozen(ctx: &mut Ctx, parent: bool) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    let mut path = cgroups_path(ctx);
    let at = if parent {
        let at = format!("{}/frozen-{id}", ctx.env.cgroup_parent());
        path = format!("{at}/{id}");
        ctx.config["linux"]["cgroupsPath"] = json!(path);
        at
    } else {
        path.clone()
    };
    let (dir, file, frozen, thawed) = if crate::cgroup::is_v2() {
        (format!("/sys/fs/cgroup{at}"), "cgroup.freeze", "1", "0")
    } else {
        (format!("/sys/fs/cgroup/freezer{at}"), "freezer.state", "FROZEN", "THAWED")
    };
    let st = Path::new(&dir).join(file);
    if std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&st, frozen)).is_err() {
        return skip(format!("the host can't freeze {dir}"));
    }
    ctx.write_config();
    let b = ctx.bundle();
    let o = bounded(ctx, 10, &["run", "--detach", "--bundle", &b, &id]);
    let _ = std::fs::write(&st, thawed);
    std::thread::sleep(Duration::from_millis(200));
    let listed = ctx.state(&id).is_ok();
    if !parent {
        let _ = std::fs::remove_dir(&dir);
    }
    let left = crate::cgroup::dirs_of(&path);
    crate::cgroup::remove_tree(&at);
    ensure!(o.code != Some(137) && o.signal != Some(9), "the runtime hung in the frozen cgroup (killed after 10 s)");
    ensure!(!o.ok(), "run --detach into a frozen cgroup succeeded");
    ensure!(!listed, "refused, yet the container is listed");
    ensure!(!parent || left.is_empty(), "refused ({}), but left {left:?}", o.brief());
    Ok(())
}

// ---- namespaces and hooks ----

fn no_mount_ns(ctx: &mut Ctx) -> R {
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
    ensure!(ns != super::host_ns("mnt"), "unshare did not make a mount namespace");
    ensure!(
        lines.len() == 3 && lines[1] == ns,
        "the container's mount namespace is {:?}, the runtime's {ns}",
        &lines[1..lines.len() - 1]
    );
    Ok(())
}

/// A host helper in new namespaces (`unshare FLAGS sh -c SCRIPT`); its pid.
fn ns_helper(ctx: &mut Ctx, flags: &[&str], script: &str) -> Result<u32, Fail> {
    let mut argv = vec!["unshare"];
    argv.extend_from_slice(flags);
    argv.extend_from_slice(&["sh", "-c", script]);
    ctx.helper(&argv)
}

fn link(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|p| p.display().to_string()).unwrap_or_default()
}

fn hostname_joined(ctx: &mut Ctx) -> R {
    let pid = ns_helper(ctx, &["-u"], "hostname made-by-case; exec sleep 1000")?;
    let uts = link(pid, "uts");
    if uts.is_empty() || uts == super::host_ns("uts") {
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

fn join_pid(ctx: &mut Ctx) -> R {
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

fn userns_after_join(ctx: &mut Ctx) -> R {
    need_ns(ctx, "user", "user")?;
    let pid = ns_helper(ctx, &["-n"], "exec sleep 1000")?;
    let net = link(pid, "net");
    if net.is_empty() || net == super::host_ns("net") {
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

fn need_hook(ctx: &Ctx, kind: &str) -> R {
    if ctx.env.feature_lists("/hooks", kind) == Some(false) {
        return skip(format!("runtime features does not list hook {kind}"));
    }
    Ok(())
}

fn hooks_runtime_ns(ctx: &mut Ctx) -> R {
    need_hook(ctx, "prestart")?;
    need_hook(ctx, "createRuntime")?;
    let pid = ns_helper(ctx, &["-n", "-u"], "exec sleep 1000")?;
    let (net, uts) = (link(pid, "net"), link(pid, "uts"));
    let (host_net, host_uts) = (super::host_ns("net"), super::host_ns("uts"));
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

fn cc_cwd(ctx: &mut Ctx) -> R {
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

fn sc_seccomp(ctx: &mut Ctx) -> R {
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
fn runc_allow_list() -> Value {
    let names = "getdents64 getpid prctl fstat setgid setuid setgroups close futex write read capget capset openat fstatfs \
                 getcwd fcntl rt_sigreturn getppid newfstatat chdir epoll_ctl faccessat2 faccessat execve \
                 nanosleep sched_yield mmap munmap madvise rt_sigprocmask rt_sigaction sigaltstack gettid tgkill \
                 exit exit_group clone epoll_pwait brk mprotect \
                 arch_prctl set_tid_address set_robust_list rseq prlimit64 getuid uname readlink getrandom pread64 access";
    json!({ "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": names.split_whitespace().collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW" }] })
}

fn seccomp_allow_list(ctx: &mut Ctx) -> R {
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

fn ro_dev(ctx: &mut Ctx) -> R {
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

fn userns_bind(ctx: &mut Ctx) -> R {
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
    super::add_mount(ctx, json!({ "destination": "/a", "type": "bind", "source": srcs[0], "options": ["rbind"] }));
    super::add_mount(ctx, json!({ "destination": "/b", "type": "bind", "source": srcs[1], "options": ["bind", "ro"] }));
    ctx.sh("cat /a/f /b/f");
    let out = run_ok(ctx)?;
    ensure!(out == "root-only\nsomeone-else\n", "the container read {out:?}");
    Ok(())
}

fn cwd_root_only(ctx: &mut Ctx) -> R {
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

fn console_owner(ctx: &mut Ctx) -> R {
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
