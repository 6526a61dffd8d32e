//! The one narrow interface between the init's setup sequence and the kernel. The
//! sequence ([`super::steps`], [`crate::rootfs::apply`]) only reads the plan the parent
//! built and calls these; [`super::real_sys::RealSys`] makes the system calls, and the
//! tests' recording fake (`super::recorder`) writes down the calls in order, so the
//! sequence a config produces is checked without root.
//!
//! Paths are either inside the container's rootfs ([`At::Root`], resolved with
//! RESOLVE_IN_ROOT on every call and acted on through /proc/self/fd/N) or the init's
//! own view ([`At::Host`]: the rootfs itself, and "/" once the root has changed).

use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxIdMapping;

use crate::error::Result;
use crate::namespaces::Join;

/// Where a call acts.
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    /// A path inside the rootfs (after [`Sys::open_root`]), confined to it.
    Root(&'a Path),
    /// A path as the init sees it (before pivot_root: the host's, or the joined mount
    /// namespace's; after: the container's).
    Host(&'a Path),
}

/// A mount's source.
#[derive(Clone, Copy, Debug)]
pub enum Src<'a> {
    None,
    /// Passed as it is: a filesystem's source name ("proc", "tmpfs") or a host path.
    Host(&'a Path),
    /// A path inside the rootfs (bound through an fd on it).
    Root(&'a Path),
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub is_dir: bool,
    /// Permission bits (0o7777).
    pub mode: u32,
}

/// A device node to make, as the plan has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub path: std::path::PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: nix::sys::stat::SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// An id mapping for an idmapped mount.
#[derive(Clone, Debug)]
pub struct IdMap {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
}

/// Why writing a /proc file failed: opening it, or writing the value.
#[derive(Debug, PartialEq, Eq)]
pub enum ProcWriteError {
    Open(Errno),
    Write(Errno),
}

/// Every system call of the init's setup, one method each (or one step the kernel
/// makes several calls for, like making a device node with its mode and owner).
pub trait Sys {
    // Namespaces and identity.
    fn setns(&mut self, join: &Join) -> nix::Result<()>;
    fn unshare(&mut self, flags: CloneFlags) -> nix::Result<()>;
    /// setresgid(0) and setresuid(0) in the user namespace.
    fn become_root(&mut self) -> Result<()>;
    fn sethostname(&mut self, name: &str) -> nix::Result<()>;
    fn setdomainname(&mut self, name: &str) -> nix::Result<()>;
    fn join_session_keyring(&mut self) -> Result<()>;
    /// Writes `value` to `rel` below the init's /proc (opened once, before the root
    /// changes): sysctls ("sys/net/..."), "self/timens_offsets".
    fn write_proc(&mut self, rel: &str, value: &[u8]) -> std::result::Result<(), ProcWriteError>;

    // The process's attributes.
    fn setrlimit(&mut self, resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> nix::Result<()>;
    /// ioprio_set(IOPRIO_WHO_PROCESS, self, value).
    fn ioprio_set(&mut self, value: i64) -> nix::Result<()>;
    fn sched_setattr(&mut self, attr: &super::attrs::SchedAttr) -> nix::Result<()>;
    fn personality(&mut self, persona: libc::c_ulong) -> nix::Result<()>;

    // The filesystem.
    fn mount(
        &mut self,
        src: Src,
        target: At,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// A bind remount with `flags`, keeping the per-mount flags the kernel would refuse
    /// to drop (locked by a user namespace).
    fn remount_bind(&mut self, target: At, flags: MsFlags) -> nix::Result<()>;
    /// mount_setattr(AT_RECURSIVE) with these MOUNT_ATTR_* bits.
    fn mount_setattr(&mut self, target: At, set: u64, clear: u64) -> nix::Result<()>;
    /// Opens the rootfs: every [`At::Root`] after this is inside it.
    fn open_root(&mut self, rootfs: &Path) -> nix::Result<()>;
    fn stat(&mut self, at: At) -> nix::Result<Stat>;
    /// Makes the directory and its missing parents inside the rootfs.
    fn mkdir_all(&mut self, path: &Path, mode: u32) -> Result<()>;
    /// Makes an empty file (and parents) inside the rootfs unless something is there.
    fn create_file(&mut self, path: &Path, mode: u32) -> Result<()>;
    /// Replaces whatever is at the device's path with the node, its mode and owner.
    fn mknod(&mut self, dev: &Device) -> nix::Result<()>;
    fn symlink(&mut self, target: &str, link: &Path) -> nix::Result<()>;
    /// Moves the detached bind source `index` (opened by the parent) onto `target`.
    fn attach_tree(&mut self, index: usize, target: &Path) -> nix::Result<()>;
    /// An idmapped bind of the host's `source` onto `target`.
    fn idmap_bind(
        &mut self,
        source: &Path,
        target: &Path,
        recursive: bool,
        map: &IdMap,
    ) -> std::result::Result<(), String>;
    /// Keeps the directory at `path` open (tmpcopyup: what the mount will hide).
    fn hold_dir(&mut self, path: &Path) -> nix::Result<()>;
    /// Copies the held directory's tree into the directory now at `path`.
    fn copy_held_into(&mut self, path: &Path) -> Result<()>;

    // Changing the root.
    fn pivot_root(&mut self, rootfs: &Path) -> Result<()>;
    /// --no-pivot: MS_MOVE the rootfs over / and chroot.
    fn move_root(&mut self, rootfs: &Path) -> Result<()>;
    /// No mount namespace of the container's own: chroot only.
    fn chroot(&mut self, rootfs: &Path) -> Result<()>;
}
