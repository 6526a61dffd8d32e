//! Overlay bundles whose store and bundle paths hold what the overlay option
//! parser treats specially (`:` between lowerdirs, `,` between options, `\`)
//! and bytes that are not UTF-8: both with the one-page mount(2) data string
//! (few layers) and with fsconfig, one call per layer (many layers). A store
//! path that is not UTF-8 is refused naming it.

mod common;
use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::reference::Reference;
use strata_image::writer::Compression;

fn unpack_and_check(layers: usize) {
    let t = scratch(&format!("ovl-paths-{layers}"));
    // Bundles record the store's path in strata-image.json (text): only the bundle's may be non-UTF-8.
    let odd =
        |base: &str, tail: &[u8]| t.path().join(OsStr::from_bytes(&[base.as_bytes(), b":a,b\\c ", tail].concat()));
    let img = t.path().join("img");
    let tars: Vec<Vec<u8>> = (0..layers).map(|i| tar(&[file(&format!("f{i}"), &i.to_string())])).collect();
    image(&img, "v1", &tars, Compression::None, |_| {});
    let b = odd("bundle", b"\xff").join("b");
    let _g = BundleGuard(b.clone());
    let opts = UnpackOptions { overlay: true, store: odd("store", b""), ..Default::default() };
    bundle::unpack(&Reference::parse(&format!("{}:v1", img.display())).unwrap(), &b, &opts).unwrap();
    for round in ["after unpack", "after mount"] {
        for i in 0..layers {
            assert_eq!(
                fs::read_to_string(b.join(format!("rootfs/f{i}"))).unwrap(),
                i.to_string(),
                "{round}: layer {i} in the view"
            );
        }
        fs::write(b.join("rootfs/written"), round).unwrap();
        assert_eq!(
            fs::read_to_string(b.join("overlay/upper/written")).unwrap(),
            round,
            "{round}: writes reach the upper dir"
        );
        bundle::umount(&b).unwrap();
        bundle::mount(&b).unwrap();
    }
    bundle::remove(&b).unwrap();
}

#[test]
fn special_characters_with_one_page_of_options() {
    unpack_and_check(2);
}

#[test]
fn special_characters_with_fsconfig() {
    unpack_and_check(40);
}

#[test]
fn a_store_path_that_is_not_utf8_is_refused() {
    let t = scratch("ovl-paths-utf8");
    let store = t.path().join(OsStr::from_bytes(b"store\xff"));
    let err = strata_image::store::Store::open(&store).err().expect("refused").to_string();
    assert!(err.contains("store ") && err.contains("not UTF-8"), "{err}");
}
