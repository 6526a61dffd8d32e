//! The container's filesystem view, set up by the init inside its new mount namespace:
//!
//! 1. make the host's mounts stop propagating in (rslave, or linux.rootfsPropagation)
//! 2. bind the rootfs onto itself so it is a mount point pivot_root accepts
//! 3. config.json mounts, in order, each destination resolved inside the rootfs
//! 4. /dev devices and symlinks, linux.devices
//! 5. masked and read-only paths, root.readonly; a read-only /dev made so last
//! 6. pivot_root (or MS_MOVE + chroot with --no-pivot)
//!
//! Steps 3-5 happen before the pivot, through fds opened inside the rootfs, so they
//! work whether or not the container mounts /proc.

mod cgroupfs;
mod copyup;
mod devices;
mod idmap;
mod mounts;
pub mod options;
mod paths;
mod pivot;
pub mod resolve;
mod sources;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};

pub use sources::{open as open_bind_sources, BindSources};

/// What rootfs setup needs to know beyond config.json.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: &'a Cgroup,
    /// The container has its own cgroup namespace (mount cgroupfs, not binds).
    pub new_cgroup_ns: bool,
    /// The init runs in a new user namespace (devices are bind-mounted, not made).
    pub in_user_ns: bool,
    pub no_pivot: bool,
    /// The init has a mount namespace of its own (new or joined). Without one it
    /// works in the runtime's, as runc does: no propagation change, chroot.
    pub own_mount_ns: bool,
    /// Bind sources the runtime opened before the clone ([`open_bind_sources`]).
    pub sources: &'a BindSources,
}

/// Steps 1-5: everything inside the rootfs, before the root changes (hooks of kind
/// createRuntime and createContainer run between this and [`enter`]).
pub fn prepare(ctx: &RootfsContext) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    let propagation = propagation(ctx)?;
    // In the runtime's own mount namespace, / is the host's: left alone.
    if ctx.own_mount_ns {
        mount(None::<&str>, "/", None::<&str>, first_propagation(propagation) | MsFlags::MS_REC, None::<&str>)
            .ctx(|| "set / propagation")?;
    }
    mount(Some(ctx.rootfs), ctx.rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .ctx(|| format!("bind rootfs {}", ctx.rootfs.display()))?;
    let root: OwnedFd =
        nix::fcntl::open(ctx.rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| format!("open rootfs {}", ctx.rootfs.display()))?;

    let spec_mounts = ctx.spec.mounts().as_deref().unwrap_or(&[]);
    for (i, m) in spec_mounts.iter().enumerate() {
        mounts::mount_one(&root, i, m, ctx)?;
    }
    if devices::wants_default_devices(spec_mounts) {
        devices::create_defaults(&root, ctx.in_user_ns)?;
    }
    if let Some(devs) = linux.and_then(|l| l.devices().as_ref()) {
        devices::create_configured(&root, devs, ctx.in_user_ns)?;
    }
    if let Some(masked) = linux.and_then(|l| l.masked_paths().as_ref()) {
        paths::mask(&root, masked)?;
    }
    if let Some(ro) = linux.and_then(|l| l.readonly_paths().as_ref()) {
        paths::make_readonly(&root, ro)?;
    }
    let terminal = ctx.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    mounts::readonly_dev(&root, spec_mounts, terminal)?;
    Ok(())
}

/// Step 6 and after: switch the root, restore the configured propagation, make the
/// root read-only if asked.
pub fn enter(ctx: &RootfsContext) -> Result<()> {
    if !ctx.own_mount_ns {
        // pivot_root or MS_MOVE would change the host's root: chroot, as runc.
        pivot::chroot_into(ctx.rootfs)?;
    } else if ctx.no_pivot {
        pivot::move_root(ctx.rootfs)?;
    } else {
        pivot::pivot_root(ctx.rootfs)?;
    }
    let propagation = propagation(ctx)?;
    if propagation != first_propagation(propagation) {
        mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>).ctx(|| "set / propagation")?;
    }
    if ctx.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        mounts::remount_bind("/", MsFlags::MS_RDONLY).ctx(|| "remount / read-only (root.readonly)")?;
    }
    Ok(())
}

/// linux.rootfsPropagation, rslave by default (runc's).
pub(super) fn propagation(ctx: &RootfsContext) -> Result<MsFlags> {
    match ctx.spec.linux().as_ref().and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        Some(p) => options::propagation_option(p)
            .ok_or_else(|| Error::field("linux.rootfsPropagation", format!("{p:?} is not a propagation mode"))),
    }
}

/// The propagation while setting up: never shared (what we mount must not reach back
/// into the host), never unbindable (the rootfs is bind-mounted onto itself). The
/// configured one is applied to / after pivot_root.
pub(super) fn first_propagation(p: MsFlags) -> MsFlags {
    if p.contains(MsFlags::MS_SHARED) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else if p.contains(MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_PRIVATE | MsFlags::MS_REC
    } else {
        p
    }
}
