// Stamps the git commit into `strata --version` (and, included by image/build.rs, into
// `strata-image --version`); links the release strata binary with its hot functions first.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STRATA_COMMIT={commit}");
    // Rerun when HEAD moves: HEAD itself and the branch it names, wherever git keeps
    // them (a worktree's HEAD is not ../.git/HEAD).
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(p) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|b| git(&["rev-parse", "--git-path", &b])) {
        println!("cargo:rerun-if-changed={p}");
    }
    hot_order();
}

/// The release strata binary is linked with runtime/hot-order.ld (hack/gen-hot-order
/// writes it): the functions the common commands execute come first in .text, so a
/// command faults in a few 64 KiB windows of it instead of most of the binary (its peak
/// RSS: README, Benchmarks). Only there: debug and test builds, strata-image and the shim
/// link as before. STRATA_LINK_MAP=FILE also writes lld's link map (gen-hot-order reads it).
fn hot_order() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_PKG_NAME") != "strata" {
        return;
    }
    println!("cargo:rerun-if-env-changed=STRATA_LINK_MAP");
    let map = var("STRATA_LINK_MAP");
    if !map.is_empty() {
        println!("cargo:rustc-link-arg-bins=-Xlinker");
        println!("cargo:rustc-link-arg-bins=-Map={map}");
    }
    let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("hot-order.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if var("PROFILE") == "release" && script.exists() {
        // -Xlinker: the path goes to the linker as one argument (-Wl, would split it at commas)
        println!("cargo:rustc-link-arg-bins=-Xlinker");
        println!("cargo:rustc-link-arg-bins=--script={}", script.display());
    }
}
