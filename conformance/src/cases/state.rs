//! runtime.md "State" and "Query State": the state document's fields in each status.

use super::{expect_error, Entry};
use crate::check::state_problems;
use crate::ensure;
use crate::harness::{Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    (
        "state_unknown_fails",
        "runtime.md §Query State (MUST): it MUST generate an error if not provided the ID of a container",
        unknown,
    ),
    (
        "state_created_fields",
        "runtime.md §State (REQUIRED): ociVersion, id, status, pid (created/running on Linux), bundle (absolute path)",
        created,
    ),
    ("state_running_fields", "runtime.md §State (REQUIRED): status running with the container process's pid", running),
    ("state_stopped_fields", "runtime.md §State (REQUIRED): status stopped after the process exited", stopped),
    (
        "state_annotations",
        "runtime.md §State (OPTIONAL): annotations contains the list of annotations associated with the container",
        annotations,
    ),
    (
        "state_pid_is_container_process",
        "runtime.md §State (REQUIRED): pid is the ID of the container process, as seen by the host",
        pid_is_process,
    ),
];

fn unknown(ctx: &mut Ctx) -> R {
    expect_error(&ctx.rt(&["state", "no-such-container-xyz"]), "state of an unknown id")
}

fn check(ctx: &Ctx, id: &str, status: &str) -> R {
    let s = ctx.state(id)?;
    let p = state_problems(&s, id, &ctx.bundle(), status);
    ensure!(p.is_empty(), "{}", p.join("; "));
    Ok(())
}

fn created(ctx: &mut Ctx) -> R {
    let id = ctx.id();
    ctx.create_ok(&id)?;
    check(ctx, &id, "created")
}

fn running(ctx: &mut Ctx) -> R {
    ctx.args(&["sleep", "1000"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    check(ctx, &id, "running")
}

fn stopped(ctx: &mut Ctx) -> R {
    ctx.args(&["true"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    ctx.wait_status(&id, "stopped")?;
    check(ctx, &id, "stopped")
}

fn annotations(ctx: &mut Ctx) -> R {
    ctx.config["annotations"] = json!({ "org.example.conformance": "yes" });
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let s = ctx.state(&id)?;
    ensure!(s["annotations"]["org.example.conformance"] == "yes", "state annotations are {}", s["annotations"]);
    Ok(())
}

fn pid_is_process(ctx: &mut Ctx) -> R {
    ctx.args(&["sleep", "1000"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    ensure!(ctx.start(&id).ok(), "start failed");
    let pid = ctx.state(&id)?["pid"].as_i64().unwrap_or(0);
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    ensure!(cmd == b"sleep\x001000\x00", "/proc/{pid}/cmdline is {:?}", String::from_utf8_lossy(&cmd));
    Ok(())
}
