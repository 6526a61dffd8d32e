//! The plan of a `cgroup` mount: the container sees its own cgroup as the root of each
//! hierarchy. With a private cgroup namespace the hierarchies are mounted fresh;
//! without one the container's cgroup directories are bound. v1 and hybrid hosts get
//! runc's layout: a tmpfs with one directory per v1 hierarchy ("cpu", "memory",
//! "systemd"; no "unified").

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::options::MountOptions;
use super::plan::Inputs;
use crate::cgroups::{CgroupDir, Version};

#[derive(Debug)]
pub struct CgroupPlan {
    /// A tmpfs with one directory per v1 hierarchy (else: the one cgroup2 at DEST).
    pub tmpfs: bool,
    pub flags: MsFlags,
    pub readonly: bool,
    /// Mount fresh hierarchies (own cgroup namespace), binds after EPERM.
    pub fresh: bool,
    pub hierarchies: Vec<Hierarchy>,
}

#[derive(Debug)]
pub struct Hierarchy {
    pub dest: PathBuf,
    pub host_dir: PathBuf,
    pub fstype: &'static str,
    pub source: String,
    pub data: Option<String>,
}

pub(super) fn build(i: &Inputs, dest: &Path, opts: &MountOptions) -> CgroupPlan {
    // The hierarchies a rootless container was left out of show the runtime's own
    // cgroup, where its processes are (runc's rootless binds).
    let dirs: Vec<&CgroupDir> = i.cgroup.dirs.iter().chain(&i.cgroup.left_out).collect();
    let tmpfs = !matches!(dirs.as_slice(), [only] if only.version == Version::V2);
    let hierarchies = dirs
        .iter()
        .filter(|d| !tmpfs || d.version == Version::V1)
        .map(|d| hierarchy(d, if tmpfs { dest.join(dir_name(d)) } else { dest.to_path_buf() }))
        .collect();
    CgroupPlan {
        tmpfs,
        flags: (opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC) - MsFlags::MS_RDONLY,
        readonly: opts.flags.contains(MsFlags::MS_RDONLY),
        fresh: i.new_cgroup_ns,
        hierarchies,
    }
}

fn hierarchy(dir: &CgroupDir, dest: PathBuf) -> Hierarchy {
    // A named hierarchy's source is its name ("systemd"), as runc mounts it.
    let named = dir.controllers.iter().find_map(|c| c.strip_prefix("name="));
    let (fstype, data) = match dir.version {
        Version::V2 => ("cgroup2", String::new()),
        Version::V1 if named.is_some() => ("cgroup", format!("none,{}", dir.controllers.join(","))),
        Version::V1 => ("cgroup", dir.controllers.join(",")),
    };
    Hierarchy {
        dest,
        host_dir: dir.full(),
        fstype,
        source: named.unwrap_or(fstype).to_string(),
        data: (!data.is_empty()).then_some(data),
    }
}

/// runc's directory names: "cpu,cpuacct" for co-mounted controllers, "systemd" for
/// name=systemd.
fn dir_name(dir: &CgroupDir) -> String {
    match dir.version {
        Version::V2 => "unified".into(),
        Version::V1 => {
            dir.controllers.iter().map(|c| c.strip_prefix("name=").unwrap_or(c)).collect::<Vec<_>>().join(",")
        }
    }
}
