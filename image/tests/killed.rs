//! A `strata-image unpack` killed with SIGKILL leaves its staging dir (and a
//! half-extracted store layer) behind; the next unpack beside it, or `gc` of
//! the store it was registered in, removes them (and unmounts a staging
//! rootfs still mounted). The layer blob is
//! swapped for a FIFO so the test controls how far the unpack gets.

mod common;
use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use strata_image::writer::Compression;

fn cli(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn staging_dirs(parent: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".strata-image-"))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// An image of one uncompressed layer of 64 files of 64 KiB; returns (reference, layer blob path, its bytes).
fn layered_image(at: &Path) -> (String, PathBuf, Vec<u8>) {
    let mut entries = vec![dir("data")];
    for i in 0..64 {
        entries.push(file(&format!("data/f{i:02}"), &"x".repeat(64 << 10)));
    }
    let layer = tar(&entries);
    let img = at.join("img");
    image(&img, "v1", std::slice::from_ref(&layer), Compression::None, |_| {});
    let blob = img.join("blobs/sha256").join(&strata_image::digest::of_bytes(&layer)["sha256:".len()..]);
    assert!(blob.is_file());
    (format!("{}:v1", img.display()), blob, layer)
}

/// Starts `strata-image ARGS` reading the layer from a FIFO, feeds it half the
/// layer, waits until files appear in the staging rootfs, and kills it.
fn kill_mid_unpack(args: &[&str], blob: &Path, layer: &[u8], parent: &Path) {
    fs::remove_file(blob).unwrap();
    nix::unistd::mkfifo(blob, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut w = fs::OpenOptions::new().write(true).open(blob).unwrap();
    w.write_all(&layer[..layer.len() / 2]).unwrap();
    let start = Instant::now();
    loop {
        let extracted = fs::read_dir(parent).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(".strata-image-")
                && fs::read_dir(e.path().join("rootfs")).is_ok_and(|mut d| d.next().is_some())
        }) || walk_dir_has(parent, "f00");
        if extracted {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "unpack never started extracting");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(w);
    fs::remove_file(blob).unwrap();
    fs::write(blob, layer).unwrap();
}

/// Whether a file named `name` exists anywhere below `dir` (the store's temp extraction).
fn walk_dir_has(dir: &Path, name: &str) -> bool {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name() == name || (e.file_type().is_ok_and(|t| t.is_dir()) && walk_dir_has(&e.path(), name)))
}

#[test]
fn a_killed_flatten_unpack_is_swept_by_the_next_unpack() {
    let t = scratch("killed-flat");
    let (r, blob, layer) = layered_image(t.path());
    let parent = t.path().join("bundles");
    fs::create_dir(&parent).unwrap();
    let b1 = parent.join("b1");
    kill_mid_unpack(&["unpack", "--image", &r, b1.to_str().unwrap()], &blob, &layer, &parent);
    assert_eq!(staging_dirs(&parent).len(), 1, "the kill left a staging dir (else the test proves nothing)");
    assert!(!b1.exists());

    let b2 = parent.join("b2");
    ok(&cli(&["unpack", "--image", &r, b2.to_str().unwrap()]), "unpack after the kill");
    assert_eq!(staging_dirs(&parent), Vec::<PathBuf>::new(), "the stale staging dir is gone");
    assert_eq!(fs::read(b2.join("rootfs/data/f63")).unwrap().len(), 64 << 10);
}

#[test]
fn a_killed_overlay_unpack_is_swept_by_gc() {
    let t = scratch("killed-ovl");
    let (r, blob, layer) = layered_image(t.path());
    let parent = t.path().join("bundles");
    fs::create_dir(&parent).unwrap();
    let store = t.path().join("store");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let b1 = parent.join("b1");
    kill_mid_unpack(&["unpack", "--overlay", "--store", &s(&store), "--image", &r, &s(&b1)], &blob, &layer, t.path());
    let left = staging_dirs(&parent);
    assert_eq!(left.len(), 1, "the kill left a staging dir");

    let dry = ok(&cli(&["gc", "--dry-run", "--store", &s(&store)]), "gc --dry-run");
    assert!(dry.contains(&format!("would remove {}", left[0].display())), "{dry}");
    assert!(dry.contains("would remove 1 layers"), "the half-extracted layer: {dry}");
    assert!(left[0].exists(), "a dry run removes nothing");
    let done = ok(&cli(&["gc", "--store", &s(&store)]), "gc");
    assert!(done.contains(&format!("removed {}", left[0].display())), "{done}");
    assert_eq!(staging_dirs(&parent), Vec::<PathBuf>::new());
    assert!(!walk_dir_has(&store, "f00"), "the half-extracted layer is gone too");
    assert_eq!(fs::read_dir(store.join("bundles")).map(|d| d.count()).unwrap_or(0), 0, "the registration is dropped");
}

#[test]
fn a_killed_overlay_unpack_is_swept_by_the_next_unpack() {
    let t = scratch("killed-ovl-next");
    let (r, blob, layer) = layered_image(t.path());
    let parent = t.path().join("bundles");
    fs::create_dir(&parent).unwrap();
    let store = t.path().join("store");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    kill_mid_unpack(
        &["unpack", "--overlay", "--store", &s(&store), "--image", &r, &s(&parent.join("b1"))],
        &blob,
        &layer,
        t.path(),
    );
    let half: Vec<_> = fs::read_dir(store.join("layers/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(
        half.len() == 1 && half[0].to_string_lossy().starts_with(".tmp-"),
        "the kill left a half extraction: {half:?}"
    );
    assert_eq!(staging_dirs(&parent).len(), 1);

    let b2 = parent.join("b2");
    let _g = BundleGuard(b2.clone());
    ok(&cli(&["unpack", "--overlay", "--store", &s(&store), "--image", &r, &s(&b2)]), "unpack after the kill");
    assert_eq!(staging_dirs(&parent), Vec::<PathBuf>::new(), "the staging dir is gone");
    let left: Vec<_> = fs::read_dir(store.join("layers/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.len() == 1 && !left[0].to_string_lossy().starts_with('.'), "only the finished layer: {left:?}");
    assert_eq!(fs::read(b2.join("rootfs/data/f63")).unwrap().len(), 64 << 10);
}

#[test]
fn a_stale_staging_rootfs_still_mounted_is_unmounted_and_removed() {
    let t = scratch("killed-mounted");
    let (r, _, _) = layered_image(t.path());
    let parent = t.path().join("bundles");
    // As an overlay unpack killed while its staging rootfs was mounted leaves it:
    // a pid above pid_max never runs.
    let stale = parent.join(".strata-image-4194305-1-abcdef");
    fs::create_dir_all(stale.join("rootfs")).unwrap();
    nix::mount::mount(Some("tmpfs"), &stale.join("rootfs"), Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>)
        .unwrap();
    let _cleanup = BundleGuard(stale.clone());
    fs::write(stale.join("rootfs/inside"), "x").unwrap();
    ok(&cli(&["unpack", "--image", &r, parent.join("b").to_str().unwrap()]), "unpack");
    assert!(!stale.exists(), "the stale staging dir is gone");
    assert!(common::run::mounts_under(t.path()).is_empty(), "and its mount");
}
