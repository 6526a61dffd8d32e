//! Commit of flatten bundles: the rootfs is diffed against the tree recorded at
//! unpack. The new layer holds exactly the changes (new/changed entries,
//! `.wh.NAME` for deletions, an opaque marker where a directory was made again),
//! and the committed image unpacks, both ways, to the modified tree.

mod common;
use common::*;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::commit::{commit, CommitOptions};
use strata_image::reference::Reference;
use strata_image::writer::Compression;
use strata_image::{image, platform::PlatformSpec};

/// (name, entry type) of every entry of the image's top layer.
fn top_layer_entries(r: &Reference) -> Vec<(String, tar::EntryType)> {
    let img = image::open(r, &PlatformSpec::host()).unwrap();
    image::with_layer(img.layers.last().unwrap(), |rd| {
        let mut ar = tar::Archive::new(rd);
        Ok(ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string(), e.header().entry_type())
            })
            .collect())
    })
    .unwrap()
}

fn base_image(at: &Path) -> String {
    let layers = [
        tar(&[
            dir("etc"),
            file("etc/motd", "hi"),
            dir("data"),
            file("data/a", "a"),
            file("data/b", "b"),
            file("gone", "x"),
            dir("keep"),
            file("keep/same", "s"),
            file("keep/x", "x").mode(0o644),
            file("keep/own", "o"),
            dir("replaced-dir"),
            file("replaced-dir/old1", "1"),
        ]),
        tar(&[
            file("replaced-dir/old2", "2"),
            file("file-to-dir", "f"),
            dir("dir-to-file"),
            file("dir-to-file/y", "y"),
            symlink("keep/link", "same"),
            file("odd name\twith%tab", "t"),
        ]),
    ];
    image(&at.join("img"), "base", &layers, Compression::Gzip, |_| {});
    format!("{}:base", at.join("img").display())
}

#[test]
fn unchanged_flatten_bundle_commits_an_empty_layer() {
    let t = scratch("flatcommit-empty");
    let base = base_image(t.path());
    let b = t.path().join("b");
    bundle::unpack(&Reference::parse(&base).unwrap(), &b, &UnpackOptions::default()).unwrap();
    let dest = Reference::parse(&format!("{}:same", t.path().join("img").display())).unwrap();
    commit(&b, &dest, &CommitOptions::default()).unwrap();
    assert_eq!(top_layer_entries(&dest), vec![], "nothing changed, nothing in the layer");
}

#[test]
fn flatten_commit_holds_exactly_the_changes() {
    let t = scratch("flatcommit");
    let base = base_image(t.path());
    let b = t.path().join("b");
    bundle::unpack(&Reference::parse(&base).unwrap(), &b, &UnpackOptions::default()).unwrap();
    assert!(b.join(strata_image::flatdiff::TREE_FILE).is_file());
    let r = b.join("rootfs");
    fs::write(r.join("etc/motd"), "changed").unwrap();
    fs::remove_file(r.join("gone")).unwrap();
    fs::remove_dir_all(r.join("data")).unwrap();
    fs::remove_dir_all(r.join("replaced-dir")).unwrap();
    fs::create_dir(r.join("replaced-dir")).unwrap();
    fs::write(r.join("replaced-dir/new"), "n").unwrap();
    fs::remove_file(r.join("file-to-dir")).unwrap();
    fs::create_dir(r.join("file-to-dir")).unwrap();
    fs::write(r.join("file-to-dir/z"), "z").unwrap();
    fs::remove_dir_all(r.join("dir-to-file")).unwrap();
    fs::write(r.join("dir-to-file"), "now a file").unwrap();
    fs::set_permissions(r.join("keep/x"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::lchown(r.join("keep/own"), Some(1000), Some(1000)).unwrap();
    let f = fs::File::open(r.join("keep/same")).unwrap();
    strata_image::apply::fsops::fsetxattr(f.as_fd(), "user.note", b"v").unwrap();
    fs::write(r.join("new"), "new").unwrap();
    fs::hard_link(r.join("new"), r.join("new2")).unwrap();
    fs::remove_file(r.join("odd name\twith%tab")).unwrap();

    let dest = Reference::parse(&format!("{}:committed", t.path().join("img").display())).unwrap();
    commit(&b, &dest, &CommitOptions { message: Some("flat".into()), ..Default::default() }).unwrap();

    let entries = top_layer_entries(&dest);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "etc/motd",
        ".wh.gone",
        ".wh.data",
        "replaced-dir",
        "replaced-dir/.wh..wh..opq",
        "replaced-dir/new",
        "file-to-dir",
        "file-to-dir/z",
        "dir-to-file",
        "keep/x",
        "keep/own",
        "keep/same",
        "new",
        "new2",
        ".wh.odd name\twith%tab",
    ] {
        assert!(names.contains(&want), "{want:?} missing from the layer: {names:?}");
    }
    for unwanted in ["data/.wh.a", "data/a", "keep/link", "replaced-dir/.wh.old1", "dir-to-file/.wh.y", "etc"] {
        assert!(!names.contains(&unwanted), "{unwanted:?} should not be in the layer: {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.contains(".wh.")).count(), 4, "{names:?}");
    let kind = |n: &str| entries.iter().find(|(e, _)| e == n).unwrap().1;
    assert_eq!(kind("new2"), tar::EntryType::Link, "a hardlink stays a hardlink");
    assert_eq!(kind("dir-to-file"), tar::EntryType::Regular);

    let want = walk(&r);
    let flat = t.path().join("flat");
    bundle::unpack(&dest, &flat, &UnpackOptions::default()).unwrap();
    assert_eq!(walk(&flat.join("rootfs")), want, "flatten unpack of the commit = the modified rootfs");
    let ovl = t.path().join("ovl");
    let _g = BundleGuard(ovl.clone());
    bundle::unpack(&dest, &ovl, &UnpackOptions { overlay: true, store: t.path().join("store"), ..Default::default() })
        .unwrap();
    assert_eq!(walk(&ovl.join("rootfs")), want, "overlay view of the commit = the modified rootfs");
    bundle::remove(&ovl).unwrap();
}

#[test]
fn flatten_bundle_without_tree_record_is_refused_naming_the_file() {
    let t = scratch("flatcommit-old");
    let base = base_image(t.path());
    let b = t.path().join("b");
    bundle::unpack(&Reference::parse(&base).unwrap(), &b, &UnpackOptions::default()).unwrap();
    fs::remove_file(b.join(strata_image::flatdiff::TREE_FILE)).unwrap();
    let dest = Reference::parse(&format!("{}:x", t.path().join("img").display())).unwrap();
    let err = commit(&b, &dest, &CommitOptions::default()).unwrap_err().to_string();
    assert!(err.contains(strata_image::flatdiff::TREE_FILE) && !err.contains('\n'), "{err}");
}
