//! Bad input: a clear one-line error naming the field or file, a non-zero exit, and
//! nothing left behind (no state dir, no cgroup, no mount, no process).

use serde_json::json;
use strata_integration::*;

/// Runs `create`, expects failure with `needle` in a one-line error, and checks the host.
fn create_fails(b: &Bundle, id: &str, needle: &str) {
    let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), id]));
    let err = stderr(&out);
    assert!(!out.status.success(), "create succeeded but should fail with {needle:?}");
    assert!(err.contains(needle), "error {err:?} does not mention {needle:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "error is not one line: {err:?}");
    b.assert_nothing_left(id, None);
}

fn with_config(name: &str, edit: impl FnOnce(&mut Bundle)) -> Bundle {
    let mut b = Bundle::new(name);
    b.args(&["sleep", "10"]);
    edit(&mut b);
    b.write_config();
    b
}

#[test]
fn missing_bundle_and_missing_rootfs() {
    let b = with_config("nobundle", |_| {});
    let id = b.id("x");
    let out = output_of(b.command(&["create", "-b", "/nonexistent/bundle", &id]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent/bundle"), "{}", stderr(&out));
    b.assert_nothing_left(&id, None);

    let b = with_config("norootfs", |b| b.config["root"]["path"] = json!("missing-rootfs"));
    create_fails(&b, &b.id("x"), "root.path");

    let b = with_config("noconfig", |_| {});
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    create_fails(&b, &b.id("x"), "config.json");
}

#[test]
fn malformed_and_truncated_config() {
    let b = Bundle::new("malformed");
    std::fs::write(b.dir.join("config.json"), b"{ this is not json").unwrap();
    create_fails(&b, &b.id("x"), "config.json");

    let b = Bundle::new("truncated");
    let full = serde_json::to_string(&b.config).unwrap();
    std::fs::write(b.dir.join("config.json"), &full[..full.len() / 2]).unwrap();
    create_fails(&b, &b.id("x"), "config.json");

    let b = Bundle::new("wrongtype");
    let mut v = b.config.clone();
    v["process"]["user"]["uid"] = json!("root");
    std::fs::write(b.dir.join("config.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    create_fails(&b, &b.id("x"), "process.user.uid");
}

#[test]
fn unsupported_oci_version() {
    let b = with_config("version", |b| b.config["ociVersion"] = json!("2.0.0"));
    create_fails(&b, &b.id("x"), "ociVersion");
}

#[test]
fn unknown_namespace_type_and_wrong_namespace_path() {
    let b = with_config("nstype", |b| b.config["linux"]["namespaces"][0] = json!({ "type": "bogus" }));
    create_fails(&b, &b.id("x"), "linux.namespaces[0].type");

    let b = with_config("nspath", |b| {
        b.config["linux"]["namespaces"][1] = json!({ "type": "network", "path": "/proc/self/ns/ipc" })
    });
    create_fails(&b, &b.id("x"), "linux.namespaces[1].path");

    let b = with_config("nsfile", |b| {
        b.config["linux"]["namespaces"][1] = json!({ "type": "network", "path": "/etc/hostname" })
    });
    create_fails(&b, &b.id("x"), "not a namespace");

    let b = with_config("nsmissing", |b| {
        b.config["linux"]["namespaces"][1] = json!({ "type": "network", "path": "/proc/999999999/ns/net" })
    });
    create_fails(&b, &b.id("x"), "linux.namespaces[1].path");
}

#[test]
fn program_not_in_the_rootfs() {
    let b = with_config("noprog", |b| {
        b.args(&["no-such-program"]);
    });
    create_fails(&b, &b.id("x"), "process.args[0]");
    let b = with_config("noprog-abs", |b| {
        b.args(&["/usr/bin/absent"]);
    });
    create_fails(&b, &b.id("x"), "process.args[0]");
}

#[test]
fn failing_mount_reports_the_mount_and_leaves_nothing() {
    let b = with_config("badmount", |b| {
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": "/nonexistent/source", "options": ["rbind"]
        }));
    });
    create_fails(&b, &b.id("x"), "mounts[7]");
}

#[test]
fn bad_and_duplicate_ids() {
    let b = with_config("ids", |_| {});
    for bad in ["a/b", "..", "../escape", ".hidden", "a b"] {
        let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), bad]));
        assert!(!out.status.success(), "id {bad:?} accepted");
        assert!(stderr(&out).contains("invalid container id"), "{}", stderr(&out));
    }
    assert!(!b.root.join("escape").exists() && !b.dir.join("escape").exists());
    let id = b.id("dup");
    b.create(&id);
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    let out = output_of(b.command(&["create", "-b", b.dir.to_str().unwrap(), &id]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // The first container is untouched.
    assert_eq!(b.status(&id), "created");
    assert!(process_alive(pid));
}

#[test]
fn commands_on_an_unknown_id() {
    let b = with_config("unknown", |_| {});
    let id = b.id("ghost");
    for args in [vec!["start", &id], vec!["state", &id], vec!["kill", &id], vec!["delete", &id]] {
        let out = output_of(b.command(&args));
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr(&out).contains("does not exist"), "{args:?}: {}", stderr(&out));
    }
    // runc: delete --force of a missing container is not an error.
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete -f ghost");
}

#[test]
fn errors_reach_the_json_log_for_engines() {
    let b = with_config("log", |b| b.config["ociVersion"] = json!("9.9"));
    let log = b.dir.join("log.json");
    let id = b.id("log");
    let out = b
        .command(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "-b",
            b.dir.to_str().unwrap(),
            &id,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("ociVersion"));
}

#[test]
fn systemd_cgroup_is_refused_clearly() {
    let b = with_config("systemd", |_| {});
    let id = b.id("sd");
    let out = output_of(b.command(&["--systemd-cgroup", "create", "-b", b.dir.to_str().unwrap(), &id]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("systemd"));
    b.assert_nothing_left(&id, None);
}

#[test]
fn kill_all_is_refused_for_the_runtimes_own_cgroup() {
    // An empty relative cgroupsPath is the runtime's own cgroup: the container must
    // never be allowed to signal or remove it.
    let b = with_config("owncg", |b| b.config["linux"]["cgroupsPath"] = json!(""));
    let id = b.id("own");
    b.create(&id);
    let out = output_of(b.command(&["kill", "--all", &id, "KILL"]));
    assert!(!out.status.success(), "kill --all on the runtime's own cgroup must be refused");
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_ok(&output_of(b.command(&["delete", "--force", &id])), "delete -f");
    // Our own cgroups are still there.
    assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), own);
}
