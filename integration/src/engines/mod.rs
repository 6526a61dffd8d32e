//! Helpers for driving strata (and runc, the control) through real engines: podman
//! with conmon, and containerd with its runc v2 shim.
//!
//! Every engine runs in a private world under one temp directory: podman gets its own
//! `--root`, `--runroot`, `--tmpdir` and runtime `--root`; containerd is started by the
//! test on its own socket, root, state dir and config. Containers go under a cgroup
//! parent named after the world, with no network, so nothing of the machine's own
//! containers, cgroups, bridges or mounts is touched. Drop tears a world down even when
//! the test failed: containers removed, the daemon stopped, mounts under the world
//! unmounted, the world's cgroups removed, the directory deleted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{strata_bin, workspace};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The image every engine test runs: the busybox fixture, imported locally (no registry).
pub const IMAGE: &str = "localhost/busybox:strata";

/// An OCI runtime an engine is pointed at, with the words its own error messages use, so
/// a test can tell that the engine passed the runtime's message through to its user.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub name: &'static str,
    pub path: PathBuf,
    /// A substring of the runtime's error when process.args[0] is missing in the image.
    pub missing_binary_msg: &'static str,
    /// A substring of the runtime's error when a mount destination is under a file.
    pub bad_mount_msg: &'static str,
    /// The runtime's default state root, where podman leaves its state (podman's
    /// `--runtime-flag` is not passed on to the exit command's cleanup, so a private
    /// `--root` would strand every container's state there).
    pub default_root: &'static str,
}

/// strata, the runtime under test ($STRATA_BIN or the debug build).
pub fn strata() -> Runtime {
    Runtime {
        name: "strata",
        path: strata_bin(),
        missing_binary_msg: "no such file in the container",
        bad_mount_msg: "Not a directory",
        default_root: "/run/strata",
    }
}

/// Debian's runc: the control. A scenario that fails here too is the setup's fault.
pub fn runc() -> Runtime {
    let path = ["/usr/sbin/runc", "/usr/bin/runc"].iter().map(PathBuf::from).find(|p| p.exists());
    Runtime {
        name: "runc",
        path: path.expect("runc is missing: hack/deps installs it (hack/apt-packages)"),
        missing_binary_msg: "no such file or directory",
        bad_mount_msg: "not a directory",
        default_root: "/run/runc",
    }
}

/// The machine-wide podman settings these machines need, written once per test binary.
/// podman's default ulimits exceed the hard limits here (CAP_SYS_RESOURCE is missing),
/// so `default_ulimits` must be lowered in /etc/containers/containers.conf: podman has
/// no per-invocation way to change its defaults. cgroupfs and the file events logger are
/// what a machine without systemd as PID 1 needs. An existing file that already has the
/// ulimits line is left alone; any other is kept beside as `containers.conf.strata-orig`.
pub fn ensure_containers_conf() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = Path::new("/etc/containers/containers.conf");
        let current = std::fs::read_to_string(path).unwrap_or_default();
        if current.contains("nofile=1024:1024") {
            return;
        }
        std::fs::create_dir_all("/etc/containers").unwrap();
        if !current.is_empty() {
            let _ = std::fs::write("/etc/containers/containers.conf.strata-orig", &current);
        }
        let conf = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                    [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";
        std::fs::write(path, conf).unwrap();
    });
}

/// The busybox rootfs as a tar (for `podman import`), built once per test binary.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = workspace().join("target/fixtures/busybox-rootfs.tar");
        if !tar.exists() {
            let tmp = tar.with_extension(format!("tmp{}", std::process::id()));
            let st = Command::new("tar")
                .arg("-C")
                .arg(crate::busybox_template())
                .arg("-cf")
                .arg(&tmp)
                .arg(".")
                .status()
                .unwrap();
            assert!(st.success(), "tar of the busybox rootfs failed");
            std::fs::rename(&tmp, &tar).unwrap();
        }
        tar
    })
}

/// The busybox image as an OCI archive (for `ctr image import`), made once per test
/// binary by importing the rootfs tar into a throwaway podman store and saving it.
pub fn busybox_oci_archive() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = workspace().join("target/fixtures/busybox-oci.tar");
        if !tar.exists() {
            let p = Podman::new(&runc());
            let tmp = p.dir.join("oci.tar");
            let out = p.podman(&["save", "--format", "oci-archive", "-o", tmp.to_str().unwrap(), IMAGE]);
            crate::assert_ok(&out, "podman save");
            let part = tar.with_extension(format!("tmp{}", std::process::id()));
            std::fs::copy(&tmp, &part).unwrap();
            std::fs::rename(&part, &tar).unwrap();
        }
        tar
    })
}

/// A fresh private directory for one engine world.
fn world_dir(kind: &str) -> (PathBuf, String) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let tag = format!("strata-eng-{}-{n}-{kind}", std::process::id());
    let dir = std::env::temp_dir().join(&tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir, tag)
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = strata::mountinfo::read_self()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.mount_point.starts_with(dir) && m.mount_point != dir)
        .map(|m| m.mount_point.to_string_lossy().into_owned())
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

/// Every cgroup directory at or below `/<parent>` in every hierarchy, deepest first.
pub fn cgroups_under(parent: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let top = h.path().join(parent);
        if top.is_dir() {
            let out = Command::new("find").arg(&top).args(["-type", "d"]).output().unwrap();
            v.extend(String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from));
        }
    }
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v
}

/// Pids of processes whose command line mentions `needle` (a world's directory).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && crate::process_alive(name.parse().unwrap()) {
                v.push(format!("{name}: {cmd}"));
            }
        }
    }
    v
}

/// Unmounts every mount under `dir`, removes the cgroups under `parent`, deletes `dir`.
fn teardown(dir: &Path, parent: &str) {
    for m in mounts_under(dir) {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
    for cg in cgroups_under(parent) {
        let _ = std::fs::remove_dir(&cg);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A unique container name for this test process.
pub fn unique(name: &str) -> String {
    format!("s{}-{}-{name}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// Waits up to `secs` for `f` to hold.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

mod containerd;
mod podman;

pub use containerd::{spawn_containerd, Containerd};
pub use podman::Podman;

/// One `#[test]` per scenario and runtime, `strata::NAME` and `runc::NAME`: runc is the
/// control that tells a strata bug from a setup problem.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod strata {
            $( #[test] fn $name() { super::$name(&strata_integration::engines::strata()) } )*
        }
        mod runc {
            $( #[test] fn $name() { super::$name(&strata_integration::engines::runc()) } )*
        }
    };
}
