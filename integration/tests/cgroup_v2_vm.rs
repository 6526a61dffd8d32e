//! Pure cgroup v2, for real: hack/cgroup-v2-vm boots Debian's cloud kernel under qemu
//! with only cgroup2 mounted and runs strata's cgroup checks there (limits with runc's
//! v1->v2 conversions, the eBPF device filter, hugetlb, unified, fork bomb, OOM and
//! its event, pause/resume via cgroup.freeze, update, ps, events, cleanup), and
//! rootless strata run by uid 1000 in a delegated subtree the script makes and chowns
//! (memory and pids limits, exec, pause, ps, cleanup).
//! Skipped, loudly, where qemu (or the kernel package) isn't available.

use std::process::Command;

use strata_integration::*;

#[test]
fn cgroup_tests_pass_on_a_pure_cgroup_v2_kernel() {
    if std::env::var_os("STRATA_SKIP_VM").is_some() {
        skip("cgroup_v2_vm", "STRATA_SKIP_VM is set");
        return;
    }
    let out =
        Command::new(workspace().join("hack/cgroup-v2-vm")).arg(strata_bin()).output().expect("run hack/cgroup-v2-vm");
    let err = String::from_utf8_lossy(&out.stderr);
    let checks = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(77) {
        skip("cgroup_v2_vm", err.trim());
        return;
    }
    assert!(out.status.success(), "cgroup v2 VM checks failed:\n{checks}\n{err}");
    assert!(!checks.contains("FAIL"), "{checks}");
    // The script's checks ran, not just the boot.
    for must in [
        "ok pure cgroup v2 host",
        "ok cpu.weight from shares 1024",
        "eBPF program",
        "ok fork bomb capped at 16",
        "ok events reports oom",
        "ok counter stopped while paused",
        "ok rootless: the caller is uid 1000",
        "ok rootless memory.max",
        "ok rootless pids.max",
        "ok rootless exec: in the container's cgroup",
        "ok rootless pause: cgroup.events frozen",
        "ok rootless: nothing left",
    ] {
        assert!(checks.contains(must), "{must:?} missing from:\n{checks}");
    }
}
