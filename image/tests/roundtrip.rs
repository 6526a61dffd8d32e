//! commit -> history -> unpack round trip; export; import; save. The
//! committed image is checked with skopeo when it is installed.

mod common;
use common::*;
use std::fs;
use std::process::Command;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::commit::{commit, CommitOptions};
use strata_image::reference::Reference;
use strata_image::writer::Compression;
use strata_image::{history, image, platform::PlatformSpec, transfer};

#[test]
fn commit_history_unpack_roundtrip() {
    let t = scratch("roundtrip");
    let tmp = t.path();
    let img = tmp.join("img");
    image(
        &img,
        "base",
        &[tar(&[
            dir("etc"),
            file("etc/motd", "hi"),
            dir("data"),
            file("data/a", "a"),
            file("data/b", "b"),
            file("gone", "x"),
        ])],
        Compression::Gzip,
        |_| {},
    );
    let b = tmp.join("b");
    let _g = BundleGuard(b.clone());
    let opts = UnpackOptions { overlay: true, store: tmp.join("store"), ..Default::default() };
    bundle::unpack(&Reference::parse(&format!("{}:base", img.display())).unwrap(), &b, &opts).unwrap();
    let root = b.join("rootfs");
    fs::write(root.join("etc/motd"), "changed").unwrap();
    fs::remove_file(root.join("gone")).unwrap();
    fs::remove_dir_all(root.join("data")).unwrap();
    fs::create_dir(root.join("data")).unwrap();
    fs::write(root.join("data/c"), "c").unwrap();
    fs::write(root.join("new"), "n").unwrap();

    let dest = Reference::parse(&format!("{}:committed", img.display())).unwrap();
    commit(
        &b,
        &dest,
        &CommitOptions { message: Some("my change".into()), author: Some("me".into()), ..Default::default() },
    )
    .unwrap();

    let resolved = image::open(&dest, &PlatformSpec::host()).unwrap();
    assert_eq!(resolved.layers.len(), 2);
    let h = history::history(&resolved);
    let last = h.last().unwrap();
    assert_eq!(last.comment.as_deref(), Some("my change"));
    assert_eq!(last.created_by.as_deref(), Some("strata-image commit"));
    assert!(last.digest.is_some() && !last.empty_layer);

    let flat = tmp.join("flat");
    bundle::unpack(&dest, &flat, &UnpackOptions::default()).unwrap();
    let want = walk(&root);
    let got = walk(&flat.join("rootfs"));
    assert_eq!(want, got, "the committed image unpacks to the container's view");
    assert!(!flat.join("rootfs/gone").exists() && !flat.join("rootfs/data/a").exists());

    // export: the union view as a tar, which import turns back into an image.
    let exported = tmp.join("rootfs.tar");
    transfer::export(&b, &mut fs::File::create(&exported).unwrap()).unwrap();
    let imported = Reference::parse(&format!("{}:imported", img.display())).unwrap();
    transfer::import(&exported, &imported).unwrap();
    let again = tmp.join("again");
    bundle::unpack(&imported, &again, &UnpackOptions::default()).unwrap();
    assert_eq!(walk(&again.join("rootfs")), want);

    // save as an OCI archive and read it back.
    let ar = tmp.join("saved.tar");
    transfer::save(&resolved, &ar, "v1", None, true).unwrap();
    let from_archive =
        image::open(&Reference::parse(&format!("{}:v1", ar.display())).unwrap(), &PlatformSpec::host()).unwrap();
    assert_eq!(from_archive.config_digest, resolved.config_digest);

    if Command::new("skopeo").arg("--version").output().is_ok() {
        let out =
            Command::new("skopeo").arg("inspect").arg(format!("oci:{}:committed", img.display())).output().unwrap();
        assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    }
    bundle::remove(&b).unwrap();
}
