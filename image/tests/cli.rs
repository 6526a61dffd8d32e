//! The command line at its edges, driving the binary as a user would: what is
//! refused and how it is said, what is printed, and what is left behind.

mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
    let err = refused(&cli(&["import", "--image", &format!("{}:x", t.path().join("img-trunc").display()), s(&truncated)]), "truncated");
    assert!(err.contains("not a tar archive") && err.contains("entry 2"), "{err}");
    ok(&cli(&["import", "--image", &format!("{}:x", t.path().join("img").display()), s(&good)]), "a real tar");
}
