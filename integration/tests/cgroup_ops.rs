//! The cgroup commands engines drive: pause/resume (a counter stops and goes on),
//! kill and delete -f of a paused container, update (the files change and state.json
//! agrees), events --stats (runc's shape) and ps (table and json).

mod cgroup_util;

use cgroup_util::*;
use serde_json::{json, Value};
use strata_integration::*;

/// A container that bumps a counter in /count every 20 ms.
fn counter(name: &str) -> CgBundle {
    let mut c = CgBundle::new(name);
    c.resources(json!({ "memory": { "limit": 67108864 }, "pids": { "limit": 50 } }));
    c.b.sh("i=0; while true; do i=$((i+1)); echo $i > /count.tmp; mv /count.tmp /count; sleep 0.02; done");
    c
}

fn count(c: &CgBundle) -> u64 {
    read(&c.rootfs_file("count")).parse().unwrap()
}

#[test]
fn pause_freezes_every_process_and_resume_lets_them_go_on() {
    let c = counter("pause");
    let pid = c.run_detached();
    wait_for(10, "the counter to start", || c.rootfs_file("count").exists());
    assert_ok(&c.strata(&["pause", &c.id]), "pause");
    assert_eq!(c.b.status(&c.id), "paused");
    assert_eq!(read(&c.v1("freezer").join("freezer.state")), "FROZEN");
    let frozen_at = count(&c);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(count(&c), frozen_at, "the counter advanced while paused");
    // Pausing twice, or resuming a running container, is an error.
    let again = c.strata(&["pause", &c.id]);
    assert!(!again.status.success() && stderr(&again).contains("paused"), "{}", stderr(&again));

    assert_ok(&c.strata(&["resume", &c.id]), "resume");
    assert_eq!(c.b.status(&c.id), "running");
    assert_eq!(read(&c.v1("freezer").join("freezer.state")), "THAWED");
    wait_for(5, "the counter to go on", || count(&c) > frozen_at + 5);
    let resume_running = c.strata(&["resume", &c.id]);
    assert!(!resume_running.status.success(), "resume of a running container succeeded");

    // delete -f of a paused container: everything goes, the frozen tasks too.
    assert_ok(&c.strata(&["pause", &c.id]), "pause");
    c.delete_and_check();
    assert!(!process_alive(pid), "init {pid} survived delete -f of the paused container");
}

#[test]
fn kill_of_a_paused_container_stops_it() {
    let c = counter("killpaused");
    let pid = c.run_detached();
    assert_ok(&c.strata(&["pause", &c.id]), "pause");
    assert_ok(&c.strata(&["kill", &c.id, "KILL"]), "kill KILL");
    c.b.wait_status(&c.id, "stopped");
    assert!(!process_alive(pid));
    assert_ok(&c.strata(&["delete", &c.id]), "delete");
    c.b.assert_nothing_left(&c.id, None);
}

fn state_json(c: &CgBundle) -> Value {
    serde_json::from_slice(&std::fs::read(c.b.root.join(&c.id).join("state.json")).unwrap()).unwrap()
}

#[test]
fn update_rewrites_the_cgroup_files_and_the_saved_config() {
    let c = counter("update");
    c.run_detached();
    let out = c.strata(&[
        "update",
        "--memory",
        "100m",
        "--memory-swap",
        "200m",
        "--memory-reservation",
        "50m",
        "--cpu-share",
        "256",
        "--cpu-period",
        "200000",
        "--cpu-quota",
        "40000",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "30",
        &c.id,
    ]);
    assert_ok(&out, "update");
    for (ctrl, file, want) in [
        ("memory", "memory.limit_in_bytes", (100u64 << 20).to_string()),
        ("memory", "memory.memsw.limit_in_bytes", (200u64 << 20).to_string()),
        ("memory", "memory.soft_limit_in_bytes", (50u64 << 20).to_string()),
        ("cpu", "cpu.shares", "256".into()),
        ("cpu", "cpu.cfs_period_us", "200000".into()),
        ("cpu", "cpu.cfs_quota_us", "40000".into()),
        ("cpuset", "cpuset.cpus", "0".into()),
        ("pids", "pids.max", "30".into()),
    ] {
        assert_eq!(read(&c.v1(ctrl).join(file)), want, "{ctrl}/{file}");
    }
    let saved = &state_json(&c)["config"]["linux"]["resources"];
    assert_eq!(saved["memory"]["limit"], 100 << 20);
    assert_eq!(saved["memory"]["swap"], 200 << 20);
    assert_eq!(saved["cpu"]["shares"], 256);
    assert_eq!(saved["pids"]["limit"], 30);

    // --resources from stdin: only what it names changes, in the file and in state.
    let mut cmd = c.b.command(&["update", "--resources", "-", &c.id]);
    let input = c.b.dir.join("update.json");
    std::fs::write(&input, br#"{"pids":{"limit":9},"cpu":{"shares":128}}"#).unwrap();
    cmd.stdin(std::fs::File::open(&input).unwrap());
    assert_ok(&output_of(cmd), "update --resources -");
    assert_eq!(read(&c.v1("pids").join("pids.max")), "9");
    assert_eq!(read(&c.v1("cpu").join("cpu.shares")), "128");
    let saved = &state_json(&c)["config"]["linux"]["resources"];
    assert_eq!(saved["pids"]["limit"], 9);
    assert_eq!(saved["memory"]["limit"], 100 << 20, "an update must keep what it doesn't name");

    // A value the kernel rejects: an error naming the field; state keeps the old value.
    let bad = c.strata(&["update", "--cpuset-cpus", "64-70", &c.id]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("linux.resources.cpu.cpus"), "{}", stderr(&bad));
    assert_eq!(state_json(&c)["config"]["linux"]["resources"]["cpu"]["cpus"], "0");
    let bad = c.strata(&["update", "--memory", "lots", &c.id]);
    assert!(!bad.status.success() && stderr(&bad).contains("--memory"), "{}", stderr(&bad));
    c.delete_and_check();
}

#[test]
fn events_stats_print_runcs_shape() {
    let c = counter("stats");
    c.run_detached();
    wait_for(10, "the counter to start", || c.rootfs_file("count").exists());
    let out = c.strata(&["events", "--stats", &c.id]);
    assert_ok(&out, "events --stats");
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["type"], "stats");
    assert_eq!(e["id"], c.id.as_str());
    let d = &e["data"];
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(
        d["cpu"]["usage"]["percpu"].as_array().unwrap().len(),
        std::thread::available_parallelism().unwrap().get()
    );
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(d["memory"]["raw"]["rss"].is_u64() || d["memory"]["raw"]["total_rss"].is_u64(), "{d}");
    assert_eq!(d["pids"]["limit"], 50);
    assert!(d["pids"]["current"].as_u64().unwrap() >= 1);
    assert!(d["hugetlb"]["2MB"].is_object(), "{d}");
    c.delete_and_check();
    let gone = c.strata(&["events", "--stats", &c.id]);
    assert!(!gone.status.success());
}

#[test]
fn ps_lists_the_containers_processes_as_a_table_and_as_json() {
    let mut c = CgBundle::new("ps");
    c.b.sh("sleep 31 & sleep 32 & wait");
    let pid = c.run_detached();
    let json_out = c.strata(&["ps", "--format", "json", &c.id]);
    assert_ok(&json_out, "ps json");
    let pids: Vec<i32> = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&pid));

    let table = stdout(&c.strata(&["ps", &c.id]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("PID") && lines[0].contains("CMD"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert!(table.contains("sleep 31") && table.contains("sleep 32"), "{table}");
    // ps options after the id go to ps.
    let custom = stdout(&c.strata(&["ps", &c.id, "--", "-o", "pid,comm"]));
    assert!(custom.lines().next().unwrap().split_whitespace().eq(["PID", "COMMAND"]), "{custom}");
    assert_eq!(custom.lines().filter(|l| l.trim_end().ends_with("sleep")).count(), 2, "{custom}");
    c.delete_and_check();
}
