//! Creating one tar entry under its (already resolved) parent directory and
//! giving it the entry's ownership, mode, xattrs and times.

use super::fsops::{self, Root};
use super::{clean, rootless, Applier, Mode};
use crate::error::{Error, Result};
use crate::whiteout;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode as FileMode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use tar::EntryType;

type Entry<'a, 'b> = tar::Entry<'a, &'b mut dyn Read>;

/// Ownership, mode, times and xattrs of an entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
    /// False when extracting rootless: the owner is then in `rootless::XATTR`, and
    /// xattrs only a privileged caller may set (security.*, trusted.*) are left out.
    chown: bool,
}

fn meta(e: &mut Entry, rootless: bool) -> Result<Meta> {
    let h = e.header();
    let err = |what: &str| Error::Invalid(format!("bad {what} field"));
    let uid = h.uid().map_err(|_| err("uid"))? as u32;
    let gid = h.gid().map_err(|_| err("gid"))? as u32;
    let mode = h.mode().map_err(|_| err("mode"))? & 0o7777;
    let mut mtime = TimeSpec::new(h.mtime().map_err(|_| err("mtime"))? as i64, 0);
    let mut atime = None;
    let mut xattrs = Vec::new();
    if let Some(pax) = e.pax_extensions().map_err(|e| Error::io("pax header", e))? {
        for ext in pax {
            let ext = ext.map_err(|e| Error::io("pax header", e))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if !whiteout::is_reserved_xattr(name) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            } else if key == "mtime" {
                mtime = pax_time(ext.value_bytes()).unwrap_or(mtime);
            } else if key == "atime" {
                atime = pax_time(ext.value_bytes());
            }
        }
    }
    if rootless {
        // A layer's own copy is not trusted: the header's owner is the truth.
        xattrs.retain(|(k, _)| k != rootless::XATTR);
        if let Some(v) = rootless::ownership_xattr(uid, gid) {
            xattrs.push((rootless::XATTR.into(), v));
        }
    }
    Ok(Meta { uid, gid, mode, atime: atime.unwrap_or(mtime), mtime, xattrs, chown: !rootless })
}

fn pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    Some(TimeSpec::new(sec, if sec < 0 { -nanos } else { nanos }))
}

pub(super) fn create(a: &mut Applier, e: &mut Entry, parent: &[OsString], base: &OsString, rel: &Path) -> Result<()> {
    let kind = e.header().entry_type();
    let m = meta(e, a.rootless)?;
    let dir = a.parent_dir(parent, true)?.expect("created");
    let dir = dir.as_fd();
    let name = base.as_os_str();
    let sys = |op: &'static str| move |e: nix::Error| Error::sys(op, rel, e);
    match kind {
        EntryType::Directory => {
            // Made first, looked at only if something is there already.
            match mkdirat(dir, name, FileMode::from_bits_truncate(0o700)) {
                Err(nix::errno::Errno::EEXIST) => {
                    let existing = fsops::lstat_at(dir, name).map_err(sys("stat"))?;
                    if !existing.is_some_and(|st| fsops::is_dir(&st)) {
                        a.remove_at(dir, name).map_err(sys("remove"))?;
                        mkdirat(dir, name, FileMode::from_bits_truncate(0o700)).map_err(sys("mkdir"))?;
                    }
                }
                r => r.map_err(sys("mkdir"))?,
            }
            let fd = openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )
            .map_err(sys("open"))?;
            set_fd_meta(fd.as_fd(), &m, rel, false)?;
            // The entry's mode is now the one to give back (rootless: see `open_up`).
            a.opened.remove(rel);
            a.dir_times.push((rel.to_path_buf(), m.atime, m.mtime));
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            // Made with the entry's mode: under the usual umask and owner no
            // fchmod or fchown follows (the fd writes whatever the mode says).
            let fd = replacing(a, dir, name, || {
                openat(
                    dir,
                    name,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    FileMode::from_bits_truncate(m.mode),
                )
            })
            .map_err(sys("create"))?;
            let mut f = File::from(fd);
            a.stats.bytes += copy_data(e, &mut f, &mut a.copy_buf).map_err(|err| Error::io(rel, err))?;
            set_fd_meta(f.as_fd(), &m, rel, true)?;
        }
        EntryType::Symlink => {
            let target = e.link_name_bytes().ok_or_else(|| Error::Invalid("symlink without target".into()))?;
            replacing(a, dir, name, || symlinkat(OsStr::from_bytes_compat(&target), dir, name))
                .map_err(sys("symlink"))?;
            set_at_meta(dir, name, &m, rel, true)?;
        }
        EntryType::Char | EntryType::Block if a.rootless => {
            // mknod of a device needs CAP_MKNOD. umoci leaves an empty file in its
            // place (runc's /dev is a tmpfs with its own nodes anyway).
            let h = e.header();
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            let fd = replacing(a, dir, name, || {
                openat(
                    dir,
                    name,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    FileMode::empty(),
                )
            })
            .map_err(sys("create"))?;
            set_fd_meta(fd.as_fd(), &m, rel, true)?;
            a.stats
                .notes
                .push(format!("{}: device {major}:{minor} left as an empty file (rootless: no mknod)", rel.display()));
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let h = e.header();
            let major = h.device_major().ok().flatten().unwrap_or(0) as u64;
            let minor = h.device_minor().ok().flatten().unwrap_or(0) as u64;
            let (k, dev) = match kind {
                EntryType::Char => (SFlag::S_IFCHR, makedev(major, minor)),
                EntryType::Block => (SFlag::S_IFBLK, makedev(major, minor)),
                _ => (SFlag::S_IFIFO, 0),
            };
            replacing(a, dir, name, || mknodat(dir, name, k, FileMode::empty(), dev)).map_err(sys("mknod"))?;
            set_at_meta(dir, name, &m, rel, false)?;
        }
        EntryType::Link => {
            let target = e.link_name_bytes().ok_or_else(|| Error::Invalid("hardlink without target".into()))?;
            hardlink(a, &clean(&target), dir, name, rel)?;
        }
        EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {}
        other => return Err(Error::Invalid(format!("unsupported tar entry type {other:?}"))),
    }
    Ok(())
}

/// Creates `name` with `make`, first removing whatever is there if it exists
/// (tried first: in a fresh tree nothing is, and the lookup is saved).
fn replacing<T>(a: &mut Applier, dir: BorrowedFd, name: &OsStr, make: impl Fn() -> nix::Result<T>) -> nix::Result<T> {
    match make() {
        Err(nix::errno::Errno::EEXIST) => {
            a.remove_at(dir, name)?;
            make()
        }
        r => r,
    }
}

/// An entry's data to `f` in writes of up to `buf`'s size (`io::copy`'s
/// 8 KiB buffer would cost a write syscall per 8 KiB).
fn copy_data(e: &mut Entry, f: &mut File, buf: &mut Vec<u8>) -> std::io::Result<u64> {
    const COPY_BUF: usize = 256 * 1024;
    buf.resize(COPY_BUF, 0);
    let mut total = 0;
    loop {
        let n = match e.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        f.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Links `name` to the entry `target` names, resolved inside the root. The
/// link is made from the target's parent fd and name, so neither a symlinked
/// parent nor a `..` can point it at a file outside the root. In overlay mode
/// a target from a lower layer is first copied up into this layer.
fn hardlink(a: &mut Applier, target: &[OsString], dir: BorrowedFd, name: &OsStr, rel: &Path) -> Result<()> {
    let Some((tbase, tparent)) = target.split_last() else {
        return Err(Error::Invalid("hardlink to the root directory".into()));
    };
    let trel: PathBuf = target.iter().collect();
    if trel == rel {
        return Ok(());
    }
    let mut tdir = a.parent_dir(tparent, false)?;
    let mut tst = match &tdir {
        Some(d) => fsops::lstat_at(d.as_fd(), tbase).map_err(|e| Error::sys("stat", &trel, e))?,
        None => None,
    };
    if tst.is_none() {
        if let Mode::Overlay { lowers } = a.mode {
            let lowers = lowers.clone();
            let d = a.parent_dir(tparent, true)?.expect("created");
            if copy_up(&lowers, &trel, d.as_fd(), tbase)? {
                tst = fsops::lstat_at(d.as_fd(), tbase).map_err(|e| Error::sys("stat", &trel, e))?;
                tdir = Some(d);
            }
        }
    }
    let (Some(tdir), Some(tst)) = (tdir, tst) else {
        return Err(Error::Invalid(format!("hardlink target {} does not exist", trel.display())));
    };
    if fsops::is_dir(&tst) {
        return Err(Error::Invalid(format!("hardlink target {} is a directory", trel.display())));
    }
    if let Some(st) = fsops::lstat_at(dir, name).map_err(|e| Error::sys("stat", rel, e))? {
        if st.st_ino == tst.st_ino && st.st_dev == tst.st_dev {
            return Ok(());
        }
        a.remove_at(dir, name).map_err(|e| Error::sys("remove", rel, e))?;
    }
    linkat(tdir.as_fd(), tbase.as_os_str(), dir, name, AtFlags::empty()).map_err(|e| Error::sys("link", rel, e))
}

/// Copies `rel` from the topmost lower layer that has it into `dir/name`.
fn copy_up(lowers: &[PathBuf], rel: &Path, dir: BorrowedFd, name: &OsStr) -> Result<bool> {
    for lower in lowers {
        let root = Root::open(lower)?;
        let Ok(src) = root.resolve(rel, OFlag::O_PATH | OFlag::O_NOFOLLOW) else { continue };
        let st = nix::sys::stat::fstat(src.as_fd()).map_err(|e| Error::sys("stat", lower.join(rel), e))?;
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let m = Meta {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            atime: TimeSpec::new(st.st_atime, st.st_atime_nsec),
            mtime: TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
            xattrs: fsops::lxattrs(&lower.join(rel))
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| !whiteout::is_reserved_xattr(k))
                .collect(),
            chown: true,
        };
        if fmt == SFlag::S_IFREG {
            let mut from = File::from(
                root.resolve(rel, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
                    .map_err(|e| Error::sys("open", lower.join(rel), e))?,
            );
            let fd = openat(
                dir,
                name,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                FileMode::from_bits_truncate(0o600),
            )
            .map_err(|e| Error::sys("create", rel, e))?;
            let mut to = File::from(fd);
            std::io::copy(&mut from, &mut to).map_err(|e| Error::io(rel, e))?;
            set_fd_meta(to.as_fd(), &m, rel, true)?;
        } else if fmt == SFlag::S_IFLNK {
            let (pdir, pname) = (
                lower.join(rel).parent().map(Path::to_path_buf).unwrap_or_default(),
                rel.file_name().unwrap_or_default(),
            );
            let t = std::fs::read_link(pdir.join(pname)).map_err(|e| Error::io(lower.join(rel), e))?;
            symlinkat(t.as_os_str(), dir, name).map_err(|e| Error::sys("symlink", rel, e))?;
            set_at_meta(dir, name, &m, rel, true)?;
        } else {
            return Err(Error::Invalid(format!("hardlink target {} in a lower layer is not a file", rel.display())));
        }
        return Ok(true);
    }
    Ok(false)
}

/// Gives `fd` the entry's owner, mode, xattrs and (with `times`) times. Owner and
/// mode are changed only where they differ from what the file has: a file made
/// by root under umask 022 mostly has them already (each change dirties the
/// inode, a fstat does not), and what the kernel gave it (umask, a default ACL,
/// a setgid parent's group) is read, not predicted.
fn set_fd_meta(fd: BorrowedFd, m: &Meta, rel: &Path, times: bool) -> Result<()> {
    let sys = |op: &'static str| move |e: nix::Error| Error::sys(op, rel, e);
    let st = fstat(fd).map_err(sys("stat"))?;
    let mode = st.st_mode & 0o7777;
    // chown first: it clears setuid bits and security.capability. Even to the
    // owner a file has, so with those bits the chmod must follow it.
    let chown = m.chown && (st.st_uid != m.uid || st.st_gid != m.gid);
    if chown {
        fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid))).map_err(sys("chown"))?;
    }
    if mode != m.mode || (chown && mode & 0o6000 != 0) {
        fchmod(fd, FileMode::from_bits_truncate(m.mode)).map_err(sys("chmod"))?;
    }
    for (k, v) in &m.xattrs {
        match fsops::fsetxattr(fd, k, v) {
            Err(nix::errno::Errno::EPERM) if !m.chown => {}
            r => r.map_err(|e| Error::sys("setxattr", rel.join(k), e))?,
        }
    }
    if times {
        futimens(fd, &m.atime, &m.mtime).map_err(sys("set times"))?;
    }
    Ok(())
}

fn set_at_meta(dir: BorrowedFd, name: &OsStr, m: &Meta, rel: &Path, symlink: bool) -> Result<()> {
    let sys = |op: &'static str| move |e: nix::Error| Error::sys(op, rel, e);
    if m.chown {
        fchownat(dir, name, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(sys("chown"))?;
    }
    if !symlink {
        // `name` was just created by mknod in a directory we hold: not a symlink.
        fchmodat(dir, name, FileMode::from_bits_truncate(m.mode), FchmodatFlags::FollowSymlink)
            .map_err(sys("chmod"))?;
    }
    for (k, v) in &m.xattrs {
        match fsops::lsetxattr_at(dir, name, k, v) {
            // user.* xattrs are not allowed on symlinks and devices.
            Err(nix::errno::Errno::EPERM) if k.starts_with("user.") || !m.chown => {}
            r => r.map_err(|e| Error::sys("setxattr", rel.join(k), e))?,
        }
    }
    utimensat(dir, name, &m.atime, &m.mtime, UtimensatFlags::NoFollowSymlink).map_err(sys("set times"))?;
    Ok(())
}

/// The `./` entry: metadata of the target directory itself.
pub(super) fn root_metadata(a: &mut Applier, e: &mut Entry) -> Result<()> {
    let m = meta(e, a.rootless)?;
    let fd = a
        .root
        .resolve(Path::new(""), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .map_err(|err| Error::sys("open", &a.root.path, err))?;
    set_fd_meta(fd.as_fd(), &m, Path::new("/"), false)?;
    a.dir_times.push((PathBuf::new(), m.atime, m.mtime));
    Ok(())
}

/// Gives a directory created implicitly in an overlay layer the owner and
/// mode of the same directory in the layers below, if any has it.
pub(super) fn inherit_dir_meta(lowers: &[PathBuf], rel: &Path, parent: BorrowedFd) -> Result<()> {
    for lower in lowers {
        let Ok(root) = Root::open(lower) else { continue };
        let Ok(fd) = root.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY) else { continue };
        let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| Error::sys("stat", lower.join(rel), e))?;
        let name = rel.file_name().unwrap_or_default();
        let made: OwnedFd = openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::empty(),
        )
        .map_err(|e| Error::sys("open", rel, e))?;
        fchown(made.as_fd(), Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)))
            .map_err(|e| Error::sys("chown", rel, e))?;
        fchmod(made.as_fd(), FileMode::from_bits_truncate(st.st_mode & 0o7777))
            .map_err(|e| Error::sys("chmod", rel, e))?;
        break;
    }
    Ok(())
}

/// The symlink target `rel` has in the topmost lower layer that has `rel`
/// (None if that layer has something else there, or none has it).
pub(super) fn lower_symlink(lowers: &[PathBuf], rel: &Path) -> Option<OsString> {
    for lower in lowers {
        let root = Root::open(lower).ok()?;
        let comps: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
        let (base, parent) = comps.split_last()?;
        let Ok(Some(dir)) = root.dir(parent, false, &mut |_, _| Ok(()), &|_| None) else { continue };
        match fsops::lstat_at(dir.as_fd(), base) {
            Ok(Some(st)) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                return nix::fcntl::readlinkat(dir.as_fd(), base.as_os_str()).ok();
            }
            Ok(Some(_)) => return None,
            _ => continue,
        }
    }
    None
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &OsStr;
}
impl FromBytesCompat for OsStr {
    fn from_bytes_compat(b: &[u8]) -> &OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}
