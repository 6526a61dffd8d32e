//! Writing a directory tree as a layer tar: numeric owners, modes, mtimes,
//! devices, symlinks, hardlinks (by inode) and xattrs (PAX SCHILY.xattr).
//! From an overlay upper dir, overlay whiteouts are turned back into OCI
//! ones: a 0:0 char device becomes `.wh.NAME`, an opaque dir gets
//! `.wh..wh..opq`. `TreeTar` writes one entry at a time, so a diff (see
//! `flatdiff`) can pick which entries of a tree go into the layer.

use crate::apply::{fsops, rootless, Owners};
use crate::error::{Error, Result};
use crate::whiteout;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Plain,
    OverlayUpper,
}

pub fn write_tree(root: &Path, out: &mut dyn Write, src: Source) -> Result<()> {
    write_tree_owned(root, out, src, Owners::Image)
}

/// `write_tree` of a tree unpacked with `owners` (rootless: owners come from the xattr).
pub fn write_tree_owned(root: &Path, out: &mut dyn Write, src: Source, owners: Owners) -> Result<()> {
    let mut t = TreeTar::with_owners(root, out, owners);
    walk(&mut t, Path::new(""), src)?;
    t.finish()
}

fn walk(t: &mut TreeTar<'_>, rel: &Path, src: Source) -> Result<()> {
    for name in sorted_names(&t.root.join(rel))? {
        let rel = rel.join(&name);
        let path = t.root.join(&rel);
        let m = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if src == Source::OverlayUpper && m.file_type().is_char_device() && m.rdev() == 0 {
            t.whiteout(&rel)?;
            continue;
        }
        let opaque = t.entry(&rel, &m)?;
        if m.is_dir() {
            if src == Source::OverlayUpper && opaque {
                t.opaque(&rel)?;
            }
            walk(t, &rel, src)?;
        }
    }
    Ok(())
}

/// A directory's entry names, sorted bytewise: the order every tree walk of
/// this crate uses, so two walks of similar trees can be merged.
pub fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io(dir, e))?;
    names.sort();
    Ok(names)
}

/// A file's content, exactly as long as the size its tar header was given: a
/// file that shrinks or grows while it is read (something still writes to it)
/// fails the layer instead of leaving an entry that disagrees with its header,
/// which would make every later entry unreadable.
struct Exact<'p> {
    inner: fs::File,
    left: u64,
    size: u64,
    path: &'p Path,
}

impl std::io::Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let changed = |how: &str| {
            Error::Invalid(format!(
                "{}: {how} while being read ({} bytes at stat): is a container still writing to it?",
                self.path.display(),
                self.size
            ))
            .into_io()
        };
        if self.left == 0 {
            return match self.inner.read(&mut [0u8; 1])? {
                0 => Ok(0),
                _ => Err(changed("grew")),
            };
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        match self.inner.read(&mut buf[..want])? {
            0 if want > 0 => Err(changed("shrank")),
            n => {
                self.left -= n as u64;
                Ok(n)
            }
        }
    }
}

/// A layer tar being written from the files under `root`.
pub struct TreeTar<'a> {
    pub root: PathBuf,
    b: tar::Builder<&'a mut dyn Write>,
    /// First path written for each (dev, ino) with more than one link.
    seen: HashMap<(u64, u64), PathBuf>,
    /// Rootless: the files are all the caller's; each entry's owner is read from
    /// `rootless::XATTR` (which is not written), as `umoci repack --rootless` does.
    owners: Owners,
}

impl<'a> TreeTar<'a> {
    pub fn new(root: &Path, out: &'a mut dyn Write) -> TreeTar<'a> {
        Self::with_owners(root, out, Owners::Image)
    }

    pub fn with_owners(root: &Path, out: &'a mut dyn Write, owners: Owners) -> TreeTar<'a> {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        TreeTar { root: root.to_path_buf(), b, seen: HashMap::new(), owners }
    }

    pub fn finish(mut self) -> Result<()> {
        self.b.finish().map_err(|e| Error::io(&self.root, e))
    }

    /// Writes the file at `rel` (not its children); sockets are skipped.
    /// Returns whether it carries `trusted.overlay.opaque=y` (never written).
    pub fn entry(&mut self, rel: &Path, m: &fs::Metadata) -> Result<bool> {
        let path = self.root.join(rel);
        let ft = m.file_type();
        if ft.is_socket() {
            return Ok(false);
        }
        let xattrs = fsops::lxattrs(&path).map_err(|e| Error::sys("list xattrs", &path, e))?;
        let opaque = xattrs.iter().any(|(k, v)| k == whiteout::OVERLAY_OPAQUE_XATTR && v == b"y");
        let rootless = self.owners == Owners::Rootless;
        let owner = if rootless {
            let v = xattrs.iter().find(|(k, _)| k == rootless::XATTR).map(|(_, v)| v.as_slice());
            Some(rootless::image_owner(v).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?)
        } else {
            None
        };
        let pax: Vec<(String, Vec<u8>)> = xattrs
            .into_iter()
            .filter(|(k, _)| !(whiteout::is_reserved_xattr(k) || (rootless && k == rootless::XATTR)))
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
            .collect();
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| Error::io(&path, e))?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
        h.set_mode(m.mode() & 0o7777);
        if let Some((uid, gid)) = owner {
            h.set_uid(uid.into());
            h.set_gid(gid.into());
            // Names would be the caller's (set_metadata_in_mode leaves them empty anyway).
            let _ = (h.set_username(""), h.set_groupname(""));
        }
        let io = |e| Error::io(&path, e);
        if ft.is_file() && m.nlink() > 1 {
            if let Some(first) = self.seen.get(&(m.dev(), m.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                self.b.append_link(&mut h, rel, first).map_err(io)?;
                return Ok(opaque);
            }
            self.seen.insert((m.dev(), m.ino()), rel.to_path_buf());
        }
        if ft.is_dir() {
            h.set_size(0);
            self.b.append_data(&mut h, rel, std::io::empty()).map_err(io)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io)?;
            h.set_size(0);
            self.b.append_link(&mut h, rel, target).map_err(io)?;
        } else if ft.is_file() {
            let f = fs::File::open(&path).map_err(io)?;
            let exact = Exact { inner: f, left: m.len(), size: m.len(), path: &path };
            self.b.append_data(&mut h, rel, exact).map_err(io)?;
        } else {
            let (major, minor) = (nix::sys::stat::major(m.rdev()), nix::sys::stat::minor(m.rdev()));
            h.set_device_major(major as u32).map_err(io)?;
            h.set_device_minor(minor as u32).map_err(io)?;
            h.set_size(0);
            self.b.append_data(&mut h, rel, std::io::empty()).map_err(io)?;
        }
        Ok(opaque)
    }

    /// `.wh.NAME`: hides `rel` of the layers below.
    pub fn whiteout(&mut self, rel: &Path) -> Result<()> {
        let mut name = std::ffi::OsString::from(whiteout::PREFIX);
        name.push(rel.file_name().unwrap_or_default());
        self.empty_file(&rel.with_file_name(name))
    }

    /// `.wh..wh..opq` in `dir`: hides every lower entry of that directory.
    pub fn opaque(&mut self, dir: &Path) -> Result<()> {
        self.empty_file(&dir.join(whiteout::OPAQUE))
    }

    fn empty_file(&mut self, rel: &Path) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        self.b.append_data(&mut h, rel, std::io::empty()).map_err(|e| Error::io(rel, e))
    }
}
