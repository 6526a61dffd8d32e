//! The shim: containerd's start/delete actions ([`Shim`]) and the task API
//! ([`Service`]), one instance per pod (or per container outside a pod) serving every
//! container of it. Exits reach [`Inner::on_exit`] from containerd-shim's reaper (the
//! shim is a child subreaper) and go to containerd as TaskExit events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::api::{self, Options};
use containerd_shim::event::Event;
use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageFull};
use containerd_shim::protos::shim::events::{Envelope, ForwardRequest};
use containerd_shim::protos::EventsClient;
use containerd_shim::protos::types::mount::Mount;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, StartOpts, TtrpcContext, TtrpcResult};
use log::{info, warn};
use strata::container::{self as ctr, CreateOptions, ExecOptions, ExecProcessArgs, Status, Store};

use crate::helper;
use crate::stdio::{ConsoleSocket, Pty, Stdio};

pub const RUNTIME_ID: &str = "io.containerd.strata.v2";
/// The annotation that groups a pod's containers into one shim (as the runc shim does).
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Where Create records the state root, for the `delete` action of a dead shim.
const ROOT_FILE: &str = "strata-root";

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
        Service { inner }
    }
}

/// Whether config.json asks for a new pid namespace (not one joined by path).
fn own_pid_namespace(config: &Path) -> bool {
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
fn store_root(bundle: &Path, namespace: &str, options: Option<&Any>) -> PathBuf {
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

fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<bool, String> {
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

fn unmount_rootfs(target: &Path) {
    let t = target.to_string_lossy();
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(&t), libc::MNT_DETACH) {
        warn!("unmount {t}: {e}");
    }
}

fn now() -> Timestamp {
    containerd_shim::util::timestamp().unwrap_or_default()
}

fn rpc_err(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// strata's errors as the codes containerd maps to its errdefs.
fn strata_err(e: strata::Error) -> ttrpc::Error {
    let code = match &e {
        strata::Error::NotFound(_) => Code::NOT_FOUND,
        strata::Error::Exists(_) => Code::ALREADY_EXISTS,
        strata::Error::NotRunning { .. } | strata::Error::WrongStatus { .. } => Code::FAILED_PRECONDITION,
        _ => Code::UNKNOWN,
    };
    rpc_err(code, e)
}

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    exit: Arc<ExitSignal>,
    /// containerd's events service. Not the crate's RemotePublisher: that names each
    /// event's type through its protobuf descriptor, which builds the descriptors of
    /// the whole events API on the heap (~0.4 MiB a shim keeps for its life).
    events: EventsClient,
    table: Mutex<Table>,
    /// Signalled whenever a process's exit is recorded.
    exited: Condvar,
}

#[derive(Default)]
struct Table {
    containers: HashMap<String, Container>,
    /// Exits of pids no process claimed yet: a process can exit before create/exec
    /// has handed its pid back (and the helpers' own exits land here too).
    unclaimed: HashMap<i32, i32>,
}

struct Container {
    bundle: PathBuf,
    root: PathBuf,
    rootfs_mounted: bool,
    /// No pid namespace of its own (it joined the pod's or the host's): when the init
    /// exits, the kernel doesn't end the rest, so the shim kills what is left in the
    /// container's cgroup, as the runc shim does.
    kill_all_on_exit: bool,
    init: Proc,
    execs: HashMap<String, Proc>,
}

#[derive(Default)]
struct Proc {
    pid: i32,
    exit: Option<(u32, Timestamp)>,
    io: Stdio,
    pty: Option<Arc<Pty>>,
    /// An exec's process.json, until it starts.
    spec: Option<PathBuf>,
    /// While Create/Start/exec start runs: an exit is recorded but its TaskExit waits
    /// until the start event is out (containerd expects start before exit).
    held: bool,
    held_exit: bool,
}

impl Table {
    fn container(&self, id: &str) -> TtrpcResult<&Container> {
        self.containers.get(id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))
    }

    fn proc(&self, id: &str, exec_id: &str) -> TtrpcResult<&Proc> {
        let c = self.container(id)?;
        if exec_id.is_empty() {
            return Ok(&c.init);
        }
        c.execs.get(exec_id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("exec {exec_id} of {id} not found")))
    }

    fn proc_mut(&mut self, id: &str, exec_id: &str) -> TtrpcResult<&mut Proc> {
        let c = self.containers.get_mut(id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))?;
        if exec_id.is_empty() {
            return Ok(&mut c.init);
        }
        c.execs.get_mut(exec_id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("exec {exec_id} of {id} not found")))
    }

    /// Records `pid` for a process; returns its exit code if it already exited.
    fn claim(&mut self, pid: i32) -> Option<i32> {
        self.unclaimed.remove(&pid)
    }
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forwards an event to containerd; its type URL is the message's protobuf name.
    fn publish<E: Event + MessageFull>(&self, event: E) {
        let topic = event.topic();
        let name = std::any::type_name::<E>().rsplit("::").next().unwrap_or_default();
        let any = Any {
            type_url: format!("containerd.events.{name}"),
            value: event.write_to_bytes().unwrap_or_default(),
            ..Default::default()
        };
        let envelope = Envelope {
            timestamp: Some(now()).into(),
            namespace: self.namespace.clone(),
            topic: topic.clone(),
            event: Some(any).into(),
            ..Default::default()
        };
        let req = ForwardRequest { envelope: Some(envelope).into(), ..Default::default() };
        if let Err(e) = self.events.forward(Default::default(), &req) {
            warn!("publish {topic}: {e}");
        }
    }

    fn on_exit(&self, pid: i32, code: i32) {
        let mut t = self.table();
        let mut hit = None;
        let mut found_held = false;
        'find: for (cid, c) in t.containers.iter_mut() {
            let procs = std::iter::once((cid.clone(), &mut c.init)).chain(c.execs.iter_mut().map(|(e, p)| (e.clone(), p)));
            for (id, p) in procs {
                if p.pid == pid && p.exit.is_none() {
                    p.exit = Some((code as u32, now()));
                    if let Some(pty) = &p.pty {
                        pty.stop();
                    }
                    if p.held {
                        p.held_exit = true;
                        found_held = true;
                    } else {
                        hit = Some((cid.clone(), id));
                    }
                    break 'find;
                }
            }
        }
        let orphans = hit.as_ref().and_then(|(cid, id)| {
            let c = &t.containers[cid];
            (cid == id && c.kill_all_on_exit).then(|| (cid.clone(), c.root.clone()))
        });
        if hit.is_none() && !found_held {
            if t.unclaimed.len() > 4096 {
                t.unclaimed.clear();
            }
            t.unclaimed.insert(pid, code);
        }
        drop(t);
        self.exited.notify_all();
        if let Some((id, root)) = orphans {
            if let Err(e) = ctr::kill(&Store::new(root), &id, libc::SIGKILL, true) {
                warn!("{id}: kill what the init left: {e}");
            }
        }
        if let Some((container_id, id)) = hit {
            self.exit_event(container_id, id, pid, code as u32);
        }
    }

    fn exit_event(&self, container_id: String, id: String, pid: i32, code: u32) {
        info!("{container_id}/{id}: pid {pid} exited with {code}");
        self.publish(TaskExit {
            container_id,
            id,
            pid: pid as u32,
            exit_status: code,
            exited_at: Some(now()).into(),
            ..Default::default()
        });
    }

    /// Sets the pid of a process just made, and its exit if that came first.
    /// The process must be held (see [`Proc::held`]): its exit's event waits for [`Inner::release`].
    fn register(&self, id: &str, exec_id: &str, pid: i32, pty: Option<Arc<Pty>>) -> TtrpcResult<()> {
        let mut t = self.table();
        let early = t.claim(pid);
        let p = t.proc_mut(id, exec_id)?;
        p.pid = pid;
        p.pty = pty;
        if let Some(code) = early {
            p.exit = Some((code as u32, now()));
            p.held_exit = true;
            drop(t);
            self.exited.notify_all();
        }
        Ok(())
    }

    /// Holds a process's exit event until [`Inner::release`].
    fn hold(&self, id: &str, exec_id: &str) -> TtrpcResult<()> {
        self.table().proc_mut(id, exec_id)?.held = true;
        Ok(())
    }

    /// Its start event is out: publish the exit that came meanwhile, if any.
    fn release(&self, id: &str, exec_id: &str) {
        let mut t = self.table();
        let Ok(p) = t.proc_mut(id, exec_id) else { return };
        p.held = false;
        if std::mem::take(&mut p.held_exit) {
            let (pid, code) = (p.pid, p.exit.as_ref().map(|e| e.0).unwrap_or(0));
            drop(t);
            let eid = if exec_id.is_empty() { id } else { exec_id };
            self.exit_event(id.to_string(), eid.to_string(), pid, code);
        }
    }

    fn store(&self, id: &str) -> TtrpcResult<Store> {
        Ok(Store::new(&self.table().container(id)?.root))
    }

    /// Waits (up to `limit`) until the process's exit is recorded.
    fn wait_exit(&self, id: &str, exec_id: &str, limit: Option<Duration>) -> TtrpcResult<Option<(u32, Timestamp)>> {
        let mut t = self.table();
        let end = limit.map(|l| std::time::Instant::now() + l);
        loop {
            if let Some(e) = &t.proc(id, exec_id)?.exit {
                return Ok(Some(e.clone()));
            }
            t = match end {
                None => self.exited.wait(t).unwrap_or_else(|e| e.into_inner()),
                Some(end) => {
                    let left = end.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.exited.wait_timeout(t, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }
}

/// Runs create or exec in the helper with the process's stdio, and receives its pty.
fn spawn_in_helper(
    io: &Stdio,
    run: impl FnOnce(Option<PathBuf>) -> strata::Result<i32>,
) -> TtrpcResult<(i32, Option<Arc<Pty>>)> {
    let console = if io.terminal { Some(ConsoleSocket::new().map_err(|e| rpc_err(Code::INTERNAL, e))?) } else { None };
    let path = console.as_ref().map(|c| c.path.clone());
    let pid = helper::run(io, || run(path).map_err(|e| e.to_string())).map_err(|e| rpc_err(Code::UNKNOWN, e))?;
    let pty = match console {
        Some(c) => Some(c.receive().and_then(|m| Pty::start(m, io)).map_err(|e| rpc_err(Code::INTERNAL, e))?),
        None => None,
    };
    Ok((pid, pty))
}

impl containerd_shim::Task for Service {
    fn create(&self, _ctx: &TtrpcContext, req: api::CreateTaskRequest) -> TtrpcResult<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(rpc_err(Code::UNIMPLEMENTED, "restoring a checkpoint is not supported by strata's shim"));
        }
        let s = &self.inner;
        let bundle = PathBuf::from(&req.bundle);
        let root = store_root(&bundle, &s.namespace, req.options.as_ref());
        let _ = std::fs::write(bundle.join(ROOT_FILE), root.as_os_str().as_encoded_bytes());
        let rootfs = bundle.join("rootfs");
        let mounted = mount_rootfs(&req.rootfs, &rootfs).map_err(|e| rpc_err(Code::INTERNAL, e))?;
        let io = Stdio { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        let store = Store::new(&root);
        let id = req.id.clone();
        let made = spawn_in_helper(&io, |console_socket| {
            let opts = CreateOptions { bundle: bundle.clone(), console_socket, ..Default::default() };
            ctr::create(&store, &id, &opts).map(|st| st.pid)
        });
        let (pid, pty) = match made {
            Ok(p) => p,
            Err(e) => {
                if mounted {
                    unmount_rootfs(&rootfs);
                }
                return Err(e);
            }
        };
        let init = Proc { io: io.clone(), held: true, ..Default::default() };
        s.table().containers.insert(
            id.clone(),
            Container {
                kill_all_on_exit: !own_pid_namespace(&bundle.join("config.json")),
                bundle: bundle.clone(),
                root,
                rootfs_mounted: mounted,
                init,
                execs: HashMap::new(),
            },
        );
        s.register(&id, "", pid, pty)?;
        s.publish(TaskCreate {
            container_id: id,
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO {
                stdin: io.stdin,
                stdout: io.stdout,
                stderr: io.stderr,
                terminal: io.terminal,
                ..Default::default()
            })
            .into(),
            pid: pid as u32,
            ..Default::default()
        });
        s.release(&req.id, "");
        Ok(api::CreateTaskResponse { pid: pid as u32, ..Default::default() })
    }

    fn start(&self, _ctx: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        let s = &self.inner;
        let store = s.store(&req.id)?;
        if req.exec_id.is_empty() {
            s.hold(&req.id, "")?;
            let started = ctr::start(&store, &req.id).map_err(strata_err);
            let pid = s.table().container(&req.id)?.init.pid;
            if started.is_ok() {
                s.publish(TaskStart { container_id: req.id.clone(), pid: pid as u32, ..Default::default() });
            }
            s.release(&req.id, "");
            started?;
            // The container runs: from here the shim mostly waits.
            crate::trim::release_code_pages();
            return Ok(api::StartResponse { pid: pid as u32, ..Default::default() });
        }
        let (io, spec, bundle) = {
            let t = s.table();
            let p = t.proc(&req.id, &req.exec_id)?;
            let spec = p.spec.clone().ok_or_else(|| rpc_err(Code::FAILED_PRECONDITION, "exec already started"))?;
            (p.io.clone(), spec, t.container(&req.id)?.bundle.clone())
        };
        let pid_file = bundle.join(format!("{}.pid", req.exec_id));
        let made = spawn_in_helper(&io, |console_socket| {
            let opts = ExecOptions {
                process: ExecProcessArgs { process_file: Some(spec.clone()), tty: io.terminal, ..Default::default() },
                detach: true,
                pid_file: Some(pid_file.clone()),
                console_socket,
                ..Default::default()
            };
            ctr::exec(&store, &req.id, &opts)?;
            let pid = std::fs::read_to_string(&pid_file).map_err(|e| strata::Error::os("read exec pid file", e))?;
            pid.trim().parse().map_err(|_| strata::Error::Init(format!("bad exec pid {pid:?}")))
        });
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&spec);
        let (pid, pty) = made?;
        s.table().proc_mut(&req.id, &req.exec_id)?.spec = None;
        s.register(&req.id, &req.exec_id, pid, pty)?;
        s.publish(TaskExecStarted {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            pid: pid as u32,
            ..Default::default()
        });
        s.release(&req.id, &req.exec_id);
        Ok(api::StartResponse { pid: pid as u32, ..Default::default() })
    }

    fn delete(&self, _ctx: &TtrpcContext, req: api::DeleteRequest) -> TtrpcResult<api::DeleteResponse> {
        let s = &self.inner;
        if !req.exec_id.is_empty() {
            let mut t = s.table();
            let p = t.proc(&req.id, &req.exec_id)?;
            if p.exit.is_none() && p.spec.is_none() {
                return Err(rpc_err(Code::FAILED_PRECONDITION, format!("exec {} is still running", req.exec_id)));
            }
            let p = t.containers.get_mut(&req.id).and_then(|c| c.execs.remove(&req.exec_id)).expect("checked");
            if let Some(spec) = &p.spec {
                let _ = std::fs::remove_file(spec);
            }
            let (code, at) = p.exit.unwrap_or((0, now()));
            return Ok(api::DeleteResponse { pid: p.pid as u32, exit_status: code, exited_at: Some(at).into(), ..Default::default() });
        }
        let store = s.store(&req.id)?;
        match ctr::delete(&store, &req.id, false) {
            Ok(()) | Err(strata::Error::NotFound(_)) => {}
            Err(e) => return Err(strata_err(e)),
        }
        // The init is dead now; its exit comes from the reaper.
        let exit = s.wait_exit(&req.id, "", Some(Duration::from_secs(5)))?;
        let (code, at) = exit.unwrap_or((128 + libc::SIGKILL as u32, now()));
        let c = s.table().containers.remove(&req.id).expect("checked");
        if c.rootfs_mounted {
            unmount_rootfs(&c.bundle.join("rootfs"));
        }
        s.publish(TaskDelete {
            container_id: req.id.clone(),
            pid: c.init.pid as u32,
            exit_status: code,
            exited_at: Some(at.clone()).into(),
            id: req.id.clone(),
            ..Default::default()
        });
        Ok(api::DeleteResponse { pid: c.init.pid as u32, exit_status: code, exited_at: Some(at).into(), ..Default::default() })
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let s = &self.inner;
        ctr::id::validate(&req.exec_id).map_err(|e| rpc_err(Code::INVALID_ARGUMENT, format!("exec id: {e}")))?;
        let mut t = s.table();
        let c = t.containers.get_mut(&req.id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {} not found", req.id)))?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(rpc_err(Code::ALREADY_EXISTS, format!("exec {} exists", req.exec_id)));
        }
        let spec = c.bundle.join(format!("{}.process.json", req.exec_id));
        let json = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        std::fs::write(&spec, json).map_err(|e| rpc_err(Code::INTERNAL, format!("write {}: {e}", spec.display())))?;
        let io = Stdio { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        c.execs.insert(req.exec_id.clone(), Proc { io, spec: Some(spec), held: true, ..Default::default() });
        drop(t);
        s.publish(TaskExecAdded { container_id: req.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() });
        Ok(api::Empty::new())
    }

    fn state(&self, _ctx: &TtrpcContext, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        let s = &self.inner;
        let (pid, exit, io, bundle, root, started) = {
            let t = s.table();
            let c = t.container(&req.id)?;
            let p = t.proc(&req.id, &req.exec_id)?;
            (p.pid, p.exit.clone(), p.io.clone(), c.bundle.clone(), c.root.clone(), p.spec.is_none())
        };
        let status = match (&exit, req.exec_id.is_empty(), started) {
            (Some(_), _, _) => api::Status::STOPPED,
            (None, false, true) => api::Status::RUNNING,
            (None, false, false) => api::Status::CREATED,
            (None, true, _) => match ctr::load(&Store::new(root), &req.id) {
                Ok((_, _, Status::Created | Status::Creating)) => api::Status::CREATED,
                Ok((_, _, Status::Running)) => api::Status::RUNNING,
                Ok((_, _, Status::Paused)) => api::Status::PAUSED,
                Ok((_, _, Status::Stopped)) | Err(_) => api::Status::STOPPED,
            },
        };
        let (code, at) = exit.map(|(c, t)| (c, Some(t))).unwrap_or((0, None));
        Ok(api::StateResponse {
            id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            bundle: bundle.to_string_lossy().into_owned(),
            pid: pid as u32,
            status: status.into(),
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            terminal: io.terminal,
            exit_status: code,
            exited_at: at.into(),
            ..Default::default()
        })
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let pids = ctr::pids(&self.inner.store(&req.id)?, &req.id).map_err(strata_err)?;
        let processes = pids.into_iter().map(|p| ProcessInfo { pid: p as u32, ..Default::default() }).collect();
        Ok(api::PidsResponse { processes, ..Default::default() })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        ctr::pause(&self.inner.store(&req.id)?, &req.id).map_err(strata_err)?;
        self.inner.publish(TaskPaused { container_id: req.id.clone(), ..Default::default() });
        Ok(api::Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        ctr::resume(&self.inner.store(&req.id)?, &req.id).map_err(strata_err)?;
        self.inner.publish(TaskResumed { container_id: req.id.clone(), ..Default::default() });
        Ok(api::Empty::new())
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> TtrpcResult<api::Empty> {
        Err(rpc_err(Code::UNIMPLEMENTED, "checkpoint is not supported by strata's shim (strata has no CRIU integration)"))
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let s = &self.inner;
        let (pid, exited, root) = {
            let t = s.table();
            let p = t.proc(&req.id, &req.exec_id)?;
            (p.pid, p.exit.is_some(), t.container(&req.id)?.root.clone())
        };
        if exited && !req.all {
            return Err(rpc_err(Code::NOT_FOUND, "process already finished"));
        }
        if req.exec_id.is_empty() {
            return match ctr::kill(&Store::new(root), &req.id, req.signal as i32, req.all) {
                Ok(()) => Ok(api::Empty::new()),
                Err(strata::Error::NotRunning { .. }) => Err(rpc_err(Code::NOT_FOUND, "process already finished")),
                Err(e) => Err(strata_err(e)),
            };
        }
        if pid <= 0 {
            return Err(rpc_err(Code::FAILED_PRECONDITION, format!("exec {} is not started", req.exec_id)));
        }
        // The pid can't be reused: the process is our child until the reaper records its exit.
        // SAFETY: plain kill(2).
        if unsafe { libc::kill(pid, req.signal as i32) } < 0 {
            return Err(rpc_err(Code::NOT_FOUND, format!("signal exec {}: {}", req.exec_id, std::io::Error::last_os_error())));
        }
        Ok(api::Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        if let Some(pty) = &self.inner.table().proc(&req.id, &req.exec_id)?.pty {
            pty.resize(req.width, req.height);
        }
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        // Without a terminal the process reads the stdin fifo itself and sees the
        // client's close as end-of-file.
        if let Some(pty) = &self.inner.table().proc(&req.id, &req.exec_id)?.pty {
            if req.stdin {
                pty.close_stdin();
            }
        }
        Ok(api::Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let json = req.resources.as_ref().map(|a| a.value.as_slice()).unwrap_or_default();
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(json)
            .map_err(|e| rpc_err(Code::INVALID_ARGUMENT, format!("resources: {e}")))?;
        ctr::update(&self.inner.store(&req.id)?, &req.id, &resources).map_err(strata_err)?;
        Ok(api::Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let (code, at) = self.inner.wait_exit(&req.id, &req.exec_id, None)?.expect("no limit");
        Ok(api::WaitResponse { exit_status: code, exited_at: Some(at).into(), ..Default::default() })
    }

    fn stats(&self, _ctx: &TtrpcContext, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        let stats = ctr::events::stats_once(&self.inner.store(&req.id)?, &req.id).map_err(strata_err)?;
        // The type URL by hand, as in `publish`: no descriptor is built (kubelets poll this).
        let any = Any {
            type_url: "io.containerd.cgroups.v1.Metrics".into(),
            value: crate::metrics::from_stats(&stats).write_to_bytes().map_err(|e| rpc_err(Code::INTERNAL, e))?,
            ..Default::default()
        };
        Ok(api::StatsResponse { stats: Some(any).into(), ..Default::default() })
    }

    fn connect(&self, _ctx: &TtrpcContext, req: api::ConnectRequest) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.inner.table().containers.get(&req.id).map(|c| c.init.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: task_pid as u32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    /// The shim of a pod stays while any of its containers does.
    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self.inner.table().containers.is_empty() {
            self.inner.exit.signal();
        }
        Ok(api::Empty::new())
    }
}
