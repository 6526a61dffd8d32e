//! The flatten tree (and the overlay view) of a real multi-layer image built
//! with umoci from a busybox rootfs equals what `umoci unpack` produces:
//! names, types, modes, owners, sizes, contents, link targets, xattrs and
//! hardlink groups. Needs umoci and busybox-static (hack/apt-packages).

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn sh(script: &str, dir: &Path) {
    let out = Command::new("bash").arg("-euc").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
}

fn setxattr(p: &Path, k: &str, v: &[u8]) {
    let f = fs::File::open(p).unwrap();
    use std::os::fd::AsFd;
    strata_image::apply::fsops::fsetxattr(f.as_fd(), k, v).unwrap();
}

#[test]
fn flatten_and_overlay_match_umoci_unpack() {
    let t = scratch("umoci");
    let dir = t.path();
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    sh("umoci init --layout img && umoci new --image img:t && umoci unpack --image img:t work >/dev/null && rm -rf work/rootfs", dir);
    sh(&format!("{} work/rootfs >/dev/null", hack.display()), dir);
    let r = dir.join("work/rootfs");
    sh("cd work/rootfs && mkdir -p opt/app/sub srv/old usr/share/doc && echo data > opt/app/sub/f && echo old > srv/old/x \
        && echo doc > usr/share/doc/readme && ln usr/share/doc/readme usr/share/doc/readme.hl \
        && install -m 4755 /dev/null usr/bin/suidprog && mkdir -m 1777 scratch && mkdir -m 2775 shared && chgrp 1000 shared \
        && mknod dev/null c 1 3 && mknod dev/sda b 8 0 && mkfifo run.fifo && echo u > home/user/own && chown 1000:1000 home/user/own \
        && chmod 600 home/user/own && ln -s ../opt/app etc/app-link && touch replaced-dir && mkdir replaced-file && echo r > replaced-file/x", dir);
    setxattr(&r.join("opt/app/sub/f"), "user.origin", b"layer1");
    setxattr(
        &r.join("usr/bin/suidprog"),
        "security.capability",
        &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    fs::set_permissions(r.join("usr/bin/suidprog"), fs::Permissions::from_mode(0o4755)).unwrap();
    sh("umoci repack --image img:t work && rm -rf work", dir);
    sh("umoci unpack --image img:t work >/dev/null && cd work/rootfs && rm -rf srv/old bin/vi && rm replaced-dir && mkdir replaced-dir \
        && echo d > replaced-dir/in && rm -rf replaced-file && echo now-file > replaced-file && rm -rf opt/app/sub && mkdir opt/app/sub \
        && echo fresh > opt/app/sub/g && ln bin/busybox usr/bin/bb-hardlink && chmod 700 home/user && echo changed > etc/hostname \
        && cd ../.. && umoci repack --image img:t work && rm -rf work", dir);
    sh("umoci unpack --image img:t theirs >/dev/null", dir);
    let bin = bin();
    let ours = dir.join("ours");
    let status = Command::new(&bin)
        .args(["unpack", "--image"])
        .arg(format!("{}:t", dir.join("img").display()))
        .arg(&ours)
        .status()
        .unwrap();
    assert!(status.success());
    let ovl = dir.join("ovl");
    let _g = BundleGuard(ovl.clone());
    let status = Command::new(&bin)
        .args(["unpack", "--overlay", "--store"])
        .arg(dir.join("store"))
        .arg("--image")
        .arg(format!("{}:t", dir.join("img").display()))
        .arg(&ovl)
        .status()
        .unwrap();
    assert!(status.success());

    let theirs = walk(&dir.join("theirs/rootfs"));
    let flat = walk(&ours.join("rootfs"));
    assert!(theirs.len() > 300, "busybox rootfs expected");
    let diff: Vec<_> = theirs
        .keys()
        .chain(flat.keys())
        .filter(|k| theirs.get(*k) != flat.get(*k))
        .map(|k| (k, theirs.get(k), flat.get(k)))
        .take(5)
        .collect();
    assert!(diff.is_empty(), "flatten differs from umoci: {diff:#?}");

    let mut view = walk(&ovl.join("rootfs"));
    let mut theirs = theirs;
    for m in [&mut view, &mut theirs] {
        for n in m.values_mut() {
            n.links.clear(); // hardlinks across overlay lowers are copies
        }
    }
    let diff: Vec<_> = theirs
        .keys()
        .chain(view.keys())
        .filter(|k| theirs.get(*k) != view.get(*k))
        .map(|k| (k, theirs.get(k), view.get(k)))
        .take(5)
        .collect();
    assert!(diff.is_empty(), "overlay view differs from umoci: {diff:#?}");

    let status = Command::new(&bin).arg("remove").arg(&ovl).status().unwrap();
    assert!(status.success());
    assert!(!ovl.exists());
}
