//! Applying one layer tar to a directory, per OCI image-spec layer.md.
//!
//! `Mode::Flatten` applies changesets onto a full tree (whiteouts delete);
//! `Mode::Overlay` extracts a single layer into its own empty directory for
//! an overlayfs lowerdir (whiteouts become overlay whiteouts). Either way no
//! tar name can reach outside the target: see `fsops`.

mod entry;
pub mod fsops;
mod path;
pub mod rootless;

use crate::error::{Error, Result};
use crate::whiteout::{self, Whiteout};
use fsops::Root;
use nix::fcntl::OFlag;
use nix::sys::stat::{utimensat, Mode as FileMode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use path::clean;

#[derive(Clone, Debug)]
pub enum Mode {
    Flatten,
    /// `lowers`: the already extracted layers below this one, topmost first
    /// (hardlinks to their files are copied up; implicit parents take their
    /// directories' ownership and mode).
    Overlay {
        lowers: Vec<PathBuf>,
    },
}

/// Who owns what is extracted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// The tar's owners, by chown (needs CAP_CHOWN).
    Image,
    /// The caller, with the tar's owners in `rootless::XATTR` (see `rootless`).
    Rootless,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    /// What could not be extracted as the tar says, one line each (rootless:
    /// device nodes).
    pub notes: Vec<String>,
}

pub(crate) struct Applier<'a> {
    root: Root,
    mode: &'a Mode,
    /// Every path this layer created, and every ancestor of one.
    added: HashSet<PathBuf>,
    ancestors: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, TimeSpec, TimeSpec)>,
    opaque: Vec<PathBuf>,
    stats: Stats,
    rootless: bool,
    /// Rootless: directories whose mode denies their owner (us) writing into them,
    /// opened up while this layer writes there; the mode each must get back.
    opened: BTreeMap<PathBuf, u32>,
    /// The last parent directory resolved, by its components: entries come
    /// grouped by directory, so most need no path resolution at all. Any
    /// removal may change what a path resolves to and forgets it.
    last_dir: Option<(Vec<OsString>, Rc<OwnedFd>)>,
    /// Reused for every file's data (large writes, no allocation per file).
    pub(crate) copy_buf: Vec<u8>,
}

/// Applies the layer tar read from `tar` to `target`.
pub fn apply_layer(target: &Path, tar: &mut dyn Read, mode: &Mode) -> Result<Stats> {
    apply_layer_owned(target, tar, mode, Owners::Image)
}

/// `apply_layer`, choosing who owns the files.
pub fn apply_layer_owned(target: &Path, tar: &mut dyn Read, mode: &Mode, owners: Owners) -> Result<Stats> {
    let mut a = Applier {
        root: Root::open(target)?,
        mode,
        added: HashSet::new(),
        ancestors: HashSet::new(),
        dir_times: Vec::new(),
        opaque: Vec::new(),
        stats: Stats::default(),
        rootless: owners == Owners::Rootless,
        opened: BTreeMap::new(),
        last_dir: None,
        copy_buf: Vec::new(),
    };
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().map_err(|e| Error::io("layer", e))? {
        let mut e = e.map_err(|e| Error::io("layer", e))?;
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        a.entry(&mut e, &raw).map_err(|err| match err {
            Error::Entry { .. } | Error::Layer { .. } => err,
            Error::Io { source, .. } if source.get_ref().is_some_and(|r| r.is::<Error>()) => Error::io("", source),
            other => Error::entry(shown, other),
        })?;
        a.stats.entries += 1;
    }
    a.finish()?;
    Ok(a.stats)
}

impl Applier<'_> {
    fn entry(&mut self, e: &mut tar::Entry<'_, &mut dyn Read>, raw: &[u8]) -> Result<()> {
        let comps = clean(raw);
        let Some((base, parent)) = comps.split_last() else {
            // The root itself (`./`): only its metadata can change.
            if e.header().entry_type().is_dir() {
                return entry::root_metadata(self, e);
            }
            return Err(Error::Invalid("names the root but is not a directory".into()));
        };
        let rel: PathBuf = comps.iter().collect();
        if let Some(w) = whiteout::classify(base.as_bytes()) {
            return self.whiteout(w, parent);
        }
        entry::create(self, e, parent, base, &rel)?;
        self.mark_added(&rel);
        Ok(())
    }

    fn mark_added(&mut self, rel: &Path) {
        let mut p = rel.parent();
        while let Some(a) = p {
            if !self.ancestors.insert(a.to_path_buf()) {
                break;
            }
            p = a.parent();
        }
        self.added.insert(rel.to_path_buf());
    }

    fn in_layer(&self, rel: &Path) -> bool {
        self.added.contains(rel) || self.ancestors.contains(rel)
    }

    fn whiteout(&mut self, w: Whiteout<'_>, parent: &[OsString]) -> Result<()> {
        let parent_rel: PathBuf = parent.iter().collect();
        match (w, self.mode) {
            (Whiteout::Meta, _) => Ok(()),
            (Whiteout::Opaque, Mode::Flatten) => {
                self.opaque.push(parent_rel);
                Ok(())
            }
            (Whiteout::Opaque, Mode::Overlay { .. }) => {
                let dir = self.parent_dir(parent, true)?.expect("created");
                let fd = nix::fcntl::openat(
                    dir.as_fd(),
                    ".",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    FileMode::empty(),
                )
                .map_err(|e| Error::sys("open", &parent_rel, e))?;
                fsops::fsetxattr(fd.as_fd(), whiteout::OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(|e| Error::sys("set trusted.overlay.opaque", &parent_rel, e))?;
                self.mark_added(&parent_rel);
                Ok(())
            }
            (Whiteout::File(name), mode) => {
                let name = OsStr::from_bytes(name);
                let rel = parent_rel.join(name);
                if self.in_layer(&rel) {
                    return Ok(()); // whiteouts only hide lower layers
                }
                let create = matches!(mode, Mode::Overlay { .. });
                // A parent that is not a directory (replaced in this layer)
                // already hides everything below it.
                let dir = match self.parent_dir(parent, create) {
                    Ok(Some(dir)) => dir,
                    Ok(None) | Err(Error::Sys { errno: nix::errno::Errno::ENOTDIR, .. }) => return Ok(()),
                    Err(e) => return Err(e),
                };
                self.remove_at(dir.as_fd(), name).map_err(|e| Error::sys("remove", &rel, e))?;
                if create {
                    nix::sys::stat::mknodat(dir.as_fd(), name, SFlag::S_IFCHR, FileMode::empty(), 0)
                        .map_err(|e| Error::sys("mknod whiteout", &rel, e))?;
                    self.mark_added(&rel);
                }
                Ok(())
            }
        }
    }

    /// The parent directory of an entry, creating missing ones when asked.
    /// In overlay mode an implicitly created directory copies the owner and
    /// mode of the same directory in the layers below, so the union view of
    /// that directory does not change.
    pub(crate) fn parent_dir(&mut self, parent: &[OsString], create: bool) -> Result<Option<Rc<OwnedFd>>> {
        if let Some((comps, fd)) = &self.last_dir {
            if comps == parent {
                return Ok(Some(fd.clone()));
            }
        }
        let lowers = match self.mode {
            Mode::Overlay { lowers } => lowers.clone(),
            Mode::Flatten => vec![],
        };
        let mut made = |rel: &Path, dirfd: std::os::fd::BorrowedFd| entry::inherit_dir_meta(&lowers, rel, dirfd);
        let lower_link = |rel: &Path| entry::lower_symlink(&lowers, rel);
        let Some(fd) = self.root.dir(parent, create, &mut made, &lower_link)? else { return Ok(None) };
        if self.rootless {
            self.open_up(&fd, parent.iter().collect())?;
        }
        let fd = Rc::new(fd);
        self.last_dir = Some((parent.to_vec(), fd.clone()));
        Ok(Some(fd))
    }

    /// Rootless: lets us write into `dir` even when the image made it read-only
    /// for its owner (as root we could anyway); `finish` gives the mode back.
    fn open_up(&mut self, dir: &std::os::fd::OwnedFd, rel: PathBuf) -> Result<()> {
        let st = nix::sys::stat::fstat(dir.as_fd()).map_err(|e| Error::sys("stat", &rel, e))?;
        let mode = st.st_mode & 0o7777;
        if mode & 0o700 == 0o700 {
            return Ok(());
        }
        set_mode_of(dir, mode | 0o700).map_err(|e| Error::sys("chmod", &rel, e))?;
        self.opened.insert(rel, mode);
        Ok(())
    }

    /// Removes `name` in `dir` (recursively), forgetting the cached parent.
    pub(crate) fn remove_at(&mut self, dir: BorrowedFd, name: &OsStr) -> nix::Result<()> {
        self.last_dir = None;
        fsops::remove_all_at(dir, name)
    }

    fn finish(&mut self) -> Result<()> {
        for dir in std::mem::take(&mut self.opaque) {
            let fd = match self.root.resolve(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => continue,
                Err(e) => return Err(Error::sys("open opaque directory", &dir, e)),
            };
            self.prune(&fd, &dir)?;
        }
        for (rel, mode) in std::mem::take(&mut self.opened).into_iter().rev() {
            match self.root.resolve(&rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => set_mode_of(&fd, mode).map_err(|e| Error::sys("chmod", &rel, e))?,
                Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {}
                Err(e) => return Err(Error::sys("open", &rel, e)),
            }
        }
        for (rel, atime, mtime) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let comps: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
            let Some((base, parent)) = comps.split_last() else { continue };
            if let Some(dir) = self.root.dir(parent, false, &mut |_, _| Ok(()), &|_| None)? {
                match utimensat(dir.as_fd(), base.as_os_str(), &atime, &mtime, UtimensatFlags::NoFollowSymlink) {
                    Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                    Err(e) => return Err(Error::sys("set times", &rel, e)),
                }
            }
        }
        Ok(())
    }

    /// Removes from `dir` everything this layer did not add (opaque directory).
    fn prune(&self, dir: &std::os::fd::OwnedFd, rel: &Path) -> Result<()> {
        for name in fsops::list_dir(dir).map_err(|e| Error::sys("read directory", rel, e))? {
            let child = rel.join(&name);
            if !self.in_layer(&child) {
                fsops::remove_all_at(dir.as_fd(), &name).map_err(|e| Error::sys("remove", &child, e))?;
                continue;
            }
            let st = fsops::lstat_at(dir.as_fd(), &name).map_err(|e| Error::sys("stat", &child, e))?;
            if st.is_some_and(|st| fsops::is_dir(&st)) {
                let sub = nix::fcntl::openat(
                    dir.as_fd(),
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    FileMode::empty(),
                )
                .map_err(|e| Error::sys("open", &child, e))?;
                self.prune(&sub, &child)?;
            }
        }
        Ok(())
    }
}

/// chmod through an O_PATH fd (fchmod refuses those): its /proc/self/fd link.
fn set_mode_of(fd: &std::os::fd::OwnedFd, mode: u32) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        FileMode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
}
