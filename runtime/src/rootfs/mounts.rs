//! One config.json mount: make its destination inside the rootfs, mount through an fd
//! on it, then apply the read-only remount, propagation and recursive attributes.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions};
use super::resolve::{create_file, fd_path, mkdir_all, open_path};
use super::{cgroupfs, copyup, idmap, RootfsContext};
use crate::error::{Context, Error, Result};

/// Flags a bind remount keeps; the rest are per-superblock and can't change here.
const BIND_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

pub fn mount_one(root: &OwnedFd, index: usize, m: &Mount, ctx: &RootfsContext) -> Result<()> {
    let field = || format!("mounts[{index}] ({})", m.destination().display());
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = opts.bind || typ == "bind";
    let dest = m.destination();

    let source: Option<PathBuf> = m.source().as_ref().map(|s| {
        if is_bind && s.is_relative() { ctx.bundle.join(s) } else { s.clone() }
    });

    // A tmpfs over an existing directory keeps the directory's mode unless the options
    // set one (runc; 1.1 chmods after mounting, overriding mode=: conformance/README.md).
    let tmpfs_mode = if typ == "tmpfs" {
        open_path(root, dest).ok().and_then(|fd| nix::sys::stat::fstat(&fd).ok()).map(|st| st.st_mode & 0o7777)
    } else {
        None
    };
    // Opened by the runtime when we may not be able to reach the source ourselves.
    let early = if is_bind { ctx.sources.get(index) } else { None };
    let target = if is_bind {
        let src = source.as_deref().ok_or_else(|| Error::field(format!("{}.source", field()), "a bind mount needs a source"))?;
        let is_dir = match early {
            Some(tree) => tree.is_dir,
            None => std::fs::metadata(src)
                .map_err(|e| Error::field(format!("{}.source", field()), format!("{}: {e}", src.display())))?
                .is_dir(),
        };
        // runc makes a missing mount point 0755, a file one included.
        if is_dir { mkdir_all(root, dest, 0o755) } else { create_file(root, dest, 0o755) }
    } else {
        mkdir_all(root, dest, 0o755)
    }
    .map_err(|e| prefix(field(), e))?;

    if typ == "cgroup" {
        return cgroupfs::mount_cgroups(root, dest, &opts, ctx).map_err(|e| prefix(field(), e));
    }

    if is_bind {
        // Options the runtime doesn't know are filesystem data (config.md), which a bind
        // has none of: the kernel ignores them, and so does runc. Not an error.
        let mapped = m.uid_mappings().is_some() || m.gid_mappings().is_some();
        if opts.idmap || mapped {
            let userns = idmap_userns(m, ctx).map_err(|msg| Error::field(field(), msg))?;
            let src = source.as_deref().expect("checked above");
            idmap::bind(src, &target, opts.idmap_recursive || opts.recursive_bind, &userns)
                .map_err(|msg| Error::field(field(), msg))?;
        } else if let Some(tree) = early {
            tree.attach(&target).map_err(|e| os(field(), e))?;
            // The copy was made in the host's mount namespace and shares its propagation:
            // give it what a bind made in here gets.
            let moved = open_path(root, dest).map_err(|e| os(field(), e))?;
            let propagation = super::first_propagation(super::propagation(ctx)?);
            mount(None::<&str>, &fd_path(&moved), None::<&str>, propagation, None::<&str>).map_err(|e| os(field(), e))?;
        } else {
            let mut flags = MsFlags::MS_BIND;
            if opts.recursive_bind {
                flags |= MsFlags::MS_REC;
            }
            mount(source.as_deref(), &fd_path(&target), None::<&str>, flags, None::<&str>).map_err(|e| os(field(), e))?;
        }
        let mounted = open_path(root, dest).map_err(|e| os(field(), e))?;
        let wanted = opts.flags & BIND_FLAGS;
        if !wanted.is_empty() {
            remount_bind(fd_path(&mounted), wanted).map_err(|e| os(field(), e))?;
        }
        return finish(&mounted, &opts).map_err(|e| prefix(field(), e));
    }

    let mut data = opts.data.join(",");
    if let Some(mode) = tmpfs_mode {
        data = if data.is_empty() { format!("mode={mode:04o}") } else { format!("mode={mode:04o},{data}") };
    }
    // As runc: a tmpfs is made read-only only once filled (tmpcopyup), and /dev only
    // after its devices, symlinks and mount points below it are made ([`readonly_dev`]).
    let is_dev = is_dev(dest);
    let late_ro = (typ == "tmpfs" || is_dev) && opts.flags.contains(MsFlags::MS_RDONLY);
    let mut flags = opts.flags - MsFlags::MS_REMOUNT;
    if late_ro {
        flags.remove(MsFlags::MS_RDONLY);
    }
    // tmpcopyup needs the directory's contents from before the mount hides them.
    let original = if opts.tmpcopyup {
        if typ != "tmpfs" {
            return Err(Error::field(format!("{}.options", field()), "tmpcopyup only applies to tmpfs"));
        }
        Some(open_dir(root, dest).map_err(|e| os(field(), e))?)
    } else {
        None
    };
    match mount_fs(source.as_deref(), &target, typ, flags, &data) {
        Ok(()) => {}
        // Without a private network/ipc namespace (or in a user namespace) the kernel
        // refuses a new sysfs/mqueue: runc binds the host's, and so do we.
        Err(Errno::EPERM) if matches!(typ, "sysfs" | "mqueue") => {
            let host = if typ == "sysfs" { "/sys" } else { "/dev/mqueue" };
            mount(Some(host), &fd_path(&target), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(|e| os(field(), e))?;
            let mounted = open_path(root, dest).map_err(|e| os(field(), e))?;
            remount_bind(fd_path(&mounted), flags & BIND_FLAGS).map_err(|e| os(field(), e))?;
        }
        // A devpts gid= that isn't mapped in the user namespace: drop it, as runc does.
        Err(Errno::EINVAL) if typ == "devpts" && data.contains("gid=") => {
            let data: Vec<&str> = opts.data.iter().map(String::as_str).filter(|o| !o.starts_with("gid=")).collect();
            mount_fs(source.as_deref(), &target, typ, flags, &data.join(",")).map_err(|e| os(field(), e))?;
        }
        Err(e) => return Err(os(field(), e)),
    }
    if let Some(original) = original {
        let fresh = open_dir(root, dest).map_err(|e| os(field(), e))?;
        copyup::copy_tree(&original, &fresh).map_err(|e| prefix(field(), e))?;
    }
    let mounted = open_path(root, dest).map_err(|e| os(field(), e))?;
    if late_ro && !is_dev {
        remount_bind(fd_path(&mounted), opts.flags & BIND_FLAGS).map_err(|e| os(field(), e))?;
    }
    finish(&mounted, &opts).map_err(|e| prefix(field(), e))
}

fn is_dev(dest: &Path) -> bool {
    dest.components().filter(|c| matches!(c, std::path::Component::Normal(_))).eq(Path::new("/dev").components().skip(1))
}

/// A read-only /dev mount (not a bind) is remounted read-only last, once everything
/// below it exists: devpts and shm mount points, devices, symlinks and the
/// /dev/console mount point a terminal needs (runc's finalizeRootfs).
pub fn readonly_dev(root: &OwnedFd, mounts: &[Mount], terminal: bool) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        let is_bind = opts.bind || m.typ().as_deref() == Some("bind");
        if is_bind || !is_dev(m.destination()) || !opts.flags.contains(MsFlags::MS_RDONLY) {
            continue;
        }
        let field = || format!("mounts[{i}] ({})", m.destination().display());
        if terminal {
            create_file(root, Path::new("/dev/console"), 0o000).map_err(|e| prefix(field(), e))?;
        }
        let dev = open_path(root, m.destination()).map_err(|e| os(field(), e))?;
        remount_bind(fd_path(&dev), opts.flags & BIND_FLAGS).map_err(|e| os(field(), e))?;
    }
    Ok(())
}

/// The user namespace giving an idmapped mount its mapping: the mount's own maps, else
/// the container's (runc's rule).
fn idmap_userns(m: &Mount, ctx: &RootfsContext) -> std::result::Result<OwnedFd, String> {
    let linux = ctx.spec.linux().as_ref();
    let uid = m.uid_mappings().as_ref().or_else(|| linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = m.gid_mappings().as_ref().or_else(|| linux.and_then(|l| l.gid_mappings().as_ref()));
    match (uid, gid) {
        (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => idmap::userns_with(u, g).map_err(|e| format!("idmap: {e}")),
        _ => Err("an idmapped mount needs uidMappings and gidMappings".into()),
    }
}

fn open_dir(root: &OwnedFd, path: &Path) -> nix::Result<OwnedFd> {
    crate::sys::open_in_root(root, path, nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY)
}

fn mount_fs(source: Option<&Path>, target: &OwnedFd, typ: &str, flags: MsFlags, data: &str) -> nix::Result<()> {
    let source = source.unwrap_or(Path::new(typ));
    let data = if data.is_empty() { None } else { Some(data) };
    mount(Some(source), &fd_path(target), Some(typ), flags, data)
}

/// Propagation and recursive attributes, applied to the mount now at `mounted`.
fn finish(mounted: &OwnedFd, opts: &MountOptions) -> Result<()> {
    if !opts.propagation.is_empty() {
        mount(None::<&str>, &fd_path(mounted), None::<&str>, opts.propagation, None::<&str>).ctx(|| "set propagation")?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        set_recursive_attrs(mounted, opts.rec_set, opts.rec_clear).ctx(|| "mount_setattr")?;
    }
    Ok(())
}

/// Remounts a bind mount with `flags`, keeping the flags the mount already has that the
/// kernel would refuse to drop (nosuid/nodev/noexec locked by a user namespace).
pub fn remount_bind(target: impl AsRef<Path>, flags: MsFlags) -> nix::Result<()> {
    let target = target.as_ref();
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

fn set_recursive_attrs(fd: &OwnedFd, set: u64, clear: u64) -> nix::Result<()> {
    // SAFETY: mount_attr is plain integers; all zeroes is its "change nothing" value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = set;
    attr.attr_clr = clear;
    // Changing the atime mode needs the whole atime field cleared first.
    if set & libc::MOUNT_ATTR__ATIME != 0 {
        attr.attr_clr |= libc::MOUNT_ATTR__ATIME;
    }
    let empty = CString::default();
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r).map(drop)
}

fn os(field: String, e: Errno) -> Error {
    Error::field(field, e.desc())
}

fn prefix(field: String, e: Error) -> Error {
    Error::field(field, e.to_string())
}
