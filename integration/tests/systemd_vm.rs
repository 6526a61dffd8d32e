//! The systemd cgroup driver under a real systemd: hack/systemd-vm boots a Debian root
//! with systemd as PID 1 under qemu and runs hack/systemd-vm.d/tests.sh there, strata
//! and runc side by side (`--systemd-cgroup`: scopes, unit properties and cgroup files,
//! update, pause/resume, ps, events, kill --all, delete, nested slices, annotations,
//! 20 containers leaving nothing behind). The Debian root is built on first use
//! (debootstrap, a few minutes) and cached in hack/.cache/systemd-vm.
//! Skipped, loudly, where qemu, debootstrap or the kernel package isn't available.

use std::process::Command;

use strata_integration::*;

#[test]
fn systemd_driver_checks_pass_under_systemd() {
    if std::env::var_os("STRATA_SKIP_VM").is_some() {
        skip("systemd_vm", "STRATA_SKIP_VM is set");
        return;
    }
    let out = Command::new(workspace().join("hack/systemd-vm")).arg(strata_bin()).output().expect("run hack/systemd-vm");
    let err = String::from_utf8_lossy(&out.stderr);
    let checks = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(77) {
        skip("systemd_vm", err.trim());
        return;
    }
    assert!(out.status.success(), "systemd VM checks failed:\n{checks}\n{err}");
    assert!(!checks.contains("FAIL"), "{checks}");
    // The checks ran, under systemd, for both runtimes; not just the boot.
    for must in [
        "PID 1: systemd",
        "ok strata: system.slice:strata:limits is strata-limits.scope, active",
        "ok strata: files memory.max/low/swap.max",
        "ok strata: delete: no unit, no cgroup",
        "ok strata: after 20 deletes: no unit, no cgroup",
        "ok runc: system.slice:runc:limits is runc-limits.scope, active",
        "ok strata's unit properties are runc's",
        " passed, 0 failed",
    ] {
        assert!(checks.contains(must), "{must:?} missing from:\n{checks}");
    }
}
