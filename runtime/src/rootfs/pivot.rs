//! Switching the init's root to the rootfs.

use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root as sys_pivot_root};

use crate::error::{Context, Result};

/// pivot_root(".", ".") stacks the old root on top of the new one. We step onto the
/// old root through an fd taken before, make it a slave (so the unmount can't propagate
/// to the host) and lazily unmount it; the new root's own propagation is untouched.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let old_root = nix::fcntl::open("/", OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open old root")?;
    let new_root = nix::fcntl::open(rootfs, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", rootfs.display()))?;
    fchdir(&new_root).ctx(|| format!("chdir {}", rootfs.display()))?;
    sys_pivot_root(".", ".").ctx(|| "pivot_root")?;
    fchdir(&old_root).ctx(|| "chdir to old root")?;
    mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .ctx(|| "make old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root")?;
    fchdir(&new_root).ctx(|| "chdir to new root")?;
    chdir("/").ctx(|| "chdir /")
}

/// --no-pivot: move the rootfs mount over / and chroot (for ramdisk roots where
/// pivot_root is impossible; weaker, the host root stays reachable to a privileged escape).
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).ctx(|| "move rootfs to /")?;
    chroot(".").ctx(|| "chroot")?;
    chdir("/").ctx(|| "chdir /")
}

/// No mount namespace of the container's own: only the init's root changes.
pub fn chroot_into(rootfs: &Path) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    chroot(".").ctx(|| "chroot")?;
    chdir("/").ctx(|| "chdir /")
}
