//! fd-relative filesystem primitives that cannot leave a root directory.
//!
//! Every path inside the target is resolved from the root's fd with openat2
//! RESOLVE_IN_ROOT (symlinks and `..` are evaluated as if the root were `/`),
//! and the final component is then created, replaced or changed through its
//! parent's fd with *at calls that never follow it.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Root {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys("open", path, e))?;
        Ok(Root { fd, path: path.to_path_buf() })
    }

    /// Opens `rel` (relative, already cleaned) as if the root were `/`. The kernel answers
    /// a `..` with EAGAIN when any rename or mount on the machine raced with the walk;
    /// that is retried, a bounded number of times so a rename flood fails the unpack
    /// instead of spinning it forever.
    pub fn resolve(&self, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        const TRIES: usize = 1000;
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let mut tries = 0;
        loop {
            match openat2(self.fd.as_fd(), rel, how) {
                Err(Errno::EAGAIN | Errno::EINTR) if tries < TRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// The directory `comps` names, as an O_PATH fd. With `create`, missing
    /// directories are made (0755, root-owned), and `made` is told about each.
    /// A dangling symlink on the way is followed inside the root (as the
    /// kernel would with RESOLVE_IN_ROOT) and its target directory created.
    /// `lower_link` answers, for a path missing here, the symlink target it
    /// has in the layers below (overlay mode), so that a later layer writing
    /// under `/lib -> usr/lib` lands in `usr/lib` as it would on the union.
    pub fn dir(
        &self,
        comps: &[OsString],
        create: bool,
        made: &mut dyn FnMut(&Path, BorrowedFd) -> Result<()>,
        lower_link: &dyn Fn(&Path) -> Option<OsString>,
    ) -> Result<Option<OwnedFd>> {
        self.dir_depth(comps, create, made, lower_link, 0)
    }

    fn dir_depth(
        &self,
        comps: &[OsString],
        create: bool,
        made: &mut dyn FnMut(&Path, BorrowedFd) -> Result<()>,
        lower_link: &dyn Fn(&Path) -> Option<OsString>,
        depth: u32,
    ) -> Result<Option<OwnedFd>> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let full: PathBuf = comps.iter().collect();
        match self.resolve(&full, flags) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::ENOENT) if create => {}
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) if !create => return Ok(None),
            Err(e) => return Err(Error::sys("resolve directory", self.path.join(&full), e)),
        }
        if depth > 40 {
            return Err(Error::sys("resolve directory", self.path.join(&full), Errno::ELOOP));
        }
        let mut fd = self.resolve(Path::new(""), flags).map_err(|e| Error::sys("open", &self.path, e))?;
        let mut prefix = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            prefix.push(c);
            fd = match self.resolve(&prefix, flags) {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    let is_link = lstat_at(fd.as_fd(), c)
                        .ok()
                        .flatten()
                        .is_some_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK);
                    let target = if is_link {
                        Some(
                            nix::fcntl::readlinkat(fd.as_fd(), c.as_os_str())
                                .map_err(|e| Error::sys("readlink", self.path.join(&prefix), e))?,
                        )
                    } else if lstat_at(fd.as_fd(), c).ok().flatten().is_none() {
                        lower_link(&prefix)
                    } else {
                        None
                    };
                    if let Some(target) = target {
                        let mut joined = Vec::new();
                        if !target.as_bytes().starts_with(b"/") {
                            for p in &comps[..i] {
                                joined.extend_from_slice(p.as_bytes());
                                joined.push(b'/');
                            }
                        }
                        joined.extend_from_slice(target.as_bytes());
                        let mut next = super::clean(&joined);
                        next.extend(comps[i + 1..].iter().cloned());
                        return self.dir_depth(&next, create, made, lower_link, depth + 1);
                    }
                    mkdirat(fd.as_fd(), c.as_os_str(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| Error::sys("mkdir", self.path.join(&prefix), e))?;
                    made(&prefix, fd.as_fd())?;
                    self.resolve(&prefix, flags)
                        .map_err(|e| Error::sys("resolve directory", self.path.join(&prefix), e))?
                }
                Err(e) => return Err(Error::sys("resolve directory", self.path.join(&prefix), e)),
            };
        }
        Ok(Some(fd))
    }
}

pub fn lstat_at(dir: BorrowedFd, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// Removes `name` in `dir`, recursively if it is a directory; absent is fine.
pub fn remove_all_at(dir: BorrowedFd, name: &OsStr) -> nix::Result<()> {
    let Some(st) = lstat_at(dir, name)? else { return Ok(()) };
    if is_dir(&st) {
        let sub = openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        for child in list_dir(&sub)? {
            remove_all_at(sub.as_fd(), &child)?;
        }
        unlinkat(dir, name, UnlinkatFlags::RemoveDir)
    } else {
        match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
            Err(Errno::ENOENT) => Ok(()),
            r => r,
        }
    }
}

/// Names in a directory (opened O_RDONLY), without `.` and `..`.
pub fn list_dir(dir: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let dup = nix::unistd::dup(dir)?;
    let mut d = nix::dir::Dir::from_fd(dup)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

/// `/proc/self/fd/N/name`: the final component is a plain name under a
/// directory fd we hold, so path-only syscalls (lsetxattr) stay inside.
pub fn proc_path(dir: BorrowedFd, name: &OsStr) -> CString {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.as_bytes());
    CString::new(p).expect("no NUL in names")
}

pub fn lsetxattr_at(dir: BorrowedFd, name: &OsStr, key: &str, value: &[u8]) -> nix::Result<()> {
    let p = proc_path(dir, name);
    xattr::set(OsStr::from_bytes(p.as_bytes()), key, value).map_err(errno)
}

/// The xattr crate sets by path or by `File` only; an fd we merely borrow goes
/// to the syscall directly.
pub fn fsetxattr(fd: BorrowedFd, key: &str, value: &[u8]) -> nix::Result<()> {
    let k = CString::new(key).map_err(|_| Errno::EINVAL)?;
    // SAFETY: fd is open for the borrow's lifetime; k is NUL-terminated and value
    // is a live slice of value.len() bytes; the kernel only reads them.
    let r = unsafe { libc::fsetxattr(fd.as_raw_fd(), k.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(r).map(drop)
}

/// All xattrs of a path (not following a final symlink), sorted by name.
pub fn lxattrs(path: &Path) -> nix::Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
        Err(e) => return Err(errno(e)),
    };
    let mut out = Vec::new();
    for key in names {
        // None: removed since it was listed.
        if let Some(val) = xattr::get(path, &key).map_err(errno)? {
            out.push((String::from_utf8_lossy(key.as_bytes()).into_owned(), val));
        }
    }
    out.sort();
    Ok(out)
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
