//! `strata features`: what this build supports, in runtime-spec features.md's shape.

use serde_json::{json, Value};

pub fn features() -> Value {
    let mut namespaces = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"];
    namespaces.sort_unstable();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": namespaces,
            "capabilities": crate::capabilities::known_names(),
            "cgroup": { "v1": true, "v2": true, "systemd": crate::cgroups::systemd::available(), "systemdUser": false, "rdma": true },
            "seccomp": crate::seccomp::features(),
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            // Implemented; whether this host has resctrl is create's question (it fails without).
            "intelRdt": { "enabled": true, "schemata": true, "monitoring": true },
            "memoryPolicy": { "modes": crate::mempolicy::MODES, "flags": crate::mempolicy::FLAGS },
            "netDevices": { "enabled": true },
            "mountExtensions": { "idmap": { "enabled": true } }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.version": crate::OCI_VERSION,
            "io.github.strata.version": env!("CARGO_PKG_VERSION")
        }
    })
}

fn mount_options() -> Vec<&'static str> {
    let mut v = vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "private",
        "rbind",
        "relatime",
        "remount",
        "ro",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "sync",
        "tmpcopyup",
        "unbindable",
        "idmap",
        "ridmap",
        "rro",
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnodiratime",
        "rdiratime",
        "rnoatime",
        "rrelatime",
        "rstrictatime",
        "rnosymfollow",
        "rsymfollow",
    ];
    v.sort_unstable();
    v
}
