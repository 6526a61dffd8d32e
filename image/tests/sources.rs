//! Image sources and verification: corrupt blobs, wrong sizes and diff_ids
//! are caught and leave no bundle; archives, nested indexes, platforms and
//! digest references resolve.

mod common;
use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::layout::Layout;
use strata_image::platform::PlatformSpec;
use strata_image::reference::Reference;
use strata_image::writer::Compression;
use strata_image::{image, Error};

fn simple(dir: &Path) -> Layout {
    image(dir, "v1", &[tar(&[file("a", "one")]), tar(&[file("b", "two")])], Compression::Gzip, |_| {})
}

fn unpack(r: &str, bundle: &Path) -> strata_image::Result<()> {
    bundle::unpack(&Reference::parse(r).unwrap(), bundle, &UnpackOptions::default()).map(drop)
}

fn layer_blobs(layout: &Layout) -> Vec<std::path::PathBuf> {
    let img = layout.resolve(&strata_image::reference::Selector::Tag("v1".into()), &PlatformSpec::host()).unwrap();
    img.layers.iter().map(|l| l.path.clone()).collect()
}

/// The parent holds nothing but what the test put there: no bundle, no temp dir.
fn nothing_left(parent: &Path) {
    let names: Vec<_> =
        fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["img".to_string()], "partial bundle left behind");
}

#[test]
fn corrupt_layer_is_named_and_leaves_no_bundle() {
    let t = scratch("corrupt");
    let layout = simple(&t.path().join("img"));
    let blob = &layer_blobs(&layout)[1];
    let mut bytes = fs::read(blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(blob, &bytes).unwrap();
    let err = unpack(&format!("{}:v1", t.path().join("img").display()), &t.path().join("b")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("digest mismatch") && msg.contains(blob.file_name().unwrap().to_str().unwrap()), "{msg}");
    nothing_left(t.path());
}

#[test]
fn truncated_and_extended_blobs_are_size_mismatches() {
    let t = scratch("size");
    let layout = simple(&t.path().join("img"));
    let blob = &layer_blobs(&layout)[0];
    let mut bytes = fs::read(blob).unwrap();
    bytes.extend_from_slice(b"trailing");
    fs::write(blob, &bytes).unwrap();
    let err = unpack(&format!("{}:v1", t.path().join("img").display()), &t.path().join("b")).unwrap_err();
    assert!(matches!(err, Error::Layer { ref source, .. } if matches!(**source, Error::SizeMismatch { .. })), "{err}");
    nothing_left(t.path());
}

#[test]
fn wrong_diff_id_is_caught() {
    let t = scratch("diffid");
    let bogus = strata_image::digest::of_bytes(b"not the layer");
    image(&t.path().join("img"), "v1", &[tar(&[file("a", "one")])], Compression::Zstd, |c| {
        c["rootfs"]["diff_ids"][0] = json!(bogus)
    });
    let err = unpack(&format!("{}:v1", t.path().join("img").display()), &t.path().join("b")).unwrap_err();
    assert!(err.to_string().contains("diff_id mismatch"), "{err}");
    nothing_left(t.path());
}

/// Layers are decoded on threads, the next one ahead of the one applied: a
/// layer many chunks long still arrives whole and in order, and the errors of
/// a later layer (missing, corrupt) come in layer order, never first.
#[test]
fn layers_decoded_ahead_arrive_whole_and_fail_in_order() {
    let t = scratch("ahead");
    // Several MiB of text no compressor shrinks to nothing: many chunks per layer.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: String = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect();
    let layers = [tar(&[file("big", &big)]), tar(&[file("b", "two")]), tar(&[file("big", "replaced")])];
    let layout = image(&t.path().join("img"), "v1", &layers, Compression::Gzip, |_| {});
    let r = format!("{}:v1", t.path().join("img").display());
    unpack(&r, &t.path().join("ok")).unwrap();
    assert_eq!(fs::read_to_string(t.path().join("ok/rootfs/big")).unwrap(), "replaced");
    fs::remove_dir_all(t.path().join("ok")).unwrap();
    let only_big = image(&t.path().join("img"), "big", &layers[..1], Compression::Gzip, |_| {});
    unpack(&format!("{}:big", only_big.root.display()), &t.path().join("ok")).unwrap();
    assert!(fs::read(t.path().join("ok/rootfs/big")).unwrap() == big.as_bytes(), "the big file differs");
    fs::remove_dir_all(t.path().join("ok")).unwrap();

    let blobs = layer_blobs(&layout);
    let mut bytes = fs::read(&blobs[2]).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&blobs[2], &bytes).unwrap();
    let missing = blobs[1].with_extension("moved");
    fs::rename(&blobs[1], &missing).unwrap();
    let err = unpack(&r, &t.path().join("b")).unwrap_err();
    assert!(matches!(err, Error::MissingBlob { ref path, .. } if *path == blobs[1]), "{err}");
    fs::rename(&missing, &blobs[1]).unwrap();
    let err = unpack(&r, &t.path().join("b")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("digest mismatch") && msg.contains(blobs[2].file_name().unwrap().to_str().unwrap()), "{msg}");
    nothing_left(t.path());
}

/// A layer that fails to apply ends the unpack with its own error while the
/// layer after it is being decoded ahead (that decoder stops; nothing hangs).
#[test]
fn an_apply_error_stops_the_layer_decoded_ahead() {
    let t = scratch("ahead-stop");
    let filler = "z".repeat(4 << 20);
    let layers = [tar(&[hardlink("l", "nope")]), tar(&[file("f1", &filler), file("f2", &filler)])];
    image(&t.path().join("img"), "v1", &layers, Compression::Zstd, |_| {});
    let err = unpack(&format!("{}:v1", t.path().join("img").display()), &t.path().join("b")).unwrap_err();
    assert!(err.to_string().contains("hardlink target nope does not exist"), "{err}");
    nothing_left(t.path());
}

#[test]
fn oci_archive_and_digest_reference() {
    let t = scratch("archive");
    let layout = simple(&t.path().join("img"));
    let ar = t.path().join("img.tar");
    strata_image::archive::write_oci_archive(&layout.root, &ar).unwrap();
    unpack(&format!("oci-archive:{}:v1", ar.display()), &t.path().join("b1")).unwrap();
    assert_eq!(fs::read_to_string(t.path().join("b1/rootfs/b")).unwrap(), "two");
    let d = layout.tags().unwrap()[0].1.digest().to_string();
    unpack(&format!("{}@{d}", layout.root.display()), &t.path().join("b2")).unwrap();
    assert!(t.path().join("b2/rootfs/a").is_file());
    assert!(unpack(&format!("{}:nope", layout.root.display()), &t.path().join("b3")).is_err());
}

#[test]
fn docker_save_archive() {
    let t = scratch("docker");
    let d = t.path().join("d");
    fs::create_dir_all(d.join("l1")).unwrap();
    let layer = tar(&[file("hello", "docker")]);
    fs::write(d.join("l1/layer.tar"), &layer).unwrap();
    let diff_id = strata_image::digest::of_bytes(&layer);
    let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}}))
    .unwrap();
    let cd = strata_image::digest::of_bytes(&cfg);
    let cname = format!("{}.json", &cd[7..]);
    fs::write(d.join(&cname), &cfg).unwrap();
    fs::write(
        d.join("manifest.json"),
        serde_json::to_vec(&json!([{"Config": cname, "RepoTags": ["busy:1"], "Layers": ["l1/layer.tar"]}])).unwrap(),
    )
    .unwrap();
    let ar = t.path().join("docker.tar");
    let mut b = tar::Builder::new(fs::File::create(&ar).unwrap());
    b.append_dir_all(".", &d).unwrap();
    b.finish().unwrap();
    drop(b);
    unpack(&format!("docker-archive:{}:1", ar.display()), &t.path().join("b")).unwrap();
    assert_eq!(fs::read_to_string(t.path().join("b/rootfs/hello")).unwrap(), "docker");
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(t.path().join("b/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], json!(["/bin/true"]));
}

#[test]
fn nested_index_and_platform_selection() {
    let t = scratch("platform");
    let dir = t.path().join("img");
    let layout = image(&dir, "amd", &[tar(&[file("arch", "amd64")])], Compression::Gzip, |_| {});
    image(&dir, "arm", &[tar(&[file("arch", "arm64")])], Compression::Gzip, |c| c["architecture"] = json!("arm64"));
    let tags = layout.tags().unwrap();
    let mut manifests = vec![];
    for (tag, d) in &tags {
        let mut v = serde_json::to_value(d).unwrap();
        v.as_object_mut().unwrap().remove("annotations");
        v["platform"] = json!({"os": "linux", "architecture": if tag == "amd" { "amd64" } else { "arm64" }});
        manifests.push(v);
    }
    let inner = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}),
    )
    .unwrap();
    let inner_desc = layout.write_blob(oci_spec::image::MediaType::ImageIndex, &inner).unwrap();
    layout.set_tag("multi", &inner_desc).unwrap();
    let r = Reference::parse(&format!("{}:multi", dir.display())).unwrap();
    let amd = image::open(&r, &PlatformSpec::parse("linux/amd64").unwrap()).unwrap();
    let arm = image::open(&r, &PlatformSpec::parse("linux/arm64").unwrap()).unwrap();
    assert_eq!(amd.config.architecture().to_string(), "amd64");
    assert_eq!(arm.config.architecture().to_string(), "arm64");
    assert!(image::open(&r, &PlatformSpec::parse("linux/s390x").unwrap()).is_err());
}

#[test]
fn config_json_follows_the_image_config() {
    let t = scratch("config");
    let dir = t.path().join("img");
    image(
        &dir,
        "v1",
        &[tar(&[
            dir_e("etc"),
            file("etc/passwd", "root:x:0:0::/root:/bin/sh\nbob:x:1001:1002::/home/bob:/bin/sh\n"),
            file("etc/group", "bob:x:1002:\nextra:x:1003:bob\n"),
        ])],
        Compression::Gzip,
        |c| {
            c["config"] = json!({"Entrypoint": ["/bin/app"], "Cmd": ["--flag"], "Env": ["PATH=/bin", "A=b"], "WorkingDir": "/work",
            "User": "bob", "Labels": {"l": "v"}, "StopSignal": "SIGINT", "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}});
        },
    );
    unpack(&format!("{}:v1", dir.display()), &t.path().join("b")).unwrap();
    let c: serde_json::Value = serde_json::from_slice(&fs::read(t.path().join("b/config.json")).unwrap()).unwrap();
    assert_eq!(c["process"]["args"], json!(["/bin/app", "--flag"]));
    assert_eq!(c["process"]["cwd"], "/work");
    assert_eq!(c["process"]["user"], json!({"uid": 1001, "gid": 1002, "additionalGids": [1003]}));
    let env: Vec<String> = serde_json::from_value(c["process"]["env"].clone()).unwrap();
    assert!(env.contains(&"PATH=/bin".into()) && env.contains(&"A=b".into()) && env.contains(&"HOME=/home/bob".into()));
    assert_eq!(c["annotations"]["l"], "v");
    assert_eq!(c["annotations"]["org.opencontainers.image.stopSignal"], "SIGINT");
    assert_eq!(c["annotations"]["org.opencontainers.image.exposedPorts"], "80/tcp");
    assert!(c["mounts"].as_array().unwrap().iter().any(|m| m["destination"] == "/data"));
    assert_eq!(c["root"]["path"], "rootfs");
}

fn dir_e(n: &str) -> E {
    dir(n)
}
