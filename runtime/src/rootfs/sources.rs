//! Bind sources opened by the runtime before the clone, for a container in a user
//! namespace: its root is an unprivileged host uid that may not reach a source (a 0700
//! parent directory, a volume owned by someone else) that the runtime can. runc opens
//! them as host root too. Each source becomes a detached copy of its mount
//! (open_tree), which the init then moves onto the destination.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{Mount, Spec};

use super::options;
use crate::error::{Error, Result};

/// One detached mount per bind of config.json's `mounts`, by index (None: not a bind,
/// or not opened early).
#[derive(Default)]
pub struct BindSources {
    trees: Vec<Option<Tree>>,
}

pub(crate) struct Tree {
    fd: OwnedFd,
    pub is_dir: bool,
}

impl BindSources {
    /// Trees (directory or not) for plans built in tests: the fd is the root's.
    #[cfg(test)]
    pub(crate) fn for_tests(trees: Vec<Option<bool>>) -> BindSources {
        let open = || {
            nix::fcntl::open(
                "/",
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
        };
        let trees = trees.into_iter().map(|t| t.map(|is_dir| Tree { fd: open().expect("open /"), is_dir })).collect();
        BindSources { trees }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Tree> {
        self.trees.get(index).and_then(Option::as_ref)
    }
}

/// The host path a bind mount takes, or None for other mounts (relative sources are
/// relative to the bundle).
pub(super) fn bind_source(m: &Mount, bundle: &Path) -> Option<std::path::PathBuf> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let is_bind = m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
    let s = m.source().as_ref().filter(|_| is_bind)?;
    Some(if s.is_relative() { bundle.join(s) } else { s.clone() })
}

/// Opens every bind source of `spec` (only when the init will run in a user namespace:
/// otherwise it is as privileged as we are and mounts the path itself). Idmapped binds
/// are left to the init, which maps them while cloning. `rootless`: the runtime is
/// unprivileged, and a source it may not clone is left to the init too.
pub fn open(spec: &Spec, bundle: &Path, in_user_ns: bool, rootless: bool) -> Result<BindSources> {
    let mut trees = Vec::new();
    if !in_user_ns {
        return Ok(BindSources { trees });
    }
    for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
        let idmapped = opts.idmap || m.uid_mappings().is_some() || m.gid_mappings().is_some();
        let tree = match bind_source(m, bundle) {
            Some(src) if !idmapped => {
                let field = || format!("mounts[{i}] ({}).source", m.destination().display());
                let e = |e: Errno| Error::field(field(), format!("{}: {}", src.display(), std::io::Error::from(e)));
                let fd = match open_tree(&src, opts.recursive_bind) {
                    Ok(fd) => fd,
                    // A rootless runtime may not clone mounts (no CAP_SYS_ADMIN over its
                    // mount namespace); its init, mapped to the caller, reaches what the
                    // caller reaches and binds the path itself, as rootless runc does.
                    Err(Errno::EPERM) if rootless => {
                        trees.push(None);
                        continue;
                    }
                    Err(err) => return Err(e(err)),
                };
                let st = nix::sys::stat::fstat(&fd).map_err(e)?;
                Some(Tree { fd, is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR })
            }
            _ => None,
        };
        trees.push(tree);
    }
    Ok(BindSources { trees })
}

/// A detached copy of the mount at `path` (with its submounts when `recursive`).
fn open_tree(path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let rec = if recursive { libc::AT_RECURSIVE as u32 } else { 0 };
    // SAFETY: a valid C string; the flags ask for a new close-on-exec fd, which we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | rec,
        )
    };
    let fd = Errno::result(r)?;
    // SAFETY: open_tree just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Tree {
    /// Moves the detached mount onto `target` (an O_PATH fd inside the rootfs).
    pub fn attach(&self, target: &OwnedFd) -> nix::Result<()> {
        let empty = CString::default();
        // SAFETY: valid fds and empty C strings, as the *_EMPTY_PATH flags require.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                self.fd.as_raw_fd(),
                empty.as_ptr(),
                target.as_raw_fd(),
                empty.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        Errno::result(r).map(drop)
    }
}
