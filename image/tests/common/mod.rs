//! Test helpers: crafting layer tars byte by byte (names the tar crate would
//! refuse to write are exactly what the escape tests need), building images
//! with the library's writer, and walking trees for comparison.
#![allow(dead_code)]

pub mod fixture;
pub mod http;
pub mod run;
pub mod umoci_image;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use strata_image::layout::Layout;
use strata_image::writer::{self, Compression};

pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

#[derive(Clone)]
pub struct E {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub fn file(name: &str, data: &str) -> E {
    E {
        name: name.into(),
        kind: tar::EntryType::Regular,
        data: data.into(),
        link: vec![],
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
        dev: (0, 0),
        xattrs: vec![],
    }
}
pub fn dir(name: &str) -> E {
    E { kind: tar::EntryType::Directory, mode: 0o755, ..file(name, "") }
}
pub fn symlink(name: &str, target: &str) -> E {
    E { kind: tar::EntryType::Symlink, link: target.into(), mode: 0o777, ..file(name, "") }
}
pub fn hardlink(name: &str, target: &str) -> E {
    E { kind: tar::EntryType::Link, link: target.into(), ..file(name, "") }
}
pub fn node(name: &str, kind: tar::EntryType, major: u32, minor: u32) -> E {
    E { kind, dev: (major, minor), mode: 0o600, ..file(name, "") }
}

impl E {
    pub fn mode(mut self, m: u32) -> E {
        self.mode = m;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> E {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> E {
        self.xattrs.push((k.into(), v.into()));
        self
    }
}

/// A tar with the given entries, names written verbatim (PAX when long).
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut t = Tar { b: tar::Builder::new(Vec::new()) };
    for e in entries {
        t.add(e);
    }
    t.b.into_inner().unwrap()
}

impl Tar {
    fn add(&mut self, e: &E) {
        let mut pax: Vec<(String, Vec<u8>)> =
            e.xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone())).collect();
        if e.name.len() > 99 {
            pax.push(("path".into(), e.name.clone()));
        }
        if e.link.len() > 99 {
            pax.push(("linkpath".into(), e.link.clone()));
        }
        if !pax.is_empty() {
            self.b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut().unwrap();
            let n = &e.name[..e.name.len().min(99)];
            u.name[..n.len()].copy_from_slice(n);
            let l = &e.link[..e.link.len().min(99)];
            u.linkname[..l.len()].copy_from_slice(l);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.data.len() as u64);
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(e.dev.0).unwrap();
            h.set_device_minor(e.dev.1).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, &e.data[..]).unwrap();
    }
}

/// A unique scratch directory under the system temp dir, removed on drop.
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("strata-image-test-{tag}-")).tempdir().unwrap()
}

/// Writes an image of `layers` into the layout at `dir`, tagged `tag`.
pub fn image(
    dir: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    c: Compression,
    config: impl FnOnce(&mut serde_json::Value),
) -> Layout {
    let layout = Layout::open_or_init(dir).unwrap();
    let mut descs = vec![];
    let mut diff_ids = vec![];
    for l in layers {
        let nl = writer::write_layer(&layout, &mut &l[..], c).unwrap();
        descs.push(nl.descriptor);
        diff_ids.push(nl.diff_id);
    }
    let mut cfg = writer::new_config(&diff_ids, "test");
    cfg["config"]["Cmd"] = serde_json::json!(["/bin/sh"]);
    config(&mut cfg);
    writer::write_image(&layout, tag, &cfg, &descs).unwrap();
    layout
}

/// What a tree comparison looks at, per path.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Node {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub content: Option<String>,
    pub link: Option<String>,
    pub rdev: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Paths sharing this inode (hardlinks), for regular files.
    pub links: Vec<String>,
}

pub fn walk(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    walk_into(root, root, &mut out, &mut inodes);
    for node in out.values_mut() {
        if node.kind == "file" && !node.links.is_empty() {
            let ino: u64 = node.links[0].parse().unwrap();
            node.links = inodes[&ino].clone();
        }
    }
    out
}

/// The first `limit` paths where a strata-built tree differs from buildah's, one line
/// each. buildah's RUN leaves the mount points of its bind mounts behind (empty files,
/// /run); those are dropped from `theirs` first when strata's tree lacks them.
#[allow(dead_code)] // used by the build comparisons only
pub fn buildah_tree_diff(
    mine: &BTreeMap<String, Node>,
    mut theirs: BTreeMap<String, Node>,
    limit: usize,
) -> Vec<String> {
    for p in ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run"] {
        if !mine.contains_key(p) && theirs.get(p).is_some_and(|n| n.size == 0) {
            theirs.remove(p);
        }
    }
    theirs
        .keys()
        .chain(mine.keys())
        .filter(|k| theirs.get(*k) != mine.get(*k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(limit)
        .map(|k| format!("{k}: buildah {:?}\n   strata {:?}", theirs.get(k), mine.get(k)))
        .collect()
}

fn walk_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>, inodes: &mut BTreeMap<u64, Vec<String>>) {
    let mut names: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let content = ft.is_file().then(|| strata_image::digest::of_bytes(&fs::read(&p).unwrap()));
        let link = ft.is_symlink().then(|| fs::read_link(&p).unwrap().to_string_lossy().into_owned());
        let mut links = vec![];
        if ft.is_file() && m.nlink() > 1 {
            inodes.entry(m.ino()).or_default().push(rel.clone());
            links.push(m.ino().to_string());
        }
        let xattrs = strata_image::apply::fsops::lxattrs(&p)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .collect();
        out.insert(
            rel.clone(),
            Node {
                kind: kind.into(),
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_dir() { 0 } else { m.size() },
                content,
                link,
                rdev: m.rdev(),
                xattrs,
                links,
            },
        );
        if ft.is_dir() {
            walk_into(root, &p, out, inodes);
        }
    }
}

/// Unmounts and removes a bundle when dropped, even if the test panicked.
pub struct BundleGuard(pub PathBuf);
impl Drop for BundleGuard {
    fn drop(&mut self) {
        let _ = strata_image::overlay::unmount(&self.0.join("rootfs"));
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata-image"))
}
