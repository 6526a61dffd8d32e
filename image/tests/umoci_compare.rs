//! The flatten tree (and the overlay view) of a real multi-layer image built
//! with umoci from a busybox rootfs equals what `umoci unpack` produces:
//! names, types, modes, owners, sizes, contents, link targets, xattrs and
//! hardlink groups. Needs umoci and busybox-static (hack/apt-packages).

mod common;
use common::umoci_image::{self, sh};
use common::*;
use std::process::Command;

#[test]
fn flatten_and_overlay_match_umoci_unpack() {
    let t = scratch("umoci");
    let dir = t.path();
    let image = umoci_image::build(dir);
    sh("umoci unpack --image img:t theirs >/dev/null", dir);
    let bin = bin();
    let ours = dir.join("ours");
    let status = Command::new(&bin).args(["unpack", "--image"]).arg(&image).arg(&ours).status().unwrap();
    assert!(status.success());
    let ovl = dir.join("ovl");
    let _g = BundleGuard(ovl.clone());
    let status = Command::new(&bin)
        .args(["unpack", "--overlay", "--store"])
        .arg(dir.join("store"))
        .arg("--image")
        .arg(&image)
        .arg(&ovl)
        .status()
        .unwrap();
    assert!(status.success());

    let theirs = walk(&dir.join("theirs/rootfs"));
    let flat = walk(&ours.join("rootfs"));
    assert!(theirs.len() > 300, "busybox rootfs expected");
    let diff = umoci_image::differences(&theirs, &flat);
    assert!(diff.is_empty(), "flatten differs from umoci: {diff:#?}");

    let mut view = walk(&ovl.join("rootfs"));
    let mut theirs = theirs;
    for m in [&mut view, &mut theirs] {
        for n in m.values_mut() {
            n.links.clear(); // hardlinks across overlay lowers are copies
        }
    }
    let diff = umoci_image::differences(&theirs, &view);
    assert!(diff.is_empty(), "overlay view differs from umoci: {diff:#?}");

    let status = Command::new(&bin).arg("remove").arg(&ovl).status().unwrap();
    assert!(status.success());
    assert!(!ovl.exists());
}
