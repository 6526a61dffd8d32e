//! Image in, container out, and back: a busybox image unpacked both ways runs under
//! `strata run`; what the container writes into its overlay bundle is committed,
//! unpacked again and run again; the committed image loads and runs in podman,
//! and containerd's `ctr image import` accepts and unpacks it.
//! Needs the `strata` binary (hack/test builds every bin first; `$STRATA_BIN`
//! overrides), busybox-static, and podman + runc for the last part.

mod common;
use common::run::{self, ok, Host};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn image_cli(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn unpack_run_commit_unpack_run_and_podman() {
    let Some(strata) = run::strata_bin() else {
        strata_integration::skip(file!(), "no strata binary (build it: cargo build -p strata, or set STRATA_BIN)");
        return;
    };
    let t = scratch("e2e");
    let dir = t.path();
    let mut host = Host::new(dir, strata, "e2e");
    let pid = std::process::id();

    let rootfs = dir.join("rootfs");
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    assert!(Command::new(hack).arg(&rootfs).status().unwrap().success(), "hack/busybox-rootfs");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(dir.join("rootfs.tar"))
        .arg(".")
        .status()
        .unwrap()
        .success());
    let base = format!("{}:base", dir.join("img").display());
    ok(&image_cli(&["import", "--image", &base, s(&dir.join("rootfs.tar"))]), "import");

    // Flatten: a plain copy runs as is.
    let flat = dir.join("flat");
    ok(
        &image_cli(&[
            "unpack",
            "--image",
            &base,
            s(&flat),
            "--",
            "sh",
            "-c",
            "echo hello from $(id -un) in $(pwd); echo f > /flat-written",
        ]),
        "unpack flatten",
    );
    let out = host.run(&flat, &format!("e2e-{pid}-flat"));
    ok(&out, "strata run (flatten)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from root in /\n");
    // A flatten bundle commits too: the diff of its rootfs against the unpacked image.
    let flat_committed = format!("{}:flat-committed", dir.join("img").display());
    ok(&image_cli(&["commit", s(&flat), "--image", &flat_committed]), "commit flatten");
    let flat2 = dir.join("flat2");
    ok(&image_cli(&["unpack", "--image", &flat_committed, s(&flat2)]), "unpack flatten commit");
    assert_eq!(fs::read_to_string(flat2.join("rootfs/flat-written")).unwrap(), "f\n");
    assert_eq!(walk(&flat2.join("rootfs")), walk(&flat.join("rootfs")));

    // Overlay: the container's writes land in the bundle's upper dir only.
    let ovl = dir.join("ovl");
    let store = dir.join("store");
    let script =
        "echo written > /written && mkdir -p /data/sub && echo deep > /data/sub/f && rm /etc/group && echo ovl-ok";
    ok(
        &image_cli(&["unpack", "--overlay", "--store", s(&store), "--image", &base, s(&ovl), "--", "sh", "-c", script]),
        "unpack --overlay",
    );
    let out = host.run(&ovl, &format!("e2e-{pid}-ovl"));
    ok(&out, "strata run (overlay)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ovl-ok\n");
    let upper = ovl.join("overlay/upper");
    assert_eq!(fs::read_to_string(upper.join("written")).unwrap(), "written\n");
    assert_eq!(fs::read_to_string(ovl.join("rootfs/data/sub/f")).unwrap(), "deep\n");
    assert!(!ovl.join("rootfs/etc/group").exists(), "deleted in the union view");
    let layer = fs::read_dir(store.join("layers/sha256")).unwrap().next().unwrap().unwrap().path();
    assert!(layer.join("etc/group").exists() && !layer.join("written").exists(), "the shared layer is untouched");

    // Commit the read-write layer, unpack the new image and run it.
    let committed = format!("{}:committed", dir.join("img").display());
    ok(&image_cli(&["commit", s(&ovl), "--image", &committed, "--message", "e2e"]), "commit");
    let again = dir.join("again");
    ok(
        &image_cli(&[
            "unpack",
            "--image",
            &committed,
            s(&again),
            "--",
            "sh",
            "-c",
            "cat /written /data/sub/f; test -e /etc/group || echo no-group",
        ]),
        "unpack committed",
    );
    assert_eq!(fs::read_to_string(again.join("rootfs/written")).unwrap(), "written\n");
    assert!(again.join("rootfs/bin/busybox").is_file());
    assert_eq!(walk(&again.join("rootfs")), walk(&ovl.join("rootfs")), "committed image = the container's view");
    let out = host.run(&again, &format!("e2e-{pid}-again"));
    ok(&out, "strata run (committed)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "written\ndeep\nno-group\n");
    ok(&image_cli(&["remove", s(&ovl)]), "remove overlay bundle");
    assert!(!ovl.exists());

    if Command::new("podman").arg("--version").output().is_err() {
        strata_integration::skip(file!(), "podman part: podman not installed");
        return;
    }
    let archive = dir.join("committed.tar");
    ok(&image_cli(&["save", &committed, "--archive", "--tag", "e2e-committed", "-o", s(&archive)]), "save");
    let pm = dir.join("podman");
    let out = run::podman(&pm, &host.cgroup_parent, &["load", "-i", s(&archive)]);
    ok(&out, "podman load");
    let loaded = String::from_utf8_lossy(&out.stdout);
    let name = loaded
        .lines()
        .find_map(|l| l.split_once(": ").map(|(_, n)| n.trim().to_string()))
        .expect("podman load names the image");
    assert_eq!(name, "localhost/img:e2e-committed", "the name save gave it, not the tag taken as a name");
    let out = run::podman(
        &pm,
        &host.cgroup_parent,
        &["run", "--rm", &name, "sh", "-c", "cat /written /data/sub/f; test -e /etc/group || echo no-group"],
    );
    ok(&out, "podman run of the committed image");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "written\ndeep\nno-group\n");
    let out = run::podman(&pm, &host.cgroup_parent, &["history", "--format", "{{.Comment}}", &name]);
    ok(&out, "podman history");
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "e2e"), "commit message in podman's history");

    if Command::new("containerd").arg("--version").output().is_ok() {
        let c = run::Containerd::start(&dir.join("containerd"));
        let out = c.ctr(&["image", "import", s(&archive)]);
        ok(&out, "ctr image import");
        let out = c.ctr(&["image", "check"]);
        ok(&out, "ctr image check");
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("localhost/img:e2e-committed "))
            .map(str::to_string);
        let line = line.expect("ctr lists the imported image by the name save gave it");
        assert!(
            line.contains("complete (3/3)") && line.trim_end().ends_with("true"),
            "config and both layers present, unpacked: {line}"
        );
    } else {
        strata_integration::skip(file!(), "containerd part: containerd not installed");
    }
    drop(host);
    assert!(run::mounts_under(dir).is_empty(), "no mount left");
}
