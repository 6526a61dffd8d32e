//! runtime.md "Operations" and "Lifecycle": create/start/kill/delete and the errors
//! each must give in the wrong state.

use super::{expect_error, Entry};
use crate::ensure;
use crate::harness::{not_ok, Ctx, R};
use std::time::Duration;

pub const CASES: &[Entry] = &[
    ("create_status_created", "runtime.md §Lifecycle step 3 / §State status created (MUST): after create the container is created, not running", create_status_created),
    ("create_does_not_run_process", "runtime.md §Create (MUST NOT): the user-specified program MUST NOT be run at this time", create_does_not_run),
    ("start_runs_process", "runtime.md §Start (MUST): the runtime MUST run the user-specified program", start_runs),
    ("create_duplicate_id_fails", "runtime.md §Create (MUST): an ID that is not unique MUST generate an error and a new container MUST NOT be created", duplicate_id),
    ("start_stopped_fails", "runtime.md §Start (MUST): starting a container that is not created MUST have no effect and MUST generate an error", start_stopped),
    ("start_running_fails", "runtime.md §Start (MUST): starting a container that is not created MUST have no effect and MUST generate an error", start_running),
    ("start_unknown_fails", "runtime.md §Start (MUST): it MUST generate an error if not provided the ID of a container", start_unknown),
    ("kill_unknown_fails", "runtime.md §Kill (MUST): it MUST generate an error if not provided the ID of a container", kill_unknown),
    ("delete_unknown_fails", "runtime.md §Delete (MUST): deleting a container that does not exist MUST generate an error", delete_unknown),
    ("delete_running_fails", "runtime.md §Delete (MUST): deleting a container whose process is still running MUST generate an error", delete_running),
    ("kill_stopped_fails", "runtime.md §Kill (MUST): signalling a container that is neither created nor running MUST have no effect and MUST generate an error", kill_stopped),
    ("kill_created_stops", "runtime.md §Kill (MUST): kill MUST send the signal to the container process (created state)", kill_created),
    ("kill_delivers_signal", "runtime.md §Kill (MUST): the runtime MUST send the specified signal to the container process", kill_delivers),
    ("stopped_after_exit", "runtime.md §Lifecycle step 7 / §State status stopped (MUST): the process exited, status becomes stopped", stopped_after_exit),
    ("delete_removes_container", "runtime.md §Delete (MUST): delete MUST delete the resources created during create; the id is then unknown", delete_removes),
    ("id_reusable_after_delete", "runtime.md §Delete (MAY): once a container is deleted its ID MAY be used by a subsequent container", id_reusable),
    ("create_missing_root_fails", "runtime.md §Create (MUST): if the runtime is unable to create the environment it MUST generate an error", missing_root),
    ("create_invalid_json_fails", "runtime.md §Create (MUST): unable to create the environment from config.json MUST generate an error", invalid_json),
    ("create_empty_args_fails", "config.md §Process args (REQUIRED): at least one entry is REQUIRED", empty_args),
    ("missing_executable_fails", "runtime.md §Start (MUST): the runtime MUST run the user-specified program; failing to, it must report an error", missing_exe),
];

fn sleeper(ctx: &mut Ctx) {
    ctx.args(&["sleep", "1000"]);
}

fn create_status_created(ctx: &mut Ctx) -> R {
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.status(&id) == "created", "status after create is {}", ctx.status(&id));
    Ok(())
}

fn create_does_not_run(ctx: &mut Ctx) -> R {
    ctx.sh("touch /ran");
    let id = ctx.id();
    ctx.create_ok(&id)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(!ctx.rootfs("/ran").exists(), "the process ran before start");
    Ok(())
}

fn start_runs(ctx: &mut Ctx) -> R {
    ctx.sh("touch /ran");
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let o = ctx.start(&id);
    ensure!(o.ok(), "start failed: {}", o.brief());
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)?;
    ensure!(ctx.rootfs("/ran").exists(), "the process did not run after start");
    Ok(())
}

fn duplicate_id(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let pid = ctx.state(&id).map_err(crate::harness::Fail::NotOk)?["pid"].clone();
    expect_error(&ctx.create(&id, &[]), "second create with the same id")?;
    let s = ctx.state(&id).map_err(crate::harness::Fail::NotOk)?;
    ensure!(s["status"] == "created" && s["pid"] == pid, "the first container changed: {s}");
    Ok(())
}

fn start_stopped(ctx: &mut Ctx) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "first start failed");
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)?;
    expect_error(&ctx.start(&id), "start of a stopped container")?;
    ensure!(ctx.status(&id) == "stopped", "status changed to {}", ctx.status(&id));
    Ok(())
}

fn start_running(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "first start failed");
    expect_error(&ctx.start(&id), "start of a running container")?;
    ensure!(ctx.status(&id) == "running", "status changed to {}", ctx.status(&id));
    Ok(())
}

fn start_unknown(ctx: &mut Ctx) -> R {
    expect_error(&ctx.start("no-such-container-xyz"), "start of an unknown id")
}
fn kill_unknown(ctx: &mut Ctx) -> R {
    expect_error(&ctx.kill("no-such-container-xyz", "KILL"), "kill of an unknown id")
}
fn delete_unknown(ctx: &mut Ctx) -> R {
    expect_error(&ctx.delete("no-such-container-xyz"), "delete of an unknown id")
}

fn delete_running(ctx: &mut Ctx) -> R {
    sleeper(ctx);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    expect_error(&ctx.delete(&id), "delete of a running container")?;
    ensure!(ctx.status(&id) == "running", "status changed to {}", ctx.status(&id));
    Ok(())
}

fn kill_stopped(ctx: &mut Ctx) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)?;
    expect_error(&ctx.kill(&id, "KILL"), "kill of a stopped container")
}

fn kill_created(ctx: &mut Ctx) -> R {
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let o = ctx.kill(&id, "KILL");
    ensure!(o.ok(), "kill of a created container failed: {}", o.brief());
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)
}

fn kill_delivers(ctx: &mut Ctx) -> R {
    // pid 1 ignores signals it has no handler for, so the process traps USR1.
    ctx.sh("trap 'touch /got-usr1; exit 0' USR1; touch /ready; while :; do sleep 0.05; done");
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    for _ in 0..200 {
        if ctx.rootfs("/ready").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = ctx.kill(&id, "USR1");
    ensure!(o.ok(), "kill USR1 failed: {}", o.brief());
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)?;
    ensure!(ctx.rootfs("/got-usr1").exists(), "the process did not receive SIGUSR1");
    Ok(())
}

fn stopped_after_exit(ctx: &mut Ctx) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)
}

fn delete_removes(ctx: &mut Ctx) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)?;
    let o = ctx.delete(&id);
    ensure!(o.ok(), "delete failed: {}", o.brief());
    ensure!(ctx.state(&id).is_err(), "state still answers after delete");
    let cg = crate::cgroup::dirs_of(&format!("{}/{id}", ctx.env.cgroup_parent()));
    ensure!(cg.is_empty(), "cgroup left after delete: {cg:?}");
    Ok(())
}

fn id_reusable(ctx: &mut Ctx) -> R {
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.kill(&id, "KILL").ok(), "kill failed");
    ctx.wait_status(&id, "stopped").map_err(crate::harness::Fail::NotOk)?;
    ensure!(ctx.delete(&id).ok(), "delete failed");
    let o = ctx.create(&id, &[]);
    ensure!(o.ok(), "create with a deleted container's id failed: {}", o.brief());
    Ok(())
}

fn missing_root(ctx: &mut Ctx) -> R {
    ctx.config["root"]["path"] = "does-not-exist".into();
    let id = ctx.id();
    expect_error(&ctx.create(&id, &[]), "create with a missing root.path")?;
    ensure!(ctx.state(&id).is_err(), "a container was left after the failed create");
    Ok(())
}

fn invalid_json(ctx: &mut Ctx) -> R {
    let id = ctx.id();
    ctx.write_config();
    std::fs::write(ctx.dir.join("config.json"), "{ not json").unwrap();
    let b = ctx.bundle();
    expect_error(&ctx.rt(&["create", "--bundle", &b, &id]), "create with invalid config.json")?;
    ensure!(ctx.state(&id).is_err(), "a container was left after the failed create");
    Ok(())
}

fn empty_args(ctx: &mut Ctx) -> R {
    ctx.args(&[]);
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    if o.ok() && ctx.start(&id).ok() {
        return not_ok("create and start with empty process.args both succeeded");
    }
    Ok(())
}

fn missing_exe(ctx: &mut Ctx) -> R {
    ctx.args(&["/no/such/binary"]);
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    if o.ok() && ctx.start(&id).ok() {
        return not_ok("create and start of a missing executable both succeeded");
    }
    Ok(())
}
