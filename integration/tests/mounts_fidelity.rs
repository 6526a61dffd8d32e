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
        push_mount(b, json!({
            "destination": "/m", "type": "bind", "source": src,
            "options": ["rbind", "mode=755", "ro", "size=1k", "x-some-helper=1"]
        }));
        b.sh("cat /m/f; awk '$5==\"/m\" {print $6}' /proc/self/mountinfo; touch /m/g 2>/dev/null || echo read-only");
        run_observed(b, "bd")
    });
}

/// Unknown options on a filesystem mount reach the filesystem: tmpfs takes mode= and
/// size=, and refuses what it doesn't know (both runtimes fail `run`).
#[test]
fn unknown_options_on_a_filesystem_are_its_data() {
    differential("fs-data", |b, _rt| {
        push_mount(b, json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700", "size=64k", "nr_inodes=77"] }));
        b.sh("stat -c %a /t; df -k /t | awk 'NR==2 {print $2}'; df -i /t | awk 'NR==2 {print $2}'");
        run_observed(b, "fd")
    });
    differential("fs-data-bad", |b, _rt| {
        push_mount(b, json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["no-such-option"] }));
        b.sh("true");
        let (code, out, _) = run_observed(b, "fdb");
        (code != Some(0), out)
    });
}
