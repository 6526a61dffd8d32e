//! runtime-spec 1.3's fields end to end: linux.netDevices (a veth made by the test moves
//! into the container renamed, with its addresses, MTU and up state; it dies with the
//! container's network namespace, as the kernel does with virtual devices),
//! linux.memoryPolicy (seen in /proc/self/numa_maps), linux.intelRdt (refused without
//! resctrl), `user.*` sysctls, and what `features`/`--version` report.
//!
//! Debian's runc 1.1.5 predates all of these (runc 1.3 added netDevices, 1.4
//! memoryPolicy and user.* sysctls): there is no oracle here, the spec and runc's later
//! code are the reference.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use strata_integration::engines::wait_until;
use strata_integration::*;

static N: AtomicUsize = AtomicUsize::new(0);

/// A veth pair on the host, deleted on drop (whatever end is still there): a failing
/// test leaves no interface behind.
struct Veth {
    host: String,
    peer: String,
    n: usize,
}

impl Veth {
    /// `host` (up, MTU 1400, 10.213.N.2/24 and fd13::N:2/64) and its peer.
    fn new() -> Veth {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let v = Veth { host: format!("s13h{tag}"), peer: format!("s13p{tag}"), n: n % 250 };
        ip(&["link", "add", &v.host, "mtu", "1400", "type", "veth", "peer", "name", &v.peer]);
        ip(&["addr", "add", &format!("10.213.{}.2/24", v.n), "dev", &v.host]);
        ip(&["-6", "addr", "add", &format!("fd13::{}:2/64", v.n), "dev", &v.host, "nodad"]);
        ip(&["link", "set", &v.host, "up"]);
        v
    }

    /// Both ends gone from the host (the kernel destroys the pair with the namespace;
    /// its cleanup runs asynchronously).
    fn gone(&self) -> bool {
        wait_until(10, || !link_exists(&self.host) && !link_exists(&self.peer))
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for name in [&self.host, &self.peer] {
            if link_exists(name) {
                let _ = Command::new("ip").args(["link", "del", name]).status();
            }
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn create_fails(b: &Bundle, needles: &[&str]) -> String {
    b.write_config();
    let id = b.id("bad");
    let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]));
    assert!(!out.status.success(), "create succeeded, expected an error about {needles:?}");
    let err = stderr(&out);
    for n in needles {
        assert!(err.contains(n), "{err:?} does not say {n:?}");
    }
    b.assert_nothing_left(&id, None);
    err
}

#[test]
fn a_host_veth_moves_in_renamed_with_its_addresses_mtu_and_up_state_and_dies_with_the_namespace() {
    let veth = Veth::new();
    let mut b = Bundle::new("netdev");
    b.config["linux"]["netDevices"] = json!({ &veth.host: { "name": "ctr0" } });
    b.config["root"]["readonly"] = json!(false);
    b.sh("{ ip addr show dev ctr0; cat /sys/class/net/ctr0/mtu /sys/class/net/ctr0/flags; ls /sys/class/net; } > /out 2>&1");
    let id = b.id("netdev");
    b.create(&id);
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    // Moved out of the host's namespace while created; the peer stays on the host.
    assert!(!link_exists(&veth.host), "{} still on the host after create", veth.host);
    assert!(link_exists(&veth.peer));

    // A second container asking for the same device: it is in use (in the first one).
    let err = create_fails(&b, &[&format!("linux.netDevices.{}", veth.host), "no such network device"]);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    assert_ok(&output_of(b.command(&["start", &id])), "start");
    b.wait_status(&id, "stopped");
    let seen = std::fs::read_to_string(b.dir.join("rootfs/out")).unwrap();
    assert!(seen.contains(&format!("inet 10.213.{}.2/24", veth.n)), "{seen}");
    assert!(seen.contains(&format!("inet6 fd13::{}:2/64", veth.n)), "{seen}");
    assert!(seen.contains("mtu 1400"), "{seen}");
    let lines: Vec<&str> = seen.lines().collect();
    let (mtu, flags) = (lines[lines.len() - 4], lines[lines.len() - 3]);
    assert_eq!(mtu, "1400", "{seen}");
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    assert!(flags & 1 != 0, "ctr0 is not up in the container: {seen}");
    assert!(!seen.contains(&veth.host), "the host name leaked into the container: {seen}");

    assert_ok(&output_of(b.command(&["delete", &id])), "delete");
    b.assert_nothing_left(&id, Some(pid));
    // A veth dies with the namespace it is in, taking its peer along (documented).
    assert!(veth.gone(), "the veth pair outlived the container's network namespace");
}

#[test]
fn a_create_that_fails_after_the_move_leaves_nothing_behind() {
    let veth = Veth::new();
    let mut b = Bundle::new("netdev-fail");
    b.config["linux"]["netDevices"] = json!({ &veth.host: {} });
    // Fails in the init, after the runtime moved the device.
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/nope", "type": "bind", "source": "/nonexistent-strata-spec13", "options": ["bind"]
    }));
    create_fails(&b, &["/nonexistent-strata-spec13"]);
    assert!(veth.gone(), "the veth pair outlived the failed create");
}

#[test]
fn net_devices_need_a_new_network_namespace_and_a_host_device() {
    let veth = Veth::new();
    let mut b = Bundle::new("netdev-nons");
    let ns: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "network")
        .cloned()
        .collect();
    b.config["linux"]["namespaces"] = json!(ns);
    b.config["linux"]["netDevices"] = json!({ &veth.host: {} });
    create_fails(&b, &["linux.netDevices", "new network namespace"]);
    assert!(link_exists(&veth.host), "a refused create touched the device");

    let mut b = Bundle::new("netdev-joined");
    b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "network", "path": "/proc/self/ns/net" }));
    b.config["linux"]["netDevices"] = json!({ &veth.host: {} });
    create_fails(&b, &["linux.netDevices", "joined by path"]);

    let mut b = Bundle::new("netdev-missing");
    b.config["linux"]["netDevices"] = json!({ "s13missing0": { "name": "eth0" } });
    create_fails(&b, &["linux.netDevices.s13missing0", "no such network device"]);

    let mut b = Bundle::new("netdev-badname");
    b.config["linux"]["netDevices"] = json!({ &veth.host: { "name": "a/b" } });
    create_fails(&b, &[&format!("linux.netDevices.{}.name", veth.host)]);
    assert!(link_exists(&veth.host) && link_exists(&veth.peer));
}

#[test]
fn memory_policy_is_the_containers_task_policy() {
    for (mode, flags, want) in [
        ("MPOL_BIND", json!([]), " bind:0 "),
        ("MPOL_INTERLEAVE", json!([]), " interleave:0 "),
        ("MPOL_PREFERRED", json!([]), " prefer:0 "),
        ("MPOL_BIND", json!(["MPOL_F_STATIC_NODES"]), " bind=static:0 "),
    ] {
        let mut b = Bundle::new("mempolicy");
        b.config["linux"]["memoryPolicy"] = json!({ "mode": mode, "nodes": "0", "flags": flags });
        b.sh("head -1 /proc/self/numa_maps");
        let id = b.id("mp");
        let out = b.run(&id);
        assert_ok(&out, mode);
        assert!(stdout(&out).contains(want), "{mode} {flags}: {}", stdout(&out));
        b.assert_nothing_left(&id, None);
    }
}

#[test]
fn bad_memory_policies_are_refused_naming_the_field() {
    for (policy, needle) in [
        (json!({ "mode": "MPOL_BIND", "nodes": "4095" }), "linux.memoryPolicy.nodes"),
        (json!({ "mode": "MPOL_BIND" }), "linux.memoryPolicy.nodes"),
        (json!({ "mode": "MPOL_DEFAULT", "nodes": "0" }), "linux.memoryPolicy.nodes"),
        (json!({ "mode": "MPOL_BIND", "nodes": "0-" }), "linux.memoryPolicy.nodes"),
        (json!({ "mode": "MPOL_SOMETIMES", "nodes": "0" }), "linux.memoryPolicy.mode"),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"] }),
            "linux.memoryPolicy.flags",
        ),
        // The kernel's own refusal (from the init) names the field too.
        (json!({ "mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"] }), "linux.memoryPolicy"),
    ] {
        let mut b = Bundle::new("mempolicy-bad");
        b.config["linux"]["memoryPolicy"] = policy;
        create_fails(&b, &[needle]);
    }
}

#[test]
fn intel_rdt_without_resctrl_is_refused_with_the_specs_error() {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().any(|l| l.contains(" - resctrl "));
    if mounted {
        skip("intel_rdt_without_resctrl", "this host has resctrl mounted");
        return;
    }
    let mut b = Bundle::new("rdt");
    b.config["linux"]["intelRdt"] =
        json!({ "closID": "strata-test", "l3CacheSchema": "L3:0=f", "enableMonitoring": true });
    create_fails(&b, &["linux.intelRdt", "no resctrl filesystem is mounted"]);
    let mut b = Bundle::new("rdt-bad");
    b.config["linux"]["intelRdt"] = json!({ "closID": "../x" });
    create_fails(&b, &["linux.intelRdt.closID"]);
}

#[test]
fn user_sysctls_need_the_containers_own_user_namespace() {
    let host = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    let mut b = Bundle::new("sysctl-user");
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "user" }));
    b.config["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    b.config["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    b.config["linux"]["sysctl"] = json!({ "user.max_user_namespaces": "7" });
    b.sh("cat /proc/sys/user/max_user_namespaces");
    let id = b.id("uns");
    let out = b.run(&id);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "7\n");
    assert_eq!(std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap(), host);

    let mut b = Bundle::new("sysctl-user-host");
    b.config["linux"]["sysctl"] = json!({ "user.max_user_namespaces": "7" });
    create_fails(&b, &["linux.sysctl.user.max_user_namespaces"]);
    assert_eq!(std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap(), host);
}

#[test]
fn features_and_version_say_1_3_and_list_the_new_fields() {
    let out = output_of({
        let mut c = Command::new(strata_bin());
        c.arg("features");
        c
    });
    assert_ok(&out, "features");
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], "1.3.0");
    assert_eq!(f["linux"]["netDevices"]["enabled"], true);
    let modes = f["linux"]["memoryPolicy"]["modes"].as_array().unwrap();
    for m in ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED", "MPOL_LOCAL"] {
        assert!(modes.iter().any(|v| v == m), "{m} missing from {modes:?}");
    }
    assert_eq!(f["linux"]["memoryPolicy"]["flags"].as_array().unwrap().len(), 3);
    assert_eq!(f["linux"]["intelRdt"], json!({ "enabled": true, "schemata": true, "monitoring": true }));

    let out = output_of({
        let mut c = Command::new(strata_bin());
        c.arg("--version");
        c
    });
    assert!(stdout(&out).contains("spec: 1.3.0"), "{}", stdout(&out));
    // `strata spec` keeps a version every peer accepts (crun 1.8 refuses 1.2 and later).
    let b = Bundle::new("spec-version");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(written["ociVersion"], "1.0.2");
}

#[test]
fn a_device_moves_into_a_container_with_its_own_user_namespace() {
    let veth = Veth::new();
    let mut b = Bundle::new("netdev-userns");
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "user" }));
    b.config["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    b.config["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    b.config["linux"]["netDevices"] = json!({ &veth.host: { "name": "eth7" } });
    b.sh("cat /sys/class/net/eth7/mtu; ip addr show dev eth7 | grep -c 'inet 10.213'");
    let id = b.id("uns");
    let out = b.run(&id);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "1400\n1\n");
    b.assert_nothing_left(&id, None);
    assert!(veth.gone(), "the veth pair outlived the container");
}
