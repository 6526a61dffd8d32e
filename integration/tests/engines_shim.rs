//! containerd with strata's own shim, `containerd-shim-strata-v2` (`runtime_type =
//! "io.containerd.strata.v2"`), which runs strata's library in-process: the scenarios
//! of engines_containerd.rs, on a private containerd per test, with the runc v2 shim
//! running runc as the control.

use strata_integration::engines::Containerd;
use strata_integration::shim::Shim;
use strata_integration::{assert_ok, stderr, stdout};

strata_integration::shim_scenarios!(run_returns_output_and_exit_codes,);

fn run_returns_output_and_exit_codes(shim: Shim) {
    let c: Containerd = shim.containerd();
    let out = c.run(&[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"));
    let out = c.run(&[], &["true"]);
    assert_ok(&out, "ctr run true");
    c.assert_nothing_left();
}
