//! The differential pattern itself: a container's exit code and output are the same
//! under runc and strata for a plain `run`.

use strata_integration::{differential, stdout};

#[test]
fn run_exit_code_and_output_match_runc() {
    differential("smoke-run", |b, _rt| {
        b.sh("echo hello; exit 7");
        let id = b.id("run");
        let out = b.run(&id);
        (out.status.code(), stdout(&out))
    });
}
