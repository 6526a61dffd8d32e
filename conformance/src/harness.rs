//! Drives a runtime through its runc-style CLI for one case: a bundle of its own (a copy
//! of the rootfs template plus the probe), a private `--root` shared by the run, unique
//! container ids, and cleanup that runs whatever the case did: every id it made is
//! killed and force-deleted, host helpers are killed, mounts it made are undone, and
//! anything the *runtime* left behind (mounts under the bundle, cgroups) turns the
//! case into a failure, because a leak is a conformance bug of its own.

use serde_json::{json, Value};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use crate::command::{run_cmd, wait_timeout, Out};
use std::time::{Duration, Instant};

/// Why a case did not pass.
#[derive(Debug)]
pub enum Fail {
    NotOk(String),
    Skip(String),
}

/// The result type of every case function.
pub type R = Result<(), Fail>;

/// Fails the case with a formatted message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($c:expr, $($m:tt)+) => { if !$c { return Err($crate::harness::Fail::NotOk(format!($($m)+))); } };
}

pub fn not_ok<T>(m: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::NotOk(m.into()))
}
pub fn skip<T>(m: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Skip(m.into()))
}

/// What one run of the suite shares between cases.
pub struct Env {
    pub runtime: PathBuf,
    pub root: PathBuf,
    pub work: PathBuf,
    pub template: PathBuf,
    pub probe: PathBuf,
    pub tag: String,
    pub features: Option<Value>,
    counter: Cell<u32>,
}

impl Env {
    pub fn new(runtime: &Path, work: &Path, template: &Path, probe: &Path, tag: &str) -> Env {
        let root = work.join(format!("root-{tag}"));
        let _ = std::fs::create_dir_all(&root);
        let mut env = Env {
            runtime: runtime.into(),
            root,
            work: work.into(),
            template: template.into(),
            probe: probe.into(),
            tag: tag.into(),
            features: None,
            counter: Cell::new(0),
        };
        let out = env.cmd(&["features"]);
        env.features = out.ok().then(|| serde_json::from_str(&out.stdout).ok()).flatten();
        env
    }

    pub fn next(&self) -> u32 {
        self.counter.set(self.counter.get() + 1);
        self.counter.get()
    }

    /// The cgroup parent every container of this run lives under.
    pub fn cgroup_parent(&self) -> String {
        format!("/strata-conformance-{}-{}", std::process::id(), self.tag)
    }

    /// `RUNTIME --root ROOT ARGS...`, stdio in files (a container started by the command
    /// inherits them and would hold a pipe open), killed after 30 s.
    pub fn cmd(&self, args: &[&str]) -> Out {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root).args(args);
        run_cmd(c, &self.work, self.next())
    }

    /// Whether `features` lists `item` under the JSON pointer `ptr`; None when the
    /// runtime has no usable `features` command (so callers can't skip on it).
    pub fn feature_lists(&self, ptr: &str, item: &str) -> Option<bool> {
        let list = self.features.as_ref()?.pointer(ptr)?.as_array()?;
        Some(list.iter().any(|v| v == item))
    }

    /// Removes the cgroups of this run, then the private root (end of the run).
    pub fn cleanup(&self) {
        // Sweep whatever a case could not clean up (a runtime hang, a bug of the suite).
        let list = self.cmd(&["list", "--quiet"]);
        for id in list.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = self.cmd(&["kill", id, "KILL"]);
            let _ = self.cmd(&["delete", "--force", id]);
        }
        crate::cgroup::remove_tree(&self.cgroup_parent());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One case's world.
pub struct Ctx<'a> {
    pub env: &'a Env,
    pub dir: PathBuf,
    pub config: Value,
    ids: Vec<String>,
    helpers: Vec<Child>,
    host_mounts: Vec<PathBuf>,
}

impl<'a> Ctx<'a> {
    pub fn new(env: &'a Env, name: &str) -> Result<Ctx<'a>, String> {
        let dir = env.work.join(format!("b-{}-{}-{}", env.tag, env.next(), name.replace('/', "_")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let st = Command::new("cp").arg("-a").arg(&env.template).arg(dir.join("rootfs")).status();
        if !matches!(st, Ok(s) if s.success()) {
            return Err(format!("cp -a {} failed", env.template.display()));
        }
        std::fs::copy(&env.probe, dir.join("rootfs/strata-probe")).map_err(|e| format!("copy probe: {e}"))?;
        let config = crate::cases::default_config(&env.cgroup_parent());
        Ok(Ctx { env, dir, config, ids: vec![], helpers: vec![], host_mounts: vec![] })
    }

    /// A container id unique to this run, deleted when the case ends.
    pub fn id(&mut self) -> String {
        let id = format!("{}-{}-{}", self.env.tag, std::process::id(), self.env.next());
        self.ids.push(id.clone());
        self.config["linux"]["cgroupsPath"] = json!(format!("{}/{id}", self.env.cgroup_parent()));
        id
    }

    pub fn bundle(&self) -> String {
        self.dir.display().to_string()
    }
    /// A path inside the rootfs, as the host sees it.
    pub fn rootfs(&self, rel: &str) -> PathBuf {
        self.dir.join("rootfs").join(rel.trim_start_matches('/'))
    }
    pub fn write_config(&self) {
        let _ = std::fs::write(self.dir.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap());
    }
    pub fn args(&mut self, a: &[&str]) {
        self.config["process"]["args"] = json!(a);
    }
    pub fn sh(&mut self, script: &str) {
        self.args(&["sh", "-c", script]);
    }

    pub fn rt(&self, args: &[&str]) -> Out {
        self.env.cmd(args)
    }
    /// `create --bundle DIR [EXTRA...] ID` with the current config.
    pub fn create(&mut self, id: &str, extra: &[&str]) -> Out {
        self.write_config();
        let b = self.bundle();
        let mut a = vec!["create", "--bundle", &b];
        a.extend_from_slice(extra);
        a.push(id);
        self.rt(&a)
    }
    /// create that must succeed.
    pub fn create_ok(&mut self, id: &str) -> R {
        let o = self.create(id, &[]);
        ensure!(o.ok(), "create failed: {}", o.brief());
        Ok(())
    }
    pub fn run(&mut self, id: &str) -> Out {
        self.write_config();
        let b = self.bundle();
        self.rt(&["run", "--bundle", &b, id])
    }
    pub fn start(&self, id: &str) -> Out {
        self.rt(&["start", id])
    }
    pub fn kill(&self, id: &str, sig: &str) -> Out {
        self.rt(&["kill", id, sig])
    }
    pub fn delete(&self, id: &str) -> Out {
        self.rt(&["delete", id])
    }
    pub fn state(&self, id: &str) -> Result<Value, String> {
        let o = self.rt(&["state", id]);
        if !o.ok() {
            return Err(o.brief());
        }
        serde_json::from_str(&o.stdout).map_err(|e| format!("state is not JSON ({e}): {}", o.stdout))
    }
    pub fn status(&self, id: &str) -> String {
        self.state(id).ok().and_then(|s| s["status"].as_str().map(String::from)).unwrap_or_else(|| "<none>".into())
    }
    /// Waits up to 10 s for `want`; returns the last status seen.
    pub fn wait_status(&self, id: &str, want: &str) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(id);
            if s == want {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!("status is {s}, never became {want}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the probe as the container process (`run`), returning its report.
    pub fn probe(&mut self, ops: &[&str]) -> Result<Value, Fail> {
        let mut a = vec!["/strata-probe"];
        a.extend_from_slice(ops);
        self.args(&a);
        let id = self.id();
        let o = self.run(&id);
        let line = o.stdout.lines().rev().find(|l| l.starts_with('{'));
        match line.and_then(|l| serde_json::from_str(l).ok()) {
            Some(v) if o.ok() => Ok(v),
            _ => not_ok(format!("run of the probe failed: {}", o.brief())),
        }
    }

    /// Starts a host helper process, killed when the case ends.
    pub fn helper(&mut self, argv: &[&str]) -> Result<u32, Fail> {
        let c = Command::new(argv[0]).args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).spawn();
        let c = c.map_err(|e| Fail::Skip(format!("cannot run {}: {e}", argv[0])))?;
        let pid = c.id();
        self.helpers.push(c);
        std::thread::sleep(Duration::from_millis(100));
        Ok(pid)
    }

    /// Mounts on the host (for a case's fixture), undone when the case ends.
    pub fn host_mount(&mut self, args: &[&str], target: &Path) -> R {
        let st = Command::new("mount").args(args).arg(target).status();
        if !matches!(st, Ok(s) if s.success()) {
            return skip(format!("host cannot mount {args:?} on {}", target.display()));
        }
        self.host_mounts.push(target.into());
        Ok(())
    }

    /// Ends the case: removes its containers and fixtures, and reports what the
    /// runtime left behind (mounts under the bundle, cgroups of its ids).
    pub fn finish(mut self) -> Option<String> {
        for id in &self.ids {
            let _ = self.env.cmd(&["kill", id, "KILL"]);
            let _ = self.env.cmd(&["delete", "--force", id]);
        }
        for c in &mut self.helpers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in self.host_mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let mut leaks = vec![];
        // Bytes, escapes undone: a non-UTF-8 mount elsewhere must not hide our leaks.
        let mounts = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.bundle();
        let mut ours: Vec<String> = String::from_utf8_lossy(&mounts)
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(crate::procfs::unescape)
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            leaks.push(format!("mount {m}"));
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        for id in &self.ids {
            for d in crate::cgroup::dirs_of(&format!("{}/{id}", self.env.cgroup_parent())) {
                leaks.push(format!("cgroup {}", d.display()));
                let _ = std::fs::remove_dir(&d);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        leaks.extend(host_devices_broken());
        (!leaks.is_empty()).then(|| format!("left behind after delete: {}", leaks.join(", ")))
    }
}

/// Lets cases use `?` on the harness's `Result<_, String>` helpers.
impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::NotOk(s)
    }
}
impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail::NotOk(s.into())
    }
}

/// The host's standard device nodes that are no longer the char devices they should
/// be: a runtime that replaces the host's /dev/null (a classic bug of bind-mount and
/// mknod code resolving paths outside the rootfs) breaks the machine, not just a case.
pub fn host_devices_broken() -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/urandom", 1, 9)]
        .iter()
        .filter(|(p, ma, mi)| {
            !std::fs::symlink_metadata(p).is_ok_and(|m| {
                m.file_type().is_char_device() && libc::major(m.rdev()) == *ma && libc::minor(m.rdev()) == *mi
            })
        })
        .map(|(p, _, _)| format!("the host's {p} is no longer a char device"))
        .collect()
}
