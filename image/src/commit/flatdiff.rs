//! Commit of flatten bundles. A flatten rootfs is a plain directory, so there
//! is no read-write layer to read changes from: unpack records the tree it made
//! (`TREE_FILE`, one line per path) and commit diffs the rootfs against it.
//!
//! A line holds the path, type, mode, owner, size, mtime, ctime and inode. No
//! content hash: the kernel bumps ctime on every write, chmod, chown, xattr or
//! link change and nothing can set it back, and a replaced file has a new inode,
//! so (inode, ctime) changes whenever content or metadata does, without reading
//! every file twice. A rootfs copied elsewhere gets new inodes: the diff is then
//! the whole tree, larger but still correct.
//!
//! Both the record and the diff walk the tree depth first with names sorted
//! bytewise, so the diff is a merge of two ordered streams: memory stays flat.

use crate::apply::Owners;
use crate::error::{Error, Result};
use crate::treetar::{sorted_names, TreeTar};
use std::cmp::Ordering;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The tree record of a flatten bundle, beside its config.json.
pub const TREE_FILE: &str = "strata-image.tree";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i128,
    ctime: i128,
    ino: u64,
}

impl Rec {
    fn of(m: &fs::Metadata) -> Rec {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        Rec {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: if ft.is_dir() { 0 } else { m.size() },
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// Writes the record of the tree under `root` to `out` (a temp file renamed into place).
pub fn record(root: &Path, out: &Path) -> Result<()> {
    let parent = out.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(|e| Error::io(parent, e))?;
    let mut w = BufWriter::new(tmp);
    record_dir(root, Path::new(""), &mut w)?;
    let tmp = w.into_inner().map_err(|e| Error::io(out, e.into_error()))?;
    tmp.persist(out).map_err(|e| Error::io(out, e.error))?;
    Ok(())
}

fn record_dir(root: &Path, rel: &Path, w: &mut dyn Write) -> Result<()> {
    for name in sorted_names(&root.join(rel))? {
        let rel = rel.join(name);
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let r = Rec::of(&m);
        writeln!(
            w,
            "{}\t{}\t{:o}\t{}\t{}\t{}\t{}\t{}\t{}",
            escape(rel.as_os_str().as_bytes()),
            r.kind,
            r.mode,
            r.uid,
            r.gid,
            r.size,
            r.mtime,
            r.ctime,
            r.ino
        )
        .map_err(|e| Error::io(&path, e))?;
        if m.is_dir() {
            record_dir(root, &rel, w)?;
        }
    }
    Ok(())
}

/// Writes a layer tar of what changed under `root` since `tree` was recorded:
/// new and changed entries, `.wh.NAME` for deleted ones, and `.wh..wh..opq`
/// in a directory that was deleted and made again (its old content is gone).
pub fn write_diff(root: &Path, tree: &Path, out: &mut dyn Write) -> Result<DiffStats> {
    write_diff_owned(root, tree, out, Owners::Image)
}

/// `write_diff` of a rootfs unpacked with `owners` (see `TreeTar::with_owners`).
pub fn write_diff_owned(root: &Path, tree: &Path, out: &mut dyn Write, owners: Owners) -> Result<DiffStats> {
    let f = fs::File::open(tree).map_err(|e| Error::io(tree, e))?;
    let mut d = Differ {
        tar: TreeTar::with_owners(root, out, owners),
        base: BufReader::new(f),
        tree: tree.to_path_buf(),
        line: 0,
        peeked: None,
        skip: None,
        stats: DiffStats::default(),
    };
    d.walk(Path::new(""))?;
    d.drain_before(None)?;
    let stats = d.stats;
    d.tar.finish()?;
    Ok(stats)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiffStats {
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    /// Apparent bytes of the new and changed files and symlinks.
    pub bytes: u64,
}

struct Differ<'a> {
    tar: TreeTar<'a>,
    base: BufReader<fs::File>,
    tree: PathBuf,
    line: usize,
    peeked: Option<(Vec<u8>, Rec)>,
    /// Recorded entries under this path are void: it was deleted or replaced.
    skip: Option<Vec<u8>>,
    stats: DiffStats,
}

impl Differ<'_> {
    fn walk(&mut self, rel: &Path) -> Result<()> {
        for name in sorted_names(&self.tar.root.join(rel))? {
            let rel = rel.join(name);
            let key = rel.as_os_str().as_bytes().to_vec();
            self.drain_before(Some(&key))?;
            let path = self.tar.root.join(&rel);
            let m = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let now = Rec::of(&m);
            let was = match self.peek()? {
                Some((k, r)) if *k == key => Some(r.clone()),
                _ => None,
            };
            if was.is_some() {
                self.peeked = None;
            }
            if was.as_ref() != Some(&now) && !m.is_dir() {
                self.stats.bytes += m.len();
            }
            match was {
                None => {
                    self.stats.added += 1;
                    self.tar.entry(&rel, &m)?;
                }
                Some(was) if was == now => {}
                Some(was) => {
                    self.stats.changed += 1;
                    self.tar.entry(&rel, &m)?;
                    if was.kind != now.kind || (now.kind == 'd' && was.ino != now.ino) {
                        self.skip = Some(key.clone());
                        if now.kind == 'd' && was.kind == 'd' {
                            self.tar.opaque(&rel)?;
                        }
                    }
                }
            }
            if m.is_dir() {
                self.walk(&rel)?;
            }
        }
        Ok(())
    }

    /// Whiteouts for the recorded entries ordered before `key` (all, if None):
    /// the walk has passed them, so they are gone.
    fn drain_before(&mut self, key: Option<&[u8]>) -> Result<()> {
        while let Some((k, _)) = self.peek()? {
            if key.is_some_and(|key| cmp_path(k, key) != Ordering::Less) {
                break;
            }
            let (k, _) = self.peeked.take().unwrap();
            if self.skip.as_deref().is_some_and(|s| is_under(&k, s)) {
                continue;
            }
            self.stats.deleted += 1;
            self.tar.whiteout(Path::new(std::ffi::OsStr::from_bytes(&k)))?;
            self.skip = Some(k);
        }
        Ok(())
    }

    /// The next recorded entry whose path is not void (entries under `skip` are dropped).
    fn peek(&mut self) -> Result<Option<&(Vec<u8>, Rec)>> {
        while self.peeked.is_none() {
            let mut buf = Vec::new();
            self.base.read_until(b'\n', &mut buf).map_err(|e| Error::io(&self.tree, e))?;
            if buf.is_empty() {
                return Ok(None);
            }
            self.line += 1;
            let entry = parse(&buf).ok_or_else(|| {
                Error::Invalid(format!("{}: line {}: not a tree record", self.tree.display(), self.line))
            })?;
            if !self.skip.as_deref().is_some_and(|s| is_under(&entry.0, s)) {
                self.peeked = Some(entry);
            }
        }
        Ok(self.peeked.as_ref())
    }
}

/// Apparent bytes of the files and symlinks the record lists (hardlinks once):
/// the size of the image as it was unpacked.
pub fn recorded_size(tree: &Path) -> Result<u64> {
    let f = fs::File::open(tree).map_err(|e| Error::io(tree, e))?;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for (n, line) in BufReader::new(f).split(b'\n').enumerate() {
        let mut line = line.map_err(|e| Error::io(tree, e))?;
        line.push(b'\n');
        let (_, r) = parse(&line)
            .ok_or_else(|| Error::Invalid(format!("{}: line {}: not a tree record", tree.display(), n + 1)))?;
        if matches!(r.kind, 'f' | 'l') && seen.insert(r.ino) {
            total += r.size;
        }
    }
    Ok(total)
}

fn parse(line: &[u8]) -> Option<(Vec<u8>, Rec)> {
    let line = std::str::from_utf8(line.strip_suffix(b"\n")?).ok()?;
    let f: Vec<&str> = line.split('\t').collect();
    let [path, kind, mode, uid, gid, size, mtime, ctime, ino] = f[..] else { return None };
    Some((
        unescape(path)?,
        Rec {
            kind: kind.chars().next()?,
            mode: u32::from_str_radix(mode, 8).ok()?,
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            size: size.parse().ok()?,
            mtime: mtime.parse().ok()?,
            ctime: ctime.parse().ok()?,
            ino: ino.parse().ok()?,
        },
    ))
}

/// Depth-first order with sorted names: component by component.
fn cmp_path(a: &[u8], b: &[u8]) -> Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

fn is_under(p: &[u8], dir: &[u8]) -> bool {
    p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
}

/// Paths are bytes: anything but printable ASCII (and `%`) becomes `%XX`.
fn escape(p: &[u8]) -> String {
    let mut s = String::with_capacity(p.len());
    for &c in p {
        if c.is_ascii_graphic() && c != b'%' || c == b' ' {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        let p = b"a b/%/\t\n\xff/x";
        assert_eq!(unescape(&escape(p)).unwrap(), p);
        assert!(!escape(p).contains(['\t', '\n']));
    }

    #[test]
    fn order_is_depth_first() {
        assert_eq!(cmp_path(b"a/b", b"a.b"), Ordering::Less);
        assert_eq!(cmp_path(b"a", b"a/b"), Ordering::Less);
        assert!(is_under(b"a/b", b"a") && !is_under(b"ab", b"a") && !is_under(b"a", b"a"));
    }
}
