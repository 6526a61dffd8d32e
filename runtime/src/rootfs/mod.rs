//! The container's filesystem view. The parent builds a [`RootfsPlan`] from config.json
//! before the clone ([`plan::build`]); the init carries it out with [`prepare`] (inside
//! the rootfs: mounts, devices, masked and read-only paths) and [`enter`] (the root
//! switch), through the [`crate::process::syscalls::Sys`] interface. See [`apply`] for
//! the order of the steps.

mod apply;
pub(crate) mod copyup;
pub(crate) mod idmap;
pub mod options;
pub(crate) mod pivot;
pub mod plan;
mod plan_cgroup;
pub mod resolve;
mod sources;
#[cfg(test)]
mod tests;

use std::path::Path;

use nix::mount::{mount, MsFlags};

pub use apply::{enter, prepare};
pub use plan::{Inputs, RootfsPlan};
pub use sources::{open as open_bind_sources, BindSources};

/// Remounts a bind mount with `flags`, keeping the flags the mount already has that the
/// kernel would refuse to drop (nosuid/nodev/noexec locked by a user namespace).
pub fn remount_bind(target: &Path, flags: MsFlags) -> nix::Result<()> {
    let current = nix::sys::statvfs::statvfs(target)?.flags();
    let mut keep = MsFlags::empty();
    use nix::sys::statvfs::FsFlags;
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(st) {
            keep |= ms;
        }
    }
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | keep;
    mount(None::<&str>, target, None::<&str>, all, None::<&str>)
}
