//! features.md: the `features` document's shape and vocabulary.

use super::Entry;
use crate::check::features_problems;
use crate::ensure;
use crate::harness::{skip, Ctx, Fail, R};
use serde_json::Value;

pub const CASES: &[Entry] = &[
    (
        "schema",
        "features.md §Features structure (REQUIRED): ociVersionMin, ociVersionMax; typed optional fields",
        schema,
    ),
    ("versions_ordered", "features.md §ociVersionMin/ociVersionMax: the minimum is not above the maximum", versions),
    ("hooks_known", "features.md §hooks: the recognized names of hooks (config.md hook kinds)", |c| {
        known(c, "/hooks", &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
    }),
    ("namespaces_known", "features.md §Linux namespaces: the recognized namespace types", |c| {
        known(c, "/linux/namespaces", &["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"])
    }),
    ("capabilities_known", "features.md §Linux capabilities: recognized capability names (CAP_*)", caps),
    ("seccomp_actions_known", "features.md §Linux seccomp actions: recognized SCMP_ACT_* actions", seccomp),
    ("cgroup_booleans", "features.md §Linux cgroup: v1, v2, systemd, systemdUser, rdma are booleans", cgroup),
    (
        "spec13_fields",
        "features.md §Linux netDevices, memoryPolicy, intelRdt (runtime-spec 1.3): typed, known modes and flags",
        spec13,
    ),
];

fn doc(ctx: &Ctx) -> Result<Value, Fail> {
    let o = ctx.rt(&["features"]);
    if !o.ok()
        && (o.stderr.contains("No help topic")
            || o.stderr.contains("unrecognized")
            || o.stderr.contains("unknown command"))
    {
        return skip("runtime has no features command");
    }
    ensure!(o.ok(), "features failed: {}", o.brief());
    Ok(serde_json::from_str(&o.stdout).map_err(|e| format!("features output is not JSON: {e}"))?)
}

fn schema(ctx: &mut Ctx) -> R {
    let p = features_problems(&doc(ctx)?);
    ensure!(p.is_empty(), "{}", p.join("; "));
    Ok(())
}

fn semver(s: &str) -> Vec<u64> {
    s.split(['.', '-', '+']).take(3).map(|x| x.parse().unwrap_or(0)).collect()
}

fn versions(ctx: &mut Ctx) -> R {
    let f = doc(ctx)?;
    let (a, b) = (f["ociVersionMin"].as_str().unwrap_or(""), f["ociVersionMax"].as_str().unwrap_or(""));
    ensure!(!a.is_empty() && semver(a) <= semver(b), "ociVersionMin {a:?} > ociVersionMax {b:?}");
    Ok(())
}

fn known(ctx: &mut Ctx, ptr: &str, names: &[&str]) -> R {
    let f = doc(ctx)?;
    let Some(list) = f.pointer(ptr).and_then(Value::as_array) else {
        return skip(format!("features has no {ptr}"));
    };
    let bad: Vec<&Value> = list.iter().filter(|v| !v.as_str().is_some_and(|s| names.contains(&s))).collect();
    ensure!(bad.is_empty(), "unknown entries in {ptr}: {bad:?}");
    Ok(())
}

fn caps(ctx: &mut Ctx) -> R {
    let f = doc(ctx)?;
    let Some(list) = f.pointer("/linux/capabilities").and_then(Value::as_array) else {
        return skip("features has no linux.capabilities");
    };
    let bad: Vec<&Value> = list.iter().filter(|v| !v.as_str().is_some_and(|s| s.starts_with("CAP_"))).collect();
    ensure!(bad.is_empty() && !list.is_empty(), "bad capability names: {bad:?}");
    Ok(())
}

fn seccomp(ctx: &mut Ctx) -> R {
    let f = doc(ctx)?;
    let Some(list) = f.pointer("/linux/seccomp/actions").and_then(Value::as_array) else {
        return skip("features has no linux.seccomp.actions");
    };
    let known = [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    ];
    let bad: Vec<&Value> = list.iter().filter(|v| !v.as_str().is_some_and(|s| known.contains(&s))).collect();
    ensure!(bad.is_empty(), "unknown seccomp actions: {bad:?}");
    Ok(())
}

fn cgroup(ctx: &mut Ctx) -> R {
    let f = doc(ctx)?;
    let Some(cg) = f.pointer("/linux/cgroup").and_then(Value::as_object) else {
        return skip("features has no linux.cgroup");
    };
    let bad: Vec<&String> = cg.iter().filter(|(_, v)| !v.is_boolean()).map(|(k, _)| k).collect();
    ensure!(bad.is_empty(), "non-boolean linux.cgroup fields: {bad:?}");
    Ok(())
}

fn spec13(ctx: &mut Ctx) -> R {
    let f = doc(ctx)?;
    if ["/linux/netDevices", "/linux/memoryPolicy"].iter().all(|p| f.pointer(p).is_none()) {
        return skip("features predates runtime-spec 1.3 (no linux.netDevices or linux.memoryPolicy)");
    }
    let p = super::spec13::features_problems(&f);
    ensure!(p.is_empty(), "{}", p.join("; "));
    Ok(())
}
