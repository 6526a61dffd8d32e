//! Helpers for tests that run containers: the `strata` binary, a private state root,
//! a test cgroup parent and a guard that leaves no mount or cgroup behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The runtime binary: $STRATA_BIN, else the `strata` built beside this crate's
/// `strata-image` (same target dir), else the workspace's default debug build.
pub fn strata_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_BIN") {
        return Some(PathBuf::from(p));
    }
    let sibling = super::bin().with_file_name("strata");
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-gnu/debug/strata");
    [sibling, default].into_iter().find(|p| p.exists())
}

/// Everything one test puts on the host outside its scratch dir: containers under a
/// private `--root`, cgroups under `/<parent>` in every hierarchy, mounts under `dir`.
/// Dropping it (even after a panic) deletes the containers, unmounts and removes cgroups.
pub struct Host {
    pub dir: PathBuf,
    pub strata: PathBuf,
    pub cgroup_parent: String,
    ids: Vec<String>,
}

impl Host {
    pub fn new(dir: &Path, strata: PathBuf, tag: &str) -> Host {
        let cgroup_parent = format!("strata-image-test-{}-{tag}", std::process::id());
        Host { dir: dir.to_path_buf(), strata, cgroup_parent, ids: vec![] }
    }

    /// `strata run` of `bundle` as container `id`, its cgroup under the test parent.
    pub fn run(&mut self, bundle: &Path, id: &str) -> Output {
        self.run_command(bundle, id).output().unwrap()
    }

    /// `run`, without waiting: the container is deleted when the Host is dropped.
    pub fn spawn(&mut self, bundle: &Path, id: &str) -> std::process::Child {
        let mut c = self.run_command(bundle, id);
        c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c.spawn().unwrap()
    }

    /// The `--root` of this host's containers.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn run_command(&mut self, bundle: &Path, id: &str) -> Command {
        let cfg = bundle.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
        spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", self.cgroup_parent));
        fs::write(&cfg, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        self.ids.push(id.to_string());
        let mut c = Command::new(&self.strata);
        c.arg("--root").arg(self.state()).args(["run", "-b"]).arg(bundle).arg(id);
        c
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new(&self.strata)
                .arg("--root")
                .arg(self.dir.join("state"))
                .args(["delete", "--force", id])
                .output();
        }
        for m in mounts_under(&self.dir) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        for cg in cgroups_under(&self.cgroup_parent) {
            let _ = fs::remove_dir(cg);
        }
    }
}

/// Mount points at or below `dir`, deepest first. mountinfo is read as the
/// library reads it (`overlay::mounts`: every octal escape undone, bytes not
/// text), so a path with a space, a backslash or a non-UTF-8 byte is found too.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap_or(dir.to_path_buf());
    let mut v: Vec<PathBuf> =
        strata_image::overlay::mounts().into_iter().map(|(p, _)| p).filter(|p| p.starts_with(&dir)).collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    v.dedup();
    v
}

/// Cgroup directories at or below `/<parent>` in every hierarchy, deepest first.
pub fn cgroups_under(parent: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&e.path(), out);
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = vec![];
    let mut hierarchies: Vec<PathBuf> =
        fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()).collect();
    hierarchies.push(PathBuf::from("/sys/fs/cgroup"));
    for h in hierarchies {
        let p = h.join(parent);
        if p.is_dir() {
            walk(&p, &mut out);
        }
    }
    out
}

/// podman with private stores under `dir` (vfs: no storage mounts), runc as its
/// runtime (crun refuses this machine's hybrid cgroups), containers under `cgroup_parent`.
pub fn podman(dir: &Path, cgroup_parent: &str, args: &[&str]) -> Output {
    ensure_containers_conf();
    let d = |s: &str| dir.join(s).to_string_lossy().into_owned();
    let mut c = Command::new("podman");
    c.args(["--root", &d("root"), "--runroot", &d("runroot"), "--tmpdir", &d("tmp"), "--storage-driver", "vfs"])
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
    if args.first() == Some(&"run") {
        c.arg("run").args(["--network", "none", "--cgroup-parent", &format!("/{cgroup_parent}")]).args(&args[1..]);
    } else {
        c.args(args);
    }
    c.stdin(std::process::Stdio::null()).output().unwrap()
}

/// podman's default ulimits exceed this machine's hard limits (no CAP_SYS_RESOURCE)
/// and it has no per-invocation override, so the machine-wide file must lower them;
/// the integration crate writes the same file, and an existing one is kept aside.
fn ensure_containers_conf() {
    let path = Path::new("/etc/containers/containers.conf");
    let current = fs::read_to_string(path).unwrap_or_default();
    if current.contains("nofile=1024:1024") {
        return;
    }
    fs::create_dir_all("/etc/containers").unwrap();
    if !current.is_empty() {
        let _ = fs::write("/etc/containers/containers.conf.strata-orig", &current);
    }
    let conf = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";
    fs::write(path, conf).unwrap();
}

pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private containerd (own socket, root and state under `dir`, no CRI), stopped
/// by pid when dropped: enough to check that `ctr image import` accepts an image.
pub struct Containerd {
    pub dir: PathBuf,
    daemon: std::process::Child,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        fs::create_dir_all(dir).unwrap();
        let d = |s: &str| dir.join(s).to_string_lossy().into_owned();
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n[debug]\n  address = \"{}\"\n\
             [plugins.\"io.containerd.monitor.v1.cgroups\"]\n  no_prometheus = true\n",
            d("root"),
            d("state"),
            d("c.sock"),
            d("c.sock.ttrpc"),
            d("debug.sock"),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { dir: dir.to_path_buf(), daemon };
        let up = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            c.ctr(&["version"]).status.success()
        });
        assert!(
            up,
            "containerd did not come up: {}",
            fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("c.sock"))
            .args(["--namespace", "strata-image-test"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes no pointers; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if matches!(self.daemon.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
