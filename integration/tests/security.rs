//! Regression tests for the container-escape classes published against runc, crun and
//! youki. Each would fail on the vulnerable behaviour.

use serde_json::json;
use strata_integration::*;

/// CVE-2024-21626 class: a cwd reached through a runtime fd that leaked into the init
/// would sit outside the container. Every such cwd must be refused or resolve inside.
#[test]
fn cwd_through_a_leaked_fd_never_lands_outside_the_rootfs() {
    for fd in 3..12 {
        let mut b = Bundle::new("cwd-leak");
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        b.sh("pwd; ls / | grep -c '^bin$'");
        let id = b.id("cwd");
        let out = b.run(&id);
        if out.status.success() {
            let text = stdout(&out);
            assert!(text.starts_with('/') && !text.contains("unreachable"), "fd {fd}: cwd outside: {text}");
        } else {
            let err = stderr(&out);
            assert!(err.contains("process.cwd"), "fd {fd}: {err}");
        }
        b.assert_nothing_left(&id, None);
    }
}

/// CVE-2021-30465 class: a symlink planted in the rootfs must never redirect a mount to
/// the host.
#[test]
fn a_symlink_in_the_rootfs_never_redirects_a_mount_onto_the_host() {
    let mut b = Bundle::new("symlink-escape");
    let host_target = b.dir.join("host-target");
    std::fs::create_dir(&host_target).unwrap();
    std::os::unix::fs::symlink(&host_target, b.dir.join("rootfs/escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", b.dir.join("rootfs/up")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({ "destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs" }),
        json!({ "destination": "/up/tmp/strata-escape-probe", "type": "tmpfs", "source": "tmpfs" }),
    ]);
    b.config["root"]["readonly"] = json!(false);
    b.args(&["sleep", "100"]);
    let id = b.id("esc");
    b.create(&id);
    // Nothing appeared on the host: not under the symlink's host target, not at /tmp.
    assert!(!host_target.join("sub").exists(), "mount destination created on the host");
    assert!(!std::path::Path::new("/tmp/strata-escape-probe").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(host_target.to_str().unwrap()));
    assert!(!mounts.contains("/tmp/strata-escape-probe"));
    // Inside, the mounts exist where the symlinks lead *within* the rootfs.
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap();
    let inner = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(inner.contains(&format!(" {}/sub ", host_target.display())), "{inner}");
    assert!(inner.contains(" /tmp/strata-escape-probe "), "{inner}");
}

/// CVE-2022-29162 class: inheritable and ambient must never be wider than the config.
#[test]
fn inheritable_and_ambient_sets_are_never_wider_than_configured() {
    let mut b = Bundle::new("caps-narrow");
    b.config["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.sh("grep -E '^(CapInh|CapAmb)' /proc/self/status | tr -s '\\t' ' '");
    let id = b.id("narrow");
    let out = b.run(&id);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "CapInh: 0000000000000000\nCapAmb: 0000000000000000\n");

    // When the config asks for them, they are there: the check above can fail.
    b.config["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    let id = b.id("wide");
    let out = b.run(&id);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "CapInh: 0000000000000020\nCapAmb: 0000000000000020\n");
}

/// Masked and read-only paths can't be undone from inside without CAP_SYS_ADMIN.
#[test]
fn masked_and_readonly_paths_cannot_be_unmounted_from_inside() {
    let mut b = Bundle::new("unmask");
    std::fs::write(b.dir.join("rootfs/secret"), "secret").unwrap();
    std::fs::create_dir(b.dir.join("rootfs/rodir")).unwrap();
    b.config["linux"]["maskedPaths"] = json!(["/secret"]);
    b.config["linux"]["readonlyPaths"] = json!(["/rodir"]);
    b.config["root"]["readonly"] = json!(false);
    b.sh("umount /secret 2>/dev/null && echo unmasked; umount -l /rodir 2>/dev/null && echo ro-undone; \
          mount -o remount,rw /rodir 2>/dev/null && echo ro-remounted; wc -c < /secret; touch /rodir/x 2>/dev/null || echo rodir-ro");
    let id = b.id("um");
    let out = b.run(&id);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "0\nrodir-ro\n");
}
