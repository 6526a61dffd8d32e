//! A `cgroup` mount: the container sees its own cgroup as the root of each hierarchy.
//! With a private cgroup namespace the hierarchies are mounted fresh (the namespace
//! roots them at the container's cgroup); without one, the container's cgroup
//! directories are bind-mounted. v1 and hybrid hosts get runc's layout: a tmpfs with
//! one directory per v1 hierarchy ("cpu", "memory", "systemd"; no "unified").

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use super::mounts::remount_bind;
use super::options::MountOptions;
use super::resolve::{fd_path, mkdir_all, open_path};
use super::RootfsContext;
use crate::cgroups::{CgroupDir, Version};
use crate::error::{Context, Result};

pub fn mount_cgroups(root: &OwnedFd, dest: &Path, opts: &MountOptions, ctx: &RootfsContext) -> Result<()> {
    let readonly = opts.flags.contains(MsFlags::MS_RDONLY);
    let flags = (opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC) - MsFlags::MS_RDONLY;
    let dirs = &ctx.cgroup.dirs;
    if let [only] = dirs.as_slice() {
        if only.version == Version::V2 {
            let target = open_path(root, dest).ctx(|| "open")?;
            return mount_hierarchy(root, dest, &target, only, flags, readonly, ctx.new_cgroup_ns);
        }
    }
    let target = open_path(root, dest).ctx(|| "open")?;
    mount(Some("tmpfs"), &fd_path(&target), Some("tmpfs"), flags, Some("mode=755")).ctx(|| "mount tmpfs")?;
    // runc shows a hybrid host's v1 hierarchies only, not its cgroup2 ("unified") mount.
    for dir in dirs.iter().filter(|d| d.version == Version::V1) {
        let sub = dest.join(dir_name(dir));
        let target = mkdir_all(root, &sub, 0o755)?;
        mount_hierarchy(root, &sub, &target, dir, flags, readonly, ctx.new_cgroup_ns)?;
    }
    if readonly {
        let top = open_path(root, dest).ctx(|| "open")?;
        remount_bind(fd_path(&top), MsFlags::MS_RDONLY).ctx(|| "remount read-only")?;
    }
    Ok(())
}

/// runc's directory names: "cpu,cpuacct" for co-mounted controllers, "systemd" for
/// name=systemd, "unified" for the cgroup2 mount of a hybrid host.
fn dir_name(dir: &CgroupDir) -> String {
    match dir.version {
        Version::V2 => "unified".into(),
        Version::V1 => dir
            .controllers
            .iter()
            .map(|c| c.strip_prefix("name=").unwrap_or(c))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn mount_hierarchy(
    root: &OwnedFd,
    path: &Path,
    target: &OwnedFd,
    dir: &CgroupDir,
    flags: MsFlags,
    readonly: bool,
    fresh: bool,
) -> Result<()> {
    let what = || format!("mount cgroup {}", path.display());
    let mounted_fresh = fresh && {
        // A named hierarchy's source is its name ("systemd"), as runc mounts it.
        let named = dir.controllers.iter().find_map(|c| c.strip_prefix("name="));
        let (typ, data) = match dir.version {
            Version::V2 => ("cgroup2", String::new()),
            Version::V1 if named.is_some() => ("cgroup", format!("none,{}", dir.controllers.join(","))),
            Version::V1 => ("cgroup", dir.controllers.join(",")),
        };
        let data = (!data.is_empty()).then_some(data);
        let ro = if readonly { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        match mount(Some(named.unwrap_or(typ)), &fd_path(target), Some(typ), flags | ro, data.as_deref()) {
            Ok(()) => true,
            // Not allowed from this user namespace: fall back to a bind mount.
            Err(Errno::EPERM) => false,
            Err(e) => return Err(e).ctx(what),
        }
    };
    if !mounted_fresh {
        mount(Some(&dir.full()), &fd_path(target), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .ctx(what)?;
        let mounted = open_path(root, path).ctx(what)?;
        let ro = if readonly { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        remount_bind(fd_path(&mounted), (flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)) | ro)
            .ctx(what)?;
    }
    Ok(())
}
