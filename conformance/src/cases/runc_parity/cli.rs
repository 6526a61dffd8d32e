//! The command-line contract engines read: kill --all, kill 0, exec exit codes, ps, list, state.

use super::*;

// ---- kill, exec, ps, list, state ----

pub(super) fn kill_all_stopped(ctx: &mut Ctx) -> R {
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

pub(super) fn kill_zero(ctx: &mut Ctx) -> R {
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

pub(super) fn exec_status(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let o = ctx.rt(&["exec", &id, "sh", "-c", "exit 3"]);
    ensure!(o.code == Some(3), "exec of `exit 3` gave {}", o.brief());
    Ok(())
}

pub(super) fn exec_pidfile(ctx: &mut Ctx) -> R {
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

pub(super) fn exec_missing(ctx: &mut Ctx) -> R {
    let o = ctx.rt(&["exec", "no-such-container-xyz", "true"]);
    ensure!(o.code == Some(255), "exec in a missing container gave {}, want exit 255", o.brief());
    Ok(())
}

pub(super) fn exec_paused(ctx: &mut Ctx) -> R {
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

pub(super) fn exec_default_user(ctx: &mut Ctx) -> R {
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

pub(super) fn ps_stopped(ctx: &mut Ctx) -> R {
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

pub(super) const RUNC_FIELDS: &[&str] = &["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"];

/// Checks the fields runc prints for a running container.
pub(super) fn runc_fields(ctx: &Ctx, e: &Value, what: &str) -> R {
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

pub(super) fn list_json(ctx: &mut Ctx) -> R {
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

pub(super) fn state_fields(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    started(ctx, &id)?;
    let s = ctx.state(&id)?;
    ensure!(s["id"] == id.as_str() && s["ociVersion"].is_string(), "state id/ociVersion: {s}");
    runc_fields(ctx, &s, "state")
}
