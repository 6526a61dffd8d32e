//! A newcomer's first commands: hack/demo's usage and its refusal of what it doesn't
//! know (a typo must not silently run the plain demo).

use std::process::Command;

use strata_integration::{stderr, stdout, workspace};

#[test]
fn demo_refuses_an_unknown_argument_and_prints_usage_on_help() {
    let out = Command::new(workspace().join("hack/demo")).arg("--overlya").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown argument '--overlya'"), "{}", stderr(&out));
    let out = Command::new(workspace().join("hack/demo")).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("usage: hack/demo [--overlay]"), "{}", stdout(&out));
}

/// hack/install puts the binaries, a man page per subcommand and the completions under a
/// prefix, and each works from there: `man -l` renders a page, bash knows `strata`'s
/// completion once the script is sourced.
#[test]
fn install_puts_binaries_man_pages_and_completions_under_the_prefix() {
    let prefix = std::env::temp_dir().join(format!("strata-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    let out =
        Command::new(workspace().join("hack/install")).args(["--debug", "--prefix"]).arg(&prefix).output().unwrap();
    let cleanup = scopeguard(&prefix);
    assert!(out.status.success(), "hack/install: {}", stderr(&out));
    let version = Command::new(prefix.join("bin/strata")).arg("--version").output().unwrap();
    assert!(stdout(&version).starts_with("strata version "), "{}", stdout(&version));
    assert!(prefix.join("bin/strata-image").exists());
    assert!(prefix.join("share/man/man1/strata-image-unpack.1").exists(), "strata-image-unpack(1) missing");
    assert!(prefix.join("share/bash-completion/completions/strata-image").exists());
    let page = prefix.join("share/man/man8/strata-create.8");
    let man = Command::new("man").arg("-l").arg(&page).env("MANPAGER", "cat").env("COLUMNS", "100").output().unwrap();
    assert!(man.status.success(), "man -l {}: {}", page.display(), stderr(&man));
    assert!(stdout(&man).contains("--console-socket"), "{}", stdout(&man));
    let script = prefix.join("share/bash-completion/completions/strata");
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p strata", script.display()))
        .output()
        .unwrap();
    assert!(bash.status.success() && stdout(&bash).contains("strata"), "{} {}", stdout(&bash), stderr(&bash));
    for f in ["share/zsh/site-functions/_strata", "share/fish/vendor_completions.d/strata.fish"] {
        assert!(prefix.join(f).exists(), "{f} missing");
    }
    drop(cleanup);
}

/// Removes the install prefix when the test ends, passed or not.
fn scopeguard(dir: &std::path::Path) -> impl Drop + '_ {
    struct Rm<'a>(&'a std::path::Path);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    Rm(dir)
}
