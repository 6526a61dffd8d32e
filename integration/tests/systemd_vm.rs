//! The systemd cgroup driver under a real systemd: hack/systemd-vm boots a Debian root
//! with systemd as PID 1 under qemu and runs hack/systemd-vm.d/tests.sh there, strata
//! and runc side by side (`--systemd-cgroup`: scopes, unit properties and cgroup files,
//! update, pause/resume, ps, events, kill --all, delete, nested slices, annotations,
//! 20 containers leaving nothing behind, containerd with SystemdCgroup = true), once on
//! cgroup v2 and once on v1. The Debian root is built on first use (debootstrap, a few
//! minutes) and cached in hack/.cache/systemd-vm.
//! Skipped, loudly, where qemu, debootstrap or the kernel package isn't available.

use std::process::Command;
use std::sync::Mutex;

use strata_integration::*;

/// The VMs share the cached root and the work directory: one at a time.
static VM: Mutex<()> = Mutex::new(());

/// Runs hack/systemd-vm with systemd on cgroup `version`; None when it was skipped.
fn run_vm(test: &str, version: &str) -> Option<String> {
    let _one = VM.lock().unwrap_or_else(|e| e.into_inner());
    if std::env::var_os("STRATA_SKIP_VM").is_some() {
        skip(test, "STRATA_SKIP_VM is set");
        return None;
    }
    let out = Command::new(workspace().join("hack/systemd-vm"))
        .arg(strata_bin())
        .env("STRATA_SYSTEMD_VM_CGROUP", version)
        .output()
        .expect("run hack/systemd-vm");
    let err = String::from_utf8_lossy(&out.stderr);
    let checks = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(77) {
        skip(test, err.trim());
        return None;
    }
    assert!(out.status.success(), "systemd VM checks ({version}) failed:\n{checks}\n{err}");
    assert!(!checks.contains("FAIL"), "{checks}");
    Some(checks)
}

fn assert_ran(checks: &str, musts: &[&str]) {
    for must in musts {
        assert!(checks.contains(must), "{must:?} missing from:\n{checks}");
    }
}

#[test]
fn systemd_driver_checks_pass_under_systemd_on_cgroup_v2() {
    let Some(checks) = run_vm("systemd_vm v2", "v2") else { return };
    // The checks ran, under systemd, for both runtimes; not just the boot.
    assert_ran(
        &checks,
        &[
            "PID 1: systemd",
            "ok strata: system.slice:strata:limits is strata-limits.scope, active",
            "ok strata: files memory.max/low/swap.max",
            "ok strata: delete: no unit, no cgroup",
            "ok strata: after 20 deletes: no unit, no cgroup",
            "ok runc: system.slice:runc:limits is runc-limits.scope, active",
            "ok strata's unit properties are runc's",
            "SystemdCgroup = true",
            "ok containerd (SystemdCgroup, BinaryName /opt/strata-test/bin/strata): ctr run in ctr-strata-c1.scope",
            " passed, 0 failed",
        ],
    );
}

#[test]
fn systemd_driver_checks_pass_under_systemd_on_cgroup_v1() {
    let Some(checks) = run_vm("systemd_vm v1", "v1") else { return };
    assert_ran(
        &checks,
        &[
            "PID 1: systemd",
            "ok strata (v1): the init is in the scope in memory, freezer, cpuset",
            "ok strata (v1): delete: no unit, no cgroup in any hierarchy",
            "ok strata (v1): 20 made and deleted: no unit, no cgroup",
            "ok (v1) strata's unit properties are runc's",
            " passed, 0 failed",
        ],
    );
}
