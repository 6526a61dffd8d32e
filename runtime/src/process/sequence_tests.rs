//! The init's setup sequence for whole configs (runc's default, podman's, rootless,
//! joined namespaces, no mount namespace ...), checked against the recording fake:
//! no root needed. Mount-by-mount details are in rootfs/tests.rs.

use serde_json::json;

use super::recorder::{config, Recorder, Setup};

fn runc_default(rootless: bool) -> Setup {
    Setup::new(crate::spec::default_spec(rootless))
}

/// podman 4's typical config.json for `podman run --rm -it alpine sh` (trimmed).
fn podman() -> Setup {
    let bind = |dest: &str, src: &str, opts: &[&str]| json!({ "destination": dest, "type": "bind", "source": src, "options": opts });
    Setup::new(config(json!({
        "hostname": "3f2a1b",
        "process": { "terminal": true, "cwd": "/", "args": ["sh"], "user": { "uid": 0, "gid": 0 } },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            bind("/etc/hostname", "/var/lib/containers/storage/overlay-containers/c/userdata/hostname", &["rw", "rprivate", "bind"]),
            bind("/etc/resolv.conf", "/run/containers/storage/overlay-containers/c/userdata/resolv.conf", &["bind", "rprivate"]),
            bind("/dev/shm", "/var/lib/containers/storage/overlay-containers/c/userdata/shm", &["bind", "rprivate", "nosuid", "noexec", "nodev"]),
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"] },
            { "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"] },
        ],
        "linux": {
            "sysctl": { "net.ipv4.ping_group_range": "0 0" },
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" },
                           { "type": "cgroup" }],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
        },
    })))
}

#[test]
fn runc_default_sets_up_in_runcs_order() {
    let rec = runc_default(false).run();
    rec.assert_order(&[
        "sethostname runc",
        "keyring",
        "mount none host:/ - slave,rec -",
        "mount /b/rootfs host:/b/rootfs - bind,rec -",
        "open_root /b/rootfs",
        "mount proc /proc proc - -",
        "mount tmpfs /dev tmpfs nosuid,strictatime",
        "mount devpts /dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5",
        "mount shm /dev/shm tmpfs nosuid,nodev,noexec",
        "mount mqueue /dev/mqueue mqueue nosuid,nodev,noexec -",
        "mount sysfs /sys sysfs ro,nosuid,nodev,noexec -",
        "mkdir /sys/fs/cgroup",
        "mknod /dev/null c 1:3 666 0:0",
        "symlink /proc/self/fd /dev/fd",
        "stat /proc/acpi",
        "stat /proc/bus",
        "pivot_root /b/rootfs",
        "remount_bind host:/ ro",
    ]);
    // root.readonly is the last step of the filesystem; the rlimits come after the pivot.
    let n = rec.calls.len();
    assert_eq!(
        &rec.calls[n - 2..],
        ["remount_bind host:/ ro", &format!("setrlimit {} 1024 1024", libc::RLIMIT_NOFILE)]
    );
}

#[test]
fn runc_default_masks_after_all_mounts_and_devices_and_before_the_pivot() {
    let rec = runc_default(false).run();
    let last_mount = rec.calls.iter().rposition(|c| c.starts_with("mount ") && c.contains(" /sys/fs/cgroup")).unwrap();
    let first_mask = rec.index("stat /proc/acpi");
    assert!(last_mount < rec.index("mknod /dev/null") && rec.index("mknod /dev/tty") < first_mask);
    assert!(first_mask < rec.index("pivot_root"));
    // Masked directories get a read-only tmpfs; files the container's /dev/null.
    assert!(rec.has("mount tmpfs /proc/acpi tmpfs ro -"));
    let mut r = Recorder::new();
    r.files.insert("/proc/kcore".into());
    let rec = runc_default(false).run_with(r);
    assert!(rec.has("mount root:/dev/null /proc/kcore - bind -"));
}

#[test]
fn runc_default_sets_the_cgroup_v2_hierarchy_read_only_by_binding_without_a_cgroup_namespace() {
    let rec = runc_default(false).run();
    rec.assert_order(&[
        "mkdir /sys/fs/cgroup 755",
        "mount /sys/fs/cgroup/strata/t /sys/fs/cgroup - bind,rec -",
        "remount_bind /sys/fs/cgroup ro,nosuid,nodev,noexec",
    ]);
    assert!(!rec.has("mount cgroup2"));
}

#[test]
fn podman_mounts_cgroup2_fresh_in_its_cgroup_namespace() {
    let rec = podman().run();
    rec.assert_order(&[
        "unshare cgroup",
        "sethostname 3f2a1b",
        "mount cgroup2 /sys/fs/cgroup cgroup2 ro,nosuid,nodev,noexec,relatime -",
    ]);
    assert!(!rec.has("mount /sys/fs/cgroup/strata/t"));
    // As runc: a cgroup mount's propagation option ("rprivate") is not applied to it.
    assert!(!rec.has("mount none /sys/fs/cgroup"));
}

#[test]
fn podman_sysctl_is_written_through_the_inits_proc_before_any_mount() {
    let rec = podman().run();
    rec.assert_order(&[
        "sethostname 3f2a1b",
        "keyring",
        "write /proc/sys/net/ipv4/ping_group_range 0 0",
        "mount none host:/",
    ]);
}

#[test]
fn podman_binds_its_files_private_and_fills_run_from_the_image() {
    let mut r = Recorder::new();
    r.files.insert("host:/var/lib/containers/storage/overlay-containers/c/userdata/hostname".into());
    let rec = podman().run_with(r);
    rec.assert_order(&[
        "stat host:/var/lib/containers/storage/overlay-containers/c/userdata/hostname",
        "create_file /etc/hostname 755",
        "mount /var/lib/containers/storage/overlay-containers/c/userdata/hostname /etc/hostname - bind -",
        "mount none /etc/hostname - private,rec -",
    ]);
    // "rw" alone asks for no remount.
    assert!(!rec.has("remount_bind /etc/hostname"));
    let shm = "/var/lib/containers/storage/overlay-containers/c/userdata/shm";
    rec.assert_order(&[&format!("mount {shm} /dev/shm - bind -"), "remount_bind /dev/shm nosuid,nodev,noexec"]);
    rec.assert_order(&[
        "hold_dir /run",
        "mount tmpfs /run tmpfs nosuid,nodev mode=0755",
        "copy_up /run",
        "mount none /run - private,rec -",
    ]);
}

#[test]
fn podman_terminal_without_a_read_only_dev_needs_no_console_mount_point() {
    let rec = podman().run();
    assert!(!rec.has("create_file /dev/console"));
    assert!(!rec.calls.iter().any(|c| c.starts_with("remount_bind /dev ")));
}

#[test]
fn rootless_becomes_root_first_and_binds_devices_instead_of_making_them() {
    let rec = runc_default(true).run();
    // The clone made every namespace: nothing to join or unshare, root in it first.
    assert_eq!(rec.calls[0], "become_root");
    rec.assert_order(&[
        "create_file /dev/null 0",
        "mount /dev/null /dev/null - bind -",
        "symlink /proc/self/fd /dev/fd",
    ]);
    assert_eq!(rec.count("mknod"), 0);
    // /sys is an rbind of the host's, remounted read-only.
    rec.assert_order(&["mount /sys /sys - bind,rec -", "remount_bind /sys ro,nosuid,nodev,noexec"]);
}

#[test]
fn rootless_default_has_no_gid_on_devpts_and_no_network_namespace() {
    let (ns, plan) = runc_default(true).plan().unwrap();
    assert!(!ns.unshare_flags.contains(nix::sched::CloneFlags::CLONE_NEWNET));
    assert!(plan.become_root);
    let rec = runc_default(true).run();
    assert!(rec.has("mount devpts /dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620"));
    assert!(!rec.calls.iter().any(|c| c.contains("gid=5")));
}

#[test]
fn joined_namespaces_are_entered_by_the_init_user_first_then_new_ones_unshared() {
    let s = Setup::new(config(json!({ "linux": { "namespaces": [
        { "type": "network", "path": "/proc/self/ns/net" }, { "type": "mount" },
        { "type": "user", "path": "/proc/self/ns/user" }, { "type": "uts" },
    ] } })));
    let (ns, _) = s.plan().unwrap();
    assert!(ns.clone_flags.is_empty(), "the runtime clones into nothing when it must join a user namespace");
    let rec = s.run();
    assert_eq!(&rec.calls[..3], ["setns user", "setns network", "unshare mnt,uts"]);
    assert_eq!(rec.calls[3], "become_root");
}

#[test]
fn a_joined_uts_namespace_still_gets_the_hostname_and_none_without_one() {
    let joined = Setup::new(config(json!({ "hostname": "h1", "domainname": "d1",
        "linux": { "namespaces": [{ "type": "mount" }, { "type": "uts", "path": "/proc/self/ns/uts" }] } })));
    joined.run().assert_order(&["setns uts", "sethostname h1", "setdomainname d1", "keyring"]);
    let none = Setup::new(config(json!({ "hostname": "h1" })));
    assert!(!none.run().has("sethostname"));
}

#[test]
fn no_mount_namespace_leaves_the_hosts_propagation_and_chroots() {
    let s = Setup::new(config(json!({ "linux": { "namespaces": [{ "type": "pid" }] } })));
    let rec = s.run();
    assert!(!rec.has("mount none host:/"));
    rec.assert_order(&["keyring", "mount /b/rootfs host:/b/rootfs - bind,rec -", "open_root"]);
    assert!(rec.has("chroot /b/rootfs") && !rec.has("pivot_root"));
}

#[test]
fn no_pivot_moves_the_root_instead() {
    let mut s = Setup::new(config(json!({})));
    s.no_pivot = true;
    let rec = s.run();
    assert!(rec.has("move_root /b/rootfs") && !rec.has("pivot_root") && !rec.has("chroot"));
}

#[test]
fn nothing_after_the_root_switch_looks_up_a_host_path() {
    for s in [runc_default(false), runc_default(true), podman()] {
        let rec = s.run();
        let after = &rec.calls[rec.index("pivot_root") + 1..];
        for c in after {
            let ok = ["mount none host:/ ", "remount_bind host:/ ", "setrlimit ", "write /proc/self/oom_score_adj "];
            assert!(ok.iter().any(|p| c.starts_with(p)), "after pivot_root: {c}");
        }
    }
}

#[test]
fn a_new_time_namespace_gets_its_offsets_after_the_cgroup_namespace() {
    let s = Setup::new(config(json!({ "linux": {
        "namespaces": [{ "type": "mount" }, { "type": "cgroup" }, { "type": "time" }],
        "timeOffsets": { "monotonic": { "secs": 7, "nanosecs": 2 } },
    } })));
    s.run().assert_order(&[
        "unshare cgroup",
        "unshare time",
        "write /proc/self/timens_offsets monotonic 7 2",
        "keyring",
    ]);
    let bad = Setup::new(config(json!({ "linux": {
        "namespaces": [{ "type": "time" }], "timeOffsets": { "realtime": { "secs": 1 } } } })));
    assert!(bad.plan().unwrap_err().to_string().contains("linux.timeOffsets.realtime"));
}

#[test]
fn no_new_keyring_skips_the_keyring() {
    let mut s = Setup::new(config(json!({})));
    s.no_new_keyring = true;
    assert!(!s.run().has("keyring"));
    assert!(Setup::new(config(json!({}))).run().has("keyring"));
}

#[test]
fn a_failing_sysctl_names_its_key_and_stops_before_the_mounts() {
    let mut r = Recorder::new();
    r.fail.push(("write /proc/sys/net/core/somaxconn".into(), nix::errno::Errno::EACCES));
    let s = Setup::new(config(json!({ "linux": { "sysctl": { "net.core.somaxconn": "1024" },
        "namespaces": [{ "type": "mount" }, { "type": "network" }] } })));
    let err = s.try_run(&mut r).unwrap_err().to_string();
    assert!(err.contains("linux.sysctl.net.core.somaxconn") && err.contains("\"1024\""), "{err}");
    assert!(!r.has("mount "));
}

#[test]
fn the_init_plan_is_complete_before_the_clone() {
    // Everything config.json decides is in the plan: the interpreter gets no spec.
    let (_, plan) = podman().plan().unwrap();
    assert_eq!(plan.hostname.as_deref(), Some("3f2a1b"));
    assert_eq!(plan.sysctls.len(), 1);
    assert_eq!(plan.sysctls[0].path, "sys/net/ipv4/ping_group_range");
    assert_eq!(plan.rootfs.mounts.len(), 10);
    assert_eq!(plan.rootfs.masked.len(), 5);
    assert!(plan.rootfs.console && plan.unshare_cgroup && !plan.become_root);
}

#[test]
fn process_attributes_are_set_after_the_root_switch_in_one_order() {
    let s = Setup::new(config(json!({
        "process": { "cwd": "/", "args": ["sh"], "user": { "uid": 0, "gid": 0 }, "oomScoreAdj": -500,
            "rlimits": [{ "type": "RLIMIT_NPROC", "soft": 10, "hard": 20 }, { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 }],
            "ioPriority": { "class": "IOPRIO_CLASS_BE", "priority": 4 },
            "scheduler": { "policy": "SCHED_BATCH", "nice": 5 } },
        "linux": { "personality": { "domain": "LINUX32" } },
    })));
    s.run().assert_order(&[
        "pivot_root",
        &format!("setrlimit {} 10 20", libc::RLIMIT_NPROC),
        &format!("setrlimit {} 0 0", libc::RLIMIT_CORE),
        "write /proc/self/oom_score_adj -500",
        &format!("ioprio_set {:#x}", (2 << 13) | 4),
        "sched_setattr policy=3 nice=5 priority=0",
        "personality 0x8",
    ]);
}

#[test]
fn bad_process_fields_are_refused_before_the_clone() {
    let with_process = |extra: serde_json::Value| {
        let mut p = json!({ "cwd": "/", "args": ["sh"], "user": { "uid": 0, "gid": 0 } });
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Setup::new(config(json!({ "process": p })))
    };
    let io = with_process(json!({ "ioPriority": { "class": "IOPRIO_CLASS_RT", "priority": 9 } }));
    assert!(io.plan().unwrap_err().to_string().contains("process.ioPriority.priority"));
    let nul = with_process(json!({ "args": ["sh", "a\0b"] }));
    assert!(nul.plan().unwrap_err().to_string().contains("process.args[1]"));
    let persona = Setup::new(config(json!({ "linux": { "personality": { "domain": "LINUX", "flags": ["x"] } } })));
    assert!(persona.plan().unwrap_err().to_string().contains("linux.personality.flags"));
    // The program is looked for along the last PATH in process.env, else runc's default.
    let env = with_process(json!({ "env": ["PATH=/a", "X=1", "PATH=/b:/c"] }));
    assert_eq!(env.plan().unwrap().1.process.search_path, "/b:/c");
    assert!(with_process(json!({})).plan().unwrap().1.process.search_path.starts_with("/usr/local/sbin:"));
}

#[test]
fn an_execd_process_gets_its_limits_through_the_same_steps() {
    // `exec`'s process: the plan comes from the exec'd process, not the init's.
    let s = Setup::new(config(json!({})));
    let process: oci_spec::runtime::Process = serde_json::from_value(json!({
        "cwd": "/tmp", "args": ["ls", "-l"], "env": ["PATH=/bin"], "user": { "uid": 5, "gid": 6, "umask": 18 },
        "rlimits": [{ "type": "RLIMIT_NOFILE", "soft": 64, "hard": 128 }], "noNewPrivileges": true,
    }))
    .unwrap();
    let plan = super::plan::process(&s.spec, &process, &s.caller).unwrap();
    assert_eq!((plan.arg0.as_str(), plan.search_path.as_str(), plan.argv.len()), ("ls", "/bin", 2));
    assert!(plan.no_new_privileges && plan.caps.is_none());
    let mut rec = Recorder::new();
    super::exec::prepare_unfiltered(&plan, &mut rec).unwrap();
    // Only the limits go through Sys before the filter; nothing touches the filesystem.
    assert_eq!(rec.calls, [format!("setrlimit {} 64 128", libc::RLIMIT_NOFILE)]);
    // (It sets the umask too: 022, the tests' own, so parallel tests see no change.)
}
