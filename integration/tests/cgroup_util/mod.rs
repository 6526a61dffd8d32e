//! Shared by the cgroup tests: every container's cgroup lives under a parent made for
//! one test (`/strata-test-<pid>-<n>`, absolute, so it sits at each hierarchy's root
//! and never inside the machine's own cgroups), and the parent goes away on drop even
//! when the test failed half-way.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use strata_integration::*;

static N: AtomicUsize = AtomicUsize::new(0);

/// A bundle whose container (one per test) gets its cgroup under a private parent.
pub struct CgBundle {
    pub b: Bundle,
    pub id: String,
    pub parent: String,
}

impl CgBundle {
    pub fn new(name: &str) -> CgBundle {
        let b = Bundle::new(name);
        let id = b.id(name);
        let parent = format!("strata-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let mut cb = CgBundle { b, id, parent };
        let path = format!("/{}/{}", cb.parent, cb.id);
        cb.b.config["linux"]["cgroupsPath"] = json!(path);
        cb.b.config["root"]["readonly"] = json!(false);
        cb
    }

    pub fn resources(&mut self, r: serde_json::Value) -> &mut Self {
        self.b.config["linux"]["resources"] = r;
        self
    }

    /// The container's directory for a v1 controller, e.g. v1("memory").
    pub fn v1(&self, controller: &str) -> PathBuf {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/{}/{}", self.parent, self.id))
    }

    /// The container's directory in the cgroup2 mount of this hybrid host.
    pub fn unified(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/cgroup/unified/{}/{}", self.parent, self.id))
    }

    pub fn strata(&self, args: &[&str]) -> std::process::Output {
        output_of(self.b.command(args))
    }

    /// `run -d`, asserting success; returns the init's pid.
    pub fn run_detached(&self) -> i32 {
        let out = self.b.strata(&["run", "-d", "-b", self.b.dir.to_str().unwrap(), &self.id]);
        assert_ok(&out, "run -d");
        self.b.state(&self.id).expect("state")["pid"].as_i64().unwrap() as i32
    }

    /// A file under the container's rootfs, seen from the host.
    pub fn rootfs_file(&self, rel: &str) -> PathBuf {
        self.b.dir.join("rootfs").join(rel)
    }

    /// Deletes the container and checks nothing of it, nor the parent, is left.
    pub fn delete_and_check(&self) {
        assert_ok(&self.strata(&["delete", "--force", &self.id]), "delete --force");
        self.b.assert_nothing_left(&self.id, None);
        assert!(parent_dirs(&self.parent).is_empty(), "test parent cgroup left: {:?}", parent_dirs(&self.parent));
    }
}

impl Drop for CgBundle {
    fn drop(&mut self) {
        let _ = self.b.command(&["delete", "--force", &self.id]).output();
        // Only our own parent, deepest first: thaw, then rmdir.
        for dir in parent_dirs(&self.parent) {
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            let _ = Command::new("find").arg(&dir).args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"]).status();
        }
    }
}

/// The test parent's directories, in every hierarchy.
pub fn parent_dirs(parent: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(parent))
        .filter(|p| p.is_dir())
        .collect()
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

/// A value of a "key value" cgroup file.
pub fn keyed(p: &Path, key: &str) -> u64 {
    read(p)
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{key} not in {}", p.display()))
}

/// Waits up to `secs` for `f` to hold.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A private cgroup parent for a bundle of any runtime (runc as well as strata), removed
/// on drop, deepest first, thawed first: for differential tests, where [`CgBundle`]'s
/// strata-only bundle doesn't fit.
pub struct TestParent(pub String);

impl TestParent {
    pub fn new() -> TestParent {
        TestParent(format!("strata-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)))
    }

    /// Points `b`'s container at `/<parent>/<id>`.
    pub fn place(&self, b: &mut Bundle, id: &str) {
        b.config["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", self.0));
    }

    /// The container's directory in v1 hierarchy `controller`.
    pub fn v1(&self, controller: &str, id: &str) -> PathBuf {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/{}/{id}", self.0))
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        // Killed tasks may take a moment to leave: retry for up to 5 s.
        for _ in 0..50 {
            let dirs = parent_dirs(&self.0);
            if dirs.is_empty() {
                return;
            }
            for dir in dirs {
                let _ = Command::new("find")
                    .arg(&dir)
                    .args(["-name", "freezer.state", "-exec", "sh", "-c", "echo THAWED > $1", "-", "{}", ";"])
                    .status();
                let _ = Command::new("find")
                    .arg(&dir)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
