//! config-linux.md "Namespaces", "User namespace mappings" and "Offset for Time
//! Namespace": new namespaces, inherited ones, joined ones, and the errors.

use super::{drop_ns, expect_error, host_ns, set_ns, Entry};
use crate::ensure;
use crate::harness::{skip, Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("new_pid", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (pid)", |c| new_ns(c, "pid", "pid")),
    ("new_network", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (network)", |c| new_ns(c, "network", "net")),
    ("new_ipc", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (ipc)", |c| new_ns(c, "ipc", "ipc")),
    ("new_uts", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (uts)", |c| new_ns(c, "uts", "uts")),
    ("new_mount", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (mount)", |c| new_ns(c, "mount", "mnt")),
    ("new_cgroup", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (cgroup)", |c| new_ns(c, "cgroup", "cgroup")),
    ("new_time", "config-linux.md §Namespaces (MUST): a type without path MUST get a new namespace (time)", |c| new_ns(c, "time", "time")),
    ("new_user_with_mappings", "config-linux.md §User namespace mappings (MUST): uidMappings/gidMappings are written to the new user namespace", user_mappings),
    ("absent_network_inherited", "config-linux.md §Namespaces (MUST): a type not in the array MUST be inherited from the runtime (network)", |c| inherited(c, "network", "net")),
    ("absent_ipc_inherited", "config-linux.md §Namespaces (MUST): a type not in the array MUST be inherited from the runtime (ipc)", |c| inherited(c, "ipc", "ipc")),
    ("join_network_path", "config-linux.md §Namespaces (MUST): with path, the process MUST be placed in that namespace (network)", |c| join(c, "network", "net", "-n")),
    ("join_uts_path", "config-linux.md §Namespaces (MUST): with path, the process MUST be placed in that namespace (uts)", |c| join(c, "uts", "uts", "-u")),
    ("join_ipc_path", "config-linux.md §Namespaces (MUST): with path, the process MUST be placed in that namespace (ipc)", |c| join(c, "ipc", "ipc", "-i")),
    ("join_wrong_type_fails", "config-linux.md §Namespaces (MUST): the runtime MUST generate an error if path is not associated with a namespace of type", wrong_type),
    ("duplicate_type_fails", "config-linux.md §Namespaces (MUST): a namespace type duplicated in the array MUST generate an error", duplicate),
    ("time_offsets", "config-linux.md §Offset for Time Namespace (MUST): timeOffsets are written to /proc/self/timens_offsets", time_offsets),
];

/// Skips when the host kernel or the runtime's `features` lacks namespace `t`.
pub fn need_ns(ctx: &Ctx, t: &str, file: &str) -> R {
    if !std::path::Path::new("/proc/self/ns").join(file).exists() {
        return skip(format!("host kernel has no {t} namespace"));
    }
    if ctx.env.feature_lists("/linux/namespaces", t) == Some(false) {
        return skip(format!("runtime features does not list namespace {t}"));
    }
    Ok(())
}

fn new_ns(ctx: &mut Ctx, t: &str, file: &str) -> R {
    need_ns(ctx, t, file)?;
    set_ns(ctx, t, None);
    let r = ctx.probe(&[])?;
    let got = r["ns"][file].as_str().unwrap_or("");
    ensure!(!got.is_empty() && got != host_ns(file), "container {file} namespace {got} is the host's");
    Ok(())
}

fn inherited(ctx: &mut Ctx, t: &str, file: &str) -> R {
    drop_ns(ctx, t);
    if t == "network" {
        // sysfs can't be mounted for a network namespace the container doesn't own.
        ctx.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "sysfs");
    }
    let r = ctx.probe(&[])?;
    ensure!(
        r["ns"][file] == host_ns(file),
        "container {file} namespace {} differs from the runtime's {}",
        r["ns"][file],
        host_ns(file)
    );
    Ok(())
}

fn join(ctx: &mut Ctx, t: &str, file: &str, flag: &str) -> R {
    let pid = ctx.helper(&["unshare", flag, "sleep", "1000"])?;
    let path = format!("/proc/{pid}/ns/{file}");
    let want = std::fs::read_link(&path).map(|p| p.display().to_string()).unwrap_or_default();
    if want.is_empty() || want == host_ns(file) {
        return skip(format!("host could not make a {t} namespace with unshare {flag}"));
    }
    set_ns(ctx, t, Some(&path));
    if t == "uts" {
        ctx.config.as_object_mut().unwrap().remove("hostname");
    }
    let r = ctx.probe(&[])?;
    ensure!(r["ns"][file] == want.as_str(), "container {file} namespace is {}, want {want}", r["ns"][file]);
    Ok(())
}

fn wrong_type(ctx: &mut Ctx) -> R {
    set_ns(ctx, "network", Some("/proc/self/ns/ipc"));
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    expect_error(&o, "create with a network namespace path that is an ipc namespace")
}

fn duplicate(ctx: &mut Ctx) -> R {
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "ipc" }));
    let id = ctx.id();
    expect_error(&ctx.create(&id, &[]), "create with the ipc namespace listed twice")
}

/// Config for a container in a new user namespace: root maps to host 100000.
pub fn userns_config(ctx: &mut Ctx) {
    set_ns(ctx, "user", None);
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    ctx.config["linux"]["uidMappings"] = map.clone();
    ctx.config["linux"]["gidMappings"] = map;
}

fn user_mappings(ctx: &mut Ctx) -> R {
    need_ns(ctx, "user", "user")?;
    userns_config(ctx);
    let r = ctx.probe(&["--file", "/proc/self/uid_map", "--file", "/proc/self/gid_map"])?;
    for f in ["uid_map", "gid_map"] {
        let text = r["ops"][format!("file:/proc/self/{f}")]["ok"].as_str().unwrap_or("").to_string();
        let fields: Vec<&str> = text.split_whitespace().collect();
        ensure!(fields == ["0", "100000", "65536"], "{f} is {text:?}");
    }
    ensure!(r["ns"]["user"] != host_ns("user").as_str(), "not in a new user namespace");
    Ok(())
}

fn time_offsets(ctx: &mut Ctx) -> R {
    need_ns(ctx, "time", "time")?;
    set_ns(ctx, "time", None);
    ctx.config["linux"]["timeOffsets"] =
        json!({ "monotonic": { "secs": 86400, "nanosecs": 0 }, "boottime": { "secs": 3600, "nanosecs": 5 } });
    let r = ctx.probe(&["--file", "/proc/self/timens_offsets"])?;
    let text = r["ops"]["file:/proc/self/timens_offsets"]["ok"].as_str().unwrap_or("").to_string();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    ensure!(
        lines.contains(&vec!["monotonic", "86400", "0"]) && lines.contains(&vec!["boottime", "3600", "5"]),
        "timens_offsets is {text:?}"
    );
    Ok(())
}
