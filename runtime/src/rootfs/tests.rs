//! Mount-by-mount sequences of the rootfs plan, against the recording fake (no root):
//! the calls a user's config produces, in order, with their arguments.

use nix::errno::Errno;
use serde_json::{json, Value};

use crate::process::recorder::{config, Recorder, Setup};

fn with_mounts(mounts: Value) -> Setup {
    Setup::new(config(json!({ "mounts": mounts })))
}

fn with(extra: Value) -> Setup {
    Setup::new(config(extra))
}

#[test]
fn a_read_only_dev_is_mounted_rw_filled_then_remounted_read_only_last() {
    let s = with(json!({
        "process": { "terminal": true, "cwd": "/", "args": ["sh"], "user": { "uid": 0, "gid": 0 } },
        "mounts": [
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "ro", "mode=755"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance"] },
        ],
        "linux": { "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"] },
    }));
    let rec = s.run();
    rec.assert_order(&[
        "mount tmpfs /dev tmpfs nosuid mode=0755,mode=755",
        "mount devpts /dev/pts devpts - newinstance",
        "mknod /dev/null",
        "symlink pts/ptmx /dev/ptmx",
        "stat /proc/kcore",
        "remount_bind /proc/sys ro",
        "create_file /dev/console 0",
        "remount_bind /dev ro,nosuid",
        "pivot_root",
    ]);
    assert_eq!(rec.count("remount_bind /dev "), 1);
}

#[test]
fn a_read_only_tmpfs_elsewhere_is_remounted_once_mounted_before_the_next_mount() {
    let rec = with_mounts(json!([
        { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nodev"] },
        { "destination": "/proc", "type": "proc", "source": "proc" },
    ]))
    .run();
    rec.assert_order(&[
        "mount tmpfs /tmp tmpfs nodev mode=0755",
        "remount_bind /tmp ro,nodev",
        "mount proc /proc proc",
    ]);
}

#[test]
fn a_tmpfs_keeps_the_mode_of_the_directory_it_covers_unless_it_is_missing() {
    let mut r = Recorder::new();
    r.modes.insert("/data".into(), 0o1777);
    r.missing.insert("/new".into());
    let rec = with_mounts(json!([
        { "destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] },
        { "destination": "/new", "type": "tmpfs", "source": "tmpfs" },
    ]))
    .run_with(r);
    rec.assert_order(&["stat /data", "mkdir /data 755", "mount tmpfs /data tmpfs - mode=1777,size=1m"]);
    rec.assert_order(&["stat /new", "mkdir /new 755", "mount tmpfs /new tmpfs - -"]);
}

#[test]
fn tmpcopyup_holds_the_directory_before_the_mount_and_copies_before_the_read_only_remount() {
    let rec = with_mounts(json!([
        { "destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "ro"] },
    ]))
    .run();
    rec.assert_order(&[
        "mkdir /etc",
        "hold_dir /etc",
        "mount tmpfs /etc tmpfs - mode=0755",
        "copy_up /etc",
        "remount_bind /etc ro",
    ]);
}

#[test]
fn tmpcopyup_on_anything_but_tmpfs_is_refused_by_the_parent() {
    let s = with_mounts(json!([{ "destination": "/x", "type": "proc", "source": "proc", "options": ["tmpcopyup"] }]));
    let err = s.plan().unwrap_err().to_string();
    assert!(err.contains("mounts[0] (/x).options") && err.contains("tmpcopyup only applies to tmpfs"), "{err}");
}

#[test]
fn a_bind_looks_at_its_source_makes_the_mount_point_binds_and_remounts_with_its_flags() {
    let mut r = Recorder::new();
    r.files.insert("host:/etc/resolv.conf".into());
    let rec = with_mounts(json!([
        { "destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "nosuid", "rshared"] },
        { "destination": "/etc/resolv.conf", "source": "/etc/resolv.conf", "options": ["bind"] },
    ]))
    .run_with(r);
    rec.assert_order(&[
        "stat host:/srv/data",
        "mkdir /data 755",
        "mount /srv/data /data - bind,rec -",
        "remount_bind /data ro,nosuid",
        "mount none /data - shared,rec -",
        "stat host:/etc/resolv.conf",
        "create_file /etc/resolv.conf 755",
        "mount /etc/resolv.conf /etc/resolv.conf - bind -",
    ]);
    assert!(!rec.has("remount_bind /etc/resolv.conf"));
}

#[test]
fn a_relative_bind_source_is_relative_to_the_bundle() {
    let rec = with_mounts(json!([{ "destination": "/m", "type": "bind", "source": "vol", "options": ["bind"] }])).run();
    assert!(rec.has("stat host:/b/vol") && rec.has("mount /b/vol /m - bind -"));
}

#[test]
fn a_missing_bind_source_names_the_field() {
    let mut r = Recorder::new();
    r.missing.insert("host:/nope".into());
    let s = with_mounts(json!([{ "destination": "/m", "type": "bind", "source": "/nope" }]));
    let err = s.try_run(&mut r).unwrap_err().to_string();
    assert!(err.contains("mounts[0] (/m).source: /nope: No such file or directory"), "{err}");
    assert!(!r.has("mkdir /m"));
    let no_source = with_mounts(json!([{ "destination": "/m", "type": "bind" }]));
    assert!(no_source.plan().unwrap_err().to_string().contains("a bind mount needs a source"));
}

#[test]
fn binds_the_parent_opened_are_attached_and_given_the_setup_propagation() {
    let mut s = with(json!({
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"] },
        ],
        "linux": { "rootfsPropagation": "private" },
    }));
    s.sources = super::BindSources::for_tests(vec![None, Some(true)]);
    let rec = s.run();
    rec.assert_order(&[
        "mkdir /data 755",
        "attach_tree 1 /data",
        "mount none /data - private -",
        "remount_bind /data ro",
    ]);
    assert!(!rec.has("stat host:/srv/data"), "the parent already knows it is a directory");
}

#[test]
fn an_idmapped_bind_takes_the_mounts_maps_or_the_containers() {
    let maps = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let rec = with(json!({
        "mounts": [
            { "destination": "/a", "type": "bind", "source": "/srv/a", "options": ["bind", "idmap"],
              "uidMappings": [{ "containerID": 0, "hostID": 2000, "size": 10 }],
              "gidMappings": [{ "containerID": 0, "hostID": 3000, "size": 10 }] },
            { "destination": "/b", "type": "bind", "source": "/srv/b", "options": ["rbind", "ridmap"] },
        ],
        "linux": { "uidMappings": maps, "gidMappings": maps },
    }))
    .run();
    rec.assert_order(&[
        "idmap_bind /srv/a /a rec=false uid=0:2000:10 gid=0:3000:10",
        "idmap_bind /srv/b /b rec=true uid=0:100000:65536 gid=0:100000:65536",
    ]);
    assert!(!rec.has("mount /srv/a"));
    let unmapped =
        with_mounts(json!([{ "destination": "/a", "type": "bind", "source": "/srv/a", "options": ["idmap"] }]));
    assert!(unmapped.plan().unwrap_err().to_string().contains("needs uidMappings and gidMappings"));
}

#[test]
fn recursive_attributes_go_through_mount_setattr_after_the_mount() {
    let rec = with_mounts(json!([
        { "destination": "/r", "type": "bind", "source": "/srv/r", "options": ["rbind", "rro", "rnosuid", "rnoatime"] },
    ]))
    .run();
    let (ro, nosuid, noatime, atime) =
        (libc::MOUNT_ATTR_RDONLY, libc::MOUNT_ATTR_NOSUID, libc::MOUNT_ATTR_NOATIME, libc::MOUNT_ATTR__ATIME);
    let line = format!("mount_setattr /r set={:#x} clear={atime:#x}", ro | nosuid | noatime);
    rec.assert_order(&["mount /srv/r /r - bind,rec -", &line]);
}

#[test]
fn sysfs_and_mqueue_fall_back_to_the_hosts_when_the_kernel_refuses_a_new_one() {
    let mut r = Recorder::new();
    r.fail.push(("mount sysfs /sys sysfs".into(), Errno::EPERM));
    r.fail.push(("mount mqueue /dev/mqueue".into(), Errno::EPERM));
    let rec = with_mounts(json!([
        { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"] },
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nodev"] },
    ]))
    .run_with(r);
    rec.assert_order(&[
        "mount sysfs /sys sysfs ro,nosuid -",
        "mount /sys /sys - bind,rec -",
        "remount_bind /sys ro,nosuid",
        "mount mqueue /dev/mqueue mqueue nodev -",
        "mount /dev/mqueue /dev/mqueue - bind,rec -",
        "remount_bind /dev/mqueue nodev",
    ]);
}

#[test]
fn devpts_drops_an_unmapped_gid_and_tries_again() {
    let mut r = Recorder::new();
    r.fail.push(("mount devpts".into(), Errno::EINVAL));
    let rec = with_mounts(json!([
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "gid=5", "mode=0620"] },
    ]))
    .run_with(r);
    rec.assert_order(&[
        "mount devpts /dev/pts devpts - newinstance,gid=5,mode=0620",
        "mount devpts /dev/pts devpts - newinstance,mode=0620",
    ]);
}

#[test]
fn any_other_mount_error_names_the_mount_and_stops() {
    let mut r = Recorder::new();
    r.fail.push(("mount proc".into(), Errno::EBUSY));
    let s = with_mounts(json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" },
    ]));
    let err = s.try_run(&mut r).unwrap_err().to_string();
    assert_eq!(err, "config.json: mounts[0] (/proc): Device or resource busy");
    assert!(!r.has("mount tmpfs /tmp"));
}

#[test]
fn a_v1_host_gets_runcs_tmpfs_with_one_bound_directory_per_hierarchy() {
    use crate::cgroups::{CgroupDir, Version};
    let v1 = |ctrls: &[&str]| CgroupDir {
        mountpoint: format!("/sys/fs/cgroup/{}", ctrls.join(",").trim_start_matches("name=")).into(),
        controllers: ctrls.iter().map(|c| c.to_string()).collect(),
        version: Version::V1,
        path: "/strata/t".into(),
        runtime_path: "/".into(),
    };
    let mut s = with_mounts(json!([
        { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "ro"] },
    ]));
    let mut unified = v1(&[]);
    unified.version = Version::V2;
    s.cgroup.dirs = vec![v1(&["cpu", "cpuacct"]), v1(&["name=systemd"]), unified];
    let rec = s.run();
    rec.assert_order(&[
        "mkdir /sys/fs/cgroup 755",
        "mount tmpfs /sys/fs/cgroup tmpfs nosuid,nodev,noexec mode=755",
        "mkdir /sys/fs/cgroup/cpu,cpuacct 755",
        "mount /sys/fs/cgroup/cpu,cpuacct/strata/t /sys/fs/cgroup/cpu,cpuacct - bind,rec -",
        "remount_bind /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec",
        "mkdir /sys/fs/cgroup/systemd 755",
        "mount /sys/fs/cgroup/systemd/strata/t /sys/fs/cgroup/systemd - bind,rec -",
        "remount_bind /sys/fs/cgroup ro",
    ]);
    assert!(!rec.has("mkdir /sys/fs/cgroup/unified"), "runc shows no cgroup2 mount on a hybrid host");
}

#[test]
fn a_fresh_cgroup_mount_refused_in_a_user_namespace_falls_back_to_a_bind() {
    let mut r = Recorder::new();
    r.fail.push(("mount cgroup2".into(), Errno::EPERM));
    let s = with(json!({
        "mounts": [{ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup" }],
        "linux": { "namespaces": [{ "type": "mount" }, { "type": "cgroup" }] },
    }));
    let rec = s.run_with(r);
    rec.assert_order(&[
        "mount cgroup2 /sys/fs/cgroup cgroup2 nosuid,nodev,noexec -",
        "mount /sys/fs/cgroup/strata/t /sys/fs/cgroup - bind,rec -",
        "remount_bind /sys/fs/cgroup nosuid,nodev,noexec",
    ]);
}

#[test]
fn configured_devices_come_after_the_defaults_with_their_mode_and_owner() {
    let rec = with(json!({ "linux": { "devices": [
        { "path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6 },
        { "path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200 },
    ] } }))
    .run();
    rec.assert_order(&[
        "mknod /dev/tty c 5:0 666 0:0",
        "symlink /proc/self/fd/2 /dev/stderr",
        "mknod /dev/sda b 8:0 660 0:6",
        "mkdir /dev/net 755",
        "mknod /dev/net/tun c 10:200 666 0:0",
    ]);
}

#[test]
fn bad_devices_are_refused_by_the_parent() {
    let a = with(json!({ "linux": { "devices": [{ "path": "/dev/x", "type": "a", "major": 1, "minor": 1 }] } }));
    assert!(a.plan().unwrap_err().to_string().contains("linux.devices[0].type"));
    let out = with(json!({ "linux": { "devices": [{ "path": "/etc/x", "type": "c", "major": 1, "minor": 1 }] } }));
    assert!(out.plan().unwrap_err().to_string().contains("is not under /dev"));
}

#[test]
fn binding_dev_itself_makes_no_default_devices_or_links() {
    let rec =
        with_mounts(json!([{ "destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"] }])).run();
    assert_eq!(rec.count("mknod"), 0);
    assert_eq!(rec.count("symlink"), 0);
}

#[test]
fn masked_paths_fall_back_to_the_hosts_dev_null_and_skip_what_is_missing() {
    let mut r = Recorder::new();
    r.missing.insert("/dev/null".into());
    r.missing.insert("/proc/acpi".into());
    r.files.insert("/proc/kcore".into());
    r.missing.insert("/proc/bus".into());
    let rec = with(json!({ "linux": { "maskedPaths": ["/proc/acpi", "/proc/kcore"], "readonlyPaths": ["/proc/bus", "/proc/sys"] } }))
        .run_with(r);
    assert!(!rec.has("mount tmpfs /proc/acpi") && !rec.has("mount root:/proc/bus"));
    rec.assert_order(&[
        "mount /dev/null /proc/kcore - bind -",
        "stat /proc/sys",
        "mount root:/proc/sys /proc/sys - bind,rec -",
        "remount_bind /proc/sys ro",
    ]);
}

#[test]
fn the_configured_propagation_is_applied_after_the_pivot_when_setup_needs_another() {
    let prop = |p: &str| with(json!({ "linux": { "rootfsPropagation": p } })).run();
    let shared = prop("rshared");
    shared.assert_order(&["mount none host:/ - slave,rec -", "pivot_root", "mount none host:/ - shared,rec -"]);
    let unbindable = prop("unbindable");
    unbindable.assert_order(&["mount none host:/ - private,rec -", "pivot_root", "mount none host:/ - unbindable -"]);
    let private = prop("private");
    assert_eq!(private.calls[private.index("mount ")], "mount none host:/ - private,rec -");
    assert_eq!(private.count("mount none host:/"), 1);
    let bad = with(json!({ "linux": { "rootfsPropagation": "sideways" } }));
    assert!(bad.plan().unwrap_err().to_string().contains("linux.rootfsPropagation"));
}

#[test]
fn a_read_only_root_is_remounted_after_the_pivot_and_propagation() {
    let rec =
        with(json!({ "root": { "path": "rootfs", "readonly": true }, "linux": { "rootfsPropagation": "shared" } }))
            .run();
    let n = rec.calls.len();
    assert_eq!(&rec.calls[n - 3..], ["pivot_root /b/rootfs", "mount none host:/ - shared -", "remount_bind host:/ ro"]);
}
