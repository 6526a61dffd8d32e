//! Plans built for a rootless caller, against the recording fake: what an unprivileged
//! user (or root inside rootless podman's user namespace) changes in the init's plan.

use serde_json::json;

use crate::process::recorder::{config, Setup};
use crate::rootless::Caller;

fn user(euid: u32, in_user_ns: bool) -> Caller {
    Caller { euid, in_user_ns, xdg_runtime_dir: Some(format!("/run/user/{euid}")), user: Some("alice".into()) }
}

/// `strata spec --rootless`'s shape: a new user namespace mapping the caller to root.
fn rootless_config() -> serde_json::Value {
    config(json!({
        "process": { "cwd": "/", "args": ["sh"], "user": { "uid": 0, "gid": 0, "additionalGids": [5] } },
        "linux": {
            "namespaces": [{ "type": "mount" }, { "type": "pid" }, { "type": "user" }],
            "uidMappings": [{ "containerID": 0, "hostID": 1000, "size": 1 }],
            "gidMappings": [{ "containerID": 0, "hostID": 1000, "size": 1 }],
        },
    }))
}

#[test]
fn an_unprivileged_caller_keeps_the_init_dumpable_and_its_groups() {
    let mut s = Setup::new(rootless_config());
    s.caller = user(1000, false);
    let (_, plan) = s.plan().unwrap();
    assert!(plan.stay_dumpable, "the runtime must still write /proc/PID/uid_map");
    assert!(plan.process.keep_groups, "runc skips setgroups for a rootless caller");
    assert!(plan.rootfs.bind_devices);
}

#[test]
fn root_makes_the_same_config_non_dumpable_and_sets_groups() {
    let (_, plan) = Setup::new(rootless_config()).plan().unwrap();
    assert!(!plan.stay_dumpable);
    assert!(!plan.process.keep_groups);
}

#[test]
fn root_inside_a_user_namespace_binds_devices_even_without_a_new_one() {
    let devices = json!({
        "mounts": [{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs" }],
    });
    let mut podman = Setup::new(config(devices.clone()));
    podman.caller = user(0, true);
    let rec = podman.run();
    rec.assert_order(&["create_file /dev/null 0", "mount /dev/null /dev/null - bind -"]);
    assert!(!rec.has("mknod /dev/null"), "mknod is refused in a user namespace");
    let host = Setup::new(config(devices)).run();
    assert!(host.has("mknod /dev/null"));
}

#[test]
fn a_cgroup_mount_shows_the_runtimes_own_cgroup_where_the_container_has_none() {
    use crate::cgroups::{Cgroup, CgroupDir, Version};
    let dir = |ctrl: &str, path: &str| CgroupDir {
        mountpoint: format!("/sys/fs/cgroup/{ctrl}").into(),
        controllers: vec![ctrl.to_string()],
        version: Version::V1,
        path: path.into(),
        runtime_path: "/user/1000".into(),
    };
    let mut s = Setup::new(config(json!({
        "mounts": [{ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"] }],
    })));
    s.caller = user(1000, false);
    s.cgroup = Cgroup::default();
    s.cgroup.dirs = vec![dir("pids", "/strata/t")];
    s.cgroup.left_out = vec![dir("memory", "/user/1000")];
    let rec = s.run();
    rec.assert_order(&[
        "mount /sys/fs/cgroup/pids/strata/t /sys/fs/cgroup/pids - bind,rec -",
        "mount /sys/fs/cgroup/memory/user/1000 /sys/fs/cgroup/memory - bind,rec -",
        "remount_bind /sys/fs/cgroup ro",
    ]);
}
