//! config-linux.md "Control groups": the cgroup the container is placed in and the
//! resource limits written there, read on the host while the container is created.

use super::{set_ns, Entry};
use crate::ensure;
use crate::harness::{skip, Ctx, Fail, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    (
        "path_used",
        "config-linux.md §Cgroups Path (MUST): the runtime MUST consistently attach to the place given by cgroupsPath",
        path_used,
    ),
    ("memory_limit", "config-linux.md §Memory limit: the memory limit in bytes is applied", |c| {
        limit(
            c,
            json!({ "memory": { "limit": 67108864 } }),
            "memory",
            "memory.limit_in_bytes",
            "memory.max",
            "67108864",
        )
    }),
    ("pids_limit", "config-linux.md §pids limit: the maximum number of tasks is applied", |c| {
        limit(c, json!({ "pids": { "limit": 100 } }), "pids", "pids.max", "pids.max", "100")
    }),
    ("cpu_shares", "config-linux.md §CPU shares: the relative share of CPU time is applied", cpu_shares),
    ("cpu_quota", "config-linux.md §CPU quota/period: the CFS quota and period are applied", cpu_quota),
    ("cpuset_cpus", "config-linux.md §CPU cpus: the list of CPUs the container will run on", |c| {
        limit(c, json!({ "cpu": { "cpus": "0" } }), "cpuset", "cpuset.cpus", "cpuset.cpus", "0")
    }),
    ("devices_allow", "config-linux.md §Allowed Device List (MUST): an allowed device can be opened", |c| {
        devices(c, true)
    }),
    (
        "devices_deny",
        "config-linux.md §Allowed Device List (MUST): a device not allowed cannot be opened (EPERM)",
        |c| devices(c, false),
    ),
    (
        "cgroupns_root",
        "config-linux.md §Namespaces cgroup: in a new cgroup namespace the container's cgroup is its root",
        cgroupns_root,
    ),
];

/// Creates the container (it stays in `created`) and returns its cgroupsPath.
fn created(ctx: &mut Ctx) -> Result<String, Fail> {
    ctx.args(&["sleep", "1000"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    Ok(ctx.config["linux"]["cgroupsPath"].as_str().unwrap().to_string())
}

fn path_used(ctx: &mut Ctx) -> R {
    ctx.args(&["sleep", "1000"]);
    let id = ctx.id();
    ctx.create_ok(&id)?;
    let path = ctx.config["linux"]["cgroupsPath"].as_str().unwrap().to_string();
    let pid = ctx.state(&id)?["pid"].as_i64().unwrap_or(0);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let bad: Vec<&str> =
        cg.lines().filter(|l| !l.contains(&*path) && !l.contains("name=systemd") && !l.ends_with(":/")).collect();
    ensure!(cg.contains(&*path), "/proc/{pid}/cgroup does not name {path}:\n{cg}");
    ensure!(bad.len() < cg.lines().count(), "cgroups outside {path}: {bad:?}");
    Ok(())
}

fn limit(ctx: &mut Ctx, res: serde_json::Value, ctrl: &str, v1: &str, v2: &str, want: &str) -> R {
    if !crate::cgroup::is_v2() && !std::path::Path::new("/sys/fs/cgroup").join(ctrl).is_dir() {
        return skip(format!("host has no {ctrl} cgroup controller"));
    }
    for (k, v) in res.as_object().unwrap() {
        ctx.config["linux"]["resources"][k] = v.clone();
    }
    let path = created(ctx)?;
    let got = crate::cgroup::read(&path, ctrl, v1, v2)?;
    ensure!(got == want || got.split_whitespace().next() == Some(want), "{ctrl} file reads {got:?}, want {want:?}");
    Ok(())
}

fn cpu_shares(ctx: &mut Ctx) -> R {
    // cgroup v2 converts shares to weight: 1 + ((shares - 2) * 9999) / 262142.
    let want = if crate::cgroup::is_v2() { "20" } else { "512" };
    limit(ctx, json!({ "cpu": { "shares": 512 } }), "cpu", "cpu.shares", "cpu.weight", want)
}

fn cpu_quota(ctx: &mut Ctx) -> R {
    limit(ctx, json!({ "cpu": { "quota": 50000, "period": 100000 } }), "cpu", "cpu.cfs_quota_us", "cpu.max", "50000")?;
    if !crate::cgroup::is_v2() {
        let path = ctx.config["linux"]["cgroupsPath"].as_str().unwrap().to_string();
        let p = crate::cgroup::read(&path, "cpu", "cpu.cfs_period_us", "cpu.max")?;
        ensure!(p == "100000", "cpu.cfs_period_us reads {p:?}");
    }
    Ok(())
}

/// The host's /dev/loop0 is bind-mounted in (not created from linux.devices, which
/// config-linux.md says MUST be available and some runtimes therefore allow): only the
/// device cgroup decides whether opening it gives EPERM.
fn devices(ctx: &mut Ctx, allow: bool) -> R {
    if !std::path::Path::new("/dev/loop0").exists() {
        return skip("host has no /dev/loop0 to bind into the container");
    }
    super::add_mount(
        ctx,
        json!({ "destination": "/dev/testloop", "type": "bind", "source": "/dev/loop0", "options": ["bind"] }),
    );
    let rule = json!({ "allow": allow, "type": "b", "major": 7, "minor": 0, "access": "rwm" });
    ctx.config["linux"]["resources"]["devices"].as_array_mut().unwrap().push(rule);
    let r = ctx.probe(&["--open", "/dev/testloop"])?;
    let e = crate::check::op_errno(&r, "open:/dev/testloop")?;
    if allow {
        ensure!(e != Some(libc::EPERM as i64), "opening an allowed device: {}", r["ops"]["open:/dev/testloop"]);
    } else {
        ensure!(e == Some(libc::EPERM as i64), "opening a denied device: {}", r["ops"]["open:/dev/testloop"]);
    }
    Ok(())
}

fn cgroupns_root(ctx: &mut Ctx) -> R {
    super::namespaces::need_ns(ctx, "cgroup", "cgroup")?;
    set_ns(ctx, "cgroup", None);
    let r = ctx.probe(&[])?;
    let cg = r["cgroup"].as_str().unwrap_or("");
    let own: Vec<&str> =
        cg.lines().filter(|l| l.contains("pids") || l.contains("memory") || l.starts_with("0::")).collect();
    ensure!(
        !own.is_empty() && own.iter().all(|l| l.ends_with(":/")),
        "/proc/self/cgroup in a new cgroup namespace:\n{cg}"
    );
    Ok(())
}
