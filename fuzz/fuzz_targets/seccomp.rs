//! The seccomp compiler: any `linux.seccomp` that parses compiles to a filter or a
//! typed error naming the field, never a panic or an out-of-range jump.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, json)) = data.split_first() else { return };
    if let Ok(profile) = serde_json::from_slice::<LinuxSeccomp>(json) {
        let _ = strata::seccomp::compile_profile(&profile, flag & 1 == 1);
    }
});
