//! The layer applier: any tar (paths, whiteouts, hardlinks, symlinks, devices) is
//! applied or refused, never a panic, and nothing is ever written outside the target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_image::apply::{apply_layer, Mode};

fuzz_target!(|data: &[u8]| {
    let outer = tempfile::tempdir().unwrap();
    let target = outer.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    let _ = apply_layer(&target, &mut &data[..], &Mode::Flatten);
    let escaped: Vec<_> = std::fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != "rootfs").collect();
    assert!(escaped.is_empty(), "the layer wrote outside its target: {escaped:?}");
});
