//! The command line at its edges, driving the binary as a user would: what is
//! refused and how it is said, what is printed, and what is left behind.

mod common;
use common::run::{self, Host};
use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use strata_image::writer::Compression;

fn cli(args: &[&str]) -> Output {
    Command::new(bin()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one-line error of a failed command.
fn refused(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} should fail: {}", String::from_utf8_lossy(&out.stdout));
    assert!(err.starts_with("strata-image: ") && err.trim_end().lines().count() == 1, "{what}: not one line: {err:?}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn import_refuses_what_is_not_a_tar() {
    let t = scratch("cli-import");
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let cases: [(&str, Vec<u8>); 4] = [
        ("text", b"just some text\n".to_vec()),
        ("long-text", (1..2000).map(|i| format!("{i}\n")).collect::<String>().into_bytes()),
        ("random", random),
        ("empty", vec![]),
    ];
    for (name, bytes) in cases {
        let f = t.path().join(name);
        fs::write(&f, bytes).unwrap();
        let img = t.path().join(format!("img-{name}"));
        let err = refused(&cli(&["import", "--image", &format!("{}:x", img.display()), s(&f)]), name);
        assert!(err.contains(&format!("{}: not a tar archive", f.display())), "{err}");
        assert!(!img.exists(), "{name}: no layout left behind");
    }
    let good = t.path().join("good.tar");
    fs::write(&good, tar(&[dir("etc"), file("etc/hostname", "h")])).unwrap();
    let truncated = t.path().join("truncated.tar");
    fs::write(&truncated, &fs::read(&good).unwrap()[..700]).unwrap();
    let err = refused(
        &cli(&["import", "--image", &format!("{}:x", t.path().join("img-trunc").display()), s(&truncated)]),
        "truncated",
    );
    assert!(err.contains("not a tar archive") && err.contains("entry 2"), "{err}");
    ok(&cli(&["import", "--image", &format!("{}:x", t.path().join("img").display()), s(&good)]), "a real tar");
}

/// An overlay bundle of a one-layer image; returns the bundle (removed on drop).
fn overlay_bundle(t: &Path, layer: Vec<u8>) -> (BundleGuard, String) {
    let img = t.join("img");
    image(&img, "v1", &[layer], Compression::Gzip, |_| {});
    let b = t.join("b");
    let guard = BundleGuard(b.clone());
    ok(
        &cli(&[
            "unpack",
            "--overlay",
            "--store",
            s(&t.join("store")),
            "--image",
            &format!("{}:v1", img.display()),
            s(&b),
        ]),
        "unpack --overlay",
    );
    (guard, format!("{}:v1", img.display()))
}

#[test]
fn export_into_a_closed_pipe_leaves_no_mount() {
    let t = scratch("cli-export");
    let big: String = "x".repeat(1 << 20);
    let (g, _) = overlay_bundle(t.path(), tar(&[dir("d"), file("d/a", &big), file("d/b", &big), file("d/c", &big)]));
    ok(&cli(&["umount", s(&g.0)]), "umount");
    assert!(run::mounts_under(t.path()).is_empty());
    let sh = format!("{} export {} | head -c 100 > /dev/null", bin().display(), g.0.display());
    assert!(Command::new("sh").arg("-c").arg(&sh).status().unwrap().success());
    assert!(
        run::mounts_under(t.path()).is_empty(),
        "the export's mount went with it: {:?}",
        run::mounts_under(t.path())
    );
    let full = Command::new(bin()).args(["export", s(&g.0)]).output().unwrap();
    ok(&full, "export");
    assert!(full.stdout.len() > 3 << 20);
    assert!(run::mounts_under(t.path()).is_empty());
}

/// The mountinfo line of `p`'s mount.
fn mount_line(p: &Path) -> Option<String> {
    let canon = fs::canonicalize(p).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(s(&canon)))
        .map(str::to_string)
}

#[test]
fn overlay_mount_names_only_paths_that_exist() {
    let t = scratch("cli-mount");
    let (g, _) = overlay_bundle(t.path(), tar(&[file("f", "x")]));
    for round in ["after unpack", "after mount"] {
        let line = mount_line(&g.0.join("rootfs")).unwrap_or_else(|| panic!("{round}: rootfs not mounted"));
        assert!(!line.contains(".strata-image-"), "{round}: a staging path: {line}");
        let opts = line.rsplit(' ').next().unwrap();
        for o in opts.split(',') {
            if let Some((k, v)) = o.split_once('=').filter(|(k, _)| matches!(*k, "upperdir" | "workdir" | "lowerdir")) {
                for p in v.split(':') {
                    assert!(Path::new(p).is_dir(), "{round}: {k} {p} does not exist: {line}");
                }
            }
        }
        ok(&cli(&["umount", s(&g.0)]), "umount");
        assert!(
            g.0.join("rootfs").join(strata_image::bundle::NOT_MOUNTED_FILE).is_file(),
            "the unmounted rootfs says so"
        );
        ok(&cli(&["mount", s(&g.0)]), "mount");
    }
}

#[test]
fn running_an_unmounted_overlay_bundle_says_it_is_not_mounted() {
    let Some(strata) = run::strata_bin() else {
        strata_integration::skip(file!(), "no strata binary (build it: cargo build -p strata, or set STRATA_BIN)");
        return;
    };
    let t = scratch("cli-unmounted");
    let (g, _) = overlay_bundle(t.path(), tar(&[dir("bin"), file("bin/sh", "")]));
    ok(&cli(&["umount", s(&g.0)]), "umount");
    let mut host = Host::new(t.path(), strata, "unmounted");
    let out = host.run(&g.0, &format!("unmounted-{}", std::process::id()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not mounted") && err.contains("strata-image mount"), "{err}");
    let names: Vec<_> = fs::read_dir(g.0.join("rootfs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![strata_image::bundle::NOT_MOUNTED_FILE.to_string()],
        "the failed run made nothing in the empty rootfs"
    );
}

#[test]
fn du_and_gc_take_a_bare_store_and_gc_dry_run_says_would() {
    // Bare --store is the default store; only looked at, never made.
    let out = cli(&["du", "--store"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("LAYER") || said.contains(strata_image::store::DEFAULT_STORE), "du --store: {said}");

    let t = scratch("cli-gc");
    let img = t.path().join("img");
    image(&img, "a", &[tar(&[file("a", "1")])], Compression::Gzip, |_| {});
    image(&img, "a", &[tar(&[file("a", "2")])], Compression::Gzip, |_| {});
    let dry = ok(&cli(&["gc", "--dry-run", "--layout", s(&img)]), "gc --dry-run");
    assert!(
        dry.starts_with(&format!("layout {}: would remove 3 blobs", img.display())) && dry.contains("would keep 3"),
        "{dry}"
    );
    let done = ok(&cli(&["gc", "--layout", s(&img)]), "gc");
    assert!(done.starts_with(&format!("layout {}: removed 3 blobs", img.display())), "{done}");
}

#[test]
fn an_image_must_be_named_when_the_layout_has_several() {
    let t = scratch("cli-tags");
    let img = t.path().join("img");
    image(&img, "one", &[tar(&[file("a", "1")])], Compression::Gzip, |_| {});
    image(&img, "two", &[tar(&[file("a", "2")])], Compression::Gzip, |_| {});
    let err = refused(&cli(&["unpack", "--image", s(&img), s(&t.path().join("b"))]), "unpack of an unnamed image");
    assert!(err.contains(&format!("name one of {0}:one, {0}:two", img.display())), "{err}");
    assert!(!t.path().join("b").exists());
    let err = refused(&cli(&["history", s(&img)]), "history of an unnamed image");
    assert!(err.contains(":one") && err.contains(":two"), "{err}");
}

#[test]
fn a_platform_that_matches_no_manifest_is_an_error() {
    let t = scratch("cli-platform");
    let img = t.path().join("img");
    let layout = image(&img, "amd", &[tar(&[file("arch", "amd64")])], Compression::Gzip, |_| {});
    let (_, d) = layout.tags().unwrap().remove(0);
    let mut v = serde_json::to_value(&d).unwrap();
    v.as_object_mut().unwrap().remove("annotations");
    v["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [v]});
    let desc = layout.write_blob(oci_spec::image::MediaType::ImageIndex, &serde_json::to_vec(&index).unwrap()).unwrap();
    layout.set_tag("multi", &desc).unwrap();
    let r = format!("{}:multi", img.display());
    let b = t.path().join("b");
    let err =
        refused(&cli(&["unpack", "--platform", "linux/s390x", "--image", &r, s(&b)]), "unpack --platform linux/s390x");
    assert!(err.contains("no manifest for platform linux/s390x") && err.contains("linux/amd64"), "{err}");
    assert!(!b.exists());
    ok(&cli(&["unpack", "--platform", "linux/amd64", "--image", &r, s(&b)]), "unpack --platform linux/amd64");
}

#[test]
fn save_archive_names_the_image() {
    let t = scratch("cli-save");
    let img = t.path().join("My Image");
    image(&img, "v1", &[tar(&[file("a", "1")])], Compression::Gzip, |_| {});
    let index = |ar: &Path| -> serde_json::Value {
        let mut a = tar::Archive::new(fs::File::open(ar).unwrap());
        let mut e = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("index.json"))
            .unwrap();
        serde_json::from_reader(&mut e).unwrap()
    };
    let ar = t.path().join("a.tar");
    ok(&cli(&["save", &format!("{}:v1", img.display()), "--archive", "--tag", "v1", "-o", s(&ar)]), "save --archive");
    let ann = &index(&ar)["manifests"][0]["annotations"];
    assert_eq!(
        (ann["org.opencontainers.image.ref.name"].as_str(), ann["io.containerd.image.name"].as_str()),
        (Some("v1"), Some("localhost/my-image:v1"))
    );
    ok(
        &cli(&[
            "save",
            &format!("{}:v1", img.display()),
            "--archive",
            "--name",
            "example.com:5000/team/app",
            "-o",
            s(&ar),
        ]),
        "save --name",
    );
    assert_eq!(
        index(&ar)["manifests"][0]["annotations"]["io.containerd.image.name"],
        "example.com:5000/team/app:latest"
    );
    ok(
        &cli(&["unpack", "--image", &format!("{}:latest", ar.display()), s(&t.path().join("b"))]),
        "the archive still opens by its tag",
    );
}

#[test]
fn history_shows_human_sizes_author_and_comment() {
    let t = scratch("cli-history");
    let img = t.path().join("img");
    image(&img, "base", &[tar(&[file("big", &"x".repeat(3 << 20))])], Compression::None, |c| {
        c["history"][0]["author"] = serde_json::json!("Ada <ada@example.com>");
        c["history"][0]["comment"] = serde_json::json!("the base");
    });
    let out = ok(&cli(&["history", &format!("{}:base", img.display())]), "history");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("SIZE") && lines[0].contains("AUTHOR") && lines[0].contains("COMMENT"), "{out}");
    assert!(
        lines[1].contains("3.0 MiB") && lines[1].contains("Ada <ada@example.com>") && lines[1].contains("the base"),
        "{out}"
    );
}

#[test]
fn version_flags_agree_with_strata() {
    let want = format!("strata-image version {}", env!("CARGO_PKG_VERSION"));
    for flag in ["-v", "-V", "--version"] {
        let out = ok(&cli(&[flag]), flag);
        assert_eq!(out.lines().next(), Some(want.as_str()), "strata-image {flag}");
        assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("commit: ")), "{out}");
    }
    let Some(strata) = run::strata_bin() else {
        strata_integration::skip(file!(), "strata part: no strata binary");
        return;
    };
    for flag in ["-v", "-V", "--version"] {
        let out = Command::new(&strata).arg(flag).output().unwrap();
        ok(&out, flag);
        let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string();
        assert!(first.starts_with("strata version "), "strata {flag}: {first}");
    }
}
