//! `du` (a bundle's size vs virtual size, a store's layers and their users) and
//! `gc` (store layers no bundle uses, layout blobs no tag reaches), and the
//! `--json` output of every command that prints.

mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::layout::Layout;
use strata_image::reference::Reference;
use strata_image::store::Store;
use strata_image::writer::{self, Compression};
use strata_image::{gc, usage};

fn r(s: String) -> Reference {
    Reference::parse(&s).unwrap()
}

/// Image a = [l1 (1000 B), l2 (500 B)], image b = [l1, l3 (300 B)].
fn two_images(img: &Path) -> [String; 3] {
    let l1 = tar(&[dir("base"), file("base/one", &"1".repeat(1000))]);
    let l2 = tar(&[file("a-only", &"2".repeat(500))]);
    let l3 = tar(&[file("b-only", &"3".repeat(300))]);
    image(img, "a", &[l1.clone(), l2.clone()], Compression::Gzip, |_| {});
    image(img, "b", &[l1.clone(), l3.clone()], Compression::Gzip, |_| {});
    [&l1, &l2, &l3].map(|l| strata_image::digest::of_bytes(l))
}

#[test]
fn du_and_gc_of_a_layer_store() {
    let t = scratch("du-gc");
    let (img, store_dir) = (t.path().join("img"), t.path().join("store"));
    let [l1, l2, l3] = two_images(&img);
    let ovl = |tag: &str, b: &Path| {
        let opts = UnpackOptions { overlay: true, store: store_dir.clone(), ..Default::default() };
        bundle::unpack(&r(format!("{}:{tag}", img.display())), b, &opts).unwrap();
    };
    let (b1, b2) = (t.path().join("b1"), t.path().join("b2"));
    let _g = (BundleGuard(b1.clone()), BundleGuard(b2.clone()));
    ovl("a", &b1);
    ovl("b", &b2);
    let store = Store::open(&store_dir).unwrap();

    let u = usage::store_usage(&store).unwrap();
    let users = |d: &str| u.layers.iter().find(|l| l.diff_id == d).map(|l| (l.size, l.bundles)).unwrap();
    assert_eq!((users(&l1), users(&l2), users(&l3)), ((1000, 2), (500, 1), (300, 1)));
    assert_eq!((u.total, u.reclaimable), (1800, 0));

    fs::write(b1.join("rootfs/written"), vec![b'w'; 4096]).unwrap();
    let du = usage::bundle_usage(&b1).unwrap();
    assert_eq!((du.size, du.virtual_size), (4096, 1000 + 500 + 4096));
    assert_eq!(
        du.layers.iter().map(|l| (l.diff_id.as_str(), l.size)).collect::<Vec<_>>(),
        vec![(l1.as_str(), 1000), (l2.as_str(), 500)]
    );

    // A flatten bundle: size is the diff against what was unpacked.
    let flat = t.path().join("flat");
    bundle::unpack(&r(format!("{}:a", img.display())), &flat, &UnpackOptions::default()).unwrap();
    assert_eq!(usage::bundle_usage(&flat).unwrap().size, 0);
    fs::write(flat.join("rootfs/new"), vec![b'n'; 100]).unwrap();
    fs::write(flat.join("rootfs/a-only"), vec![b'c'; 50]).unwrap();
    let du = usage::bundle_usage(&flat).unwrap();
    assert_eq!((du.size, du.virtual_size), (150, 1500 + 150), "virtual = the image as unpacked + the changes");

    // b2 removed properly: only l3 is left without users.
    bundle::remove(&b2).unwrap();
    let dry = gc::gc_store(&store, true).unwrap();
    assert_eq!(dry.removed, vec![l3.clone()]);
    assert!(store.layer_dir(&l3).unwrap().is_dir(), "dry run removes nothing");
    let done = gc::gc_store(&store, false).unwrap();
    assert_eq!((done.removed, done.freed, done.kept), (vec![l3.clone()], 300, 2));
    assert!(!store.layer_dir(&l3).unwrap().exists());
    assert_eq!(fs::read(b1.join("rootfs/base/one")).unwrap().len(), 1000, "b1's layers are intact");

    // A mounted overlay keeps its layers even when its registration is gone.
    let entry = store.bundles().unwrap()[0].0.clone();
    fs::remove_file(entry).unwrap();
    let kept = gc::gc_store(&store, false).unwrap();
    assert!(kept.removed.is_empty() && kept.kept == 2, "{kept:?}");

    // b1 deleted by hand (no `remove`): its registration is stale, its layers go.
    store.register(&b1).unwrap();
    strata_image::overlay::unmount(&b1.join("rootfs")).unwrap();
    fs::remove_dir_all(&b1).unwrap();
    let last = gc::gc_store(&store, false).unwrap();
    assert_eq!(last.stale_bundles.len(), 1);
    let mut want = vec![l1, l2];
    want.sort();
    assert_eq!(last.removed, want);
    assert!(store.layers().unwrap().is_empty() && store.bundles().unwrap().is_empty());
}

#[test]
fn gc_of_a_layout_drops_only_unreachable_blobs() {
    let t = scratch("gc-layout");
    let img = t.path().join("img");
    two_images(&img);
    let layout = Layout::open(&img).unwrap();
    let first = layout.tags().unwrap().into_iter().find(|(t, _)| t == "b").unwrap().1;
    // Retag b to a new config: the old manifest and config become unreachable.
    let old =
        strata_image::image::open(&r(format!("{}:b", img.display())), &strata_image::platform::PlatformSpec::host())
            .unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&old.config_raw).unwrap();
    cfg["config"]["Cmd"] = serde_json::json!(["/bin/true"]);
    let m: serde_json::Value = serde_json::from_slice(old.manifest_raw.as_ref().unwrap()).unwrap();
    let layers: Vec<oci_spec::image::Descriptor> = serde_json::from_value(m["layers"].clone()).unwrap();
    writer::write_image(&layout, "b", &cfg, &layers).unwrap();
    fs::write(img.join("blobs/sha256/.tmp-inflight"), b"x").unwrap();

    let report = gc::gc_layout(&layout, false).unwrap();
    let mut want = vec![first.digest().to_string(), old.config_digest.clone()];
    want.sort();
    assert_eq!(report.removed, want);
    assert!(img.join("blobs/sha256/.tmp-inflight").exists());
    for tag in ["a", "b"] {
        let b = t.path().join(tag);
        bundle::unpack(&r(format!("{}:{tag}", img.display())), &b, &UnpackOptions::default()).unwrap();
    }
    assert!(gc::gc_layout(&layout, false).unwrap().removed.is_empty(), "a second gc finds nothing");
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn every_printing_command_speaks_json() {
    let t = scratch("json");
    let p = |s: &str| t.path().join(s).to_string_lossy().into_owned();
    fs::write(t.path().join("root.tar"), tar(&[dir("etc"), file("etc/hostname", "h")])).unwrap();
    let imported = json(&["import", "--json", "--image", &format!("{}:base", p("img")), &p("root.tar")]);
    let ls = json(&["ls", "--json", &p("img")]);
    assert_eq!(ls[0]["digest"], imported["digest"]);
    let b = p("b");
    let _g = BundleGuard(b.clone().into());
    let unpacked =
        json(&["unpack", "--json", "--overlay", "--store", &p("store"), "--image", &format!("{}:base", p("img")), &b]);
    assert_eq!(unpacked["mode"], "overlay");
    fs::write(t.path().join("b/rootfs/etc/new"), "12345").unwrap();
    let du = json(&["du", "--json", &b]);
    assert_eq!((du[0]["size"].as_u64(), du[0]["virtual_size"].as_u64()), (Some(5), Some(6)));
    let store_du = json(&["du", "--json", "--store", &p("store")]);
    assert_eq!(store_du["layers"][0]["bundles"], 1);
    let committed = json(&["commit", "--json", &b, "--image", &format!("{}:next", p("img"))]);
    assert!(committed["digest"].as_str().unwrap().starts_with("sha256:"));
    let history = json(&["history", "--json", &format!("{}:next", p("img"))]);
    assert_eq!(history.as_array().unwrap().len(), 2);
    let saved = json(&["save", "--json", &format!("{}:next", p("img")), "-o", &p("saved"), "--tag", "v1"]);
    assert_eq!(saved["digest"], committed["digest"]);
    let gc = json(&["gc", "--json", "--store", &p("store"), "--layout", &p("img")]);
    assert_eq!((gc["store"]["kept"].as_u64(), gc["layout"]["removed"].as_array().map(|a| a.len())), (Some(1), Some(0)));
}
