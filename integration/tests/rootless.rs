//! strata as an ordinary user (issue #13), with runc as the oracle: each scenario runs
//! as a fresh test-made user, once under runc and once under strata, on a bundle made
//! by `strata spec --rootless`, and compares what the user sees. Neither runtime gets
//! `--root`: the state must land in `$XDG_RUNTIME_DIR/<runtime>`. After every scenario
//! (also after a failed create) the user has no state dir, process or mount left.
//!
//! Observations never contain ids that differ between the two users (uid, subid
//! range): those are converted to offsets first.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use strata_integration::unprivileged::UnprivilegedUser;
use strata_integration::{assert_ok, busybox_template, engines, output_of, stderr, stdout, strata_bin, Bundle};

/// One runtime's run of a scenario: a user, its bundle, the config the test edits.
struct World {
    user: UnprivilegedUser,
    runtime: PathBuf,
    /// "runc" or "strata": also the state root's name under $XDG_RUNTIME_DIR.
    name: &'static str,
    bundle: PathBuf,
    config: Value,
}

impl World {
    fn new(name: &'static str) -> World {
        let runtime = if name == "runc" { engines::runc().path } else { strata_bin() };
        let user = UnprivilegedUser::new();
        let bundle = user.home.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let st = std::process::Command::new("cp").arg("-a").arg(busybox_template()).arg(bundle.join("rootfs")).status();
        assert!(st.unwrap().success());
        user.chown(&bundle);
        // Made by the user, so the maps are its own ids.
        let mut spec = user.command(strata_bin());
        spec.args(["spec", "--rootless"]).current_dir(&bundle);
        assert_ok(&output_of(spec), "strata spec --rootless");
        let config: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        let mut w = World { user, runtime, name, bundle, config };
        w.config["process"]["terminal"] = json!(false);
        w
    }

    fn sh(&mut self, script: &str) -> &mut Self {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
        self
    }

    /// `RUNTIME ARGS...` as the user, in the bundle, config.json written first.
    fn rt(&self, args: &[&str]) -> Output {
        std::fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
        self.user.chown(&self.bundle.join("config.json"));
        let mut cmd = self.user.command(&self.runtime);
        cmd.args(args).current_dir(&self.bundle).stdin(std::process::Stdio::null());
        output_of(cmd)
    }

    fn status(&self, id: &str) -> String {
        let out = self.rt(&["state", id]);
        if !out.status.success() {
            return "<none>".into();
        }
        let state: Value = serde_json::from_slice(&out.stdout).expect("state is JSON");
        state["status"].as_str().unwrap().to_string()
    }

    fn wait_status(&self, id: &str, want: &str) {
        for _ in 0..300 {
            if self.status(id) == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{}: container {id} never reached {want}: {}", self.name, self.status(id));
    }

    /// The runtime's default state root for this user.
    fn state_root(&self) -> PathBuf {
        self.user.runtime_dir.join(self.name)
    }

    /// Nothing of `id` is left: no state dir, no process of the user's, no mount.
    fn assert_nothing_left(&self, id: &str) {
        assert!(!self.state_root().join(id).exists(), "{}: state dir of {id} left behind", self.name);
        // The container's last processes may take a moment to be reaped by init.
        for _ in 0..100 {
            if self.user.processes().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.user.assert_nothing_left();
    }
}

/// Runs `scenario` as a new user under runc, then as another under strata, and asserts
/// the same observation.
fn rootless_differential<T: PartialEq + std::fmt::Debug>(what: &str, scenario: impl Fn(&mut World) -> T) -> T {
    let control = scenario(&mut World::new("runc"));
    let ours = scenario(&mut World::new("strata"));
    assert_eq!(ours, control, "{what}: strata (left) differs from runc (right)");
    ours
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

const ID: &str = "c1";

#[test]
fn lifecycle_exec_kill_delete_as_an_unprivileged_user() {
    let seen = rootless_differential("lifecycle", |w| {
        w.sh("sleep 300");
        let mut seen = Vec::new();
        let created = w.rt(&["create", ID]);
        assert_ok(&created, &format!("{} create", w.name));
        assert!(w.state_root().join(ID).is_dir(), "{}: no state in {}", w.name, w.state_root().display());
        // 0700 and sticky, so a session's cleaner of $XDG_RUNTIME_DIR leaves it alone.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.state_root()).unwrap().permissions().mode() & 0o7777;
        seen.push(format!("{mode:o}"));
        seen.push(w.status(ID));
        let list = w.rt(&["list", "-q"]);
        seen.push(stdout(&list).trim().to_string());
        assert_ok(&w.rt(&["start", ID]), "start");
        seen.push(w.status(ID));
        let exec = w.rt(&["exec", ID, "sh", "-c", "id -u; id -g; wc -l < /proc/self/uid_map; cat /proc/1/cmdline"]);
        assert_ok(&exec, &format!("{} exec", w.name));
        seen.push(stdout(&exec).replace('\0', " "));
        seen.push(code(&w.rt(&["exec", ID, "sh", "-c", "exit 7"])).to_string());
        // A running container can't be deleted without --force.
        seen.push(code(&w.rt(&["delete", ID])).to_string());
        assert_ok(&w.rt(&["kill", ID, "KILL"]), "kill");
        w.wait_status(ID, "stopped");
        seen.push(w.status(ID));
        assert_ok(&w.rt(&["delete", ID]), "delete");
        seen.push(w.status(ID));
        seen.push(stdout(&w.rt(&["list", "-q"])).trim().to_string());
        w.assert_nothing_left(ID);
        seen
    });
    assert_eq!(seen[..2], ["1700".to_string(), "created".to_string()]);
    assert_eq!(seen[4], "0\n0\n1\nsleep 300 ");
}

#[test]
fn exec_into_a_created_container() {
    rootless_differential("exec before start", |w| {
        w.sh("sleep 300");
        assert_ok(&w.rt(&["create", ID]), "create");
        let exec = w.rt(&["exec", ID, "cat", "/proc/self/uid_map"]);
        assert_ok(&exec, &format!("{} exec into a created container", w.name));
        let lines = stdout(&exec).lines().count();
        assert_ok(&w.rt(&["delete", "--force", ID]), "delete --force");
        w.assert_nothing_left(ID);
        lines
    });
}

#[test]
fn run_returns_the_container_exit_code_and_leaves_nothing() {
    rootless_differential("run exit code", |w| {
        w.sh("echo out; echo err >&2; exit 3");
        let out = w.rt(&["run", ID]);
        w.assert_nothing_left(ID);
        (code(&out), stdout(&out))
    });
}

#[test]
fn a_multi_id_mapping_goes_through_newuidmap() {
    let seen = rootless_differential("newuidmap", |w| {
        let (uid, gid, sub) = (w.user.uid, w.user.gid, w.user.subid_start);
        let size = strata_integration::unprivileged::SUBID_COUNT;
        w.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": uid, "size": 1}, {"containerID": 1, "hostID": sub, "size": size}]);
        w.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": gid, "size": 1}, {"containerID": 1, "hostID": sub, "size": size}]);
        w.config["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            w.config["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_CHOWN"));
        }
        w.sh("wc -l < /proc/self/uid_map; wc -l < /proc/self/gid_map; id -G; \
             touch /tmp/f && chown 1000:1001 /tmp/f; stat -c %u:%g /tmp/f");
        let out = w.rt(&["run", ID]);
        assert_ok(&out, &format!("{} run with a subuid mapping", w.name));
        // From the host, container uid 1000 is the 1000th id of the range.
        let meta = std::fs::metadata(w.bundle.join("rootfs/tmp/f")).unwrap();
        use std::os::unix::fs::MetadataExt;
        let host = (meta.uid() - sub, meta.gid() - sub);
        w.assert_nothing_left(ID);
        (stdout(&out), host)
    });
    assert_eq!(seen, ("2\n2\n0\n1000:1001\n".to_string(), (999, 1000)));
}

#[test]
fn a_mapping_outside_the_subordinate_range_fails_and_leaves_nothing() {
    rootless_differential("newuidmap refused", |w| {
        let uid = w.user.uid;
        // 1000 ids the user was never given.
        w.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": uid, "size": 1}, {"containerID": 1, "hostID": 500, "size": 1000}]);
        w.sh("true");
        let out = w.rt(&["run", ID]);
        w.assert_nothing_left(ID);
        out.status.success()
    });
}

#[test]
fn a_read_only_rootfs_stays_read_only() {
    rootless_differential("readonly rootfs", |w| {
        w.config["root"]["readonly"] = json!(true);
        w.sh("touch /x 2>&1; echo rc=$?; touch /dev/shm/x && echo shm-ok");
        let out = w.rt(&["run", ID]);
        w.assert_nothing_left(ID);
        (code(&out), stdout(&out).replace("Read-only file system", "EROFS"))
    });
}

#[test]
fn tmpfs_and_bind_mounts() {
    let seen = rootless_differential("mounts", |w| {
        let data = w.user.home.join("data");
        let rw = w.user.home.join("rw");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&rw).unwrap();
        std::fs::write(data.join("f"), "from the host\n").unwrap();
        w.user.chown(&data);
        w.user.chown(&rw);
        let mounts = w.config["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=1777"]}));
        mounts.push(json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro"]}));
        mounts.push(json!({"destination": "/rw", "type": "bind", "source": rw, "options": ["bind"]}));
        mounts.push(json!({"destination": "/dev/null2", "type": "bind", "source": "/dev/null", "options": ["bind"]}));
        w.sh(
            "stat -c %a /scratch; grep -E ' /(scratch|data|rw) ' /proc/self/mountinfo | cut -d' ' -f5,6 | sed 's/,relatime//'; \
             cat /data/f; touch /data/x 2>/dev/null || echo data-ro; echo hi > /rw/out; echo x > /dev/null2 && echo null-ok",
        );
        let out = w.rt(&["run", ID]);
        assert_ok(&out, &format!("{} run with mounts", w.name));
        // The file the container wrote is the user's on the host.
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(rw.join("out")).unwrap().uid() == w.user.uid;
        w.assert_nothing_left(ID);
        (stdout(&out), std::fs::read_to_string(rw.join("out")).unwrap(), owner)
    });
    assert!(seen.0.contains("from the host") && seen.0.contains("data-ro") && seen.2, "{seen:?}");
}

/// On this host (v1/hybrid, nothing delegated to users) a rootless container has no
/// cgroup of its own: `ps`, `pause` and `kill --all` are refused by both runtimes, and
/// the rest works. Where a delegated v2 cgroup is writable, they would work.
#[test]
fn cgroup_operations_are_refused_without_a_delegated_cgroup() {
    if delegated_v2_for_users() {
        strata_integration::skip(
            "cgroup_operations_are_refused_without_a_delegated_cgroup",
            "this host delegates a cgroup v2 to users: the refusal cannot be observed here",
        );
        return;
    }
    let seen = rootless_differential("cgroup refusals", |w| {
        w.sh("sleep 300");
        assert_ok(&w.rt(&["run", "-d", ID]), "run -d");
        let ps = w.rt(&["ps", ID]);
        let pause = w.rt(&["pause", ID]);
        let after_pause = w.status(ID);
        let kill_all = w.rt(&["kill", "--all", ID, "KILL"]);
        let still = w.status(ID);
        assert_ok(&w.rt(&["delete", "--force", ID]), "delete --force");
        w.assert_nothing_left(ID);
        if w.name == "strata" {
            for o in [&ps, &pause, &kill_all] {
                assert!(stderr(o).contains("no cgroup"), "strata's refusal should say why: {}", stderr(o));
            }
        }
        (ps.status.success(), pause.status.success(), after_pause, kill_all.status.success(), still)
    });
    assert_eq!(seen, (false, false, "running".to_string(), false, "running".to_string()));
}

#[test]
fn a_limit_without_a_cgroup_is_refused_and_leaves_nothing() {
    rootless_differential("limits refused", |w| {
        w.config["linux"]["resources"] = json!({"pids": {"limit": 64}});
        w.sh("true");
        let out = w.rt(&["create", ID]);
        if w.name == "strata" {
            let e = stderr(&out);
            assert!(e.contains("linux.resources") && e.contains("not delegated"), "{e}");
        }
        w.assert_nothing_left(ID);
        out.status.success()
    });
}

/// True when an unprivileged user could own a cgroup here: a unified-only host
/// (systemd delegates user@.service there). This host's hybrid layout does not.
fn delegated_v2_for_users() -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "))
}

/// Root on the host keeps the system state root (/run/runc, /run/strata) even with a
/// session's XDG_RUNTIME_DIR: runc's rule, observed under runc and strata alike.
#[test]
fn root_keeps_the_system_state_root() {
    let observe = |runtime: &Path, name: &str| {
        let mut b = Bundle::with_runtime(&format!("rootless-root-default-{name}"), runtime);
        let id = b.id("root-default");
        b.sh("sleep 300");
        b.write_config();
        let run = |args: &[&str]| {
            let mut c = std::process::Command::new(runtime);
            c.args(args).env("XDG_RUNTIME_DIR", "/run/user/0").env("USER", "root").stdin(std::process::Stdio::null());
            output_of(c)
        };
        let created = run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]).status.success();
        let state_dir = PathBuf::from("/run").join(name).join(&id);
        let in_system_root = state_dir.is_dir();
        let in_xdg = PathBuf::from("/run/user/0").join(name).join(&id).exists();
        let deleted = run(&["delete", "--force", &id]).status.success();
        (created, in_system_root, in_xdg, deleted, state_dir.exists())
    };
    let runc = observe(&engines::runc().path, "runc");
    let ours = observe(&strata_bin(), "strata");
    assert_eq!(ours, runc, "strata (left) differs from runc (right)");
    assert_eq!(ours, (true, true, false, true, false));
}

/// Rootless podman drives the runtime from inside its own user namespace (root there,
/// mapped to the user and its subuid range): `podman --runtime R run/exec/stop/rm` as
/// the test user, runc as the control. podman's storage is the user's (~/.local/share).
#[test]
fn rootless_podman_runs_containers_with_strata() {
    if std::process::Command::new("podman").arg("--version").output().is_err() {
        strata_integration::skip("rootless_podman_runs_containers_with_strata", "podman is not installed");
        return;
    }
    engines::ensure_containers_conf();
    let seen = rootless_differential("rootless podman", |w| {
        let podman = |args: &[&str]| {
            let mut cmd = w.user.command("podman");
            cmd.arg("--runtime").arg(&w.runtime);
            cmd.args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]).args(args);
            cmd.stdin(std::process::Stdio::null());
            output_of(cmd)
        };
        let tar = engines::busybox_tar().to_str().unwrap();
        assert_ok(&podman(&["import", "-q", tar, "localhost/busybox"]), "podman import");
        let mut seen = Vec::new();
        let once = podman(&[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/busybox",
            "sh",
            "-c",
            "id -u; wc -l < /proc/self/uid_map; exit 5",
        ]);
        seen.push(format!("{} {}", code(&once), stdout(&once)));
        let run = podman(&["run", "-d", "--name", "t1", "--network", "none", "localhost/busybox", "sleep", "300"]);
        assert_ok(&run, &format!("{}: podman run -d", w.name));
        let exec = podman(&["exec", "t1", "sh", "-c", "id -u; cat /proc/1/cmdline"]);
        assert_ok(&exec, &format!("{}: podman exec", w.name));
        seen.push(stdout(&exec).replace('\0', " "));
        assert_ok(&podman(&["stop", "-t", "1", "t1"]), "podman stop");
        seen.push(stdout(&podman(&["inspect", "-f", "{{.State.Status}}", "t1"])).trim().to_string());
        assert_ok(&podman(&["rm", "t1"]), "podman rm");
        // The runtime's state root (podman's userns honours XDG_RUNTIME_DIR) is empty, and
        // of the user's processes only podman's pause process (it holds the namespace) is left.
        let left: Vec<_> =
            std::fs::read_dir(w.state_root()).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{}: state left in {}: {left:?}", w.name, w.state_root().display());
        let others = || {
            w.user
                .processes()
                .into_iter()
                .filter(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "podman pause")
                })
                .collect::<Vec<_>>()
        };
        assert!(engines::wait_until(10, || others().is_empty()), "{}: processes left: {:?}", w.name, others());
        seen
    });
    // The uid_map's line count is the user's number of subuid ranges: compared with runc's only.
    assert!(seen[0].starts_with("5 0\n"), "{seen:?}");
    assert_eq!(seen[1..], ["0\nsleep 300 ".to_string(), "exited".to_string()]);
}
