// Stamps the git commit into `strata --version` (and, included by image/build.rs, into `strata-image --version`).
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
}
