//! config-linux.md "Sysctl": namespaced kernel parameters set for the container only.

use super::{expect_error, Entry};
use crate::ensure;
use crate::harness::{Ctx, R};
use serde_json::json;

pub const CASES: &[Entry] = &[
    ("net_namespaced", "config-linux.md §Sysctl: kernel parameters are set in the container (net.ipv4.ip_default_ttl, new network namespace)", |c| set(c, "net.ipv4.ip_default_ttl", "77")),
    ("ipc_namespaced", "config-linux.md §Sysctl: kernel parameters are set in the container (kernel.msgmax, new ipc namespace)", |c| set(c, "kernel.msgmax", "4096")),
    ("uts_namespaced", "config-linux.md §Sysctl: kernel parameters are set in the container (kernel.domainname, new uts namespace)", |c| set(c, "kernel.domainname", "sysctl.example")),
    ("user_namespaced", "config-linux.md §Sysctl: user.* parameters are per user namespace: set in the container's own (runc 1.4)", user),
    ("unknown_key_fails", "runtime.md §Create (MUST): a sysctl that cannot be set MUST generate an error", unknown),
];

fn set(ctx: &mut Ctx, key: &str, val: &str) -> R {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    // A new namespace may copy the host's value: a case the runtime can't fail is void.
    if std::fs::read_to_string(&path).is_ok_and(|h| h.trim() == val) {
        return crate::harness::skip(format!("the host's {key} is already {val}"));
    }
    ctx.config["linux"]["sysctl"] = json!({ key: val });
    let r = ctx.probe(&["--file", &path])?;
    let got = r["ops"][format!("file:{path}")]["ok"].as_str().unwrap_or("").trim().to_string();
    ensure!(got == val, "{path} reads {got:?}, want {val:?}");
    Ok(())
}

fn unknown(ctx: &mut Ctx) -> R {
    ctx.config["linux"]["sysctl"] = json!({ "net.ipv4.conformance_no_such_key": "1" });
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    if o.ok() {
        return expect_error(&ctx.start(&id), "an unknown sysctl key");
    }
    Ok(())
}

fn user(ctx: &mut Ctx) -> R {
    let path = "/proc/sys/user/max_user_namespaces";
    if std::fs::read_to_string(path).is_ok_and(|h| h.trim() == "7") {
        return crate::harness::skip("the host's user.max_user_namespaces is already 7");
    }
    super::set_ns(ctx, "user", None);
    let maps = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    ctx.config["linux"]["uidMappings"] = maps.clone();
    ctx.config["linux"]["gidMappings"] = maps;
    ctx.config["linux"]["sysctl"] = json!({ "user.max_user_namespaces": "7" });
    let r = ctx.probe(&["--file", path])?;
    let got = r["ops"][format!("file:{path}")]["ok"].as_str().unwrap_or("").trim().to_string();
    ensure!(got == "7", "{path} reads {got:?} in the container, want 7");
    Ok(())
}
