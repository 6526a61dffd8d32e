//! Crafted layers that try to write outside the target. Each must be refused
//! or contained: nothing outside `root/` changes.

mod common;
use common::*;
use std::fs;
use std::path::Path;
use strata_image::apply::{apply_layer, Mode};

struct Sandbox {
    _t: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn sandbox() -> Sandbox {
    let t = scratch("escape");
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), "original").unwrap();
    Sandbox { root, outside, _t: t }
}

fn apply(root: &Path, entries: &[E]) -> strata_image::Result<strata_image::apply::Stats> {
    apply_layer(root, &mut &tar(entries)[..], &Mode::Flatten)
}

fn both_modes(root: &Path, entries: &[E]) -> Vec<strata_image::Result<strata_image::apply::Stats>> {
    let r1 = apply(root, entries);
    let r2 = {
        let o = root.with_file_name("overlay-layer");
        fs::create_dir_all(&o).unwrap();
        apply_layer(&o, &mut &tar(entries)[..], &Mode::Overlay { lowers: vec![] })
    };
    vec![r1, r2]
}

/// Everything under `outside` is as the sandbox made it.
fn untouched(s: &Sandbox) {
    let names: Vec<_> = fs::read_dir(&s.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("victim")], "new files appeared outside the root");
    assert_eq!(fs::read_to_string(s.outside.join("victim")).unwrap(), "original");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(s.outside.join("victim")).unwrap().nlink(), 1, "victim was hardlinked");
    assert!(!s.root.parent().unwrap().join("escaped").exists());
}

#[test]
fn dotdot_names_are_clamped_to_the_root() {
    let s = sandbox();
    apply(&s.root, &[file("../../escaped", "x"), file("a/../../../outside/victim", "pwned")]).unwrap();
    untouched(&s);
    assert_eq!(fs::read_to_string(s.root.join("escaped")).unwrap(), "x");
    assert_eq!(fs::read_to_string(s.root.join("outside/victim")).unwrap(), "pwned");
}

#[test]
fn absolute_names_land_inside() {
    let s = sandbox();
    let abs = s.outside.join("victim");
    for r in both_modes(&s.root, &[file(abs.to_str().unwrap(), "pwned")]) {
        r.unwrap();
    }
    untouched(&s);
    let inside = s.root.join(abs.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside).unwrap(), "pwned");
}

#[test]
fn symlinked_parent_is_resolved_inside_the_root() {
    let s = sandbox();
    let out = s.outside.to_str().unwrap().to_string();
    for r in both_modes(
        &s.root,
        &[symlink("up", "../../.."), symlink("abs", &out), file("up/escaped", "x"), file("abs/victim", "pwned")],
    ) {
        r.unwrap();
    }
    untouched(&s);
    // `up` resolves to the root itself, `abs` to the same path inside it.
    assert_eq!(fs::read_to_string(s.root.join("escaped")).unwrap(), "x");
    assert_eq!(fs::read_to_string(s.root.join(s.outside.strip_prefix("/").unwrap()).join("victim")).unwrap(), "pwned");
}

#[test]
fn file_entry_replaces_a_symlink_instead_of_writing_through_it() {
    let s = sandbox();
    let victim = s.outside.join("victim");
    for r in both_modes(&s.root, &[symlink("f", victim.to_str().unwrap()), file("f", "pwned").mode(0o777)]) {
        r.unwrap();
    }
    untouched(&s);
    assert!(fs::symlink_metadata(s.root.join("f")).unwrap().is_file());
}

#[test]
fn metadata_of_a_symlink_entry_never_reaches_its_target() {
    let s = sandbox();
    let victim = s.outside.join("victim");
    use std::os::unix::fs::MetadataExt;
    let before = fs::metadata(&victim).unwrap();
    apply(&s.root, &[symlink("l", victim.to_str().unwrap()).owner(1234, 1234).xattr("user.x", b"y")]).unwrap();
    let after = fs::metadata(&victim).unwrap();
    assert_eq!((before.uid(), before.mode(), before.mtime()), (after.uid(), after.mode(), after.mtime()));
    untouched(&s);
}

#[test]
fn hardlinks_to_outside_are_refused() {
    let s = sandbox();
    let victim = s.outside.join("victim");
    let rel = format!("../../../../../../..{}", victim.display());
    for r in both_modes(&s.root, &[hardlink("h1", &rel)]) {
        assert!(r.is_err(), "hardlink through .. must not find a target");
    }
    for r in both_modes(&s.root, &[hardlink("h2", victim.to_str().unwrap())]) {
        assert!(r.is_err());
    }
    let out = s.outside.to_str().unwrap().to_string();
    for r in both_modes(&s.root, &[symlink("l", &out), hardlink("h3", "l/victim")]) {
        assert!(r.is_err());
    }
    untouched(&s);
}

#[test]
fn symlink_replaced_by_a_directory_across_layers() {
    let s = sandbox();
    let out = s.outside.to_str().unwrap().to_string();
    apply(&s.root, &[symlink("d", &out)]).unwrap();
    apply(&s.root, &[dir("d"), file("d/victim", "pwned")]).unwrap();
    untouched(&s);
    assert!(fs::symlink_metadata(s.root.join("d")).unwrap().is_dir());
    assert_eq!(fs::read_to_string(s.root.join("d/victim")).unwrap(), "pwned");
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    let s = sandbox();
    let out = s.outside.to_str().unwrap().to_string();
    apply(&s.root, &[symlink("l", &out)]).unwrap();
    apply(&s.root, &[file("l/.wh.victim", ""), file("l/.wh..wh..opq", ""), file("../.wh.outside", "")]).unwrap();
    untouched(&s);
}

#[test]
fn devices_and_dirs_through_symlinks_stay_inside() {
    let s = sandbox();
    let out = s.outside.to_str().unwrap().to_string();
    for r in both_modes(
        &s.root,
        &[symlink("l", &out), node("l/null", tar::EntryType::Char, 1, 3), dir("l/newdir").mode(0o777)],
    ) {
        let _ = r;
    }
    untouched(&s);
}
