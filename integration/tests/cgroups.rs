//! linux.resources on this machine's real (hybrid v1 + cgroup2) cgroups: each limit is
//! checked in the host's cgroup file, and its effect where one can be seen (a fork
//! bomb capped by pids.max, an allocation past memory.limit OOM-killed). A resource
//! the host can't apply is a one-line error naming the field, with nothing left.

mod cgroup_util;

use cgroup_util::*;
use serde_json::json;
use strata_integration::*;

#[test]
fn limits_are_in_the_hosts_cgroup_files_and_seen_inside() {
    let mut c = CgBundle::new("limits");
    c.resources(json!({
        "memory": { "limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10 },
        "cpu": { "shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0" },
        "pids": { "limit": 40 },
        "blockIO": { "throttleReadBpsDevice": [{ "major": 7, "minor": 0, "rate": 1048576 }],
                     "throttleWriteIOPSDevice": [{ "major": 7, "minor": 0, "rate": 100 }] },
        "devices": [{ "allow": false, "access": "rwm" }]
    }));
    c.b.sh(
        "{ cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares; \
           head -c 4 /dev/zero | wc -c; cat /proc/self/cgroup; } > /inside.tmp 2>&1; mv /inside.tmp /inside; sleep 30",
    );
    c.run_detached();
    let files = [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.soft_limit_in_bytes", "33554432"),
        ("memory", "memory.memsw.limit_in_bytes", "134217728"),
        ("memory", "memory.swappiness", "10"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "40"),
        ("blkio", "blkio.throttle.read_bps_device", "7:0 1048576"),
        ("blkio", "blkio.throttle.write_iops_device", "7:0 100"),
    ];
    for (ctrl, file, want) in files {
        assert_eq!(read(&c.v1(ctrl).join(file)), want, "{ctrl}/{file}");
    }
    // Deny-all then the default devices: /dev/null is allowed, a disk is not.
    let devices = read(&c.v1("devices").join("devices.list"));
    assert!(devices.contains("c 1:3 rwm"), "{devices}");
    assert!(!devices.contains("a *:* rwm"), "{devices}");

    // Inside: the limits read back through the container's own cgroup mount, /dev/zero
    // is allowed, and the cgroup namespace roots every hierarchy at the container's.
    let file = c.rootfs_file("inside");
    wait_for(10, "the container's report", || file.exists());
    let inside = read(&file);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[..4], ["67108864", "40", "512", "4"], "{inside}");
    for line in &lines[4..] {
        assert!(line.ends_with(":/"), "/proc/self/cgroup inside is not rooted at /: {inside}");
    }
    c.delete_and_check();
}

#[test]
fn pids_limit_caps_a_fork_bomb() {
    let mut c = CgBundle::new("forkbomb");
    c.resources(json!({ "pids": { "limit": 16 } }));
    // A subshell forks until it can't (busybox sh then exits); the init stays (the
    // final `true` keeps sh from exec'ing its last command).
    c.b.sh("(while true; do sleep 60 & done); sleep 60; true");
    c.run_detached();
    let dir = c.v1("pids");
    wait_for(10, "fork failures (pids.events max)", || keyed(&dir.join("pids.events"), "max ") > 0);
    // The subshell gone, the init's own `sleep 60` takes the freed slot: 16 tasks,
    // which `ps` lists too. pids.max never lets a 17th exist.
    let current = || read(&dir.join("pids.current"));
    let listed = || serde_json::from_slice::<Vec<i32>>(&c.strata(&["ps", "-f", "json", &c.id]).stdout).unwrap().len();
    wait_for(10, "16 tasks, all listed by ps", || current() == "16" && listed() == 16);
    assert_eq!(read(&dir.join("pids.max")), "16");
    for _ in 0..20 {
        assert!(current().parse::<u64>().unwrap() <= 16, "pids.current above pids.max");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    c.delete_and_check();
}

#[test]
fn memory_limit_gets_an_allocation_oom_killed_and_events_report_it() {
    let mut c = CgBundle::new("oom");
    // memory+swap = memory: nothing can go to swap instead.
    c.resources(json!({ "memory": { "limit": 33554432, "swap": 33554432 } }));
    c.b.sh("sleep 1; dd if=/dev/zero of=/dev/null bs=96M count=1; echo $? > /dd-status; sleep 30");
    c.b.create(&c.id);
    let out_file = c.b.dir.join("events.out");
    let mut events =
        c.b.command(&["events", "--interval", "200ms", &c.id])
            .stdout(std::fs::File::create(&out_file).unwrap())
            .spawn()
            .unwrap();
    assert_ok(&c.strata(&["start", &c.id]), "start");
    let status = c.rootfs_file("dd-status");
    wait_for(20, "dd to be OOM-killed", || status.exists() && !read(&status).is_empty());
    assert_eq!(read(&status), "137", "dd's exit status (128 + SIGKILL)");
    let memdir = c.v1("memory");
    assert!(keyed(&memdir.join("memory.oom_control"), "oom_kill ") >= 1);
    assert!(
        read(&memdir.join("memory.max_usage_in_bytes")).parse::<u64>().unwrap() > 30 << 20,
        "usage reached the limit"
    );
    wait_for(10, "an oom event", || std::fs::read_to_string(&out_file).unwrap_or_default().contains("\"oom\""));
    assert_ok(&c.strata(&["kill", &c.id, "KILL"]), "kill");
    // events ends by itself once the container is gone.
    wait_for(10, "events to exit", || events.try_wait().unwrap().is_some());
    let lines = std::fs::read_to_string(&out_file).unwrap();
    let parsed: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(parsed.iter().any(|e| e["type"] == "oom" && e["id"] == c.id.as_str()), "{lines}");
    assert!(parsed.iter().any(|e| e["type"] == "stats"), "{lines}");
    c.delete_and_check();
}

/// Runs `create` with `resources`; it must fail naming `field`, leaving nothing.
fn refused(name: &str, resources: serde_json::Value, field: &str) {
    let mut c = CgBundle::new(name);
    c.resources(resources);
    c.b.args(&["true"]);
    c.b.write_config();
    let out = c.strata(&["create", "-b", c.b.dir.to_str().unwrap(), &c.id]);
    let err = stderr(&out);
    assert!(!out.status.success(), "create with {name} succeeded");
    assert!(err.contains(field), "error {err:?} does not name {field}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    c.b.assert_nothing_left(&c.id, None);
    assert!(parent_dirs(&c.parent).is_empty(), "test parent left behind after a failed create");
}

#[test]
fn controllers_this_host_lacks_are_errors_naming_the_field() {
    refused(
        "classid",
        json!({ "network": { "classID": 1048577 } }),
        "linux.resources.network.classID: this host has no net_cls",
    );
    refused(
        "prio",
        json!({ "network": { "priorities": [{ "name": "lo", "priority": 3 }] } }),
        "linux.resources.network.priorities[0]",
    );
    refused(
        "rdma",
        json!({ "rdma": { "mlx5_0": { "hcaHandles": 3 } } }),
        "linux.resources.rdma[\"mlx5_0\"]: this host has no rdma",
    );
    // A hybrid host is v1 for unified keys, as for runc (cgroup_fidelity.rs compares).
    refused(
        "unified",
        json!({ "unified": { "memory.max": "1000000" } }),
        "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1",
    );
    refused("blkweight", json!({ "blockIO": { "weight": 5 } }), "linux.resources.blockIO.weight: 5 is out of range");
}

#[test]
fn values_out_of_range_or_rejected_by_the_kernel_are_errors_naming_the_field() {
    refused("neg", json!({ "memory": { "limit": -5 } }), "linux.resources.memory.limit: -5 is negative");
    refused("swappiness", json!({ "memory": { "swappiness": 200 } }), "linux.resources.memory.swappiness");
    refused("swapbelow", json!({ "memory": { "limit": 67108864, "swap": 1048576 } }), "linux.resources.memory");
    refused("quota", json!({ "cpu": { "quota": -7 } }), "linux.resources.cpu.quota");
    refused("cpus", json!({ "cpu": { "cpus": "64-70" } }), "linux.resources.cpu.cpus");
    refused("mems", json!({ "cpu": { "mems": "9" } }), "linux.resources.cpu.mems");
    refused(
        "hugesize",
        json!({ "hugepageLimits": [{ "pageSize": "3MB", "limit": 0 }] }),
        "linux.resources.hugepageLimits[0].pageSize",
    );
    // Unknown letters are ignored, as runc does ("rwx" is "rw"); none of r, w, m is an error.
    refused(
        "devaccess",
        json!({ "devices": [{ "allow": true, "type": "c", "access": "xyz" }] }),
        "linux.resources.devices[0].access",
    );
    refused(
        "devhole",
        json!({ "devices": [{ "allow": true, "access": "rwm" }, { "allow": false, "type": "c", "major": 1, "access": "w" }] }),
        "punch a hole",
    );
    refused("hierarchy", json!({ "memory": { "useHierarchy": false } }), "linux.resources.memory.useHierarchy");
}

#[test]
fn a_cgroups_path_escaping_with_dotdot_is_refused() {
    let mut c = CgBundle::new("dotdot");
    c.b.config["linux"]["cgroupsPath"] = json!("/strata-test-x/../../etc");
    c.b.args(&["true"]);
    c.b.write_config();
    let out = c.strata(&["create", "-b", c.b.dir.to_str().unwrap(), &c.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("linux.cgroupsPath"), "{}", stderr(&out));
    c.b.assert_nothing_left(&c.id, None);
}

#[test]
fn the_other_v1_fields_reach_their_files() {
    let mut c = CgBundle::new("v1more");
    c.resources(json!({
        "memory": { "limit": 67108864, "kernelTCP": 16777216, "disableOOMKiller": true },
        "cpu": { "burst": 10000, "idle": 1, "quota": 50000 },
        "blockIO": { "weight": 300 }
    }));
    c.b.sh("sleep 30");
    c.run_detached();
    assert_eq!(read(&c.v1("memory").join("memory.kmem.tcp.limit_in_bytes")), "16777216");
    assert_eq!(keyed(&c.v1("memory").join("memory.oom_control"), "oom_kill_disable "), 1);
    assert_eq!(read(&c.v1("cpu").join("cpu.cfs_burst_us")), "10000");
    assert_eq!(read(&c.v1("cpu").join("cpu.idle")), "1");
    // This host's blkio has BFQ weights only: the weight goes to blkio.bfq.weight.
    let bfq = c.v1("blkio").join("blkio.bfq.weight");
    if bfq.exists() {
        assert_eq!(read(&bfq).lines().last().unwrap().split_whitespace().last().unwrap(), "300", "{}", read(&bfq));
    }
    // update --memory -1 lifts memory+swap too (runc's rule), so the new limit holds.
    assert_ok(&c.strata(&["update", "--memory", "-1", &c.id]), "update --memory -1");
    assert_eq!(read(&c.v1("memory").join("memory.limit_in_bytes")), "9223372036854771712");
    assert_eq!(read(&c.v1("memory").join("memory.memsw.limit_in_bytes")), "9223372036854771712");
    c.delete_and_check();
}

#[test]
fn v1_fields_this_kernel_lacks_are_errors_naming_the_field() {
    refused("leaf", json!({ "blockIO": { "leafWeight": 300 } }), "linux.resources.blockIO.leafWeight");
    refused(
        "rt",
        json!({ "cpu": { "realtimeRuntime": 1000, "realtimePeriod": 1000000 } }),
        "linux.resources.cpu.realtimeRuntime",
    );
    refused(
        "unifiedv1",
        json!({ "unified": { "hugetlb.2MB.max": "0" } }),
        "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1",
    );
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let mut c = CgBundle::new("quota");
    // 10 ms of CPU per 100 ms period.
    c.resources(json!({ "cpu": { "quota": 10000, "period": 100000 } }));
    c.b.sh("while true; do :; done");
    c.run_detached();
    let usage = || read(&c.v1("cpuacct").join("cpuacct.usage")).parse::<u64>().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (before, t0) = (usage(), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let used = (usage() - before) as f64 / t0.elapsed().as_nanos() as f64;
    assert!(used < 0.2, "a 10% quota let the loop use {:.0}% of a CPU", used * 100.0);
    assert!(used > 0.02, "the loop barely ran ({:.1}%)", used * 100.0);
    assert!(keyed(&c.v1("cpu").join("cpu.stat"), "nr_throttled ") > 0);
    let stats: serde_json::Value = serde_json::from_slice(&c.strata(&["events", "--stats", &c.id]).stdout).unwrap();
    assert!(stats["data"]["cpu"]["throttling"]["throttled_periods"].as_u64().unwrap() > 0, "{stats}");
    c.delete_and_check();
}
