//! Which namespaces the container gets and how: new ones are created by the clone (or
//! unshared by the init), existing ones are joined by `path`. The plan is made, and
//! every `path` opened and type-checked, before anything on the system changes.
//!
//! Ordering rules the plan encodes:
//! - every namespace joined by `path` is joined by the init, never by the runtime
//!   process: prestart and createRuntime hooks run in the runtime's namespaces (as
//!   runc's do), and a joined pid namespace needs one extra fork of the init anyway;
//! - the clone creates the new namespaces and the init then joins the others (a user
//!   namespace first); with a joined user namespace, or a new one and anything joined,
//!   the init joins first and unshares the new ones itself: inside the joined user
//!   namespace (which then owns them), or after the joins (which need the host's
//!   privileges) with the new user namespace owning the rest;
//! - a new or joined pid namespace that the clone did not create costs the init one
//!   extra fork; the init then reports the pid of the real init to the runtime;
//! - new cgroup and time namespaces are unshared by the init after it has been placed
//!   in its cgroup and before it execs.
//!
//! Namespace types the config does not list are the runtime's, as with runc.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A namespace to join: its type and an open fd on its file.
#[derive(Debug)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
}

#[derive(Debug)]
pub struct NamespacePlan {
    /// Namespaces the clone itself creates (fast path: nothing joined by path).
    pub clone_flags: CloneFlags,
    /// Namespaces the init unshares itself (after its joins, or cgroup/time).
    pub unshare_flags: CloneFlags,
    /// The init must fork once more to be in its pid namespace (new or joined).
    pub fork_for_pid: bool,
    /// The init reports its pid once its namespaces are set (it unshared a user
    /// namespace the runtime must map, or it forked).
    pub init_reports_pid: bool,
    /// Joined by the init, user first.
    pub joins_in_init: Vec<Join>,
    pub new_user: bool,
    pub new_mount: bool,
    pub new_uts: bool,
    pub new_pid: bool,
    pub new_cgroup: bool,
    pub new_time: bool,
}

impl NamespacePlan {
    /// The init runs in a user namespace other than the runtime's (new or joined).
    pub fn in_user_ns(&self) -> bool {
        self.new_user || self.joins_in_init.iter().any(|j| j.typ == LinuxNamespaceType::User)
    }

    /// The init has a mount namespace of the container's own (new or joined).
    pub fn has_mount(&self) -> bool {
        self.new_mount || self.joins_in_init.iter().any(|j| j.typ == LinuxNamespaceType::Mount)
    }

    /// The init has a uts namespace of the container's own (new or joined).
    pub fn has_uts(&self) -> bool {
        self.new_uts || self.joins_in_init.iter().any(|j| j.typ == LinuxNamespaceType::Uts)
    }
}

pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name runtime-spec gives a namespace type ("network", "mount", ...).
pub fn spec_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// Builds the plan for `spec`, opening and type-checking every namespace `path`.
pub fn plan(spec: &Spec) -> Result<NamespacePlan> {
    let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    let mut p = NamespacePlan {
        clone_flags: CloneFlags::empty(),
        unshare_flags: CloneFlags::empty(),
        fork_for_pid: false,
        init_reports_pid: false,
        joins_in_init: Vec::new(),
        new_user: false,
        new_mount: false,
        new_uts: false,
        new_pid: false,
        new_cgroup: false,
        new_time: false,
    };
    let mut joins = Vec::new();
    for (i, ns) in list.into_iter().flatten().enumerate() {
        let typ = ns.typ();
        match ns.path() {
            Some(path) => joins.push(Join { typ, fd: open_namespace(i, typ, path)? }),
            None => match typ {
                LinuxNamespaceType::User => p.new_user = true,
                LinuxNamespaceType::Mount => p.new_mount = true,
                LinuxNamespaceType::Uts => p.new_uts = true,
                LinuxNamespaceType::Pid => p.new_pid = true,
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time => p.new_time = true,
                LinuxNamespaceType::Ipc | LinuxNamespaceType::Network => {}
            },
        }
        if ns.path().is_none() {
            let flag = clone_flag(typ);
            match typ {
                // Unshared by the init once it sits in its cgroup / before exec.
                LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time => p.unshare_flags |= flag,
                _ => p.clone_flags |= flag,
            }
        }
    }
    let joins_user = joins.iter().any(|j| j.typ == LinuxNamespaceType::User);
    let joins_pid = joins.iter().any(|j| j.typ == LinuxNamespaceType::Pid);
    if joins_user || (p.new_user && !joins.is_empty()) {
        // Everything new is created by the init, after its joins (inside a joined user
        // namespace, or so a new one can own the rest).
        p.fork_for_pid = p.clone_flags.contains(CloneFlags::CLONE_NEWPID) || joins_pid;
        p.unshare_flags |= p.clone_flags - CloneFlags::CLONE_NEWPID;
        p.clone_flags = CloneFlags::empty();
    } else if joins_pid {
        // setns(CLONE_NEWPID) only moves the init's children.
        p.fork_for_pid = true;
    }
    p.init_reports_pid = p.fork_for_pid || p.unshare_flags.contains(CloneFlags::CLONE_NEWUSER);
    p.joins_in_init = joins;
    // The user namespace must be entered before any other the init joins.
    p.joins_in_init.sort_by_key(|j| j.typ != LinuxNamespaceType::User);
    Ok(p)
}

fn open_namespace(index: usize, typ: LinuxNamespaceType, path: &Path) -> Result<OwnedFd> {
    let field = format!("linux.namespaces[{index}].path");
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::field(&field, format!("{}: {}", path.display(), e.desc())))?;
    let want = clone_flag(typ).bits();
    match crate::sys::namespace_type(&fd) {
        Ok(got) if got == want => Ok(fd),
        Ok(_) => Err(Error::field(field, format!("{} is not a {} namespace", path.display(), spec_name(typ)))),
        Err(_) => Err(Error::field(field, format!("{} is not a namespace file", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(namespaces: serde_json::Value) -> NamespacePlan {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "root": { "path": "rootfs" }, "linux": { "namespaces": namespaces },
        }))
        .unwrap();
        plan(&spec).unwrap()
    }

    #[test]
    fn the_runtime_never_joins_and_the_clone_makes_what_it_can() {
        // Joined pid and net: the clone still makes the mount namespace; the init joins
        // both and forks once into the joined pid namespace.
        let p = plan_of(serde_json::json!([
            { "type": "pid", "path": "/proc/self/ns/pid" }, { "type": "mount" },
            { "type": "network", "path": "/proc/self/ns/net" },
        ]));
        assert_eq!(p.clone_flags, CloneFlags::CLONE_NEWNS);
        assert_eq!(p.joins_in_init.len(), 2);
        assert!(p.fork_for_pid && p.init_reports_pid && !p.new_pid);

        // A new user namespace and a joined one: the init joins, then unshares user and
        // mount itself (the user namespace owning the mount namespace) and reports.
        let p = plan_of(serde_json::json!([
            { "type": "user" }, { "type": "mount" }, { "type": "uts", "path": "/proc/self/ns/uts" },
        ]));
        assert!(p.clone_flags.is_empty());
        assert_eq!(p.unshare_flags, CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS);
        assert!(p.init_reports_pid && !p.fork_for_pid && p.has_uts());

        // Nothing joined: all in the clone, no report; no mount namespace is inherited.
        let p = plan_of(serde_json::json!([{ "type": "pid" }, { "type": "network" }]));
        assert_eq!(p.clone_flags, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET);
        assert!(!p.init_reports_pid && !p.fork_for_pid && !p.has_mount());
    }
}
