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
