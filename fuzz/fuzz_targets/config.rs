//! config.json validation: any bytes give a typed error or a bundle, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bundle = tempfile::tempdir().unwrap();
    std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
    std::fs::write(bundle.path().join("config.json"), data).unwrap();
    if let Ok(b) = strata::config::load_bundle(bundle.path()) {
        // What validation accepted, the seccomp compiler must take without panicking.
        let nnp = b.spec.process().as_ref().and_then(|p| p.no_new_privileges()).unwrap_or(false);
        let _ = strata::seccomp::compile(&b.spec, nnp);
    }
});
