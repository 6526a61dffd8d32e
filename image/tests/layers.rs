//! Layer semantics per image-spec layer.md, on crafted multi-layer images,
//! checked in both flatten and overlay form (the overlay view must equal the
//! flat tree).

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use strata_image::apply::{apply_layer, Mode};
use strata_image::bundle::{self, UnpackOptions};
use strata_image::reference::Reference;
use strata_image::writer::Compression;
use tar::EntryType;

fn layers() -> Vec<Vec<u8>> {
    vec![
        tar(&[
            dir("etc"),
            file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"),
            file("etc/group", "root:x:0:\nalice:x:1000:\nwheel:x:10:alice\n"),
            dir("gone"),
            file("gone/a", "a"),
            dir("opq"),
            file("opq/lower", "lower"),
            dir("opq/sub"),
            file("opq/sub/deep", "deep"),
            file("keep", "keep"),
            file("todir", "file"),
            dir("tofile"),
            file("tofile/x", "x"),
            file("orig", "shared content"),
            file("suid", "s").mode(0o4755),
            dir("sticky").mode(0o1777),
            dir("sgid").mode(0o2775).owner(0, 10),
            file("owned", "o").owner(1000, 1000).mode(0o640),
            file("caps", "c")
                .xattr("security.capability", &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            file("xa", "x").xattr("user.note", b"hello"),
            node("dev/null", EntryType::Char, 1, 3).mode(0o666),
            node("dev/loop9", EntryType::Block, 7, 9),
            node("fifo", EntryType::Fifo, 0, 0),
            symlink("rel", "etc/passwd"),
            dir("usr"),
            dir("usr/lib"),
            symlink("lib", "usr/lib"),
        ]),
        tar(&[
            file(".wh.gone", ""),
            file("opq/new", "new"),
            file("opq/.wh..wh..opq", ""),
            dir("todir"),
            file("todir/y", "y"),
            file("tofile", "now a file"),
            hardlink("link-to-lower", "orig"),
            file("fresh", "f"),
            file(".wh.fresh", ""),
            file("lib/libx.so", "lib"),
            file("owned", "o2").owner(1000, 10).mode(0o600),
        ]),
        tar(&[
            hardlink("etc/hl", "link-to-lower"),
            file("later", "later"),
            hardlink("later2", "later"),
            file(".wh.keep", ""),
        ]),
    ]
}

fn check(root: &Path) {
    let r = |p: &str| root.join(p);
    assert!(!r("gone").exists(), "whiteout removes a lower dir");
    assert!(!r("keep").exists(), "whiteout removes a lower file");
    assert!(!r("opq/lower").exists() && !r("opq/sub").exists(), "opaque hides lower children");
    assert_eq!(fs::read_to_string(r("opq/new")).unwrap(), "new", "opaque keeps its own layer's files");
    assert_eq!(fs::read_to_string(r("todir/y")).unwrap(), "y");
    assert_eq!(fs::read_to_string(r("tofile")).unwrap(), "now a file");
    assert_eq!(fs::read_to_string(r("fresh")).unwrap(), "f", "a whiteout only hides lower layers");
    assert_eq!(fs::read_to_string(r("usr/lib/libx.so")).unwrap(), "lib", "written through the lower /lib symlink");
    assert!(fs::symlink_metadata(r("lib")).unwrap().file_type().is_symlink());
    let m = |p: &str| fs::symlink_metadata(r(p)).unwrap();
    assert_eq!(m("suid").mode() & 0o7777, 0o4755);
    assert_eq!(m("sticky").mode() & 0o7777, 0o1777);
    assert_eq!((m("sgid").mode() & 0o7777, m("sgid").gid()), (0o2775, 10));
    assert_eq!((m("owned").uid(), m("owned").gid(), m("owned").mode() & 0o777), (1000, 10, 0o600));
    assert_eq!(m("orig").mtime(), 1_600_000_000);
    assert!(m("dev/null").file_type().is_char_device() && m("dev/null").rdev() == nix::sys::stat::makedev(1, 3));
    assert!(m("dev/loop9").file_type().is_block_device() && m("dev/loop9").rdev() == nix::sys::stat::makedev(7, 9));
    assert!(m("fifo").file_type().is_fifo());
    assert_eq!(fs::read_link(r("rel")).unwrap().to_str().unwrap(), "etc/passwd");
    let x = strata_image::apply::fsops::lxattrs(&r("xa")).unwrap();
    assert!(x.contains(&("user.note".into(), b"hello".to_vec())));
    let c = strata_image::apply::fsops::lxattrs(&r("caps")).unwrap();
    assert!(c.iter().any(|(k, _)| k == "security.capability"), "file capabilities survive chown");
    assert_eq!(fs::read_to_string(r("link-to-lower")).unwrap(), "shared content");
    assert_eq!(fs::read_to_string(r("etc/hl")).unwrap(), "shared content");
    assert_eq!(m("later").ino(), m("later2").ino(), "hardlink within a layer");
}

#[test]
fn flatten_applies_every_rule() {
    let t = scratch("layers-flat");
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    for l in layers() {
        apply_layer(&root, &mut &l[..], &Mode::Flatten).unwrap();
    }
    check(&root);
    let m = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(m("orig").ino(), m("link-to-lower").ino(), "hardlink across layers shares the inode");
    assert_eq!(m("orig").ino(), m("etc/hl").ino());
}

#[test]
fn overlay_layers_use_overlay_whiteouts() {
    let t = scratch("layers-ovl");
    let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
    fs::create_dir(&l1).unwrap();
    fs::create_dir(&l2).unwrap();
    let ls = layers();
    apply_layer(&l1, &mut &ls[0][..], &Mode::Overlay { lowers: vec![] }).unwrap();
    apply_layer(&l2, &mut &ls[1][..], &Mode::Overlay { lowers: vec![l1.clone()] }).unwrap();
    let wh = fs::symlink_metadata(l2.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout becomes a 0:0 char device");
    assert!(!l2.join("fresh").metadata().unwrap().file_type().is_char_device());
    let x = strata_image::apply::fsops::lxattrs(&l2.join("opq")).unwrap();
    assert!(x.contains(&("trusted.overlay.opaque".into(), b"y".to_vec())));
    assert!(l2.join("usr/lib/libx.so").is_file() && !l2.join("lib").exists());
    assert_eq!(fs::read_to_string(l2.join("orig")).unwrap(), "shared content", "cross-layer hardlink target copied up");
}

#[test]
fn overlay_view_equals_flat_tree() {
    let t = scratch("layers-both");
    let layout = t.path().join("img");
    for (tag, c) in [("gz", Compression::Gzip), ("zst", Compression::Zstd), ("tar", Compression::None)] {
        image(&layout, tag, &layers(), c, |_| {});
    }
    let store = t.path().join("store");
    let flat = t.path().join("flat");
    let ovl = t.path().join("ovl");
    let _g = BundleGuard(ovl.clone());
    bundle::unpack(&Reference::parse(&format!("{}:zst", layout.display())).unwrap(), &flat, &UnpackOptions::default())
        .unwrap();
    let opts = UnpackOptions { overlay: true, store: store.clone(), ..Default::default() };
    bundle::unpack(&Reference::parse(&format!("{}:gz", layout.display())).unwrap(), &ovl, &opts).unwrap();
    check(&flat.join("rootfs"));
    check(&ovl.join("rootfs"));
    let mut a = walk(&flat.join("rootfs"));
    let mut b = walk(&ovl.join("rootfs"));
    // Hardlinks across layers cannot share an inode between overlay lowers.
    for m in [&mut a, &mut b] {
        for n in m.values_mut() {
            n.links.clear();
        }
    }
    assert_eq!(a, b);
    // Plain tar layers have the same diff_ids: the store extracts nothing new.
    let before = fs::read_dir(store.join("layers/sha256")).unwrap().count();
    let ovl2 = t.path().join("ovl2");
    let _g2 = BundleGuard(ovl2.clone());
    bundle::unpack(&Reference::parse(&format!("{}:tar", layout.display())).unwrap(), &ovl2, &opts).unwrap();
    assert_eq!(before, fs::read_dir(store.join("layers/sha256")).unwrap().count());
    // Writes go to the bundle's upper dir, never to the shared layers.
    fs::write(ovl2.join("rootfs/etc/passwd"), "changed").unwrap();
    fs::remove_file(ovl2.join("rootfs/suid")).unwrap();
    assert_eq!(fs::read_to_string(ovl.join("rootfs/etc/passwd")).unwrap().lines().count(), 2);
    assert_eq!(fs::read_to_string(ovl2.join("overlay/upper/etc/passwd")).unwrap(), "changed");
    bundle::remove(&ovl2).unwrap();
    assert!(!ovl2.exists());
}

#[test]
fn more_layers_than_one_mount_option_string_can_name() {
    let t = scratch("many");
    let layout = t.path().join("img");
    let ls: Vec<Vec<u8>> =
        (0..40).map(|i| tar(&[file(&format!("f{i}"), &i.to_string()), file("top", &i.to_string())])).collect();
    image(&layout, "many", &ls, Compression::None, |_| {});
    let store = t.path().join(format!("store-{}", "x".repeat(80)));
    let b = t.path().join("b");
    let _g = BundleGuard(b.clone());
    let opts = UnpackOptions { overlay: true, store, ..Default::default() };
    let meta = bundle::unpack(&Reference::parse(&format!("{}:many", layout.display())).unwrap(), &b, &opts).unwrap();
    let joined: usize = meta.lowers.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(joined > 4096, "the lowerdir string must exceed a page for this test");
    assert_eq!(fs::read_to_string(b.join("rootfs/top")).unwrap(), "39");
    assert_eq!(fs::read_to_string(b.join("rootfs/f0")).unwrap(), "0");
    bundle::remove(&b).unwrap();
}
