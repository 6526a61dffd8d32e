//! linux.sysctl: only keys that live in a namespace the container owns may be set, so a
//! container can never change the host's kernel settings. `user.*` keys are counted per
//! user namespace: they need the container's own.

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// IPC-namespaced kernel.* keys (ipc_sysctls + mq_sysctls in the kernel).
const IPC_KEYS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Checks every key against the namespaces the container gets.
pub fn validate(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else { return Ok(()) };
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).map(Vec::as_slice).unwrap_or(&[]);
    let private = |t: LinuxNamespaceType| {
        namespaces.iter().any(|n| {
            n.typ() == t
                && match n.path() {
                    None => true,
                    // A joined namespace is fine unless it is the host's own.
                    Some(p) => !same_file(p, &format!("/proc/self/ns/{}", ns_file(t))),
                }
        })
    };
    for key in sysctl.keys() {
        let field = || format!("linux.sysctl.{key}");
        let dotted = key.replace('/', ".");
        if dotted.split('.').any(|c| c.is_empty() || c == "..") {
            return Err(Error::field(field(), "is not a sysctl name"));
        }
        let ok = if IPC_KEYS.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
            private(LinuxNamespaceType::Ipc)
        } else if dotted.starts_with("net.") {
            private(LinuxNamespaceType::Network)
        } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
            private(LinuxNamespaceType::Uts)
        } else if dotted.starts_with("user.") {
            // user.max_*_namespaces and friends are per user namespace (runc 1.4 allows them).
            private(LinuxNamespaceType::User)
        } else {
            return Err(Error::field(field(), "is not namespaced: refusing to change the host's kernel"));
        };
        if !ok {
            return Err(Error::field(field(), "needs a private namespace for it: refusing to change the host's"));
        }
    }
    Ok(())
}

fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        _ => "uts",
    }
}

fn same_file(a: &std::path::Path, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Where a key lives below /proc: "net.ipv4.ip_forward" is "sys/net/ipv4/ip_forward"
/// (a key with slashes is taken as a path already). The init writes the values, from
/// inside the container's namespaces, through its /proc ([`crate::process`]).
pub fn proc_path(key: &str) -> String {
    format!("sys/{}", if key.contains('/') { key.to_string() } else { key.replace('.', "/") })
}
