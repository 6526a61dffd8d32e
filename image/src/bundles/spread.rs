//! Where ext4 puts a new rootfs. Its allocator (Orlov) gives a new directory an
//! inode in its parent's flex group, and a file one in its directory's; only a
//! directory made under the file system's root, or under one flagged "top of a
//! hierarchy" (`chattr +T`, FS_TOPDIR_FL), goes to a flex group picked across
//! the whole disk (by a hash of its name, among the emptiest ones). A rootfs made
//! beside its bundle would share the flex group of everything else in the target
//! directory, and on an ext4 without a journal (this project's VMs) that costs
//! dearly after a removal there: for a minute or more (`recently_deleted` in
//! fs/ext4/ialloc.c) every new inode is allocated by scanning past each freed one,
//! one buffer-cache lookup each, so unpacking again where a tree was just removed
//! spent 6 s of system time on the Debian image instead of 0.35 s.
//!
//! So the rootfs is made under a random name in the staging dir with that flag
//! set (and then cleared: the flag only steers mkdir), and renamed. On other file
//! systems, or where the flag cannot be set, it is a plain mkdir.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `FS_TOPDIR_FL` of linux/fs.h (not in the libc crate).
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Makes `parent/name`, a new directory, in a flex group of its own choosing
/// where the file system allows it (see the module doc).
pub fn create_dir(parent: &Path, name: &str) -> io::Result<()> {
    let dest = parent.join(name);
    let Some(_flag) = TopDir::set(parent) else { return fs::create_dir(&dest) };
    // Orlov hashes the name: a fixed one would land in the same flex group every
    // time, the one the last removed rootfs left its freed inodes in.
    let made = tempfile::Builder::new().prefix(".rootfs-").tempdir_in(parent)?.keep();
    fs::rename(&made, &dest).inspect_err(|_| {
        let _ = fs::remove_dir(&made);
    })
}

/// FS_TOPDIR_FL set on a directory while this lives; its flags are restored on drop.
struct TopDir {
    dir: File,
    flags: libc::c_int,
}

impl TopDir {
    fn set(path: &Path) -> Option<TopDir> {
        let dir = File::open(path).ok()?;
        let mut flags: libc::c_int = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one int to the pointer, which is live.
        if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
            return None;
        }
        if flags & FS_TOPDIR_FL != 0 {
            return None; // already spreading: leave it as it is
        }
        let with = flags | FS_TOPDIR_FL;
        // SAFETY: FS_IOC_SETFLAGS reads one int from the pointer, which is live.
        if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &with) } != 0 {
            return None;
        }
        Some(TopDir { dir, flags })
    }
}

impl Drop for TopDir {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { libc::ioctl(self.dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &self.flags) };
    }
}
