//! The image index/manifest/config parsers, through the real resolve path: a layout
//! whose index.json points at a blob holding the fuzz input (as an index or a manifest,
//! digest and size correct) is resolved or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use strata_image::platform::PlatformSpec;
use strata_image::reference::Reference;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, blob)) = data.split_first() else { return };
    let media = match kind % 3 {
        0 => "application/vnd.oci.image.index.v1+json",
        1 => "application/vnd.oci.image.manifest.v1+json",
        _ => "application/vnd.docker.distribution.manifest.v2+json",
    };
    let dir = tempfile::tempdir().unwrap();
    let hex = hex::encode(Sha256::digest(blob));
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("blobs/sha256").join(&hex), blob).unwrap();
    std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{media}","digest":"sha256:{hex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#,
        blob.len()
    );
    std::fs::write(dir.path().join("index.json"), index).unwrap();
    let Ok(r) = Reference::parse(&format!("{}:t", dir.path().display())) else { return };
    if let Ok(img) = strata_image::image::open(&r, &PlatformSpec::host()) {
        let _ = img;
    }
    let _ = strata_image::image::parse_config(blob, "sha256:fuzz");
});
