//! A kubelet's view of a runtime: a private containerd with its CRI plugin, driven over
//! the CRI gRPC API (the `k8s-cri` bindings, tonic on a unix socket, a current-thread
//! tokio runtime). The module lives under tests/ because its gRPC stack is a
//! dev-dependency of the integration crate only.
//!
//! One containerd config holds two RuntimeClass handlers, as a cluster would: `runc`
//! (Debian's runc, the control) and `strata` (the binary under test), both the runc v2
//! shim with `BinaryName` and a `Root` inside the world. Everything lives under one temp
//! directory: containerd's root, state, sockets, the handlers' state roots, pod logs;
//! pods run under a cgroup parent named after the world, with the host's network (no
//! CNI) and no streaming port of a fixed number. The sandbox image is a pause image built
//! locally from the busybox fixture. Every call is bounded by a timeout, so a runtime
//! that makes containerd retry forever fails the test instead of hanging it. Drop tears
//! the world down even when the test failed: pods stopped and removed when containerd
//! still answers, then the daemon, shims and every process left in the world's cgroups
//! killed, mounts unmounted, cgroups removed, the directory deleted.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
pub use k8s_cri::v1 as api;
use strata_integration::engines::{
    busybox_oci_archive, busybox_tar, cgroups_under, mounts_under, processes_mentioning, wait_until, Podman, Runtime,
    IMAGE,
};
use strata_integration::{assert_ok, output_of, workspace};
use tonic::transport::Channel;

/// The sandbox ("pause") image: the busybox fixture with a sleeping entrypoint.
pub const PAUSE_IMAGE: &str = "localhost/pause:strata";

/// The CRI plugin's namespace in containerd.
const NAMESPACE: &str = "k8s.io";

/// The pause image as an OCI archive, made once per test binary: the busybox rootfs
/// imported into a throwaway podman store with an entrypoint that sleeps, then saved.
pub fn pause_oci_archive() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = workspace().join("target/fixtures/pause-oci.tar");
        if !tar.exists() {
            let p = Podman::new(&strata_integration::engines::runc());
            let change = r#"ENTRYPOINT ["/bin/sleep", "1000000000"]"#;
            let out = p.podman(&["import", "-q", "--change", change, busybox_tar().to_str().unwrap(), PAUSE_IMAGE]);
            assert_ok(&out, "podman import (pause)");
            let tmp = p.dir.join("pause.tar");
            let out = p.podman(&["save", "--format", "oci-archive", "-o", tmp.to_str().unwrap(), PAUSE_IMAGE]);
            assert_ok(&out, "podman save (pause)");
            let part = tar.with_extension(format!("tmp{}", std::process::id()));
            std::fs::copy(&tmp, &part).unwrap();
            std::fs::rename(&part, &tar).unwrap();
        }
        tar
    })
}

/// A private containerd with the CRI plugin, and a CRI client bound to one handler.
pub struct CriWorld {
    pub dir: PathBuf,
    /// The RuntimeClass handler every pod of this world names (`runc` or `strata`).
    pub handler: String,
    /// The cgroup parent of every pod, relative to each hierarchy's root.
    pub cgroup_parent: String,
    daemon: Child,
    tokio: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl CriWorld {
    pub fn new(rt: &Runtime) -> CriWorld {
        let (pause, busybox) = (pause_oci_archive(), busybox_oci_archive());
        let tag = strata_integration::engines::unique(&format!("cri-{}", rt.name));
        let dir = std::env::temp_dir().join(format!("strata-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("config.toml"), config(&dir, &runc_path(), &rt.path)).unwrap();
        // containerd finds containerd-shim-strata-v2 on its PATH.
        let shim_dir = (rt.name == STRATA_SHIM).then(strata_integration::shim::shim_dir);
        let daemon = strata_integration::engines::spawn_containerd(&dir, shim_dir.as_deref());
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let channel = {
            let _in_runtime = tokio.enter();
            channel(&dir.join("containerd.sock"))
        };
        let w = CriWorld {
            handler: rt.name.to_string(),
            cgroup_parent: tag,
            daemon,
            tokio,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            dir,
        };
        // The CRI plugin answers Version once it has started.
        let up = wait_until(30, || {
            w.rpc("Version", 5, |mut c| async move { c.version(api::VersionRequest::default()).await }).is_ok()
        });
        assert!(up, "containerd's CRI plugin did not come up:\n{}", w.log());
        for (archive, name) in [(pause, PAUSE_IMAGE), (busybox, IMAGE)] {
            let out = w.ctr(&["images", "import", archive.to_str().unwrap()]);
            assert_ok(&out, "ctr -n k8s.io images import");
            // The CRI plugin learns of the image from containerd's events.
            let seen = wait_until(20, || w.image_present(name));
            assert!(seen, "the CRI plugin does not see {name}:\n{}", w.log());
        }
        w
    }

    /// `ctr --namespace k8s.io` on this world's containerd.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(self.dir.join("containerd.sock")).args(["--namespace", NAMESPACE]);
        c.args(args).stdin(Stdio::null());
        output_of(c)
    }

    /// containerd's last errors and warnings, for failure messages.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("level=error") || l.contains("level=warn")).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// One RuntimeService call, bounded by `secs`: the answer, or the gRPC status or the
    /// timeout as an error that names the call.
    pub fn rpc<T, F, Fut>(&self, what: &str, secs: u64, f: F) -> Result<T, String>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let fut = f(self.runtime.clone());
        match self.tokio.block_on(async { tokio::time::timeout(Duration::from_secs(secs), fut).await }) {
            Err(_) => Err(format!("{what}: no answer within {secs} s")),
            Ok(Err(s)) => Err(format!("{what}: {:?}: {}", s.code(), s.message())),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    /// Like [`CriWorld::rpc`], panicking with containerd's log on an error.
    pub fn call<T, F, Fut>(&self, what: &str, secs: u64, f: F) -> T
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rpc(what, secs, f).unwrap_or_else(|e| panic!("{}: {e}\ncontainerd's log:\n{}", self.handler, self.log()))
    }

    /// Whether the CRI image service knows `name`.
    pub fn image_present(&self, name: &str) -> bool {
        let mut c = self.images.clone();
        let req = api::ImageStatusRequest {
            image: Some(api::ImageSpec { image: name.into(), ..Default::default() }),
            verbose: false,
        };
        let fut = async move { c.image_status(req).await };
        matches!(
            self.tokio.block_on(async { tokio::time::timeout(Duration::from_secs(5), fut).await }),
            Ok(Ok(r)) if r.get_ref().image.is_some()
        )
    }

    /// A pod's config as a kubelet sends it: host network (no CNI here), its own IPC
    /// namespace shared by its containers, PID namespaces as `pid` says (`Container`: one
    /// per container; `Pod`: one for the pod, as `shareProcessNamespace: true`), the
    /// world's cgroup parent and a log directory in the world.
    pub fn pod_config(&self, name: &str, pid: api::NamespaceMode) -> api::PodSandboxConfig {
        let ns = api::NamespaceOption {
            network: api::NamespaceMode::Node as i32,
            pid: pid as i32,
            ipc: api::NamespaceMode::Pod as i32,
            ..Default::default()
        };
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid: format!("{}-{name}", self.cgroup_parent),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: self.dir.join("logs").join(name).to_string_lossy().into_owned(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}", self.cgroup_parent),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(ns),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox container's config running `args` in `pod`, with the pod's namespace
    /// options, as a kubelet derives both from one pod spec.
    pub fn container_config(
        &self,
        pod: &api::PodSandboxConfig,
        name: &str,
        args: &[&str],
        resources: api::LinuxContainerResources,
    ) -> api::ContainerConfig {
        let ns = pod.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.clone());
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(api::ImageSpec { image: IMAGE.into(), ..Default::default() }),
            command: args.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(api::LinuxContainerConfig {
                resources: Some(resources),
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: ns,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with this world's handler; returns the pod id.
    pub fn run_pod(&self, config: &api::PodSandboxConfig) -> String {
        let req = api::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: self.handler.clone() };
        self.call("RunPodSandbox", 60, |mut c| async move { c.run_pod_sandbox(req).await }).pod_sandbox_id
    }

    /// CreateContainer then StartContainer; returns the container id.
    pub fn start_container(
        &self,
        pod: &str,
        pod_config: &api::PodSandboxConfig,
        config: api::ContainerConfig,
    ) -> String {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        let id = self.call("CreateContainer", 60, |mut c| async move { c.create_container(req).await }).container_id;
        let req = api::StartContainerRequest { container_id: id.clone() };
        self.call("StartContainer", 60, |mut c| async move { c.start_container(req).await });
        id
    }

    /// ExecSync of `cmd` in container `id` (the exec itself bounded by 20 s).
    pub fn exec(&self, id: &str, cmd: &[&str]) -> api::ExecSyncResponse {
        let req = api::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        };
        self.call("ExecSync", 30, |mut c| async move { c.exec_sync(req).await })
    }

    /// ExecSync that must exit 0; its stdout.
    pub fn exec_ok(&self, id: &str, cmd: &[&str]) -> String {
        let r = self.exec(id, cmd);
        let (out, err) = (String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr));
        assert_eq!(r.exit_code, 0, "{}: exec {cmd:?}: stdout={out} stderr={err}", self.handler);
        out.into_owned()
    }

    pub fn container_status(&self, id: &str, verbose: bool) -> api::ContainerStatusResponse {
        let req = api::ContainerStatusRequest { container_id: id.into(), verbose };
        self.call("ContainerStatus", 20, |mut c| async move { c.container_status(req).await })
    }

    pub fn state(&self, id: &str) -> api::ContainerState {
        let st = self.container_status(id, false).status.expect("ContainerStatus without a status");
        api::ContainerState::try_from(st.state).unwrap_or(api::ContainerState::ContainerUnknown)
    }

    /// Waits up to `secs` for container `id` to be EXITED; its status.
    pub fn wait_exited(&self, id: &str, secs: u64) -> api::ContainerStatus {
        let exited = wait_until(secs, || self.state(id) == api::ContainerState::ContainerExited);
        let st = self.container_status(id, false).status.unwrap();
        let name = st.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        assert!(
            exited,
            "{}: container {name} ({id}) still {:?} {secs} s after its process ended or was killed\n\
             containerd's last errors:\n{}",
            self.handler,
            api::ContainerState::try_from(st.state),
            self.log()
        );
        st
    }

    /// The pid of container `id`'s init, from ContainerStatus's verbose info.
    pub fn container_pid(&self, id: &str) -> i32 {
        pid_of(&self.container_status(id, true).info)
    }

    /// The pid of pod `id`'s sandbox (pause) process.
    pub fn pause_pid(&self, pod: &str) -> i32 {
        let req = api::PodSandboxStatusRequest { pod_sandbox_id: pod.into(), verbose: true };
        pid_of(&self.call("PodSandboxStatus", 20, |mut c| async move { c.pod_sandbox_status(req).await }).info)
    }

    pub fn pod_state(&self, pod: &str) -> api::PodSandboxState {
        let req = api::PodSandboxStatusRequest { pod_sandbox_id: pod.into(), verbose: false };
        let st = self.call("PodSandboxStatus", 20, |mut c| async move { c.pod_sandbox_status(req).await });
        api::PodSandboxState::try_from(st.status.unwrap().state).unwrap()
    }

    pub fn list_containers(&self) -> Vec<api::Container> {
        let req = api::ListContainersRequest::default();
        self.call("ListContainers", 20, |mut c| async move { c.list_containers(req).await }).containers
    }

    pub fn list_pods(&self) -> Vec<api::PodSandbox> {
        let req = api::ListPodSandboxRequest::default();
        self.call("ListPodSandbox", 20, |mut c| async move { c.list_pod_sandbox(req).await }).items
    }

    /// The directory of `id`'s cgroup in the v1 hierarchy `controller`.
    pub fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup").join(controller).join(&self.cgroup_parent).join(id)
    }

    /// The runtime state dirs of this world's handler (`Root`/k8s.io/ID; strata's shim
    /// keeps them beside containerd's state).
    pub fn runtime_states(&self) -> Vec<PathBuf> {
        let root = match self.handler.as_str() {
            STRATA_SHIM => self.dir.join("state/strata").join(NAMESPACE),
            h => self.dir.join("runtime").join(h).join(NAMESPACE),
        };
        std::fs::read_dir(root).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    }

    /// The host-side proof that a removed pod left nothing: no runtime state, no cgroup
    /// under the world's parent, no mount under the world, no shim of the world, and none
    /// of `pids` (the pause and container inits) alive.
    pub fn assert_nothing_left(&self, pids: &[i32]) {
        let h = &self.handler;
        let states = || self.runtime_states();
        wait_until(10, || states().is_empty());
        assert!(states().is_empty(), "{h}: runtime state dirs left: {:?}", states());
        let cgs = || {
            cgroups_under(&self.cgroup_parent)
                .into_iter()
                .filter(|p| !p.ends_with(&self.cgroup_parent))
                .collect::<Vec<_>>()
        };
        wait_until(10, || cgs().is_empty());
        assert!(cgs().is_empty(), "{h}: cgroups left: {:?}", cgs());
        let mounts = || mounts_under(&self.dir);
        wait_until(10, || mounts().is_empty());
        assert!(mounts().is_empty(), "{h}: mounts left: {:?}", mounts());
        let shims = || {
            processes_mentioning(self.dir.to_str().unwrap())
                .into_iter()
                .filter(|p| p.contains("containerd-shim"))
                .collect::<Vec<_>>()
        };
        wait_until(10, || shims().is_empty());
        assert!(shims().is_empty(), "{h}: shims left: {:?}", shims());
        let alive = || pids.iter().copied().filter(|&p| strata_integration::process_alive(p)).collect::<Vec<_>>();
        wait_until(10, || alive().is_empty());
        assert!(alive().is_empty(), "{h}: pause or container processes left: {:?}", alive());
    }
}

impl Drop for CriWorld {
    fn drop(&mut self) {
        // A kubelet's teardown first, briefly: the daemon may be the thing that is stuck.
        let pods = self.rpc("ListPodSandbox", 5, |mut c| async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest::default()).await
        });
        for p in pods.map(|r| r.items).unwrap_or_default() {
            let id = p.id;
            let req = api::StopPodSandboxRequest { pod_sandbox_id: id.clone() };
            let _ = self.rpc("StopPodSandbox", 10, |mut c| async move { c.stop_pod_sandbox(req).await });
            let req = api::RemovePodSandboxRequest { pod_sandbox_id: id };
            let _ = self.rpc("RemovePodSandbox", 10, |mut c| async move { c.remove_pod_sandbox(req).await });
        }
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        if !wait_until(10, || matches!(self.daemon.try_wait(), Ok(Some(_)))) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        // Shims name the world's socket on their command line; the pods' processes are
        // known by the world's cgroups.
        for p in processes_mentioning(self.dir.to_str().unwrap()) {
            if let Some(pid) = p.split(':').next().and_then(|s| s.parse::<i32>().ok()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let parent = self.cgroup_parent.clone();
        wait_until(10, || {
            let cgs = cgroups_under(&parent);
            for cg in &cgs {
                for pid in std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                let _ = std::fs::remove_dir(cg);
            }
            cgroups_under(&parent).is_empty()
        });
        for m in mounts_under(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pid` from a CRI verbose `info` map (its "info" entry is JSON).
fn pid_of(info: &std::collections::HashMap<String, String>) -> i32 {
    let v: serde_json::Value = serde_json::from_str(info.get("info").map(String::as_str).unwrap_or("{}")).unwrap();
    v["pid"].as_i64().unwrap_or_else(|| panic!("no pid in verbose info: {info:?}")) as i32
}

pub fn runc_path() -> PathBuf {
    strata_integration::engines::runc().path
}

/// The handler of strata's own shim (`io.containerd.strata.v2`, strata in-process).
pub const STRATA_SHIM: &str = "strata-shim";

/// containerd's config: private paths, the CRI plugin with the `runc` and `strata`
/// handlers (and `strata-shim`, strata's own shim), no fixed TCP port, OOM score
/// adjustments clamped (no CAP_SYS_RESOURCE here).
fn config(dir: &Path, runc: &Path, strata: &Path) -> String {
    let d = |s: &str| dir.join(s).to_string_lossy().into_owned();
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    let handler = |name: &str, bin: &Path| {
        format!(
            "[{cri}.containerd.runtimes.{name}]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [{cri}.containerd.runtimes.{name}.options]\n  BinaryName = \"{}\"\n  Root = \"{}\"\n  SystemdCgroup = false\n",
            bin.display(),
            d(&format!("runtime/{name}")),
        )
    };
    let shim_handler =
        format!("[{cri}.containerd.runtimes.{STRATA_SHIM}]\n  runtime_type = \"io.containerd.strata.v2\"\n");
    format!(
        "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
         [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n[debug]\n  address = \"{}\"\n\
         [plugins.\"io.containerd.monitor.v1.cgroups\"]\n  no_prometheus = true\n\
         [{cri}]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  restrict_oom_score_adj = true\n  disable_apparmor = true\n\
           stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n  enable_selinux = false\n\
         [{cri}.containerd]\n  snapshotter = \"overlayfs\"\n  default_runtime_name = \"runc\"\n\
         {}{}{}\
         [{cri}.cni]\n  bin_dir = \"{}\"\n  conf_dir = \"{}\"\n",
        d("root"),
        d("state"),
        d("containerd.sock"),
        d("containerd.sock.ttrpc"),
        d("debug.sock"),
        handler("runc", runc),
        handler("strata", strata),
        shim_handler,
        d("cni/bin"),
        d("cni/net.d"),
    )
}

/// A tonic channel over containerd's unix socket, connected on first use (and again
/// after a failure, so it can be made before the daemon listens).
fn channel(sock: &Path) -> Channel {
    let sock = sock.to_path_buf();
    tonic::transport::Endpoint::from_static("http://localhost").connect_with_connector_lazy(tower::service_fn(
        move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
            }
        },
    ))
}
