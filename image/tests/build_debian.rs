//! `strata-image build` of a Debian Containerfile that installs a package with
//! apt from Debian's mirror (RUN with the host's network) against `buildah bud`
//! of the same file: the same tree and config, apart from the files apt and dpkg
//! stamp with the time of the run (listed in `STAMPED`).
//!
//! The base is the multi-layer Debian image hack/bench.d/debian-image caches in
//! hack/.cache/debian-layout (hack/test makes it before the tests; else the
//! debootstrap tar hack/.cache/debian-bookworm-minbase.tar, imported). Without
//! either, or without buildah, the test reports a skip: a debootstrap takes
//! minutes, too long to start from here.

mod common;
use common::run::{mounts_under, ok};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths whose content is the time of the build, not its result (measured: the
/// only paths that differed between the two builds): apt's binary package caches
/// (they embed the lists' mtimes), apt's and dpkg's logs (timestamped lines). And
/// apt's package lists, the mirror's indexes as of each fetch: equal unless the
/// mirror updates between the two builds, minutes apart.
const STAMPED: &[&str] = &[
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/dpkg.log",
    "var/lib/apt/lists/",
];

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        for m in mounts_under(self.0) {
            let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn sh(script: &str, dir: &Path) {
    let out = Command::new("bash").arg("-euc").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The Debian base as an OCI layout reference (`oci:DIR:TAG`), if one is cached.
fn debian_image(dir: &Path) -> Option<String> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/.cache");
    if cache.join("debian-layout.v1.done").exists() {
        return Some(format!("oci:{}:debian", cache.join("debian-layout").canonicalize().ok()?.display()));
    }
    let tar: PathBuf = cache.join("debian-bookworm-minbase.tar");
    if !tar.exists() {
        return None;
    }
    let image = format!("{}:debian", dir.join("base").display());
    ok(&Command::new(bin()).args(["import", "--image", &image]).arg(&tar).output().unwrap(), "import the Debian base");
    Some(format!("oci:{image}"))
}

#[test]
fn build_debian_apt_install_like_buildah_bud() {
    if Command::new("buildah").arg("--version").output().is_err() {
        strata_integration::skip(file!(), "buildah is not installed (apt-get install buildah)");
        return;
    }
    let t = scratch("build-debian");
    let dir = t.path();
    let _u = Unmount(dir);
    let Some(base) = debian_image(dir) else {
        strata_integration::skip(
            file!(),
            "no cached Debian image in hack/.cache (hack/bench.d/debian-image hack/.cache BIN makes it: a debootstrap, minutes)",
        );
        return;
    };
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // `hello`: one small package without dependencies beyond libc.
    std::fs::write(
        ctx.join("Containerfile"),
        "ARG BASE\nFROM $BASE\nRUN apt-get update && apt-get install -y --no-install-recommends hello\nCMD [\"hello\"]\n",
    )
    .unwrap();
    let cgroup_parent = format!("strata-image-test-{}-debian", std::process::id());
    let ours = format!("{}:apt", dir.join("ours").display());
    let out = Command::new(bin())
        .args(["build", "-q", "--network", "host", "-t", &ours, "--build-arg", &format!("BASE={base}"), "--store"])
        .arg(dir.join("store"))
        .args(["--cgroup-parent", &cgroup_parent])
        .arg(&ctx)
        .output()
        .unwrap();
    ok(&out, "strata-image build");

    let b = format!("buildah --root {0}/bs/root --runroot {0}/bs/runroot --storage-driver vfs", dir.display());
    let d = dir.display();
    sh(
        &format!("skopeo copy -q {base} 'containers-storage:[vfs@{d}/bs/root+{d}/bs/runroot]localhost/debian-base'"),
        dir,
    );
    sh(&format!("{b} bud -q --pull=never --network host --build-arg BASE=localhost/debian-base --runtime /usr/sbin/runc --isolation chroot -t apt {} >/dev/null && {b} push -q apt oci:{d}/theirs:apt && {b} rmi -a -f >/dev/null", ctx.display()), dir);

    for who in ["ours", "theirs"] {
        let out = Command::new(bin())
            .args(["unpack", "--image", &format!("{}:apt", dir.join(who).display())])
            .arg(dir.join(format!("{who}-apt")))
            .output()
            .unwrap();
        ok(&out, &format!("unpack {who}"));
    }
    let keep = |m: std::collections::BTreeMap<String, Node>| -> std::collections::BTreeMap<String, Node> {
        m.into_iter().filter(|(k, _)| !STAMPED.iter().any(|s| k.starts_with(s) || format!("{k}/") == *s)).collect()
    };
    let mine = keep(walk(&dir.join("ours-apt/rootfs")));
    let theirs = keep(walk(&dir.join("theirs-apt/rootfs")));
    assert!(mine.contains_key("usr/bin/hello"), "apt installed hello");
    let diff = buildah_tree_diff(&mine, theirs, 12);
    assert!(diff.is_empty(), "trees differ:\n{}", diff.join("\n"));
    let cfg = |who: &str| {
        let r = strata_image::reference::Reference::parse(&format!("{}:apt", dir.join(who).display())).unwrap();
        let img = strata_image::image::open(&r, &strata_image::platform::PlatformSpec::host()).unwrap();
        let c: serde_json::Value = serde_json::from_slice(&img.config_raw).unwrap();
        (c["config"]["Cmd"].clone(), c["config"]["Env"].clone(), c["rootfs"]["diff_ids"].as_array().unwrap().len())
    };
    assert_eq!(cfg("ours"), cfg("theirs"));
    for cg in common::run::cgroups_under(&cgroup_parent) {
        let _ = std::fs::remove_dir(cg);
    }
    assert!(mounts_under(dir).is_empty(), "mounts left: {:?}", mounts_under(dir));
}
