//! The state store and the files strata writes for the caller: modes as runc's, pid
//! files that never follow a planted symlink, socket-activation fds only for us, and
//! containers whose state.json is lost or corrupt still listed and removable.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

use strata_integration::{
    assert_ok, differential, find_cgroup_dirs, output_of, pass_as_fd3, process_alive, stderr, stdout, Bundle,
};

fn mode(p: &std::path::Path) -> String {
    std::fs::metadata(p).map(|m| format!("{:o}", m.permissions().mode() & 0o7777)).unwrap_or_else(|e| e.to_string())
}

/// state.json held the whole config (env, secrets) world-readable: runc's modes are
/// root 0700, container dir 0711, state.json 0600.
#[test]
fn state_files_have_runcs_modes() {
    differential("store-modes", |b, _rt| {
        b.args(&["sleep", "100"]);
        let id = b.id("modes");
        b.create(&id);
        let dir = b.root.join(&id);
        (mode(&b.root), mode(&dir), mode(&dir.join("state.json")))
    });
}

/// A symlink planted at the pid file's temporary name (in a directory another user
/// may own) must not be followed: create (and exec) fail and the target is untouched.
#[test]
fn pid_file_never_follows_a_planted_symlink() {
    differential("store-pidfile", |b, _rt| {
        b.args(&["sleep", "100"]);
        let victim = b.dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let pid_dir = b.dir.join("pids");
        std::fs::create_dir(&pid_dir).unwrap();
        // runc's temporary name is ".NAME", strata's ".NAME.tmp": plant both.
        for tmp in [".p.pid", ".p.pid.tmp", ".e.pid", ".e.pid.tmp"] {
            symlink(&victim, pid_dir.join(tmp)).unwrap();
        }
        let id = b.id("pidfile");
        let pid_file = pid_dir.join("p.pid");
        let create =
            b.strata(&["create", "--pid-file", pid_file.to_str().unwrap(), "-b", b.dir.to_str().unwrap(), &id]);
        let created = create.status.success();
        let state_dir_left = b.root.join(&id).exists();

        let id2 = b.id("pidfile-exec");
        b.create(&id2);
        assert_ok(&b.strata(&["start", &id2]), "start");
        let e_pid = pid_dir.join("e.pid");
        let exec = b.strata(&["exec", "--pid-file", e_pid.to_str().unwrap(), &id2, "true"]);
        let victim_now = std::fs::read_to_string(&victim).unwrap();
        (created, state_dir_left, pid_file.exists(), exec.status.success(), e_pid.exists(), victim_now)
    });
}

/// The brief's reproducer: a fifo at the temporary name used to block create (and,
/// killed, wedge the id). Now create refuses at once and leaves nothing.
#[test]
fn pid_file_fifo_at_temp_name_fails_fast() {
    let mut b = Bundle::new("store-pidfifo");
    b.args(&["sleep", "100"]);
    let id = b.id("fifo");
    let tmp = b.dir.join(".p.pid.tmp");
    assert!(Command::new("mkfifo").arg(&tmp).status().unwrap().success());
    let started = std::time::Instant::now();
    b.write_config();
    let out = strata_integration::faults::bounded(
        b.command(&["create", "--pid-file", b.dir.join("p.pid").to_str().unwrap(), "-b", b.dir.to_str().unwrap(), &id]),
        20,
    );
    assert!(!out.status.success(), "create succeeded");
    assert!(stderr(&out).contains(".p.pid.tmp"), "error does not name the file: {}", stderr(&out));
    assert!(started.elapsed().as_secs() < 20, "create took {:?}", started.elapsed());
    b.assert_nothing_left(&id, None);
}

/// LISTEN_FDS is for the process LISTEN_PID names (sd_listen_fds): without it, fd 3
/// (here a root-only host file) must not reach the container; with LISTEN_PID equal to
/// the runtime's own pid it is passed, with LISTEN_FDS/LISTEN_PID set for the container.
#[test]
fn listen_fds_only_with_our_listen_pid() {
    for with_pid in [false, true] {
        differential(&format!("store-listen-{with_pid}"), |b, _rt| {
            let secret = b.dir.join("secret");
            std::fs::write(&secret, "host-secret").unwrap();
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
            b.sh("cat <&3 2>/dev/null || echo no-fd; echo \" fds=$LISTEN_FDS pid=$LISTEN_PID\"");
            b.write_config();
            let id = b.id("listen");
            let file = std::fs::File::open(&secret).unwrap();
            // `exec` keeps sh's pid: $$ is then the runtime's pid.
            let set_pid = if with_pid { "LISTEN_PID=$$; export LISTEN_PID; " } else { "unset LISTEN_PID; " };
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("{set_pid}exec \"$0\" \"$@\""))
                .arg(&b.runtime)
                .args(["--root", b.root.to_str().unwrap(), "run", "-b", b.dir.to_str().unwrap(), &id])
                .env("LISTEN_FDS", "1")
                .stdin(std::process::Stdio::null());
            pass_as_fd3(&mut cmd, &file);
            let out = output_of(cmd);
            (out.status.code(), stdout(&out))
        });
    }
}

/// Damages a created container's state.json with `damage`, runs `list`, then
/// cleans up by hand. Returns list's exit code, whether its stderr names the container,
/// and the container's status in list's table.
fn damaged_state(b: &mut Bundle, damage: fn(&std::path::Path)) -> (Option<i32>, bool, String) {
    b.args(&["sleep", "100"]);
    let id = b.id("damaged");
    b.create(&id);
    let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    damage(&b.root.join(&id).join("state.json"));
    let list = output_of(b.command(&["list"]));
    let warned = stderr(&list).contains(&format!("load container {id}"));
    let listed = stdout(&list);
    let status =
        listed.lines().find(|l| l.starts_with(&id)).and_then(|l| l.split_whitespace().nth(2)).unwrap_or("").to_string();
    // runc can't delete it: clean up by hand (init, cgroups, directory).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for _ in 0..200 {
        if !process_alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut dirs = find_cgroup_dirs(&id);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_dir_all(b.root.join(&id));
    (list.status.code(), warned, status)
}

fn corrupt(p: &std::path::Path) {
    std::fs::write(p, "garbage").unwrap();
}

fn lose(p: &std::path::Path) {
    std::fs::remove_file(p).unwrap();
}

/// runc's list warns on stderr about a container it can't load and exits 0; strata
/// does too (and lists it as "unknown", where runc hides it).
#[test]
fn list_warns_about_broken_state_like_runc() {
    for damage in [corrupt as fn(&std::path::Path), lose] {
        let (code, warned) = differential("store-list-broken", |b, _rt| {
            let (code, warned, _) = damaged_state(b, damage);
            (code, warned)
        });
        assert_eq!((code, warned), (Some(0), true));
        let mut b = Bundle::new("store-list-unknown");
        let (_, _, status) = damaged_state(&mut b, damage);
        assert_eq!(status, "unknown", "strata list must show the broken container");
    }
}

/// Beyond runc (which refuses, or says 0 and leaves the init running): `delete -f`
/// of a container whose state.json is corrupt or missing kills its init and removes
/// its cgroup and its directory.
#[test]
fn delete_force_cleans_up_without_state_json() {
    for damage in [corrupt as fn(&std::path::Path), lose] {
        let mut b = Bundle::new("store-delete-broken");
        b.args(&["sleep", "100"]);
        let id = b.id("broken");
        b.create(&id);
        let pid = b.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
        assert!(!find_cgroup_dirs(&id).is_empty(), "no cgroup to begin with");
        damage(&b.root.join(&id).join("state.json"));
        let out = b.strata(&["delete", "--force", &id]);
        assert_ok(&out, "delete --force");
        assert!(!process_alive(pid), "init {pid} still running");
        b.assert_nothing_left(&id, Some(pid));
    }
}

/// A directory under `--root` that no create made (a user's own files, a wrong `--root`)
/// is not a container: `state`, `kill` and `delete` say it does not exist, `delete -f`
/// succeeds, and `list` skips it, with runc's exit codes and output. Deliberate
/// difference: runc then removes the whole directory (its aborted-create cleanup, even
/// without --force); strata writes nothing into it and leaves it (conformance/README.md).
#[test]
fn a_directory_no_create_made_is_not_a_container() {
    let seen = differential("store-foreign-dir", |b, rt| {
        let dir = b.root.join("notours");
        let mut seen = Vec::new();
        for args in [
            &["list", "-q"][..],
            &["state", "notours"],
            &["kill", "notours", "KILL"],
            &["delete", "notours"],
            &["delete", "-f", "notours"],
        ] {
            std::fs::create_dir_all(dir.join("bin")).unwrap();
            std::fs::write(dir.join("bin/keep"), "data").unwrap();
            let out = b.strata(args);
            seen.push((args.join(" "), out.status.code(), stdout(&out)));
            if rt == "strata" {
                let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
                assert!(
                    left == ["bin"] && dir.join("bin/keep").exists(),
                    "strata {args:?} touched {}: {left:?}",
                    dir.display()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        seen
    });
    let codes: Vec<_> = seen.iter().map(|(_, code, _)| *code).collect();
    assert_eq!(codes, [Some(0), Some(1), Some(1), Some(1), Some(0)], "{seen:?}");
}
