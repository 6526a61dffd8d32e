//! Images built by buildah (containers-storage computes the layer diffs, not
//! umoci): a busybox base, a layer made in a mounted working container that
//! deletes a tree and files, remakes a directory, adds a hardlink and a tree,
//! a third that deletes what the second added and changes modes and owners.
//! Pushed as an OCI layout and as a docker-archive; `strata-image unpack` of
//! both equals `umoci unpack` of the layout. Needs buildah (skipped without).

mod common;
use common::run::mounts_under;
use common::*;
use std::path::Path;
use std::process::Command;

fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("bash").arg("-euc").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Unmounts whatever buildah left mounted under the scratch dir, even on failure.
struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        for m in mounts_under(self.0) {
            let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn buildah_images_unpack_like_umoci() {
    if Command::new("buildah").arg("--version").output().is_err() {
        strata_integration::skip(file!(), "buildah not installed (apt-get install buildah)");
        return;
    }
    let t = scratch("buildah");
    let dir = t.path();
    let _u = Unmount(dir);
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    sh(&format!("{} r >/dev/null && tar -C r -cf r.tar . && rm -rf r", hack.display()), dir);
    let b = format!("buildah --root {0}/bs/root --runroot {0}/bs/runroot --storage-driver vfs", dir.display());
    sh(&format!("c=$({b} from scratch) && {b} add $c r.tar / >/dev/null && {b} config --cmd /bin/sh $c && {b} commit -q $c l1 >/dev/null && {b} rm $c >/dev/null"), dir);
    sh(
        &format!(
            "c=$({b} from l1) && m=$({b} mount $c) && cd $m && rm -rf usr bin/vi etc/group home/user \
        && mkdir -p home/user/.config opt/tree/sub && echo cfg > home/user/.config/x && chown -R 1000:1000 home/user \
        && echo deep > opt/tree/sub/f && ln bin/busybox sbin/bb-hardlink && ln opt/tree/sub/f opt/tree/f-link \
        && cd / && {b} umount $c >/dev/null && {b} commit -q $c l2 >/dev/null && {b} rm $c >/dev/null"
        ),
        dir,
    );
    sh(&format!("c=$({b} from l2) && m=$({b} mount $c) && cd $m && rm -rf opt/tree/sub && chmod 4711 bin/busybox && chown 7:7 etc/passwd \
        && mkfifo run.fifo && echo l3 > etc/l3 \
        && cd / && {b} umount $c >/dev/null && {b} commit -q $c l3 >/dev/null && {b} rm $c >/dev/null \
        && {b} push -q l3 oci:{0}/oci:t && {b} push -q l3 docker-archive:{0}/d.tar:l3:t", dir.display()), dir);
    sh("umoci unpack --image oci:t theirs >/dev/null", dir);

    let theirs = walk(&dir.join("theirs/rootfs"));
    assert!(
        theirs.contains_key("etc/l3") && !theirs.contains_key("usr") && !theirs.contains_key("opt/tree/sub"),
        "the layers applied"
    );
    assert_eq!(theirs["opt/tree/f-link"].content, Some(strata_image::digest::of_bytes(b"deep\n")));
    for (name, image) in [
        ("layout", format!("{}:t", dir.join("oci").display())),
        ("docker-archive", format!("docker-archive:{}", dir.join("d.tar").display())),
    ] {
        let ours = dir.join(name);
        let out = Command::new(bin()).args(["unpack", "--image", &image]).arg(&ours).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let got = walk(&ours.join("rootfs"));
        let diff: Vec<_> = theirs
            .keys()
            .chain(got.keys())
            .filter(|k| theirs.get(*k) != got.get(*k))
            .take(5)
            .map(|k| (k, theirs.get(k), got.get(k)))
            .collect();
        assert!(diff.is_empty(), "{name}: differs from umoci: {diff:#?}");
    }
    let h =
        Command::new(bin()).args(["history", "--json", &format!("{}:t", dir.join("oci").display())]).output().unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(
        rows.as_array().unwrap().iter().filter(|r| !r["empty_layer"].as_bool().unwrap()).count(),
        3,
        "three layers"
    );
}
