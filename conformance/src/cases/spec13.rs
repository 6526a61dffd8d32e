//! runtime-spec 1.3 additions to config-linux.md: Network Devices (`linux.netDevices`),
//! Memory Policy (`linux.memoryPolicy`) and the resctrl requirement of IntelRdt.
//! Runtimes that predate 1.3 (runc 1.1.5) ignore the first two: their cases fail there,
//! which is the point (a config that asks for a device or a policy and silently does
//! not get it).

use super::{drop_ns, expect_error, Entry};
use crate::ensure;
use crate::harness::{skip, Ctx, R};
use serde_json::{json, Value};
use std::process::Command;

pub const NET_DEVICES: &[Entry] = &[
    ("moved_and_renamed", "config-linux.md §Network Devices: the host device is moved into the container's network namespace, named `name` there", |c| moved(c, Check::Name)),
    ("addresses_kept", "config-linux.md §Network Devices (MUST): permanent global-scope addresses of the device are preserved", |c| moved(c, Check::Addresses)),
    ("mtu_kept_and_up", "config-linux.md §Network Devices (MUST): the device is up in the container; its attributes (MTU) are preserved", |c| moved(c, Check::MtuUp)),
    ("missing_device_fails", "config-linux.md §Network Devices (MUST): a device that cannot be moved generates an error", missing),
    ("no_network_namespace_fails", "config-linux.md §Network Devices: devices move into the container's own network namespace; without one, an error", no_netns),
];

pub const MEMORY_POLICY: &[Entry] = &[
    (
        "bind",
        "config-linux.md §Memory Policy: set_mempolicy(2) mode MPOL_BIND on nodes 0 for the container process",
        |c| policy(c, "MPOL_BIND", "bind:0"),
    ),
    (
        "interleave",
        "config-linux.md §Memory Policy: set_mempolicy(2) mode MPOL_INTERLEAVE on nodes 0 for the container process",
        |c| policy(c, "MPOL_INTERLEAVE", "interleave:0"),
    ),
    (
        "preferred",
        "config-linux.md §Memory Policy: set_mempolicy(2) mode MPOL_PREFERRED on node 0 for the container process",
        |c| policy(c, "MPOL_PREFERRED", "prefer:0"),
    ),
    (
        "invalid_nodes_fail",
        "config-linux.md §Memory Policy (MUST): a policy set_mempolicy(2) refuses generates an error",
        bad_policy,
    ),
];

pub const INTEL_RDT: &[Entry] = &[(
    "no_resctrl_fails",
    "config-linux.md §IntelRdt (MUST): without a mounted resctrl pseudo-filesystem, intelRdt generates an error",
    no_resctrl,
)];

/// A veth pair on the host, removed when the case ends whatever happened.
struct Veth {
    host: String,
    peer: String,
}

impl Veth {
    fn new(ctx: &Ctx) -> Result<Veth, crate::harness::Fail> {
        let tag = format!("{}{}", std::process::id() % 10_000, ctx.env.next());
        let v = Veth { host: format!("cfh{tag}"), peer: format!("cfp{tag}") };
        for args in [
            vec!["link", "add", &v.host, "mtu", "1400", "type", "veth", "peer", "name", &v.peer],
            vec!["addr", "add", "10.213.250.2/24", "dev", &v.host],
            vec!["-6", "addr", "add", "fd13::250:2/64", "dev", &v.host, "nodad"],
            vec!["link", "set", &v.host, "up"],
        ] {
            let ok = Command::new("ip").args(&args).output().is_ok_and(|o| o.status.success());
            if !ok {
                return skip(format!("the host cannot make a veth pair (ip {args:?})"));
            }
        }
        Ok(v)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for n in [&self.host, &self.peer] {
            if std::path::Path::new("/sys/class/net").join(n).exists() {
                let _ = Command::new("ip").args(["link", "del", n]).output();
            }
        }
    }
}

enum Check {
    Name,
    Addresses,
    MtuUp,
}

fn moved(ctx: &mut Ctx, check: Check) -> R {
    let veth = Veth::new(ctx)?;
    ctx.config["linux"]["netDevices"] = json!({ &veth.host: { "name": "ctr0" } });
    let r = ctx.probe(&[
        "--ls",
        "/sys/class/net",
        "--file",
        "/sys/class/net/ctr0/mtu",
        "--file",
        "/sys/class/net/ctr0/flags",
        "--file",
        "/proc/net/fib_trie",
        "--file",
        "/proc/net/if_inet6",
    ])?;
    let op = |k: &str| r["ops"][k]["ok"].clone();
    let names: Vec<String> =
        op("ls:/sys/class/net").as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
    ensure!(names.iter().any(|n| n == "ctr0"), "no ctr0 in the container (devices: {names:?})");
    match check {
        Check::Name => ensure!(!names.contains(&veth.host), "the device kept its host name {} too", veth.host),
        Check::Addresses => {
            let v4 = op("file:/proc/net/fib_trie").as_str().unwrap_or("").contains("10.213.250.2");
            let v6 = op("file:/proc/net/if_inet6").as_str().unwrap_or("").contains("fd130000000000000000000002500002");
            ensure!(v4 && v6, "addresses lost in the move: 10.213.250.2 {v4}, fd13::250:2 {v6}");
        }
        Check::MtuUp => {
            let mtu = op("file:/sys/class/net/ctr0/mtu").as_str().unwrap_or("").trim().to_string();
            ensure!(mtu == "1400", "ctr0's MTU is {mtu:?}, the host's was 1400");
            let flags =
                op("file:/sys/class/net/ctr0/flags").as_str().unwrap_or("").trim().trim_start_matches("0x").to_string();
            ensure!(u32::from_str_radix(&flags, 16).is_ok_and(|f| f & 1 != 0), "ctr0 is not up (flags {flags})");
        }
    }
    Ok(())
}

fn missing(ctx: &mut Ctx) -> R {
    ctx.config["linux"]["netDevices"] = json!({ "cfmissing0": {} });
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    expect_error(&o, "moving a device the host does not have")
}

fn no_netns(ctx: &mut Ctx) -> R {
    let veth = Veth::new(ctx)?;
    drop_ns(ctx, "network");
    ctx.config["linux"]["netDevices"] = json!({ &veth.host: {} });
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    expect_error(&o, "netDevices without a network namespace of the container's own")?;
    ensure!(
        std::path::Path::new("/sys/class/net").join(&veth.host).exists(),
        "the refused create took the device anyway"
    );
    Ok(())
}

fn policy(ctx: &mut Ctx, mode: &str, want: &str) -> R {
    ctx.config["linux"]["memoryPolicy"] = json!({ "mode": mode, "nodes": "0" });
    let r = ctx.probe(&["--file", "/proc/self/numa_maps"])?;
    let maps = r["ops"]["file:/proc/self/numa_maps"]["ok"].as_str().unwrap_or("").to_string();
    let first = maps.lines().next().unwrap_or("");
    ensure!(first.split(' ').any(|w| w == want), "numa_maps shows {first:?}, want {want}");
    Ok(())
}

fn bad_policy(ctx: &mut Ctx) -> R {
    // No host has node 4095 (the kernel's MAX_NUMNODES is at most 1024 on x86).
    ctx.config["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_BIND", "nodes": "4095" });
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    if o.ok() {
        return expect_error(&ctx.start(&id), "MPOL_BIND on a node the host lacks");
    }
    Ok(())
}

fn no_resctrl(ctx: &mut Ctx) -> R {
    let mounted =
        std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().any(|l| l.contains(" - resctrl "));
    if mounted {
        return skip("this host has resctrl mounted");
    }
    ctx.config["linux"]["intelRdt"] = json!({ "closID": "conformance", "l3CacheSchema": "L3:0=f" });
    let id = ctx.id();
    let o = ctx.create(&id, &[]);
    expect_error(&o, "intelRdt without resctrl")
}

/// features.md §Linux netDevices, memoryPolicy, intelRdt: shapes and vocabulary.
pub fn features_problems(f: &Value) -> Vec<String> {
    let mut p = vec![];
    if let Some(n) = f.pointer("/linux/netDevices") {
        if !n.is_object() || n.get("enabled").is_some_and(|e| !e.is_boolean()) {
            p.push(format!("linux.netDevices is not {{enabled: bool}}: {n}"));
        }
    }
    let known_modes = [
        "MPOL_DEFAULT",
        "MPOL_BIND",
        "MPOL_INTERLEAVE",
        "MPOL_WEIGHTED_INTERLEAVE",
        "MPOL_PREFERRED",
        "MPOL_PREFERRED_MANY",
        "MPOL_LOCAL",
    ];
    let known_flags = ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"];
    for (ptr, known) in
        [("/linux/memoryPolicy/modes", &known_modes[..]), ("/linux/memoryPolicy/flags", &known_flags[..])]
    {
        if let Some(v) = f.pointer(ptr) {
            let ok = v.as_array().is_some_and(|a| a.iter().all(|x| x.as_str().is_some_and(|s| known.contains(&s))));
            if !ok {
                p.push(format!("{ptr} has entries outside the spec's list: {v}"));
            }
        }
    }
    if let Some(r) = f.pointer("/linux/intelRdt").and_then(Value::as_object) {
        for (k, v) in r {
            if !v.is_boolean() {
                p.push(format!("linux.intelRdt.{k} is not a boolean"));
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_shapes() {
        let good = json!({ "linux": { "netDevices": { "enabled": true }, "memoryPolicy": { "modes": ["MPOL_BIND"], "flags": [] },
                                      "intelRdt": { "enabled": true, "schemata": true, "monitoring": false } } });
        assert!(features_problems(&good).is_empty());
        let bad = json!({ "linux": { "netDevices": true, "memoryPolicy": { "modes": ["MPOL_SOMETIMES"] }, "intelRdt": { "enabled": "yes" } } });
        assert_eq!(features_problems(&bad).len(), 3);
    }
}
