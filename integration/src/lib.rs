//! Helpers for the end-to-end tests: a private `--root` and bundle per test, unique
//! container ids, the busybox rootfs fixture, and the host-side checks that nothing
//! was left behind. Everything a test makes is removed on drop, even when it fails.

pub mod engines;
pub mod faults;
pub mod shim;
pub mod unprivileged;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `strata` binary under test: $STRATA_BIN, or the debug build.
pub fn strata_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_BIN") {
        return PathBuf::from(p);
    }
    let p = workspace().join("target/x86_64-unknown-linux-gnu/debug/strata");
    assert!(p.exists(), "{} is missing: run `cargo build -p strata` first (hack/test does)", p.display());
    p
}

/// A busybox rootfs built once per test binary by hack/busybox-rootfs.
pub fn busybox_template() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/fixtures/busybox-rootfs");
        if !dir.join("bin/busybox").exists() {
            let tmp = workspace().join(format!("target/fixtures/.busybox-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let st = Command::new(workspace().join("hack/busybox-rootfs"))
                .arg(&tmp)
                .status()
                .expect("run hack/busybox-rootfs");
            assert!(st.success(), "hack/busybox-rootfs failed (is busybox-static installed? hack/deps installs it)");
            let _ = std::fs::rename(&tmp, &dir);
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
}

/// One test's world: a private state root, a bundle with a copy of the busybox rootfs,
/// and a config.json from `strata spec` that the test edits. Commands go to strata, or
/// to the runtime given to [`Bundle::with_runtime`] (runc, as the control of a
/// differential test: see [`differential`]).
pub struct Bundle {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub config: Value,
    /// The runtime binary `strata()`/`command()` run: strata unless `with_runtime`.
    pub runtime: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Bundle {
    pub fn new(name: &str) -> Bundle {
        Bundle::with_runtime(name, &strata_bin())
    }

    /// A bundle whose commands go to `runtime` (e.g. `engines::runc().path`).
    pub fn with_runtime(name: &str, runtime: &Path) -> Bundle {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("strata-it-{}-{}-{n}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("cp").arg("-a").arg(busybox_template()).arg(dir.join("rootfs")).status().unwrap();
        assert!(st.success());
        // --hardened: the tests count on a cgroup namespace (runc 1.1's default has none).
        let out = Command::new(strata_bin()).args(["spec", "--hardened", "-b"]).arg(&dir).output().unwrap();
        assert!(out.status.success(), "strata spec: {}", String::from_utf8_lossy(&out.stderr));
        let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let mut b =
            Bundle { root: dir.join("state"), dir, config, runtime: runtime.to_path_buf(), ids: Default::default() };
        b.config["process"]["terminal"] = json!(false);
        b
    }

    /// A fresh container id, unique across tests and runs; deleted on drop.
    pub fn id(&self, name: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("it-{}-{n}-{name}", std::process::id());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// Sets process.args.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Runs `sh -c script` as the container process.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Writes config.json from `self.config`.
    pub fn write_config(&self) {
        std::fs::write(self.dir.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    /// `RUNTIME --root ROOT ARGS...` (strata unless `with_runtime`) with config.json written first.
    pub fn strata(&self, args: &[&str]) -> Output {
        self.write_config();
        output_of(self.command(args))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root).args(args).stdin(Stdio::null());
        c
    }

    /// create -b BUNDLE ID, asserting success.
    pub fn create(&self, id: &str) {
        let out = self.strata(&["create", "-b", self.dir.to_str().unwrap(), id]);
        assert_ok(&out, "create");
    }

    /// run -b BUNDLE ID in the foreground.
    pub fn run(&self, id: &str) -> Output {
        self.strata(&["run", "-b", self.dir.to_str().unwrap(), id])
    }

    /// The container's state JSON, or None when `state` fails.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = output_of(self.command(&["state", id]));
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("state is JSON"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id).map(|s| s["status"].as_str().unwrap().to_string()).unwrap_or_else(|| "<none>".into())
    }

    /// Waits (up to 5 s) until the container's status is `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        for _ in 0..500 {
            if self.status(id) == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never reached {want}: {}", self.status(id));
    }

    /// The host-side proof that nothing of `id` is left: no state dir, no cgroup, no
    /// mount under the bundle, and the init (if `pid`) gone.
    pub fn assert_nothing_left(&self, id: &str, pid: Option<i32>) {
        assert!(!self.root.join(id).exists(), "state dir of {id} left behind");
        let cgroups = find_cgroup_dirs(id);
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        let mounts = strata::mountinfo::read_self().unwrap();
        let ours: Vec<&Path> =
            mounts.iter().map(|m| m.mount_point.as_path()).filter(|p| p.starts_with(&self.dir)).collect();
        assert!(ours.is_empty(), "mounts left behind: {ours:?}");
        if let Some(pid) = pid {
            assert!(!process_alive(pid), "process {pid} left behind");
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.command(&["delete", "--force", id]).output();
        }
        // Unmount anything a failed test left under the bundle, deepest first.
        let mut ours: Vec<PathBuf> = strata::mountinfo::read_self()
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|m| m.starts_with(&self.dir))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in ours {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The oracle pattern: runs `scenario` on a fresh bundle under runc, then under strata,
/// and asserts that both give the same observation (exit codes, what the container saw,
/// host-side state: whatever `scenario` returns). Returns strata's, for further checks.
/// The scenario gets the runtime's name ("runc" or "strata") for its messages.
pub fn differential<T: PartialEq + std::fmt::Debug>(name: &str, scenario: impl Fn(&mut Bundle, &str) -> T) -> T {
    let control = {
        let mut b = Bundle::with_runtime(name, &engines::runc().path);
        scenario(&mut b, "runc")
    };
    let ours = {
        let mut b = Bundle::new(name);
        scenario(&mut b, "strata")
    };
    assert_eq!(ours, control, "{name}: strata (left) differs from runc (right)");
    ours
}

/// Cgroup directories whose name is the container id, anywhere under /sys/fs/cgroup.
pub fn find_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let out =
        Command::new("find").args(["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", id]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).collect()
}

/// True if `pid` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        })
        .unwrap_or(false)
}

/// Runs `cmd` to completion with stdout and stderr in files rather than pipes: a
/// container created by the command inherits them and would hold a pipe open.
pub fn output_of(mut cmd: Command) -> Output {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let base = std::env::temp_dir().join(format!("strata-it-out-{}-{n}", std::process::id()));
    let (o, e) = (base.with_extension("out"), base.with_extension("err"));
    cmd.stdout(std::fs::File::create(&o).unwrap()).stderr(std::fs::File::create(&e).unwrap());
    let status = cmd.status().unwrap();
    let out = Output { status, stdout: std::fs::read(&o).unwrap(), stderr: std::fs::read(&e).unwrap() };
    let _ = std::fs::remove_file(&o);
    let _ = std::fs::remove_file(&e);
    out
}

/// Makes `file` the child's fd 3 (for --preserve-fds and LISTEN_FDS tests).
pub fn pass_as_fd3(cmd: &mut Command, file: &std::fs::File) {
    use std::os::unix::process::CommandExt;
    let raw = std::os::fd::AsRawFd::as_raw_fd(file);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it explicitly.
            if (raw != 3 && libc::dup2(raw, 3) < 0) || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed ({:?}): stdout={} stderr={}", o.status, stdout(o), stderr(o));
}

/// The namespace link (`pid:[4026531836]`) of `pid` for namespace `ns`.
pub fn ns_link(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap().to_string_lossy().into_owned()
}

/// Marks the calling test as skipped, visibly: a `SKIPPED: test: reason` line on stderr
/// and, when hack/test set `$STRATA_SKIP_LOG`, the same line appended there, so the
/// suite's summary counts it. A test that cannot run on this host says so through this
/// and returns; it never passes silently.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED: {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("STRATA_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}
