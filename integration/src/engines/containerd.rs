//! A private containerd world: its own daemon, socket and stores, the runc v2 shim or
//! strata's own, `ctr` as the client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{
    busybox_oci_archive, cgroups_under, mounts_under, processes_mentioning, teardown, unique, wait_until, world_dir,
    Runtime, IMAGE,
};
use crate::{output_of, stdout};

/// A private containerd on its own socket, root, state dir and config, with the busybox
/// image imported into its own namespace. `ctr` calls choose the OCI runtime with
/// `--runc-binary` (the runc v2 shim's `BinaryName` option, as a RuntimeClass handler
/// sets it) and keep the runtime's state under the world with `--runc-root`.
pub struct Containerd {
    pub dir: PathBuf,
    pub runtime: Runtime,
    pub namespace: String,
    /// `Some(dir)`: tasks run under strata's own shim (`io.containerd.strata.v2`), found
    /// by containerd in `dir` on its PATH; `None`: under the runc v2 shim.
    pub strata_shim: Option<PathBuf>,
    daemon: Child,
}

impl Containerd {
    pub fn new(runtime: &Runtime) -> Containerd {
        Containerd::with_shim(runtime, None)
    }

    /// A containerd whose tasks run under `containerd-shim-strata-v2` from `shim_dir`
    /// (see [`crate::shim`]), or under the runc shim when `None`.
    pub fn with_shim(runtime: &Runtime, shim_dir: Option<&Path>) -> Containerd {
        let archive = busybox_oci_archive();
        let kind = if shim_dir.is_some() { "strata-shim" } else { runtime.name };
        let (dir, tag) = world_dir(&format!("containerd-{kind}"));
        let d = |s: &str| dir.join(s).to_string_lossy().into_owned();
        let config = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n[debug]\n  address = \"{}\"\n\
             [plugins.\"io.containerd.monitor.v1.cgroups\"]\n  no_prometheus = true\n",
            d("root"),
            d("state"),
            d("containerd.sock"),
            d("containerd.sock.ttrpc"),
            d("debug.sock"),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let daemon = spawn_containerd(&dir, shim_dir);
        let strata_shim = shim_dir.map(Path::to_path_buf);
        let c = Containerd { dir, runtime: runtime.clone(), namespace: tag, strata_shim, daemon };
        let up = wait_until(20, || c.ctr(&["version"]).status.success());
        assert!(
            up,
            "containerd did not come up: {}",
            std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
        );
        // The archive's index names the image (podman save writes the annotation).
        let out = c.ctr(&["image", "import", archive.to_str().unwrap()]);
        crate::assert_ok(&out, "ctr image import");
        c
    }

    /// The runtime's state root, passed to the shim as `--runc-root`; strata's shim
    /// keeps it beside containerd's state.
    pub fn runtime_root(&self) -> PathBuf {
        match self.strata_shim {
            Some(_) => self.dir.join("state/strata"),
            None => self.dir.join("runtime-state"),
        }
    }

    /// `--fifo-dir` for `ctr run` and `ctr task exec`: the IO fifos stay in the world
    /// instead of the machine's /run/containerd/fifo.
    pub fn fifo_dir_flag(&self) -> String {
        format!("--fifo-dir={}", self.dir.join("fifo").display())
    }

    /// The cgroup path (relative to each hierarchy) of container `name`.
    pub fn cgroup_path(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        output_of(self.command(args))
    }

    /// `ctr run [--rm | -d] OPTS --runc-binary RUNTIME IMAGE NAME CMD...`.
    pub fn run_args(&self, mode: &str, name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["run".into(), mode.into()];
        if self.strata_shim.is_some() {
            args.push("--runtime=io.containerd.strata.v2".into());
        } else {
            args.push(format!("--runc-binary={}", self.runtime.path.display()));
            args.push(format!("--runc-root={}", self.runtime_root().display()));
        }
        args.push(format!("--cgroup=/{}", self.cgroup_path(name)));
        args.push(self.fifo_dir_flag());
        args.extend(opts.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(name.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    /// Runs `cmd` to completion and removes the container.
    pub fn run(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let name = unique("run");
        let args = self.run_args("--rm", &name, opts, cmd);
        let out = self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>());
        // A failed start leaves the container record behind: remove it.
        let _ = self.ctr(&["container", "rm", &name]);
        out
    }

    /// Runs `echo nI` in `count` containers one after the other (`ctr run --rm`) and
    /// checks each one's output. containerd's runc shim now and then drops the whole
    /// output of a process that exits right after writing it: 1 run in about 300 here,
    /// with runc as the runtime as well as with strata (upstream reports: containerd#770,
    /// concourse#6775), none in 300 under strata's own shim. So `lost_allowed` empty
    /// outputs are tolerated; a wrong or partial output, or one more loss, fails.
    pub fn run_echoes(&self, count: usize, lost_allowed: usize) {
        let mut lost = Vec::new();
        for i in 0..count {
            let out = self.run(&[], &["sh", "-c", &format!("echo n{i}")]);
            crate::assert_ok(&out, &format!("container {i}"));
            match crate::stdout(&out) {
                s if s.is_empty() => lost.push(i),
                s => assert_eq!(s, format!("n{i}\n"), "container {i}"),
            }
        }
        assert!(lost.len() <= lost_allowed, "{}: ctr run lost the output of containers {lost:?}", self.runtime.name);
    }

    /// Starts `cmd` detached; returns the container name.
    pub fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let name = unique(name);
        let args = self.run_args("-d", &name, opts, cmd);
        let out = self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>());
        crate::assert_ok(&out, "ctr run -d");
        name
    }

    /// The task's status as `ctr task ls` shows it (RUNNING, PAUSED, STOPPED).
    pub fn task_status(&self, name: &str) -> String {
        let out = self.ctr(&["task", "ls"]);
        stdout(&out)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("<none>")
            .to_string()
    }

    /// Kills and removes a task and its container.
    pub fn remove(&self, name: &str) {
        let _ = self.ctr(&["task", "kill", "-s", "KILL", name]);
        wait_until(10, || self.task_status(name) != "RUNNING");
        let _ = self.ctr(&["task", "rm", "-f", name]);
        let _ = self.ctr(&["container", "rm", name]);
    }

    /// No runtime state dir, no container cgroup, no rootfs mount, no shim or container
    /// process of this world left.
    pub fn assert_nothing_left(&self) {
        // The shim keeps the runtime's containers under `--runc-root`/NAMESPACE.
        let root = self.runtime_root().join(&self.namespace);
        let states = || -> Vec<PathBuf> {
            std::fs::read_dir(&root).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
        };
        // containerd's cleanup of a dead shim (the shim binary's `delete` action, which
        // runs the runtime's `delete --force`) is asynchronous: give it a bounded moment.
        wait_until(10, || states().is_empty());
        let states = states();
        assert!(states.is_empty(), "{}: runtime state dirs left: {states:?}", self.runtime.name);
        let cgs: Vec<_> =
            cgroups_under(&self.namespace).into_iter().filter(|p| !p.ends_with(&self.namespace)).collect();
        assert!(cgs.is_empty(), "{}: container cgroups left: {cgs:?}", self.runtime.name);
        let mounts: Vec<_> = mounts_under(&self.dir).into_iter().filter(|m| m.ends_with("/rootfs")).collect();
        assert!(mounts.is_empty(), "{}: container mounts left: {mounts:?}", self.runtime.name);
        let ok =
            wait_until(10, || processes_mentioning(&self.namespace).iter().all(|p| !p.contains("containerd-shim")));
        assert!(ok, "{}: shims left: {:?}", self.runtime.name, processes_mentioning(&self.namespace));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let out = self.ctr(&["task", "ls", "-q"]);
        for t in stdout(&out).lines() {
            self.remove(t.trim());
        }
        let out = self.ctr(&["container", "ls", "-q"]);
        for c in stdout(&out).lines() {
            let _ = self.ctr(&["container", "rm", c.trim()]);
        }
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        if !wait_until(10, || matches!(self.daemon.try_wait(), Ok(Some(_)))) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        // Shims outlive the daemon only when a task survived the removal above.
        for p in processes_mentioning(&self.namespace) {
            if let Some(pid) = p.split(':').next().and_then(|s| s.parse::<i32>().ok()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        teardown(&self.dir, &self.namespace);
    }
}

/// Starts a private containerd on `DIR/config.toml`, logging to `DIR/containerd.log`;
/// with `shim_dir`, that directory goes first on its PATH (where containerd looks for
/// `containerd-shim-strata-v2`).
pub fn spawn_containerd(dir: &Path, shim_dir: Option<&Path>) -> Child {
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let mut daemon = Command::new("containerd");
    if let Some(shim) = shim_dir {
        let path = std::env::var("PATH").unwrap_or_default();
        daemon.env("PATH", format!("{}:{path}", shim.display()));
    }
    daemon
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd is missing: hack/deps installs it")
}
