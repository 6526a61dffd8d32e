//! Writing a directory tree as a layer tar: numeric owners, modes, mtimes,
//! devices, symlinks, hardlinks (by inode) and xattrs (PAX SCHILY.xattr).
//! From an overlay upper dir, overlay whiteouts are turned back into OCI
//! ones: a 0:0 char device becomes `.wh.NAME`, an opaque dir gets
//! `.wh..wh..opq`.

use crate::apply::fsops;
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
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut seen = HashMap::new();
    walk(&mut b, root, Path::new(""), src, &mut seen)?;
    b.finish().map_err(|e| Error::io(root, e))
}

fn walk(b: &mut tar::Builder<&mut dyn Write>, root: &Path, rel: &Path, src: Source, seen: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>().map_err(|e| Error::io(&dir, e))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let ft = m.file_type();
        if src == Source::OverlayUpper && ft.is_char_device() && m.rdev() == 0 {
            let wh = rel.with_file_name(format!("{}{}", whiteout::PREFIX, name.to_string_lossy()));
            empty_file(b, &wh)?;
            continue;
        }
        if ft.is_socket() {
            continue;
        }
        let xattrs = fsops::lxattrs(&path).map_err(|e| Error::sys("list xattrs", &path, e))?;
        let opaque = xattrs.iter().any(|(k, v)| k == whiteout::OVERLAY_OPAQUE_XATTR && v == b"y");
        let pax: Vec<(String, Vec<u8>)> = xattrs.into_iter().filter(|(k, _)| !whiteout::is_reserved_xattr(k)).map(|(k, v)| (format!("SCHILY.xattr.{k}"), v)).collect();
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).map_err(|e| Error::io(&path, e))?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&m, tar::HeaderMode::Complete);
        h.set_mode(m.mode() & 0o7777);
        let io = |e| Error::io(&path, e);
        if ft.is_file() && m.nlink() > 1 {
            if let Some(first) = seen.get(&(m.dev(), m.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, &rel, first).map_err(io)?;
                continue;
            }
            seen.insert((m.dev(), m.ino()), rel.clone());
        }
        if ft.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &rel, std::io::empty()).map_err(io)?;
            if src == Source::OverlayUpper && opaque {
                empty_file(b, &rel.join(whiteout::OPAQUE))?;
            }
            walk(b, root, &rel, src, seen)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io)?;
            h.set_size(0);
            b.append_link(&mut h, &rel, target).map_err(io)?;
        } else if ft.is_file() {
            let f = fs::File::open(&path).map_err(io)?;
            b.append_data(&mut h, &rel, f).map_err(io)?;
        } else {
            let (major, minor) = (nix::sys::stat::major(m.rdev()), nix::sys::stat::minor(m.rdev()));
            h.set_device_major(major as u32).map_err(io)?;
            h.set_device_minor(minor as u32).map_err(io)?;
            h.set_size(0);
            b.append_data(&mut h, &rel, std::io::empty()).map_err(io)?;
        }
    }
    Ok(())
}

fn empty_file(b: &mut tar::Builder<&mut dyn Write>, rel: &Path) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, rel, std::io::empty()).map_err(|e| Error::io(rel, e))
}
