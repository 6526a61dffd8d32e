//! The init's plan: everything the container init does between the clone and the exec
//! that config.json decides, computed by the parent before the clone. The init only
//! reads it ([`super::steps`], [`crate::rootfs::apply`]); after the clone nothing is
//! parsed, validated or looked up in config.json for these steps.

use oci_spec::runtime::Spec;

use super::InitOptions;
use crate::error::{Error, Result};
use crate::rootfs::{self, BindSources, RootfsPlan};

#[derive(Debug)]
pub struct InitPlan {
    /// setresuid/setresgid 0 in the container's user namespace (new or joined).
    pub become_root: bool,
    pub unshare_cgroup: bool,
    /// A new time namespace, and linux.timeOffsets as /proc/self/timens_offsets takes
    /// them (empty: none).
    pub time_offsets: Option<String>,
    /// Set only where the container has a uts namespace of its own (new or joined).
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub join_keyring: bool,
    pub sysctls: Vec<Sysctl>,
    pub rootfs: RootfsPlan,
}

/// One linux.sysctl entry: written through the init's /proc before the mounts.
#[derive(Debug, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    /// Below /proc: "sys/net/ipv4/ip_forward".
    pub path: String,
    pub value: String,
}

/// Builds the plan (the parent, before the clone; the bind sources are open).
pub fn build(opts: &InitOptions, sources: &BindSources) -> Result<InitPlan> {
    let ns = &opts.namespaces;
    let inputs = rootfs::Inputs {
        spec: opts.spec,
        bundle: opts.bundle,
        rootfs: opts.rootfs,
        cgroup: opts.cgroup,
        new_cgroup_ns: ns.new_cgroup,
        in_user_ns: ns.in_user_ns(),
        no_pivot: opts.no_pivot,
        own_mount_ns: ns.has_mount(),
        sources,
        has_kcore: std::path::Path::new("/proc/kcore").exists(),
    };
    let names = |v: &Option<String>| v.clone().filter(|s| !s.is_empty() && ns.has_uts());
    Ok(InitPlan {
        become_root: ns.in_user_ns(),
        unshare_cgroup: ns.new_cgroup,
        time_offsets: if ns.new_time { Some(time_offsets(opts.spec)?) } else { None },
        // In a joined uts namespace too: runc sets the names wherever the init's is.
        hostname: names(opts.spec.hostname()),
        domainname: names(opts.spec.domainname()),
        join_keyring: !opts.no_new_keyring,
        sysctls: sysctls(opts.spec),
        rootfs: rootfs::plan::build(&inputs)?,
    })
}

fn time_offsets(spec: &Spec) -> Result<String> {
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref());
    let mut text = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        if !matches!(clock.as_str(), "monotonic" | "boottime") {
            return Err(Error::field(format!("linux.timeOffsets.{clock}"), "only monotonic and boottime can be offset"));
        }
        text.push_str(&format!("{clock} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
    }
    Ok(text)
}

/// linux.sysctl (validated with the config: [`crate::sysctl::validate`]) as /proc paths.
fn sysctls(spec: &Spec) -> Vec<Sysctl> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else { return Vec::new() };
    sysctl
        .iter()
        .map(|(key, value)| Sysctl { key: key.clone(), path: crate::sysctl::proc_path(key), value: value.clone() })
        .collect()
}
