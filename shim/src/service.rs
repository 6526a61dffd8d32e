//! The shim: containerd's start/delete actions ([`Shim`]), and the helpers the task
//! API shares. One shim serves a pod (or a container outside a pod); its task service
//! is [`crate::table`] (the processes and their exits) plus [`crate::task`] (the API).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use containerd_shim::api::Options;
use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::protos::types::mount::Mount;
use containerd_shim::protos::EventsClient;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, StartOpts};
use log::warn;
use nix::sys::signal::Signal;
use strata::container::{self as ctr, Store};

use crate::table::{Inner, Service, Table};

pub const RUNTIME_ID: &str = "io.containerd.strata.v2";
/// The annotation that groups a pod's containers into one shim (as the runc shim does).
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Where Create records the state root, for the `delete` action of a dead shim.
pub(crate) const ROOT_FILE: &str = "strata-root";

pub struct Shim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    /// The serving shim's ttrpc socket (`unix:///run/containerd/s/HASH`).
    socket: String,
}

impl containerd_shim::Shim for Shim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Shim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            socket: args.socket.clone(),
        }
    }

    /// Runs in the bundle: a pod's containers share the shim of their sandbox.
    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = sandbox_id(Path::new("config.json")).unwrap_or_else(|| opts.id.clone());
        let (_pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        containerd_shim::synchronous::util::write_address(&address)?;
        block_signals_until_exit();
        Ok(address)
    }

    /// containerd's cleanup after a shim died: remove the container and its rootfs mount.
    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = std::env::current_dir().unwrap_or_default();
        let root = std::fs::read_to_string(bundle.join(ROOT_FILE))
            .map(PathBuf::from)
            .unwrap_or_else(|_| store_root(&bundle, &self.namespace, None));
        if let Err(e) = ctr::delete(&Store::new(root), &self.id, true) {
            warn!("delete {}: {e}", self.id);
        }
        unmount_rootfs(&bundle.join("rootfs"));
        // The dead shim's socket (a live shim removes it when it exits).
        if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
            if let Some(path) = address.trim().strip_prefix("unix://") {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(now()).into(),
            ..Default::default()
        })
    }

    /// Until Shutdown. The socket goes here: the crate removes it through the bundle's
    /// `address` file, which containerd has deleted by then.
    fn wait(&mut self) {
        self.exit.wait();
        if let Some(path) = self.socket.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
        }
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        drop(publisher);
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let fd = containerd_shim::util::connect(&address).expect("connect to containerd's ttrpc socket");
        let client = containerd_shim::protos::ttrpc::Client::new(fd).expect("ttrpc client");
        let inner = Arc::new(Inner {
            namespace: self.namespace.clone(),
            exit: self.exit.clone(),
            events: EventsClient::new(client),
            table: Mutex::new(Table::default()),
            exited: Condvar::new(),
            oom: crate::oom::Watcher::new().expect("epoll for the OOM watcher"),
        });
        // Subscribed before any container exists, so no exit is missed.
        let sub = monitor_subscribe(Topic::Pid).expect("subscribe to exits");
        let monitor = inner.clone();
        std::thread::spawn(move || {
            for ev in sub.rx.iter() {
                if let Subject::Pid(pid) = ev.subject {
                    monitor.on_exit(pid, ev.exit_code);
                }
            }
        });
        let oom = inner.clone();
        std::thread::spawn(move || loop {
            for container_id in oom.oom.wait() {
                oom.publish(TaskOOM { container_id, ..Default::default() });
            }
        });
        Service { inner }
    }
}

/// The `start` action's last step: no signal handler may run while the crate tears
/// down its signal iterator, or the action never exits and containerd's call (a CRI
/// StartContainer) hangs. The crate drops the self-pipe's read end before it
/// unregisters the handlers; a signal in between (typically the SIGCHLD of the shim it
/// just spawned, which exits at once when the pod's shim already serves the socket)
/// makes the handler's send() fail with EPIPE and raise SIGPIPE, whose handler is the
/// same one: it sends again, and so on forever, the process spinning at 100% CPU.
/// Blocked, the signals stay pending until the process exits a moment later.
fn block_signals_until_exit() {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGPIPE, Signal::SIGTERM, Signal::SIGINT] {
        set.add(sig);
    }
    if let Err(e) = set.thread_block() {
        warn!("block signals: {e}");
    }
}

/// Whether config.json asks for a new pid namespace (not one joined by path).
pub(crate) fn own_pid_namespace(config: &Path) -> bool {
    let Some(v) = std::fs::read(config).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) else {
        return true;
    };
    let namespaces = v["linux"]["namespaces"].as_array().cloned().unwrap_or_default();
    namespaces.iter().any(|n| n["type"] == "pid" && n["path"].as_str().unwrap_or("").is_empty())
}

fn sandbox_id(config: &Path) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    v["annotations"][SANDBOX_ID].as_str().map(str::to_string)
}

/// The strata state root for a namespace: the runc options' `Root` when containerd
/// passes one (a CRI runtime's `options`), else `<containerd state>/strata/<ns>`, beside
/// the bundles (`<state>/io.containerd.runtime.v2.task/<ns>/<id>`), as the runc shim
/// keeps `/run/containerd/runc/<ns>`.
pub(crate) fn store_root(bundle: &Path, namespace: &str, options: Option<&Any>) -> PathBuf {
    if let Some(o) = options.filter(|a| a.type_url.ends_with("containerd.runc.v1.Options")) {
        if let Ok(o) = Options::parse_from_bytes(&o.value) {
            if !o.root.is_empty() {
                return Path::new(&o.root).join(namespace);
            }
        }
    }
    let state = bundle
        .ancestors()
        .nth(2)
        .filter(|p| p.file_name().is_some_and(|n| n == "io.containerd.runtime.v2.task"))
        .and_then(Path::parent);
    state.map(|s| s.join("strata")).unwrap_or_else(|| PathBuf::from("/run/containerd/strata")).join(namespace)
}

pub(crate) fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<bool, String> {
    for m in mounts {
        let t = (!m.type_.is_empty()).then_some(m.type_.as_str());
        let s = (!m.source.is_empty()).then_some(m.source.as_str());
        containerd_shim::mount::mount_rootfs(t, s, &m.options, target).map_err(|e| {
            unmount_rootfs(target);
            format!("mount rootfs {}: {e}", target.display())
        })?;
    }
    Ok(!mounts.is_empty())
}

pub(crate) fn unmount_rootfs(target: &Path) {
    let t = target.to_string_lossy();
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(&t), libc::MNT_DETACH) {
        warn!("unmount {t}: {e}");
    }
}

pub(crate) fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}

pub(crate) fn rpc_err(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// strata's errors as the codes containerd maps to its errdefs.
pub(crate) fn strata_err(e: strata::Error) -> ttrpc::Error {
    let code = match &e {
        strata::Error::NotFound(_) => Code::NOT_FOUND,
        strata::Error::Exists(_) => Code::ALREADY_EXISTS,
        strata::Error::NotRunning { .. } | strata::Error::WrongStatus { .. } => Code::FAILED_PRECONDITION,
        _ => Code::UNKNOWN,
    };
    rpc_err(code, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_root_sits_beside_containerds_bundles_or_follows_the_runc_options() {
        let bundle = Path::new("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc");
        assert_eq!(store_root(bundle, "k8s.io", None), Path::new("/run/containerd/strata/k8s.io"));
        assert_eq!(store_root(Path::new("/elsewhere/b"), "ns", None), Path::new("/run/containerd/strata/ns"));
        let opts = Options { root: "/run/mine".into(), ..Default::default() };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(store_root(bundle, "k8s.io", Some(&any)), Path::new("/run/mine/k8s.io"));
    }

    #[test]
    fn pods_group_by_sandbox_id_and_joined_pid_namespaces_are_not_owned() {
        let dir = std::env::temp_dir().join(format!("strata-shim-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        let spec = serde_json::json!({
            "annotations": { SANDBOX_ID: "pod1" },
            "linux": { "namespaces": [{ "type": "pid", "path": "/proc/1/ns/pid" }, { "type": "mount" }] }
        });
        std::fs::write(&config, spec.to_string()).unwrap();
        assert_eq!(sandbox_id(&config).as_deref(), Some("pod1"));
        assert!(!own_pid_namespace(&config));
        std::fs::write(&config, r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#).unwrap();
        assert_eq!(sandbox_id(&config), None);
        assert!(own_pid_namespace(&config));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
