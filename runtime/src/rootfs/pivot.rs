//! Switching the init's root to the rootfs.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, pivot_root as sys_pivot_root};

use crate::error::{Context, Result};

/// pivot_root(".", ".") stacks the old root under the new one; it is then made a slave
/// (so the unmount can't propagate to the host) and lazily unmounted.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    sys_pivot_root(".", ".").ctx(|| "pivot_root")?;
    mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .ctx(|| "make old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root")?;
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
