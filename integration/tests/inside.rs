//! What the container's process sees, checked from inside (its /proc, ids, names) and
//! compared with the host.

use serde_json::json;
use strata_integration::*;

fn run_ok(b: &Bundle, name: &str) -> String {
    let id = b.id(name);
    let out = b.run(&id);
    assert_ok(&out, "run");
    b.assert_nothing_left(&id, None);
    stdout(&out)
}

#[test]
fn new_namespaces_differ_from_the_hosts() {
    let mut b = Bundle::new("ns");
    b.sh("for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; echo $$");
    let out = run_ok(&b, "ns");
    let lines: Vec<&str> = out.lines().collect();
    for (i, ns) in ["pid", "net", "ipc", "uts", "mnt", "cgroup"].iter().enumerate() {
        assert!(lines[i].starts_with(&format!("{ns}:[")), "{out}");
        assert_ne!(lines[i], ns_link("self", ns), "{ns} namespace is the host's");
    }
    assert_eq!(lines[6], "1", "the container's process is pid 1 of its pid namespace");
}

#[test]
fn a_namespace_left_out_is_shared_with_the_host() {
    let mut b = Bundle::new("ns-shared");
    b.config["linux"]["namespaces"] = json!([{ "type": "mount" }, { "type": "pid" }]);
    b.config["hostname"] = json!(null);
    b.sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts");
    let out = run_ok(&b, "nss");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns_link("self", "net"));
    assert_eq!(lines[1], ns_link("self", "uts"));
}

#[test]
fn hostname_domainname_user_cwd_env_and_umask_apply() {
    let mut b = Bundle::new("process");
    b.config["hostname"] = json!("box-1");
    b.config["domainname"] = json!("example.test");
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 63 });
    b.config["process"]["cwd"] = json!("/home/user");
    b.config["process"]["env"] = json!(["PATH=/bin", "GREETING=hi there"]);
    b.config["root"]["readonly"] = json!(false);
    b.sh("hostname; cat /proc/sys/kernel/domainname; id -u; id -g; id -G; pwd; umask; echo $GREETING; touch f; stat -c %a f");
    let out = run_ok(&b, "proc");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["box-1", "example.test", "1000", "1000", "1000 10 20", "/home/user", "0077", "hi there", "600"]);
}

#[test]
fn capabilities_and_no_new_privileges_are_exactly_the_configs() {
    let mut b = Bundle::new("caps");
    b.sh("grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status");
    let out = run_ok(&b, "caps");
    // The default spec keeps CAP_AUDIT_WRITE(29), CAP_KILL(5), CAP_NET_BIND_SERVICE(10).
    let want = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    for line in out.lines() {
        let (k, v) = line.split_once(':').unwrap();
        let v = v.trim();
        match k {
            "CapInh" | "CapAmb" => assert_eq!(v, "0000000000000000", "{k}"),
            "CapPrm" | "CapEff" | "CapBnd" => assert_eq!(v, want, "{k}"),
            "NoNewPrivs" => assert_eq!(v, "1"),
            _ => unreachable!(),
        }
    }
}

#[test]
fn rootfs_is_pivoted_and_the_host_is_out_of_reach() {
    let mut b = Bundle::new("pivot");
    std::fs::write(b.dir.join("rootfs/marker"), "inside\n").unwrap();
    b.sh("cat /marker; awk '$5==\"/\"' /proc/self/mountinfo | wc -l; ls /proc/1/root/ | grep -c marker");
    let out = run_ok(&b, "piv");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["inside", "1", "1"]);
    // The host's root is not visible inside: the bundle's path doesn't exist there.
    b.sh(&format!("test -e {} && echo host-visible || echo hidden", b.dir.display()));
    assert_eq!(run_ok(&b, "piv2"), "hidden\n");
}

#[test]
fn no_pivot_still_runs_in_the_rootfs() {
    let mut b = Bundle::new("nopivot");
    std::fs::write(b.dir.join("rootfs/marker"), "np").unwrap();
    b.sh("cat /marker");
    let id = b.id("np");
    let out = b.strata(&["run", "--no-pivot", "-b", b.dir.to_str().unwrap(), &id]);
    assert_ok(&out, "run --no-pivot");
    assert_eq!(stdout(&out), "np");
    b.assert_nothing_left(&id, None);
}

#[test]
fn readonly_root_refuses_writes_but_tmpfs_mounts_accept_them() {
    let mut b = Bundle::new("ro");
    b.sh("touch /x 2>/dev/null && echo root-writable || echo root-ro; touch /dev/shm/y && echo shm-writable");
    assert_eq!(run_ok(&b, "ro"), "root-ro\nshm-writable\n");
    b.config["root"]["readonly"] = json!(false);
    b.sh("touch /x && echo root-writable");
    assert_eq!(run_ok(&b, "rw"), "root-writable\n");
}

#[test]
fn default_mounts_and_devices() {
    let mut b = Bundle::new("mounts");
    b.sh("for m in /proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup; do \
           awk -v m=$m '$2==m {print m, $3}' /proc/self/mounts | head -1; done; \
         echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
         readlink /dev/fd; stat -c '%F %a %t,%T' /dev/null; \
         touch /proc/sys/kernel/x 2>/dev/null || echo proc-sys-ro");
    let out = run_ok(&b, "m");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..7],
        [
            "/proc proc",
            "/dev tmpfs",
            "/dev/pts devpts",
            "/dev/shm tmpfs",
            "/dev/mqueue mqueue",
            "/sys sysfs",
            "/sys/fs/cgroup tmpfs"
        ]
    );
    assert_eq!(lines[7], "4");
    assert_eq!(lines[8], "/proc/self/fd");
    assert_eq!(lines[9], "character special file 666 1,3");
    assert_eq!(lines[10], "proc-sys-ro");
}

#[test]
fn masked_paths_hide_files_and_directories() {
    let mut b = Bundle::new("masked");
    std::fs::write(b.dir.join("rootfs/secret-file"), "secret").unwrap();
    std::fs::create_dir(b.dir.join("rootfs/secret-dir")).unwrap();
    std::fs::write(b.dir.join("rootfs/secret-dir/inner"), "secret").unwrap();
    b.config["linux"]["maskedPaths"] = json!(["/secret-file", "/secret-dir", "/does/not/exist"]);
    b.sh("wc -c < /secret-file; ls -A /secret-dir | wc -l; touch /secret-dir/x 2>/dev/null || echo dir-ro");
    assert_eq!(run_ok(&b, "mask"), "0\n0\ndir-ro\n");
}

#[test]
fn joins_an_existing_namespace_by_path() {
    let mut a = Bundle::new("join-a");
    a.args(&["sleep", "100"]);
    let owner = a.id("owner");
    a.create(&owner);
    let pid = a.state(&owner).unwrap()["pid"].as_i64().unwrap().to_string();

    let mut b = Bundle::new("join-b");
    b.config["linux"]["namespaces"] = json!([
        { "type": "pid" }, { "type": "mount" }, { "type": "ipc" },
        { "type": "network", "path": format!("/proc/{pid}/ns/net") },
        { "type": "uts", "path": format!("/proc/{pid}/ns/uts") }
    ]);
    b.config["hostname"] = json!(null);
    b.sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname");
    let out = run_ok(&b, "joiner");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns_link(&pid, "net"));
    assert_eq!(lines[1], ns_link(&pid, "uts"));
    assert_eq!(lines[2], "runc", "the joined uts namespace carries the first container's hostname");
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_id() {
    let mut b = Bundle::new("userns");
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({ "type": "user" }));
    b.config["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    b.config["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    b.args(&["sleep", "100"]);
    let id = b.id("uns");
    b.create(&id);
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap().to_string();
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    assert_ne!(ns_link(&pid, "user"), ns_link("self", "user"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|u| u == "200000"), "host sees {uid_line}");
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "200000", "65536"]);
}

#[test]
fn time_namespace_offsets_the_boottime_clock() {
    let mut b = Bundle::new("timens");
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "time" }));
    b.config["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 1000000, "nanosecs": 0 } });
    b.sh("readlink /proc/self/ns/time; cut -d. -f1 /proc/uptime");
    let out = run_ok(&b, "time");
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], ns_link("self", "time"));
    let uptime: u64 = lines[1].parse().unwrap();
    assert!(uptime >= 1000000, "uptime {uptime} shows no offset");
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_container() {
    let mut b = Bundle::new("fds");
    b.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/self/fd/3");
    b.write_config();
    let id = b.id("fds");
    let file = std::fs::File::open("/etc/hostname").unwrap();
    let mut cmd = b.command(&["run", "--preserve-fds", "1", "-b", b.dir.to_str().unwrap(), &id]);
    pass_as_fd3(&mut cmd, &file);
    let out = cmd.output().unwrap();
    assert_ok(&out, "run --preserve-fds 1");
    // ls's own directory fd shows up as one more entry.
    let text = stdout(&out);
    let mut lines = text.lines();
    let fds: Vec<u32> = lines.next().unwrap().split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(&fds[..4], [0, 1, 2, 3], "{text}");
    assert!(fds.len() <= 5, "a runtime fd leaked into the container: {text}");
    assert_eq!(lines.next(), Some("/etc/hostname"));
}

#[test]
fn joins_another_containers_user_namespace_and_creates_the_rest_inside_it() {
    let maps = json!([{ "containerID": 0, "hostID": 300000, "size": 65536 }]);
    let mut a = Bundle::new("userns-owner");
    a.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({ "type": "user" }));
    a.config["linux"]["uidMappings"] = maps.clone();
    a.config["linux"]["gidMappings"] = maps;
    a.args(&["sleep", "100"]);
    let owner = a.id("uowner");
    a.create(&owner);
    let pid = a.state(&owner).unwrap()["pid"].as_i64().unwrap().to_string();

    let mut b = Bundle::new("userns-joiner");
    b.config["linux"]["namespaces"] = json!([
        { "type": "user", "path": format!("/proc/{pid}/ns/user") },
        { "type": "pid" }, { "type": "mount" }, { "type": "uts" }, { "type": "ipc" }, { "type": "network" }
    ]);
    b.sh("readlink /proc/self/ns/user; echo $$; id -u; hostname");
    let id = b.id("ujoin");
    let out = b.run(&id);
    assert_ok(&out, "run joining a user namespace");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], ns_link(&pid, "user"), "not in the joined user namespace");
    assert_eq!(lines[1], "1", "a new pid namespace inside the joined user namespace");
    assert_eq!(lines[2], "0");
    assert_eq!(lines[3], "runc");
    b.assert_nothing_left(&id, None);
}

#[test]
fn kill_all_reaches_every_process_of_the_cgroup() {
    // Without a pid namespace the init's death would leave its children behind.
    let mut b = Bundle::new("killall");
    b.config["linux"]["namespaces"] = json!([{ "type": "mount" }]);
    b.config["hostname"] = json!(null);
    b.sh("sleep 100 & sleep 100");
    let id = b.id("ka");
    b.create(&id);
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    b.wait_status(&id, "running");
    let cgroup_dir =
        find_cgroup_dirs(&id).into_iter().find(|d| d.starts_with("/sys/fs/cgroup/pids")).expect("pids cgroup");
    let mut pids = Vec::new();
    for _ in 0..200 {
        pids = std::fs::read_to_string(cgroup_dir.join("cgroup.procs"))
            .unwrap()
            .lines()
            .map(|l| l.parse::<i32>().unwrap())
            .collect();
        if pids.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // sh execs its last command: the init and the background sleep.
    assert!(pids.len() >= 2, "expected two processes: {pids:?}");
    assert_ok(&output_of(b.command(&["kill", "--all", &id, "KILL"])), "kill --all");
    b.wait_status(&id, "stopped");
    for _ in 0..200 {
        if pids.iter().all(|p| !process_alive(*p)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(pids.iter().all(|p| !process_alive(*p)), "survivors: {pids:?}");
    assert_ok(&output_of(b.command(&["delete", &id])), "delete");
    b.assert_nothing_left(&id, None);
}

/// process.cwd that only root may enter: runc enters it before switching to the user
/// (the process then sits in a directory it can't list), and so must strata.
#[test]
fn a_cwd_only_root_can_enter_is_entered_as_in_runc() {
    differential("cwd-root-only", |b, _rt| {
        let secret = b.dir.join("rootfs/secret");
        std::fs::create_dir_all(secret.join("sub")).unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        let mut seen = Vec::new();
        for cwd in ["/secret", "/secret/sub"] {
            b.config["process"]["cwd"] = json!(cwd);
            b.sh("pwd; ls . >/dev/null 2>&1 || echo unreadable; id -u");
            let id = b.id("cwd");
            let out = b.run(&id);
            b.assert_nothing_left(&id, None);
            seen.push((out.status.code(), stdout(&out)));
        }
        seen
    });
}
