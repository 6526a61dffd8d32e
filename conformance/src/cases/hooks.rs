//! config.md "POSIX-platform Hooks" and runtime.md "Lifecycle": every hook kind runs,
//! in order, in the namespaces the spec names, with the state on stdin; failures and
//! timeouts have the effects the spec gives them. Each hook is `sh -c` logging to a
//! host directory that is also bind-mounted at /hooklog for hooks run inside.

use super::{add_mount, Entry};
use crate::ensure;
use crate::harness::{skip, Ctx, Fail, R};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KINDS: [&str; 6] = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

pub const CASES: &[Entry] = &[
    ("runs_prestart", "config.md §Prestart (MUST): prestart hooks MUST be called as part of create, after the environment is created", |c| runs(c, "prestart")),
    ("runs_create_runtime", "config.md §CreateRuntime Hooks (MUST): createRuntime hooks MUST be called as part of create", |c| runs(c, "createRuntime")),
    ("runs_create_container", "config.md §CreateContainer Hooks (MUST): createContainer hooks MUST be called as part of create", |c| runs(c, "createContainer")),
    ("runs_start_container", "config.md §StartContainer Hooks (MUST): startContainer hooks MUST be called before the user program runs", |c| runs(c, "startContainer")),
    ("runs_poststart", "config.md §Poststart (MUST): poststart hooks MUST be called after the user process is started", |c| runs(c, "poststart")),
    ("runs_poststop", "config.md §Poststop (MUST): poststop hooks MUST be called after the container is deleted", |c| runs(c, "poststop")),
    ("order", "runtime.md §Lifecycle (MUST): prestart, createRuntime, createContainer, startContainer, poststart, poststop in that order", order),
    ("create_runs_only_create_hooks", "runtime.md §Lifecycle (MUST): startContainer and poststart run on start, not on create", create_only),
    ("state_on_stdin", "config.md §POSIX-platform Hooks (MUST): the state of the container MUST be passed to hooks over stdin", state_stdin),
    ("args_and_env", "config.md §POSIX-platform Hooks: args and env are passed to the hook", args_env),
    ("create_runtime_in_runtime_ns", "config.md §CreateRuntime Hooks (MUST): called in the runtime namespace", runtime_ns),
    ("create_container_in_container_ns", "config.md §CreateContainer Hooks (MUST): called in the container namespace", |c| container_ns(c, "createContainer")),
    ("start_container_in_container_ns", "config.md §StartContainer Hooks (MUST): called in the container namespace", |c| container_ns(c, "startContainer")),
    ("prestart_failure_errors", "config.md §Prestart / runtime.md §Lifecycle (MUST): a failing prestart hook MUST generate an error and stop the container", |c| create_failure(c, "prestart")),
    ("create_runtime_failure_errors", "runtime.md §Lifecycle (MUST): a failing createRuntime hook MUST generate an error and stop the container", |c| create_failure(c, "createRuntime")),
    ("start_container_failure_errors", "runtime.md §Lifecycle (MUST): a failing startContainer hook MUST generate an error and stop the container", start_failure),
    ("poststart_failure_continues", "runtime.md §Lifecycle (MUST): a failing poststart hook MUST log a warning, the lifecycle continues as if it succeeded", poststart_failure),
    ("poststop_failure_continues", "runtime.md §Lifecycle (MUST): a failing poststop hook MUST log a warning, the lifecycle continues as if it succeeded", poststop_failure),
    ("timeout_aborts", "config.md §POSIX-platform Hooks timeout: the number of seconds before aborting the hook", timeout),
];

/// The host log directory, bound at /hooklog; the container process writes ctr.mnt.
fn setup(ctx: &mut Ctx) -> String {
    let d = ctx.dir.join("hooklog");
    std::fs::create_dir_all(&d).unwrap();
    let d = d.display().to_string();
    add_mount(ctx, json!({ "destination": "/hooklog", "type": "bind", "source": d, "options": ["rbind"] }));
    ctx.sh("readlink /proc/self/ns/mnt > /hooklog/ctr.mnt");
    d
}

fn need(ctx: &Ctx, kind: &str) -> R {
    if ctx.env.feature_lists("/hooks", kind) == Some(false) {
        return skip(format!("runtime features does not list hook {kind}"));
    }
    Ok(())
}

/// A hook that logs its stdin, name, mount namespace and hostname, then exits `code`.
fn hook(log: &str, kind: &str, code: i32) -> Value {
    let s = format!("d={log}; [ -d \"$d\" ] || d=/hooklog; cat > \"$d/{kind}.json\"; echo {kind} >> \"$d/order\"; \
        readlink /proc/self/ns/mnt > \"$d/{kind}.mnt\"; cat /proc/sys/kernel/hostname > \"$d/{kind}.host\"; exit {code}");
    json!({ "path": "/bin/sh", "args": ["sh", "-c", s] })
}

fn add(ctx: &mut Ctx, kind: &str, h: Value) {
    ctx.config["hooks"][kind] = json!([h]);
}

fn read(log: &str, f: &str) -> String {
    std::fs::read_to_string(format!("{log}/{f}")).unwrap_or_default().trim().to_string()
}

/// create, start, wait for stopped, delete: every step must succeed.
fn lifecycle(ctx: &mut Ctx, id: &str) -> R {
    ctx.create_ok(id)?;
    let o = ctx.start(id);
    ensure!(o.ok(), "start failed: {}", o.brief());
    ctx.wait_status(id, "stopped")?;
    let o = ctx.delete(id);
    ensure!(o.ok(), "delete failed: {}", o.brief());
    Ok(())
}

fn runs(ctx: &mut Ctx, kind: &str) -> R {
    need(ctx, kind)?;
    let log = setup(ctx);
    add(ctx, kind, hook(&log, kind, 0));
    let id = ctx.id();
    lifecycle(ctx, &id)?;
    let s: Value = serde_json::from_str(&read(&log, &format!("{kind}.json")))
        .map_err(|e| format!("{kind} got no state on stdin ({e})"))?;
    ensure!(s["id"] == id.as_str(), "{kind} state has id {}", s["id"]);
    Ok(())
}

fn order(ctx: &mut Ctx) -> R {
    let log = setup(ctx);
    for k in KINDS {
        need(ctx, k)?;
        add(ctx, k, hook(&log, k, 0));
    }
    let id = ctx.id();
    lifecycle(ctx, &id)?;
    let got = read(&log, "order");
    ensure!(got.lines().collect::<Vec<_>>() == KINDS, "hooks ran as {:?}", got.lines().collect::<Vec<_>>());
    Ok(())
}

fn create_only(ctx: &mut Ctx) -> R {
    let log = setup(ctx);
    for k in KINDS {
        need(ctx, k)?;
        add(ctx, k, hook(&log, k, 0));
    }
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let got = read(&log, "order");
    ensure!(
        got.lines().collect::<Vec<_>>() == KINDS[..3],
        "after create, hooks ran: {:?}",
        got.lines().collect::<Vec<_>>()
    );
    Ok(())
}

fn state_stdin(ctx: &mut Ctx) -> R {
    let log = setup(ctx);
    for k in ["createRuntime", "poststart", "poststop"] {
        need(ctx, k)?;
        add(ctx, k, hook(&log, k, 0));
    }
    let id = ctx.id();
    lifecycle(ctx, &id)?;
    // The spec doesn't say whether createRuntime runs while "creating" or "created"
    // (runc says creating, crun created): either is accepted.
    for (k, want) in
        [("createRuntime", &["creating", "created"][..]), ("poststart", &["running"]), ("poststop", &["stopped"])]
    {
        let s: Value =
            serde_json::from_str(&read(&log, &format!("{k}.json"))).map_err(|e| format!("{k}: no state ({e})"))?;
        let ok = s["status"].as_str().is_some_and(|st| want.contains(&st));
        ensure!(ok && s["id"] == id.as_str(), "{k} saw status {} (want {want:?}), id {}", s["status"], s["id"]);
        ensure!(s["bundle"] == ctx.bundle().as_str(), "{k} saw bundle {}", s["bundle"]);
    }
    Ok(())
}

fn args_env(ctx: &mut Ctx) -> R {
    need(ctx, "createRuntime")?;
    let log = setup(ctx);
    add(
        ctx,
        "createRuntime",
        json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("echo \"$0 $FOO\" > {log}/args"), "arg0"], "env": ["FOO=bar"] }),
    );
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(read(&log, "args") == "arg0 bar", "hook saw {:?}", read(&log, "args"));
    Ok(())
}

fn runtime_ns(ctx: &mut Ctx) -> R {
    need(ctx, "createRuntime")?;
    let log = setup(ctx);
    add(ctx, "createRuntime", hook(&log, "createRuntime", 0));
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let host = super::host_ns("mnt");
    ensure!(
        read(&log, "createRuntime.mnt") == host,
        "createRuntime ran in {:?}, the runtime's is {host}",
        read(&log, "createRuntime.mnt")
    );
    Ok(())
}

fn container_ns(ctx: &mut Ctx, kind: &str) -> R {
    need(ctx, kind)?;
    let log = setup(ctx);
    add(ctx, kind, hook(&log, kind, 0));
    let id = ctx.id();
    lifecycle(ctx, &id)?;
    let (h, c) = (read(&log, &format!("{kind}.mnt")), read(&log, "ctr.mnt"));
    ensure!(!h.is_empty() && h == c, "{kind} ran in mount namespace {h:?}, the container's is {c:?}");
    if kind == "startContainer" {
        ensure!(
            read(&log, "startContainer.host") == "conformance",
            "startContainer saw hostname {:?}",
            read(&log, "startContainer.host")
        );
    }
    Ok(())
}

fn gone(ctx: &Ctx, id: &str) -> R {
    let s = ctx.status(id);
    ensure!(s == "<none>" || s == "stopped", "container is {s} after the hook failed");
    Ok(())
}

fn create_failure(ctx: &mut Ctx, kind: &str) -> R {
    need(ctx, kind)?;
    let log = setup(ctx);
    add(ctx, kind, hook(&log, kind, 1));
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    ensure!(!o.ok(), "create succeeded although the {kind} hook failed");
    gone(ctx, &id)
}

fn start_failure(ctx: &mut Ctx) -> R {
    need(ctx, "startContainer")?;
    let log = setup(ctx);
    add(ctx, "startContainer", hook(&log, "startContainer", 1));
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let o = ctx.start(&id);
    ensure!(!o.ok(), "start succeeded although the startContainer hook failed");
    std::thread::sleep(Duration::from_millis(200));
    ensure!(read(&log, "ctr.mnt").is_empty(), "the user program ran after startContainer failed");
    gone(ctx, &id)
}

fn poststart_failure(ctx: &mut Ctx) -> R {
    need(ctx, "poststart")?;
    let log = setup(ctx);
    add(ctx, "poststart", hook(&log, "poststart", 1));
    let id = ctx.id();
    lifecycle(ctx, &id)?;
    ensure!(!read(&log, "ctr.mnt").is_empty(), "the user program did not run");
    Ok(())
}

fn poststop_failure(ctx: &mut Ctx) -> R {
    need(ctx, "poststop")?;
    let log = setup(ctx);
    add(ctx, "poststop", hook(&log, "poststop", 1));
    let id = ctx.id();
    lifecycle(ctx, &id)?;
    ensure!(ctx.state(&id).is_err(), "the container is still there after delete");
    Ok(())
}

fn timeout(ctx: &mut Ctx) -> R {
    need(ctx, "createRuntime")?;
    setup(ctx);
    add(ctx, "createRuntime", json!({ "path": "/bin/sleep", "args": ["sleep", "25"], "timeout": 1 }));
    let id = ctx.id();
    let t = Instant::now();
    let o = ctx.create(&id, &[]);
    let took = t.elapsed();
    if o.ok() {
        return Err(Fail::NotOk(format!("create succeeded after {took:?} although the hook outlived its 1 s timeout")));
    }
    ensure!(took < Duration::from_secs(10), "the hook was not aborted: create took {took:?}");
    Ok(())
}
