//! The unpack progress bar: drawn on stderr when it is a terminal (a pty from
//! util-linux `script`), nothing at all otherwise.

mod common;
use common::*;
use std::process::Command;
use strata_image::writer::Compression;

#[test]
fn progress_bar_only_on_a_terminal() {
    let t = scratch("progress");
    let img = t.path().join("img");
    image(&img, "t", &[tar(&[file("a", &"a".repeat(300_000))]), tar(&[file("b", "b")])], Compression::Gzip, |_| {});
    let image_ref = format!("{}:t", img.display());
    let store = t.path().join("store");
    let b1 = t.path().join("b1");
    let _g = (BundleGuard(b1.clone()), BundleGuard(t.path().join("b2")));

    let out = Command::new(bin())
        .args(["unpack", "--overlay", "--store", store.to_str().unwrap(), "--image", &image_ref, b1.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty() && out.stdout.is_empty(),
        "quiet without a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    if Command::new("script").arg("--version").output().is_err() {
        strata_integration::skip(file!(), "the terminal part: no `script` (util-linux)");
        return;
    }
    let cmd = format!(
        "{} unpack --overlay --store {} --image {} {}",
        bin().display(),
        store.display(),
        image_ref,
        t.path().join("b2").display()
    );
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("layer 1/2 sha256:") && shown.contains("layer 2/2 sha256:"), "{shown}");
    assert!(shown.contains("cached") && !shown.contains("extracted"), "b2 reuses b1's layers: {shown}");
    assert!(shown.contains('['), "a bar is drawn: {shown}");
}
