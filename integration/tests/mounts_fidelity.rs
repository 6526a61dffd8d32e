//! Mounts, the root filesystem and /dev as runc sets them up: each scenario runs under
//! runc (the oracle) and strata on fresh bundles and must give the same outcome.

use serde_json::{json, Value};
use strata_integration::*;

/// Exit code and stdout of a foreground `run`, and whether stderr was empty.
fn run_observed(b: &Bundle, name: &str) -> (Option<i32>, String, bool) {
    let id = b.id(name);
    let out = b.run(&id);
    b.assert_nothing_left(&id, None);
    (out.status.code(), stdout(&out), out.stderr.is_empty())
}

fn push_mount(b: &mut Bundle, m: Value) {
    b.config["mounts"].as_array_mut().unwrap().push(m);
}

/// config.md: options the runtime doesn't know are passed to mount(2) as data. A bind
/// takes none: runc ignores them (the kernel would too) and the other options apply.
#[test]
fn unknown_options_on_a_bind_are_ignored_as_runc_does() {
    differential("bind-data", |b, _rt| {
        let src = b.dir.join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), "hi\n").unwrap();
        push_mount(
            b,
            json!({
                "destination": "/m", "type": "bind", "source": src,
                "options": ["rbind", "mode=755", "ro", "size=1k", "x-some-helper=1"]
            }),
        );
        b.sh("cat /m/f; awk '$5==\"/m\" {print $6}' /proc/self/mountinfo; touch /m/g 2>/dev/null || echo read-only");
        run_observed(b, "bd")
    });
}

/// Unknown options on a filesystem mount reach the filesystem: tmpfs takes mode= and
/// size=, and refuses what it doesn't know (both runtimes fail `run`).
#[test]
fn unknown_options_on_a_filesystem_are_its_data() {
    differential("fs-data", |b, _rt| {
        push_mount(
            b,
            json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700", "size=64k", "nr_inodes=77"] }),
        );
        b.sh("stat -c %a /t; df -k /t | awk 'NR==2 {print $2}'; df -i /t | awk 'NR==2 {print $2}'");
        run_observed(b, "fd")
    });
    differential("fs-data-bad", |b, _rt| {
        push_mount(
            b,
            json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["no-such-option"] }),
        );
        b.sh("true");
        let (code, out, _) = run_observed(b, "fdb");
        (code != Some(0), out)
    });
}

/// Makes the rootfs belong to the user namespace's root (host uid/gid `host`).
fn own_rootfs(b: &Bundle, host: u32) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{host}:{host}"))
        .arg(b.dir.join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
}

fn user_namespace(b: &mut Bundle, host: u32) {
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "user" }));
    let map = json!([{ "containerID": 0, "hostID": host, "size": 65536 }]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
    own_rootfs(b, host);
}

/// In a user namespace the container's root is an unprivileged host uid, yet bind
/// sources below directories only host root may enter (0700, owned by root or by
/// someone else) mount as in runc: the runtime opens them. The mount propagates from
/// a shared source into the container (a slave), never back.
#[test]
fn bind_sources_the_container_user_cannot_reach_mount_as_in_runc() {
    use std::os::unix::fs::PermissionsExt;
    differential("userns-binds", |b, _rt| {
        user_namespace(b, 300000);
        let mut sources = Vec::new();
        for (name, owner) in [("root-only", 0), ("someone-else", 1234)] {
            let dir = b.dir.join(name);
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/f"), format!("{name}\n")).unwrap();
            std::os::unix::fs::chown(&dir, Some(owner), Some(owner)).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            sources.push(dir.join("data"));
        }
        let shared = b.dir.join("shared");
        std::fs::create_dir(&shared).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=755", "tmpfs"])
            .arg(&shared)
            .status()
            .unwrap();
        assert!(st.success());
        let st = std::process::Command::new("mount").arg("--make-shared").arg(&shared).status().unwrap();
        assert!(st.success());
        push_mount(b, json!({ "destination": "/a", "type": "bind", "source": sources[0], "options": ["rbind"] }));
        push_mount(b, json!({ "destination": "/b", "type": "bind", "source": sources[1], "options": ["bind", "ro"] }));
        push_mount(
            b,
            json!({ "destination": "/f", "type": "bind", "source": sources[0].join("f"), "options": ["bind"] }),
        );
        push_mount(b, json!({ "destination": "/s", "type": "bind", "source": shared, "options": ["rbind"] }));
        b.sh("cat /a/f /b/f /f; for m in /a /b /f /s; do awk -v m=$m '$5==m {print $5, $6, $7}' /proc/self/mountinfo; done | sed 's/:[0-9]*/:N/'");
        let id = b.id("ub");
        let out = b.run(&id);
        let st = std::process::Command::new("umount").arg(b.dir.join("shared")).status().unwrap();
        assert!(st.success(), "umount {}", b.dir.join("shared").display());
        b.assert_nothing_left(&id, None);
        (out.status.code(), stdout(&out), stderr(&out))
    });
}

/// A read-only /dev with devpts, shm and mqueue below it: runc mounts /dev writable,
/// makes everything below it, and only then remounts it read-only; a read-only tmpfs
/// likewise is filled (tmpcopyup) before it becomes read-only, and a tmpfs over an
/// existing directory takes its mode. What /dev holds is runc's set (no /dev/core
/// where the kernel has no /proc/kcore).
#[test]
fn a_read_only_dev_and_tmpfs_are_filled_first_as_in_runc() {
    differential("ro-dev", |b, _rt| {
        for m in b.config["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
        std::fs::create_dir_all(b.dir.join("rootfs/t/sub")).unwrap();
        std::fs::set_permissions(b.dir.join("rootfs/t"), std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
        push_mount(
            b,
            json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "tmpcopyup"] }),
        );
        push_mount(b, json!({ "destination": "/new", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] }));
        b.sh("ls -l /dev | awk '{print $1, $NF}'; ls /t; stat -c %a /t /new; \
              for m in /dev /dev/pts /dev/shm /dev/mqueue /t; do awk -v m=$m '$5==m {print $5, $6}' /proc/self/mountinfo; done; \
              touch /dev/x 2>/dev/null || echo dev-ro; touch /t/x 2>/dev/null || echo t-ro; touch /dev/shm/x && echo shm-rw");
        run_observed(b, "rd")
    });
}

/// --no-pivot with a user namespace and CAP_SYS_ADMIN: what the container may mount and
/// what stays masked is runc's (a fresh proc or sysfs: both allowed, as the masks made
/// inside the user namespace aren't locked; the configured /proc keeps its masks), and
/// the same as with pivot_root.
#[test]
fn no_pivot_mounts_and_masks_as_runc() {
    differential("no-pivot", |b, _rt| {
        user_namespace(b, 300000);
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_SYS_ADMIN"));
        }
        b.config["linux"]["seccomp"] = json!(null);
        b.sh("mkdir /dev/shm/p /dev/shm/s; mount -t proc proc /dev/shm/p 2>&1 && echo proc; \
              mount -t sysfs sysfs /dev/shm/s 2>&1 && echo sysfs; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; \
              echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo proc-sys-ro");
        b.write_config();
        let mut seen = Vec::new();
        for no_pivot in [true, false] {
            let id = b.id("np");
            let mut args = vec!["run", "-b", b.dir.to_str().unwrap(), &id];
            if no_pivot {
                args.insert(1, "--no-pivot");
            }
            let out = output_of(b.command(&args));
            b.assert_nothing_left(&id, None);
            seen.push((out.status.code(), stdout(&out)));
        }
        seen
    });
}

/// linux.maskedPaths and linux.readonlyPaths look as under runc: files hidden under the
/// container's /dev/null, directories under an empty read-only tmpfs with the kernel's
/// defaults, read-only paths remounted read-only and nothing else.
#[test]
fn masked_and_read_only_paths_look_as_in_runc() {
    differential("masks", |b, _rt| {
        b.config["linux"]["maskedPaths"] = json!([
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/sys/firmware",
            "/proc/asound",
            "/etc/hostname",
            "/no/such/path"
        ]);
        b.config["linux"]["readonlyPaths"] = json!(["/proc/sys", "/proc/bus", "/tmp", "/no/such/path"]);
        b.sh("for p in /proc/keys /proc/timer_list /sys/firmware /proc/sys /proc/bus /tmp; do \
                awk -v p=$p '$5==p {s=$0; sub(/.* - /, \"\", s); split(s, t, \" \"); r=$4; sub(/.*\\/rootfs/, \"\", r); print r, $5, $6, t[1]}' /proc/self/mountinfo; done; \
              stat -c '%n %a %F' /proc/keys /sys/firmware; wc -c < /proc/keys; ls /sys/firmware | wc -l");
        run_observed(b, "mk")
    });
}

/// The `cgroup` mount on a v1/hybrid host (with and without a cgroup namespace): one
/// directory per v1 hierarchy, each read-only, named hierarchies mounted from their
/// name; no cgroup2 "unified" one (runc 1.1). The tmpfs holding them is read-only
/// under strata as the options say (runc leaves it writable: conformance/README.md).
#[test]
fn cgroup_mount_layout_is_runcs() {
    if std::fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
        eprintln!("skip: a cgroup2-only host mounts one hierarchy");
        return;
    }
    for cgroupns in [true, false] {
        differential("cg-layout", |b, _rt| {
            if !cgroupns {
                b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
            }
            b.sh("awk '$5 ~ /^\\/sys\\/fs\\/cgroup\\/./ {s=$0; sub(/.* - /, \"\", s); print $5, $6, s}' /proc/self/mountinfo | sort; ls /sys/fs/cgroup");
            run_observed(b, "cg")
        });
    }
}

/// Mount points a config names but the image lacks are made as runc makes them, and
/// stay in the rootfs after the container is gone: directories and files alike 0755.
#[test]
fn missing_mount_points_are_left_as_runc_leaves_them() {
    use std::os::unix::fs::MetadataExt;
    differential("mountpoints", |b, _rt| {
        push_mount(
            b,
            json!({ "destination": "/a/b/file", "type": "bind", "source": "/etc/hostname", "options": ["bind"] }),
        );
        push_mount(b, json!({ "destination": "/c/d", "type": "bind", "source": "/etc", "options": ["rbind", "ro"] }));
        push_mount(b, json!({ "destination": "/e/f", "type": "tmpfs", "source": "tmpfs" }));
        b.sh("true");
        let seen = run_observed(b, "mp");
        let modes: Vec<(String, u32, u32)> = ["a", "a/b", "a/b/file", "c", "c/d", "e/f"]
            .iter()
            .map(|p| {
                let m = std::fs::symlink_metadata(b.dir.join("rootfs").join(p)).unwrap();
                (p.to_string(), m.mode(), m.uid())
            })
            .collect();
        (seen, modes)
    });
}

/// Mount destinations reached through `..` and symlinks inside the rootfs, created while
/// the host renames files in a loop: the kernel refuses a confined `..` walk (openat2
/// RESOLVE_IN_ROOT) with EAGAIN whenever a rename races with it, which made strata's
/// `create` fail with "Try again" on busy machines; runc (userspace path resolution)
/// never did. Every run succeeds under both, and the container sees the same mounts.
#[test]
fn mount_targets_through_dotdot_resolve_while_the_host_renames_as_in_runc() {
    let churn_dir = std::env::temp_dir().join(format!("strata-rename-churn-{}", std::process::id()));
    std::fs::create_dir_all(&churn_dir).unwrap();
    std::fs::write(churn_dir.join("x"), b"").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (stop, dir) = (stop.clone(), churn_dir.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(dir.join("x"), dir.join("y"));
                let _ = std::fs::rename(dir.join("y"), dir.join("x"));
            }
        })
    };
    let observed = differential("dotdot-churn", |b, _rt| {
        std::fs::create_dir_all(b.dir.join("rootfs/a/b/c")).unwrap();
        std::os::unix::fs::symlink("../../../../../../..", b.dir.join("rootfs/a/b/c/up")).unwrap();
        for (i, dest) in
            ["/a/b/c/up/tmp/m1", "/a/b/../b/c/../../../tmp/m2", "/a/../a/b/../../tmp/m3"].iter().enumerate()
        {
            push_mount(b, json!({ "destination": dest, "type": "tmpfs", "source": format!("t{i}") }));
        }
        b.sh("awk '$5 ~ /^\\/tmp\\/m/ {print $5}' /proc/self/mountinfo | sort");
        (0..20).map(|i| run_observed(b, &format!("dd{i}"))).collect::<Vec<_>>()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    std::fs::remove_dir_all(&churn_dir).unwrap();
    assert!(observed.iter().all(|o| o.0 == Some(0)), "{observed:?}");
    assert_eq!(observed[0].1, "/tmp/m1\n/tmp/m2\n/tmp/m3\n");
}
