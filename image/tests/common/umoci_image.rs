//! A real two-layer image made with umoci from a busybox rootfs, holding what
//! layer application has to get right: files owned by other uids and gids,
//! setuid/sticky/setgid modes (also on a file a chown must not strip them
//! from), a root-group file in a setgid directory, device nodes and a fifo, hardlinks (within and
//! across layers), a security.capability and a user.* xattr, a read-only
//! directory written into by the next layer, and whiteouts (files, directories,
//! a type change both ways). Needs umoci and busybox-static (hack/apt-packages).

use super::Node;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

pub fn sh(script: &str, dir: &Path) {
    let out = Command::new("bash").arg("-euc").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
}

fn setxattr(p: &Path, k: &str, v: &[u8]) {
    let f = fs::File::open(p).unwrap();
    use std::os::fd::AsFd;
    strata_image::apply::fsops::fsetxattr(f.as_fd(), k, v).unwrap();
}

/// Builds the image as the layout `dir/img`, tag `t`; returns the reference.
pub fn build(dir: &Path) -> String {
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    sh("umoci init --layout img && umoci new --image img:t && umoci unpack --image img:t work >/dev/null && rm -rf work/rootfs", dir);
    sh(&format!("{} work/rootfs >/dev/null", hack.display()), dir);
    let r = dir.join("work/rootfs");
    sh("cd work/rootfs && mkdir -p opt/app/sub srv/old usr/share/doc && echo data > opt/app/sub/f && echo old > srv/old/x \
        && echo doc > usr/share/doc/readme && ln usr/share/doc/readme usr/share/doc/readme.hl \
        && install -m 4755 /dev/null usr/bin/suidprog && mkdir -m 1777 scratch && mkdir -m 2775 shared && chgrp 1000 shared \
        && mknod dev/null c 1 3 && mknod dev/sda b 8 0 && mkfifo run.fifo && echo u > home/user/own && chown 1000:1000 home/user/own \
        && chmod 600 home/user/own && ln -s ../opt/app etc/app-link && touch replaced-dir && mkdir replaced-file && echo r > replaced-file/x \
        && mkdir sealed && echo s > sealed/first && chmod 555 sealed && echo g > group-only && chown 0:42 group-only \
        && install -m 6755 -o 1000 -g 1000 /dev/null usr/bin/sgid-user && echo in > shared/root-file && chgrp 0 shared/root-file", dir);
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
        && echo later > sealed/second && chown 7:0 sealed/second \
        && cd ../.. && umoci repack --image img:t work && rm -rf work", dir);
    format!("{}:t", dir.join("img").display())
}

/// The first few paths where two walked trees differ: (path, left, right).
pub fn differences<'a>(
    left: &'a BTreeMap<String, Node>,
    right: &'a BTreeMap<String, Node>,
) -> Vec<(&'a String, Option<&'a Node>, Option<&'a Node>)> {
    left.keys()
        .chain(right.keys())
        .filter(|k| left.get(*k) != right.get(*k))
        .map(|k| (k, left.get(k), right.get(k)))
        .take(5)
        .collect()
}
