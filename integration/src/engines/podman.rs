//! A private podman world: conmon and the runtime under test, podman's own stores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{
    busybox_tar, cgroups_under, ensure_containers_conf, mounts_under, processes_mentioning, teardown, unique,
    wait_until, world_dir, Runtime, IMAGE,
};
use crate::{output_of, stdout};

/// A private podman (conmon + the given OCI runtime) with the busybox image imported.
/// The runtime keeps its state in its default root; the containers of this world are
/// known by the ids podman writes to `--cidfile`.
pub struct Podman {
    pub dir: PathBuf,
    pub runtime: Runtime,
    /// The cgroup parent (relative to each hierarchy's root) every container goes under.
    pub cgroup_parent: String,
    cgroup_parent_abs: String,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Podman {
    pub fn new(runtime: &Runtime) -> Podman {
        ensure_containers_conf();
        let (dir, tag) = world_dir(&format!("podman-{}", runtime.name));
        std::fs::create_dir(dir.join("cids")).unwrap();
        let p = Podman {
            dir,
            runtime: runtime.clone(),
            cgroup_parent_abs: format!("/{tag}"),
            cgroup_parent: tag,
            ids: Default::default(),
        };
        let out = p.podman(&["import", "-q", busybox_tar().to_str().unwrap(), IMAGE]);
        crate::assert_ok(&out, "podman import");
        p
    }

    /// `podman` with this world's private stores and runtime.
    pub fn command(&self, args: &[&str]) -> Command {
        let d = |s: &str| self.dir.join(s).to_string_lossy().into_owned();
        let mut c = Command::new("podman");
        c.args(["--root", &d("root"), "--runroot", &d("runroot"), "--tmpdir", &d("tmp")])
            .arg("--runtime")
            .arg(&self.runtime.path)
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .stdin(Stdio::null())
            // conmon writes an `oom` marker into its working directory when a container
            // is OOM-killed: keep it in the world, not in the source tree.
            .current_dir(&self.dir);
        c
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        output_of(self.command(args))
    }

    /// `podman run --rm` of `cmd` in the busybox image, no network, under the world's
    /// cgroup parent, with `opts` before the image.
    pub fn run(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let cidfile = self.cidfile();
        let mut args = vec!["run", "--rm", "--cidfile", &cidfile];
        args.extend(self.placement());
        args.extend(opts);
        args.push(IMAGE);
        args.extend(cmd);
        let out = self.podman(&args);
        self.record(&cidfile);
        out
    }

    /// `podman run -d --name NAME` of `cmd`; returns the name.
    pub fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let name = unique(name);
        let cidfile = self.cidfile();
        let mut args = vec!["run", "-d", "--name", &name, "--cidfile", &cidfile];
        args.extend(self.placement());
        args.extend(opts);
        args.push(IMAGE);
        args.extend(cmd);
        let out = self.podman(&args);
        self.record(&cidfile);
        crate::assert_ok(&out, "podman run -d");
        name
    }

    fn cidfile(&self) -> String {
        self.dir.join("cids").join(unique("cid")).to_string_lossy().into_owned()
    }

    fn record(&self, cidfile: &str) {
        if let Ok(id) = std::fs::read_to_string(cidfile) {
            self.ids.lock().unwrap().push(id.trim().to_string());
        }
    }

    fn placement(&self) -> Vec<&str> {
        vec!["--network", "none", "--cgroup-parent", &self.cgroup_parent_abs]
    }

    /// `podman inspect -f FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.podman(&["inspect", "-f", format, name]);
        crate::assert_ok(&out, "podman inspect");
        stdout(&out).trim().to_string()
    }

    /// The container's cgroup directory in the v1 hierarchy `controller`.
    pub fn cgroup_dir(&self, name: &str, controller: &str) -> PathBuf {
        let id = self.inspect(name, "{{.Id}}");
        Path::new("/sys/fs/cgroup").join(controller).join(&self.cgroup_parent).join(format!("libpod-{id}"))
    }

    /// Waits until `podman logs NAME` contains `want`.
    pub fn wait_log(&self, name: &str, want: &str) -> bool {
        wait_until(15, || stdout(&self.podman(&["logs", name])).contains(want))
    }

    /// The host-side proof that no container is left: no runtime state dir of any
    /// container this world ran, no container cgroup under the world's parent (conmon's
    /// own `conmon` cgroup is podman's), no mount of a container rootfs, no conmon or
    /// container process of this world. podman removes a `--rm` container from a
    /// process conmon starts after the exit, so this waits a little for it.
    pub fn assert_nothing_left(&self) {
        let ids = self.ids.lock().unwrap().clone();
        let root = Path::new(self.runtime.default_root);
        let states = || ids.iter().map(|id| root.join(id)).filter(|p| p.exists()).collect::<Vec<_>>();
        wait_until(10, || states().is_empty());
        assert!(states().is_empty(), "{}: runtime state dirs left: {:?}", self.runtime.name, states());
        let cgs = || {
            cgroups_under(&self.cgroup_parent)
                .into_iter()
                .filter(|p| p.to_string_lossy().contains("libpod-"))
                .collect::<Vec<_>>()
        };
        wait_until(10, || cgs().is_empty());
        assert!(cgs().is_empty(), "{}: container cgroups left: {:?}", self.runtime.name, cgs());
        let mounts = || {
            mounts_under(&self.dir)
                .into_iter()
                .filter(|m| m.contains("/merged") || m.contains("/userdata/"))
                .collect::<Vec<_>>()
        };
        wait_until(10, || mounts().is_empty());
        assert!(mounts().is_empty(), "{}: container mounts left: {:?}", self.runtime.name, mounts());
        let procs = || processes_mentioning(self.dir.to_str().unwrap());
        wait_until(10, || procs().is_empty());
        assert!(procs().is_empty(), "{}: processes left: {:?}", self.runtime.name, procs());
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        let _ = self.podman(&["rmi", "-af"]);
        // conmon runs podman's exit command (`podman container cleanup`, with this world's
        // --root) on its own after a container dies: a late one opened the store again
        // after the teardown and left its overlay mount and a half world behind. Wait for
        // this world's processes, then end any that remain, before taking it apart.
        let dir = self.dir.to_string_lossy().into_owned();
        wait_until(10, || processes_mentioning(&dir).is_empty());
        for p in processes_mentioning(&dir) {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse().ok()) {
                // SAFETY: plain kill of a pid this world started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        teardown(&self.dir, &self.cgroup_parent);
    }
}
