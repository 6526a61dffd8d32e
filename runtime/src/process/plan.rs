//! The init's plan: everything the container init does between the clone and the exec
//! that config.json decides, computed by the parent before the clone. The init only
//! reads it ([`super::steps`], [`crate::rootfs::apply`], [`super::attrs::apply`],
//! [`super::exec::prepare`]); after the clone nothing in these steps is parsed,
//! validated or converted from config.json.
//!
//! Still decided in the child, because only the container's filesystem can answer:
//! the mode of a directory a tmpfs covers, whether a masked or read-only path exists
//! (and is a directory), whether a bind source the parent did not open is a directory,
//! the fallbacks the kernel's answer selects (EPERM/EINVAL), whether cwd can be entered
//! before the user switch, and where args[0] is. The hooks' state documents and the
//! console are still made in the child from `InitOptions`.

use std::ffi::CString;
use std::path::PathBuf;

use oci_spec::runtime::{Box as ConsoleSize, Process, Spec, User};

use super::attrs::{self, Attrs};
use super::InitOptions;
use crate::capabilities::{self, CapSets};
use crate::error::{Error, Result};
use crate::rootfs::{self, BindSources, RootfsPlan};
use crate::rootless::Caller;
use crate::sys::cstring;

#[derive(Debug)]
pub struct InitPlan {
    /// setresuid/setresgid 0 in the container's user namespace (new or joined).
    pub become_root: bool,
    /// Stay dumpable: an unprivileged runtime may write /proc/PID/uid_map, and `exec`
    /// open /proc/PID/ns/*, only while the init's /proc files are its own (the kernel
    /// gives a non-dumpable process's to root). What non-dumpable guards against, a
    /// container process reaching the host binary through /proc/PID/exe, is then open
    /// to processes of the caller's own uid only, and the binary is root's on a normal
    /// install. runc's rootless init is dumpable too.
    pub stay_dumpable: bool,
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
    pub process: ProcessPlan,
}

/// The container process (the init's, or one `exec` starts): limits, identity and
/// program, converted and checked before the fork. Only what the container's own
/// filesystem answers is left to the process: its cwd and where args[0] is.
#[derive(Debug)]
pub struct ProcessPlan {
    pub attrs: Attrs,
    /// process.capabilities, filtered to what can be granted (warnings given here).
    pub caps: Option<CapSets>,
    pub user: User,
    /// Leave the supplementary groups as inherited: an unprivileged runtime's process
    /// keeps the caller's (as mapped), and process.user.additionalGids is ignored with a
    /// warning, as runc does for a rootless caller (setgroups is denied or would drop
    /// groups the user may rely on for access to its own files).
    pub keep_groups: bool,
    pub cwd: PathBuf,
    pub no_new_privileges: bool,
    pub arg0: String,
    /// Where an args[0] without a slash is looked for: the container's $PATH.
    pub search_path: String,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub console_size: Option<ConsoleSize>,
}

/// runc's $PATH when process.env sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process's plan (the parent, before the fork).
pub fn process(spec: &Spec, process: &Process, caller: &Caller) -> Result<ProcessPlan> {
    let args = process.args().as_deref().unwrap_or(&[]);
    let env = process.env().as_deref().unwrap_or(&[]);
    let arg0 = args.first().ok_or_else(|| Error::field("process.args", "must not be empty"))?.clone();
    let keep_groups = caller.euid != 0;
    if keep_groups && process.user().additional_gids().as_ref().is_some_and(|g| !g.is_empty()) {
        crate::logging::warn("process.user.additionalGids: ignored when strata runs unprivileged (as runc ignores it)");
    }
    Ok(ProcessPlan {
        attrs: attrs::build(spec, process)?,
        caps: process.capabilities().as_ref().map(capabilities::resolve).transpose()?,
        user: process.user().clone(),
        keep_groups,
        cwd: process.cwd().clone(),
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        arg0,
        search_path: env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string(),
        argv: args.iter().enumerate().map(|(i, a)| cstring(&format!("process.args[{i}]"), a)).collect::<Result<_>>()?,
        envp: env.iter().enumerate().map(|(i, e)| cstring(&format!("process.env[{i}]"), e)).collect::<Result<_>>()?,
        console_size: process.console_size(),
    })
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
        // Also when strata itself runs in one (rootless podman): mknod is refused there
        // too, and runc binds the devices then as well.
        in_user_ns: ns.in_user_ns() || opts.caller.in_user_ns,
        no_pivot: opts.no_pivot,
        own_mount_ns: ns.has_mount(),
        sources,
        has_kcore: std::path::Path::new("/proc/kcore").exists(),
    };
    let names = |v: &Option<String>| v.clone().filter(|s| !s.is_empty() && ns.has_uts());
    Ok(InitPlan {
        become_root: ns.in_user_ns(),
        stay_dumpable: ns.new_user && opts.caller.euid != 0,
        unshare_cgroup: ns.new_cgroup,
        time_offsets: if ns.new_time { Some(time_offsets(opts.spec)?) } else { None },
        // In a joined uts namespace too: runc sets the names wherever the init's is.
        hostname: names(opts.spec.hostname()),
        domainname: names(opts.spec.domainname()),
        join_keyring: !opts.no_new_keyring,
        sysctls: sysctls(opts.spec),
        rootfs: rootfs::plan::build(&inputs)?,
        process: process(
            opts.spec,
            opts.spec.process().as_ref().ok_or_else(|| Error::field("process", "is required"))?,
            &opts.caller,
        )?,
    })
}

fn time_offsets(spec: &Spec) -> Result<String> {
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref());
    let mut text = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        if !matches!(clock.as_str(), "monotonic" | "boottime") {
            return Err(Error::field(
                format!("linux.timeOffsets.{clock}"),
                "only monotonic and boottime can be offset",
            ));
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
