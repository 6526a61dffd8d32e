//! The cases, one module per spec area. A case is a plain function over a fresh
//! bundle (`Ctx`), listed in its module's `CASES` table with the spec sentence it
//! checks: file, section, and the requirement level.

use crate::harness::{Ctx, R};
use serde_json::{json, Value};

pub mod capabilities;
pub mod cgroups;
pub mod console;
pub mod devices;
pub mod features;
pub mod hooks;
pub mod lifecycle;
pub mod mounts;
pub mod namespaces;
pub mod paths;
pub mod process;
pub mod rlimits;
pub mod runc_parity;
pub mod seccomp;
pub mod spec13;
pub mod state;
pub mod sysctl;

pub struct Case {
    pub area: &'static str,
    pub name: &'static str,
    pub spec: &'static str,
    pub run: fn(&mut Ctx) -> R,
}

impl Case {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.area, self.name)
    }
}

/// A table entry: (name, spec sentence, function).
pub type Entry = (&'static str, &'static str, fn(&mut Ctx) -> R);

/// Every case, in the order they run.
pub fn all() -> Vec<Case> {
    let areas: &[(&str, &[Entry])] = &[
        ("lifecycle", lifecycle::CASES),
        ("state", state::CASES),
        ("namespaces", namespaces::CASES),
        ("mounts", mounts::CASES),
        ("devices", devices::CASES),
        ("paths", paths::CASES),
        ("process", process::CASES),
        ("capabilities", capabilities::CASES),
        ("rlimits", rlimits::CASES),
        ("sysctl", sysctl::CASES),
        ("netdevices", spec13::NET_DEVICES),
        ("memorypolicy", spec13::MEMORY_POLICY),
        ("intelrdt", spec13::INTEL_RDT),
        ("hooks", hooks::CASES),
        ("cgroups", cgroups::CASES),
        ("seccomp", seccomp::CASES),
        ("features", features::CASES),
        ("console", console::CASES),
        ("runc_parity", runc_parity::CASES),
    ];
    areas
        .iter()
        .flat_map(|(area, t)| t.iter().map(move |(name, spec, run)| Case { area, name, spec, run: *run }))
        .collect()
}

/// The capabilities `runc spec` grants, which every case starts from.
pub const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The baseline config.json: what `runc spec` writes (non-terminal), with the probe
/// as the process and a cgroupsPath under the run's own parent. Cases edit it.
pub fn default_config(cgroup_parent: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/strata-probe"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "conformance",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "cgroupsPath": format!("{cgroup_parent}/unset"),
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// The host's own namespace link for `t` ("net:[4026531840]").
pub fn host_ns(t: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{t}")).map(|p| p.display().to_string()).unwrap_or_default()
}

/// Removes the namespace `t` from linux.namespaces.
pub fn drop_ns(ctx: &mut Ctx, t: &str) {
    if let Some(a) = ctx.config["linux"]["namespaces"].as_array_mut() {
        a.retain(|n| n["type"] != t);
    }
}

/// Adds (or replaces) namespace `t`, joined at `path` when given.
pub fn set_ns(ctx: &mut Ctx, t: &str, path: Option<&str>) {
    drop_ns(ctx, t);
    let mut n = json!({ "type": t });
    if let Some(p) = path {
        n["path"] = json!(p);
    }
    ctx.config["linux"]["namespaces"].as_array_mut().unwrap().push(n);
}

/// Appends a mount entry.
pub fn add_mount(ctx: &mut Ctx, m: Value) {
    ctx.config["mounts"].as_array_mut().unwrap().push(m);
}

/// Fails the case with `what` and the command's error unless it failed.
pub fn expect_error(o: &crate::harness::Out, what: &str) -> R {
    if o.ok() {
        return crate::harness::not_ok(format!("{what} succeeded; the spec requires an error"));
    }
    Ok(())
}
