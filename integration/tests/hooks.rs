//! Hooks: every kind, in the spec's order, in the namespaces the spec says, with the
//! state on stdin, their own env and args, and each kind's failure semantics.

use std::time::Instant;

use serde_json::json;
use strata_integration::*;

/// A host-side hook that appends "<name> <mnt ns> <state json>" to `log`.
fn host_hook(name: &str, log: &std::path::Path) -> serde_json::Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("printf '%s %s %s\\n' {name} $(readlink /proc/self/ns/mnt) \"$(cat)\" >> {}", log.display())],
    })
}

#[test]
fn every_hook_kind_runs_in_order_in_its_namespace_with_the_state() {
    let mut b = Bundle::new("hooks");
    let log = b.dir.join("hooks.log");
    b.config["root"]["readonly"] = json!(false);
    b.args(&["sleep", "100"]);
    b.config["hooks"] = json!({
        "prestart": [host_hook("prestart", &log)],
        "createRuntime": [host_hook("createRuntime", &log)],
        "createContainer": [host_hook("createContainer", &log)],
        // startContainer runs inside the container: its path and files are the container's.
        "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "printf 'startContainer %s %s\\n' $(readlink /proc/self/ns/mnt) \"$(cat)\" > /start.log"] }],
        "poststart": [host_hook("poststart", &log)],
        "poststop": [host_hook("poststop", &log)],
    });
    let id = b.id("hooks");
    b.create(&id);
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap();
    let container_mnt = ns_link(&pid.to_string(), "mnt");
    let host_mnt = ns_link("self", "mnt");
    assert_ok(&output_of(b.command(&["start", &id])), "start");
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<(&str, &str, serde_json::Value)> = text
        .lines()
        .map(|l| {
            let mut p = l.splitn(3, ' ');
            let (k, ns, st) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            (k, ns, serde_json::from_str(st).unwrap())
        })
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(kinds, ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]);
    for (kind, ns, state) in &lines {
        assert_eq!(state["id"], id.as_str(), "{kind}");
        assert_eq!(state["bundle"], b.dir.to_str().unwrap(), "{kind}");
        let want_ns = if *kind == "createContainer" { &container_mnt } else { &host_mnt };
        assert_eq!(ns, want_ns, "{kind} ran in the wrong mount namespace");
    }
    assert_eq!(lines[0].2["status"], "creating");
    assert_eq!(lines[3].2["status"], "running");
    assert_eq!(lines[3].2["pid"], pid);
    assert_eq!(lines[4].2["status"], "stopped");

    // createContainer and startContainer see the init's pid as the host knows it.
    assert_eq!(lines[2].2["pid"], pid);
    let start = std::fs::read_to_string(b.dir.join("rootfs/start.log")).unwrap();
    let (kind, rest) = start.split_once(' ').unwrap();
    let (ns, state) = rest.split_once(' ').unwrap();
    assert_eq!(kind, "startContainer");
    assert_eq!(ns, container_mnt);
    let state: serde_json::Value = serde_json::from_str(state.trim()).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
}

#[test]
fn hooks_get_exactly_their_env_and_args() {
    let mut b = Bundle::new("hook-env");
    let out = b.dir.join("env.out");
    b.config["hooks"] = json!({ "createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$0 $1 $FOO ${{HOME:-nohome}}\" > {}", out.display()), "zero", "one"],
        "env": ["FOO=bar"],
    }]});
    b.sh("true");
    let id = b.id("env");
    assert_ok(&b.run(&id), "run");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "zero one bar nohome\n");
}

#[test]
fn a_failing_create_hook_fails_create_and_leaves_nothing() {
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut b = Bundle::new("hook-fail");
        b.args(&["sleep", "100"]);
        b.config["hooks"] = json!({ kind: [{ "path": "/bin/sh", "args": ["sh", "-c", "exit 3"] }] });
        b.write_config();
        let id = b.id("hf");
        let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]));
        assert!(!out.status.success(), "{kind}: create succeeded");
        assert!(stderr(&out).contains(&format!("hooks.{kind}[0]")), "{kind}: {}", stderr(&out));
        b.assert_nothing_left(&id, None);
    }
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails_create() {
    let mut b = Bundle::new("hook-timeout");
    b.args(&["sleep", "100"]);
    b.config["hooks"] = json!({ "createRuntime": [{ "path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1 }] });
    b.write_config();
    let id = b.id("to");
    let t = Instant::now();
    let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(t.elapsed().as_secs() < 10, "the timeout was not enforced");
    b.assert_nothing_left(&id, None);
}

#[test]
fn a_hook_path_that_does_not_exist_is_refused_up_front() {
    let mut b = Bundle::new("hook-missing");
    b.config["hooks"] = json!({ "prestart": [{ "path": "/no/such/hook" }] });
    b.write_config();
    let id = b.id("hm");
    let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("hooks.prestart[0].path"), "{}", stderr(&out));
    b.assert_nothing_left(&id, None);
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let mut b = Bundle::new("hook-warn");
    b.args(&["sleep", "100"]);
    b.config["hooks"] = json!({
        "poststart": [{ "path": "/bin/false" }],
        "poststop": [{ "path": "/bin/false" }],
    });
    let id = b.id("hw");
    b.create(&id);
    let out = output_of(b.command(&["start", &id]));
    assert_ok(&out, "start with a failing poststart hook");
    assert!(stderr(&out).contains("hooks.poststart[0]"), "{}", stderr(&out));
    assert_eq!(b.status(&id), "running");
    let out = output_of(b.command(&["delete", "-f", &id]));
    assert_ok(&out, "delete with a failing poststop hook");
    b.assert_nothing_left(&id, None);
}

#[test]
fn a_failing_start_container_hook_stops_the_container() {
    let mut b = Bundle::new("hook-startc");
    b.args(&["sleep", "100"]);
    b.config["hooks"] = json!({ "startContainer": [{ "path": "/bin/false" }] });
    let id = b.id("sc");
    b.create(&id);
    let out = output_of(b.command(&["start", &id]));
    assert!(!out.status.success(), "start must report the failed hook");
    b.wait_status(&id, "stopped");
}
