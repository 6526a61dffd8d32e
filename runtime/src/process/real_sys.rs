//! [`Sys`] on the real kernel. Each method is one step: resolve a path inside the
//! rootfs (openat2 RESOLVE_IN_ROOT, an O_PATH fd), then act through /proc/self/fd/N,
//! formatted on the stack. Nothing here decides anything: the plan did.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{makedev, mknodat, Mode};
use nix::unistd::{fchownat, setresgid, setresuid, Gid, Uid};

use super::syscalls::{At, Device, IdMap, ProcWriteError, Src, Stat, Sys};
use crate::error::{Context, Error, Result};
use crate::namespaces::{clone_flag, Join};
use crate::rootfs::{self, BindSources};
use crate::sys::open_in_root;

pub struct RealSys<'a> {
    sources: &'a BindSources,
    root: Option<OwnedFd>,
    held: Option<OwnedFd>,
    proc: Option<OwnedFd>,
}

impl<'a> RealSys<'a> {
    pub fn new(sources: &'a BindSources) -> Self {
        RealSys { sources, root: None, held: None, proc: None }
    }

    /// The init's /proc as it was before the root changed (opened on first use).
    fn host_proc(&mut self) -> nix::Result<&OwnedFd> {
        if self.proc.is_none() {
            let fd = nix::fcntl::open("/proc", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
            self.proc = Some(fd);
        }
        Ok(self.proc.as_ref().expect("just opened"))
    }

    /// Hands the init's /proc fd over (call before the root changes).
    pub fn take_host_proc(&mut self) -> nix::Result<OwnedFd> {
        self.host_proc()?;
        Ok(self.proc.take().expect("just opened"))
    }

    fn open(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let root = self.root.as_ref().ok_or(Errno::EBADF)?;
        open_in_root(root, path, flags)
    }

    /// Runs `f` on a path mount(2) can take for `at`: the host path, or
    /// /proc/self/fd/N of an O_PATH fd opened inside the rootfs.
    fn with_path<T>(&self, at: At, f: impl FnOnce(&Path) -> nix::Result<T>) -> nix::Result<T> {
        match at {
            At::Host(p) => f(p),
            At::Root(p) => {
                let fd = self.open(p, OFlag::O_PATH)?;
                f(FdPath::new(&fd).as_path())
            }
        }
    }
}

/// "/proc/self/fd/N" without allocating.
struct FdPath {
    buf: [u8; 32],
    len: usize,
}

impl FdPath {
    fn new(fd: &impl AsRawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let mut w = &mut buf[..];
        let _ = write!(w, "/proc/self/fd/{}", fd.as_raw_fd());
        let len = 32 - w.len();
        FdPath { buf, len }
    }

    fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.buf[..self.len]))
    }
}

impl Sys for RealSys<'_> {
    fn setns(&mut self, join: &Join) -> nix::Result<()> {
        nix::sched::setns(join.fd.as_fd(), clone_flag(join.typ))
    }

    fn unshare(&mut self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn become_root(&mut self) -> Result<()> {
        let root = Gid::from_raw(0);
        setresgid(root, root, root).ctx(|| "setgid 0 in user namespace (is gid 0 mapped?)")?;
        let root = Uid::from_raw(0);
        setresuid(root, root, root).ctx(|| "setuid 0 in user namespace (is uid 0 mapped?)")
    }

    fn sethostname(&mut self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn setdomainname(&mut self, name: &str) -> nix::Result<()> {
        // SAFETY: pointer and length of a live string.
        Errno::result(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
    }

    /// A fresh session keyring, so containers don't share the runtime's keys.
    /// Kernels or sandboxes without keyrings are fine.
    fn join_session_keyring(&mut self) -> Result<()> {
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no pointers we own.
        let r = unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_JOIN_SESSION_KEYRING, 0usize) };
        match Errno::result(r) {
            Ok(_) | Err(Errno::ENOSYS) | Err(Errno::EPERM) | Err(Errno::EACCES) => Ok(()),
            Err(e) => Err(Error::os("join session keyring", e)),
        }
    }

    fn write_proc(&mut self, rel: &str, value: &[u8]) -> std::result::Result<(), ProcWriteError> {
        let proc = self.host_proc().map_err(ProcWriteError::Open)?;
        let flags = OFlag::O_WRONLY | OFlag::O_TRUNC | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(proc.as_fd(), rel, flags, Mode::empty()).map_err(ProcWriteError::Open)?;
        let n = nix::unistd::write(&fd, value).map_err(ProcWriteError::Write)?;
        if n != value.len() {
            return Err(ProcWriteError::Write(Errno::EIO));
        }
        Ok(())
    }

    fn setrlimit(&mut self, resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> nix::Result<()> {
        let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        // SAFETY: valid resource number and struct.
        Errno::result(unsafe { libc::setrlimit(resource, &lim) }).map(drop)
    }

    fn ioprio_set(&mut self, value: i64) -> nix::Result<()> {
        // SAFETY: plain syscall on integers.
        Errno::result(unsafe { libc::syscall(libc::SYS_ioprio_set, super::attrs::IOPRIO_WHO_PROCESS, 0, value) })
            .map(drop)
    }

    fn sched_setattr(&mut self, attr: &super::attrs::SchedAttr) -> nix::Result<()> {
        // SAFETY: the struct is the kernel's layout and outlives the call.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const super::attrs::SchedAttr, 0) };
        Errno::result(r).map(drop)
    }

    fn personality(&mut self, persona: libc::c_ulong) -> nix::Result<()> {
        // SAFETY: plain syscall on an integer.
        Errno::result(unsafe { libc::personality(persona) }).map(drop)
    }

    fn mount(
        &mut self,
        src: Src,
        target: At,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        let src_fd = match src {
            Src::Root(p) => Some(self.open(p, OFlag::O_PATH)?),
            _ => None,
        };
        let src_path = src_fd.as_ref().map(FdPath::new);
        let source: Option<&Path> = match src {
            Src::None => None,
            Src::Host(p) => Some(p),
            Src::Root(_) => src_path.as_ref().map(FdPath::as_path),
        };
        self.with_path(target, |t| mount(source, t, fstype, flags, data))
    }

    fn remount_bind(&mut self, target: At, flags: MsFlags) -> nix::Result<()> {
        self.with_path(target, |t| rootfs::remount_bind(t, flags))
    }

    fn mount_setattr(&mut self, target: At, set: u64, clear: u64) -> nix::Result<()> {
        let fd = match target {
            At::Root(p) => self.open(p, OFlag::O_PATH)?,
            At::Host(p) => nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?,
        };
        // SAFETY: mount_attr is plain integers; all zeroes is its "change nothing" value.
        let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
        attr.attr_set = set;
        attr.attr_clr = clear;
        // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
                &attr as *const libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        };
        Errno::result(r).map(drop)
    }

    fn open_root(&mut self, rootfs: &Path) -> nix::Result<()> {
        let fd = nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
        self.root = Some(fd);
        Ok(())
    }

    fn stat(&mut self, at: At) -> nix::Result<Stat> {
        let st = match at {
            At::Host(p) => nix::sys::stat::stat(p)?,
            At::Root(p) => nix::sys::stat::fstat(self.open(p, OFlag::O_PATH)?)?,
        };
        Ok(Stat { is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR, mode: st.st_mode & 0o7777 })
    }

    fn mkdir_all(&mut self, path: &Path, mode: u32) -> Result<()> {
        let root = self.root.as_ref().ok_or_else(|| Error::os("rootfs not open", Errno::EBADF))?;
        rootfs::resolve::mkdir_all(root, path, mode).map(drop)
    }

    fn create_file(&mut self, path: &Path, mode: u32) -> Result<()> {
        let root = self.root.as_ref().ok_or_else(|| Error::os("rootfs not open", Errno::EBADF))?;
        rootfs::resolve::create_file(root, path, mode).map(drop)
    }

    fn mknod(&mut self, dev: &Device) -> nix::Result<()> {
        let parent = self.open(dev.path.parent().unwrap_or(Path::new("/dev")), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let name = dev.path.file_name().ok_or(Errno::EINVAL)?;
        // Replace whatever the image shipped at that path.
        match nix::unistd::unlinkat(parent.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let mode = Mode::from_bits_truncate(dev.mode);
        mknodat(parent.as_fd(), name, dev.kind, mode, makedev(dev.major, dev.minor))?;
        // mknod honours the umask: set the mode exactly, then the owner.
        nix::sys::stat::fchmodat(parent.as_fd(), name, mode, nix::sys::stat::FchmodatFlags::FollowSymlink)?;
        let (uid, gid) = (Some(Uid::from_raw(dev.uid)), Some(Gid::from_raw(dev.gid)));
        fchownat(parent.as_fd(), name, uid, gid, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    fn symlink(&mut self, target: &str, link: &Path) -> nix::Result<()> {
        let dir = self.open(link.parent().unwrap_or(Path::new("/")), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        nix::unistd::symlinkat(target, dir.as_fd(), link.file_name().ok_or(Errno::EINVAL)?)
    }

    fn attach_tree(&mut self, index: usize, target: &Path) -> nix::Result<()> {
        let tree = self.sources.get(index).ok_or(Errno::EBADF)?;
        tree.attach(&self.open(target, OFlag::O_PATH)?)
    }

    fn idmap_bind(
        &mut self,
        source: &Path,
        target: &Path,
        recursive: bool,
        map: &IdMap,
    ) -> std::result::Result<(), String> {
        let userns = rootfs::idmap::userns_with(&map.uid, &map.gid).map_err(|e| format!("idmap: {e}"))?;
        let target = self.open(target, OFlag::O_PATH).map_err(|e| e.desc().to_string())?;
        rootfs::idmap::bind(source, &target, recursive, &userns)
    }

    fn hold_dir(&mut self, path: &Path) -> nix::Result<()> {
        self.held = Some(self.open(path, OFlag::O_DIRECTORY | OFlag::O_RDONLY)?);
        Ok(())
    }

    fn copy_held_into(&mut self, path: &Path) -> Result<()> {
        let held = self.held.take().ok_or_else(|| Error::os("tmpcopyup", Errno::EBADF))?;
        let fresh = self.open(path, OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(|e| Error::os("tmpcopyup", e))?;
        rootfs::copyup::copy_tree(&held, &fresh)
    }

    fn pivot_root(&mut self, rootfs: &Path) -> Result<()> {
        rootfs::pivot::pivot_root(rootfs)
    }

    fn move_root(&mut self, rootfs: &Path) -> Result<()> {
        rootfs::pivot::move_root(rootfs)
    }

    fn chroot(&mut self, rootfs: &Path) -> Result<()> {
        rootfs::pivot::chroot_into(rootfs)
    }
}
