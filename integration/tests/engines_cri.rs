//! Kubernetes drives strata the way a kubelet does: CRI gRPC calls to containerd's CRI
//! plugin, whose RuntimeClass handler `strata` is the runc v2 shim with `BinaryName` set
//! to strata. The same pod's life runs under the handler `runc` (Debian's runc, the
//! control) and `strata`, each on a private containerd (tests/cri/mod.rs). Every call is
//! bounded: a runtime that makes containerd retry forever (as a failing `kill --all` on
//! a stopped container does) fails the step it blocks instead of hanging the test.

mod cri;

use cri::{api, CriWorld};
use strata_integration::engines::Runtime;

strata_integration::scenarios!(pod_lifecycle, pod_sharing_its_pid_namespace, container_oom_killed);

/// The same pods under strata's own shim (`io.containerd.strata.v2`, a RuntimeClass
/// handler `strata-shim`), which runs strata in-process.
mod strata_shim {
    fn rt() -> strata_integration::engines::Runtime {
        strata_integration::engines::Runtime { name: super::cri::STRATA_SHIM, ..strata_integration::engines::strata() }
    }
    #[test]
    fn pod_lifecycle() {
        super::pod_lifecycle(&rt())
    }
    #[test]
    fn pod_sharing_its_pid_namespace() {
        super::pod_sharing_its_pid_namespace(&rt())
    }
    #[test]
    fn container_oom_killed() {
        super::container_oom_killed(&rt())
    }
}

const MIB: i64 = 1024 * 1024;

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

/// A pod's life as a kubelet drives it: sandbox, containers with limits, exec, status
/// with the real exit code, a limits update, stats, a second container sharing the pod's
/// IPC and network, stop, sandbox stop and removal, and nothing left on the host.
fn pod_lifecycle(rt: &Runtime) {
    let w = CriWorld::new(rt);
    let h = rt.name;
    let pod_config = w.pod_config("web", api::NamespaceMode::Container);
    let pod = w.run_pod(&pod_config);
    assert_eq!(w.pod_state(&pod), api::PodSandboxState::SandboxReady, "{h}: RunPodSandbox");
    let pause = w.pause_pid(&pod);

    // A long-running container with CPU and memory limits.
    let limits = api::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 * MIB,
        // A kubelet always sets it (1000 for a BestEffort pod, less for Burstable).
        oom_score_adj: 500,
        ..Default::default()
    };
    let app =
        w.start_container(&pod, &pod_config, w.container_config(&pod_config, "app", &["sleep", "100000"], limits));
    assert_eq!(w.state(&app), api::ContainerState::ContainerRunning, "{h}: StartContainer");
    let app_pid = w.container_pid(&app);
    assert_eq!(read(std::path::Path::new(&format!("/proc/{app_pid}/oom_score_adj"))), "500", "{h}: oom_score_adj");

    // ExecSync: output and the real exit code; the exec runs in the container's cgroup.
    let r = w.exec(&app, &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!((r.exit_code, &r.stdout[..], &r.stderr[..]), (7, &b"out\n"[..], &b"err\n"[..]), "{h}: ExecSync");
    let cg = w.exec_ok(&app, &["cat", "/proc/self/cgroup"]);
    let want = format!("/{}/{app}", w.cgroup_parent);
    assert!(cg.lines().any(|l| l.contains(":memory:") && l.ends_with(&want)), "{h}: exec outside {want}: {cg}");

    // The limits are on the container's cgroup; UpdateContainerResources changes them.
    let (mem, cpu) = (w.cgroup_dir("memory", &app), w.cgroup_dir("cpu", &app));
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), (64 * MIB).to_string(), "{h}: memory limit");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000", "{h}: cpu quota");
    assert_eq!(read(&cpu.join("cpu.shares")), "512", "{h}: cpu shares");
    let update = api::UpdateContainerResourcesRequest {
        container_id: app.clone(),
        linux: Some(api::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 256,
            memory_limit_in_bytes: 96 * MIB,
            ..Default::default()
        }),
        ..Default::default()
    };
    w.call("UpdateContainerResources", 30, |mut c| async move { c.update_container_resources(update).await });
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), (96 * MIB).to_string(), "{h}: updated memory limit");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "20000", "{h}: updated cpu quota");
    assert_eq!(read(&cpu.join("cpu.shares")), "256", "{h}: updated cpu shares");

    // ContainerStats: the container's own figures.
    let req = api::ContainerStatsRequest { container_id: app.clone() };
    let stats = w.call("ContainerStats", 30, |mut c| async move { c.container_stats(req).await }).stats;
    let stats = stats.unwrap_or_else(|| panic!("{h}: ContainerStats without stats"));
    assert_eq!(stats.attributes.as_ref().map(|a| a.id.as_str()), Some(app.as_str()), "{h}: stats of another container");
    let working_set = stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value).unwrap_or(0);
    assert!(working_set > 0, "{h}: no memory working set in the stats");
    assert!(stats.cpu.is_some(), "{h}: no cpu usage in the stats");

    // A second container shares the pod's IPC namespace (and its /dev/shm) and network.
    let side = w.start_container(
        &pod,
        &pod_config,
        w.container_config(&pod_config, "side", &["sleep", "100000"], Default::default()),
    );
    let side_pid = w.container_pid(&side);
    let ns = |id: &str| w.exec_ok(id, &["sh", "-c", "readlink /proc/self/ns/ipc; readlink /proc/self/ns/net"]);
    assert_eq!(ns(&app), ns(&side), "{h}: the pod's containers do not share IPC and network");
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap().to_string_lossy().into_owned();
    assert!(!ns(&app).contains(&host_ipc), "{h}: the pod has the host's IPC namespace");
    w.exec_ok(&app, &["sh", "-c", "echo shared > /dev/shm/note"]);
    assert_eq!(w.exec_ok(&side, &["cat", "/dev/shm/note"]), "shared\n", "{h}: /dev/shm is not the pod's");

    // A container that exits by itself: ContainerStatus has its real exit code, its log
    // has its output. (containerd deletes the exited task with `kill --all` first.)
    let job = w.start_container(
        &pod,
        &pod_config,
        w.container_config(&pod_config, "job", &["sh", "-c", "echo bye; exit 3"], Default::default()),
    );
    let st = w.wait_exited(&job, 20);
    assert_eq!(st.exit_code, 3, "{h}: exit code of the job");
    let log = std::fs::read_to_string(&st.log_path).unwrap_or_default();
    assert!(log.contains("stdout F bye"), "{h}: the job's log: {log:?}");

    // StopContainer: `sleep` as PID 1 ignores SIGTERM, so the grace period ends in SIGKILL.
    let req = api::StopContainerRequest { container_id: app.clone(), timeout: 2 };
    w.call("StopContainer", 30, |mut c| async move { c.stop_container(req).await });
    let st = w.wait_exited(&app, 10);
    assert_eq!(st.exit_code, 137, "{h}: exit code of the stopped container");

    // StopPodSandbox stops the rest and the pause container; RemovePodSandbox removes all.
    let req = api::StopPodSandboxRequest { pod_sandbox_id: pod.clone() };
    w.call("StopPodSandbox", 30, |mut c| async move { c.stop_pod_sandbox(req).await });
    assert_eq!(w.pod_state(&pod), api::PodSandboxState::SandboxNotready, "{h}: StopPodSandbox");
    assert_eq!(w.wait_exited(&side, 10).exit_code, 137, "{h}: exit code of the container the pod's stop killed");
    let req = api::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() };
    w.call("RemovePodSandbox", 30, |mut c| async move { c.remove_pod_sandbox(req).await });
    assert!(w.list_containers().is_empty(), "{h}: containers left: {:?}", w.list_containers());
    assert!(w.list_pods().is_empty(), "{h}: pods left: {:?}", w.list_pods());
    w.assert_nothing_left(&[pause, app_pid, side_pid]);
}

/// `shareProcessNamespace: true`: the pod's containers join the pause container's PID
/// namespace by path, so the pause is their PID 1 and they see each other's processes.
/// The shim then sends `kill --all` when each container's process ends, as in any pod.
fn pod_sharing_its_pid_namespace(rt: &Runtime) {
    let w = CriWorld::new(rt);
    let h = rt.name;
    let pod_config = w.pod_config("shared", api::NamespaceMode::Pod);
    let pod = w.run_pod(&pod_config);
    let pause = w.pause_pid(&pod);
    let app = w.start_container(
        &pod,
        &pod_config,
        w.container_config(&pod_config, "app", &["sleep", "100001"], Default::default()),
    );
    let app_pid = w.container_pid(&app);
    let side = w.start_container(
        &pod,
        &pod_config,
        w.container_config(&pod_config, "side", &["sleep", "100002"], Default::default()),
    );
    let side_pid = w.container_pid(&side);
    let init = w.exec_ok(&app, &["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"]);
    assert_eq!(init.trim(), "/bin/sleep 1000000000", "{h}: PID 1 of the pod's containers is not the pause");
    let ps = w.exec_ok(&side, &["ps"]);
    assert!(
        ps.contains("sleep 100001") && ps.contains("sleep 100002"),
        "{h}: the containers do not see each other: {ps}"
    );
    // Not PID 1 of its namespace, the app dies of the SIGTERM.
    let req = api::StopContainerRequest { container_id: app.clone(), timeout: 10 };
    w.call("StopContainer", 30, |mut c| async move { c.stop_container(req).await });
    assert_eq!(w.wait_exited(&app, 10).exit_code, 143, "{h}: exit code of the stopped container");
    assert!(!w.exec_ok(&side, &["ps"]).contains("sleep 100001"), "{h}: the stopped container's process is left");
    let req = api::StopPodSandboxRequest { pod_sandbox_id: pod.clone() };
    w.call("StopPodSandbox", 30, |mut c| async move { c.stop_pod_sandbox(req).await });
    assert_eq!(w.wait_exited(&side, 10).exit_code, 137, "{h}: exit code of the container the pod's stop killed");
    let req = api::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() };
    w.call("RemovePodSandbox", 30, |mut c| async move { c.remove_pod_sandbox(req).await });
    assert!(w.list_containers().is_empty() && w.list_pods().is_empty(), "{h}: containers or pods left");
    w.assert_nothing_left(&[pause, app_pid, side_pid]);
}

/// A container that outgrows its memory limit: the kernel's OOM killer ends it, and
/// ContainerStatus says so (reason "OOMKilled", which the CRI plugin sets only on the
/// shim's TaskOOM event; exit code 137).
fn container_oom_killed(rt: &Runtime) {
    let w = CriWorld::new(rt);
    let h = rt.name;
    let pod_config = w.pod_config("oom", api::NamespaceMode::Container);
    let pod = w.run_pod(&pod_config);
    let pause = w.pause_pid(&pod);
    let limits = limits_of(16 * MIB);
    // The shell doubles a string until the cgroup's limit stops it. It waits first:
    // the runc shim (the control) watches for OOM kills only once Start has returned.
    let hog = w.container_config(&pod_config, "hog", &["sh", "-c", "sleep 2; a=x; while :; do a=$a$a; done"], limits);
    let hog = w.start_container(&pod, &pod_config, hog);
    let st = w.wait_exited(&hog, 30);
    assert_eq!(st.exit_code, 137, "{h}: exit code of the OOM-killed container");
    // TaskOOM and TaskExit travel apart: the reason may follow the exit.
    let reason = || w.container_status(&hog, false).status.map(|s| s.reason).unwrap_or_default();
    strata_integration::engines::wait_until(10, || reason() == "OOMKilled");
    assert_eq!(reason(), "OOMKilled", "{h}: ContainerStatus reason of the OOM-killed container");
    // A container that ends by itself, within its limit, is no OOM kill.
    let job = w.container_config(&pod_config, "job", &["sh", "-c", "exit 1"], limits_of(16 * MIB));
    let job = w.start_container(&pod, &pod_config, job);
    let st = w.wait_exited(&job, 20);
    assert_eq!((st.exit_code, &st.reason[..]), (1, "Error"), "{h}: status of a container that failed by itself");
    let req = api::StopPodSandboxRequest { pod_sandbox_id: pod.clone() };
    w.call("StopPodSandbox", 30, |mut c| async move { c.stop_pod_sandbox(req).await });
    let req = api::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() };
    w.call("RemovePodSandbox", 30, |mut c| async move { c.remove_pod_sandbox(req).await });
    assert!(w.list_containers().is_empty() && w.list_pods().is_empty(), "{h}: containers or pods left");
    w.assert_nothing_left(&[pause]);
}

fn limits_of(memory: i64) -> api::LinuxContainerResources {
    api::LinuxContainerResources { memory_limit_in_bytes: memory, ..Default::default() }
}
