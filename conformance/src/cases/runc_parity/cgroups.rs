//! The device cgroup's reading of access strings, cgroup cleanup on delete, frozen cgroups.

use super::*;

// ---- device cgroup ----

/// Opens (no I/O) /dev/kmsg for write, /dev/loop0 for read then write, /dev/null for
/// read, in the container, under `rules`; "0" for each open that worked, "1" if not.
pub(super) fn device_case(ctx: &mut Ctx, variant: &str) -> R {
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

pub(super) fn sub_cgroups(ctx: &mut Ctx) -> R {
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

pub(super) fn shared_cgroup(ctx: &mut Ctx) -> R {
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
pub(super) fn bounded(ctx: &Ctx, secs: u32, args: &[&str]) -> Out {
    let mut c = std::process::Command::new("timeout");
    c.args(["-s", "KILL", &secs.to_string()]).arg(&ctx.env.runtime).arg("--root").arg(&ctx.env.root).args(args);
    run_cmd(c, &ctx.env.work, ctx.env.next())
}

pub(super) fn frozen(ctx: &mut Ctx, parent: bool) -> R {
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
