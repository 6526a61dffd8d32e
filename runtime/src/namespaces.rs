//! Which namespaces the container gets and how: new ones are created by the clone (or
//! unshared by the init), existing ones are joined by `path`. The plan is made, and
//! every `path` opened and type-checked, before anything on the system changes.
//!
//! Ordering rules the plan encodes:
//! - pid, net, ipc, uts are joined by the runtime itself before the clone: a joined pid
//!   namespace only affects children, and the others don't change how the runtime
//!   sees the host filesystem;
//! - user, mnt, cgroup and time are joined by the init; a joined user namespace comes
//!   first and the new namespaces are then unshared inside it (so it owns them), with
//!   one extra fork when a new pid namespace must be created there;
//! - new cgroup and time namespaces are unshared by the init after it has been placed
//!   in its cgroup and before it execs.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// A namespace to join: its type and an open fd on its file.
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
}

pub struct NamespacePlan {
    /// Namespaces the clone itself creates (fast path: no joined user namespace).
    pub clone_flags: CloneFlags,
    /// Namespaces the init unshares itself (inside a joined user namespace, or cgroup/time).
    pub unshare_flags: CloneFlags,
    /// A new pid namespace that must be created by an extra fork inside the init.
    pub fork_for_pid: bool,
    /// Joined by the runtime before the clone.
    pub joins_before_clone: Vec<Join>,
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
        joins_before_clone: Vec::new(),
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
    if joins_user {
        // Everything new is created inside the joined user namespace, by the init.
        p.fork_for_pid = p.clone_flags.contains(CloneFlags::CLONE_NEWPID);
        p.unshare_flags |= p.clone_flags - CloneFlags::CLONE_NEWPID;
        p.clone_flags = CloneFlags::empty();
    }
    for j in joins {
        match j.typ {
            LinuxNamespaceType::Pid
            | LinuxNamespaceType::Network
            | LinuxNamespaceType::Ipc
            | LinuxNamespaceType::Uts
                if !joins_user =>
            {
                p.joins_before_clone.push(j)
            }
            _ => p.joins_in_init.push(j),
        }
    }
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

/// setns into each namespace of `joins`, in order.
pub fn enter(joins: &[Join]) -> Result<()> {
    for j in joins {
        nix::sched::setns(j.fd.as_fd(), clone_flag(j.typ)).ctx(|| format!("join {} namespace", spec_name(j.typ)))?;
    }
    Ok(())
}
