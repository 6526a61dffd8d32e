//! `commit` of a bundle whose container is still writing: the container is
//! paused while its changes are read, so every committed layer unpacks; with
//! `--pause=false` a file that changes size under the reader fails the commit
//! with a clear error instead of writing a truncated tar entry.
//! Needs the `strata` binary and busybox-static (as run_e2e).

mod common;
use common::run::{self, ok, Host};
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn image_cli(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const BIG: u64 = 20 << 20;

#[test]
fn commit_of_a_container_rewriting_a_big_file() {
    let Some(strata) = run::strata_bin() else {
        strata_integration::skip(file!(), "no strata binary (build it: cargo build -p strata, or set STRATA_BIN)");
        return;
    };
    let t = scratch("commit-running");
    let dir = t.path();
    let mut host = Host::new(dir, strata.clone(), "commit-running");
    let rootfs = dir.join("rootfs");
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/busybox-rootfs");
    assert!(Command::new(hack).arg(&rootfs).status().unwrap().success(), "hack/busybox-rootfs");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(dir.join("rootfs.tar"))
        .arg(".")
        .status()
        .unwrap()
        .success());
    let img = dir.join("img");
    let base = format!("{}:base", img.display());
    ok(&image_cli(&["import", "--image", &base, s(&dir.join("rootfs.tar"))]), "import");

    let ovl = dir.join("ovl");
    let writer = format!("while :; do head -c {BIG} /dev/zero > /big; done");
    ok(
        &image_cli(&[
            "unpack",
            "--overlay",
            "--store",
            s(&dir.join("store")),
            "--image",
            &base,
            s(&ovl),
            "--",
            "sh",
            "-c",
            &writer,
        ]),
        "unpack",
    );
    let id = format!("commit-running-{}", std::process::id());
    let mut child = host.spawn(&ovl, &id);
    let start = Instant::now();
    while std::fs::metadata(ovl.join("overlay/upper/big")).map(|m| m.len()).unwrap_or(0) < BIG {
        assert!(start.elapsed() < Duration::from_secs(30), "the container never wrote /big");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = host.state();
    let runtime = ["--runtime", s(&strata), "--runtime-root", s(&state)];

    // Paused (the default): every commit is a layer that unpacks, and the container runs on.
    for i in 0..6 {
        let tag = format!("{}:paused{i}", img.display());
        ok(&image_cli(&[&["commit", s(&ovl), "--image", &tag][..], &runtime[..]].concat()), "commit");
        let b = dir.join(format!("paused{i}"));
        ok(&image_cli(&["unpack", "--image", &tag, s(&b)]), &format!("unpack of paused commit {i}"));
        assert!(b.join("rootfs/big").is_file());
        std::fs::remove_dir_all(&b).unwrap();
        let st = Command::new(&strata).arg("--root").arg(&state).args(["state", &id]).output().unwrap();
        ok(&st, "strata state");
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(v["status"], "running", "commit resumed the container");
    }

    // Live: a commit either fails naming the file, or writes a layer that unpacks.
    let mut refused = 0;
    for i in 0..6 {
        let tag = format!("{}:live{i}", img.display());
        let out = image_cli(&[&["commit", s(&ovl), "--image", &tag, "--pause=false"][..], &runtime[..]].concat());
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("big: ") && err.contains("while being read") && err.lines().count() == 1, "{err}");
            refused += 1;
            continue;
        }
        let b = dir.join(format!("live{i}"));
        ok(&image_cli(&["unpack", "--image", &tag, s(&b)]), &format!("unpack of live commit {i}"));
        std::fs::remove_dir_all(&b).unwrap();
    }
    eprintln!("live commits refused: {refused}/6");
    let leftovers: Vec<_> = std::fs::read_dir(img.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "a failed commit leaves no temp blob: {leftovers:?}");

    let _ = Command::new(&strata).arg("--root").arg(&state).args(["kill", &id, "KILL"]).output();
    let _ = child.wait();
    drop(host);
    ok(&image_cli(&["remove", s(&ovl)]), "remove");
    assert!(run::mounts_under(dir).is_empty(), "no mount left");
}
