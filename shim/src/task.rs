//! The shim task API (containerd.task.v2.Task): each call is strata's library call,
//! except create and exec, which run in a forked helper ([`crate::helper`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::api;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskIO, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::{TtrpcContext, TtrpcResult};
use log::warn;
use strata::container::{self as ctr, CreateOptions, ExecOptions, ExecProcessArgs, Status, Store};

use crate::binlog::BinaryLog;
use crate::helper;
use crate::service::{
    mount_rootfs, now, own_pid_namespace, rpc_err, store_root, strata_err, unmount_rootfs, ROOT_FILE,
};
use crate::stdio::{ConsoleSocket, Pty, Stdio};
use crate::table::{Container, Proc, Service};

/// Runs create or exec in the helper with the process's stdio, and receives its pty.
fn spawn_in_helper(
    io: &Stdio,
    log: Option<&BinaryLog>,
    run: impl FnOnce(Option<PathBuf>) -> strata::Result<i32>,
) -> TtrpcResult<(i32, Option<Arc<Pty>>)> {
    let console = if io.terminal { Some(ConsoleSocket::new().map_err(|e| rpc_err(Code::INTERNAL, e))?) } else { None };
    let path = console.as_ref().map(|c| c.path.clone());
    let pid = helper::run(io, log, || run(path).map_err(|e| e.to_string())).map_err(|e| rpc_err(Code::UNKNOWN, e))?;
    let pty = match console {
        Some(c) => Some(c.receive().and_then(|m| Pty::start(m, io, log)).map_err(|e| rpc_err(Code::INTERNAL, e))?),
        None => None,
    };
    Ok((pid, pty))
}

/// The logging binary of a process whose stdout is a `binary://` URI (`id`: the
/// container's or the exec's, as the runc shim names it to the logger).
fn start_logger(io: &Stdio, id: &str, namespace: &str) -> TtrpcResult<Option<BinaryLog>> {
    if !io.stdout.starts_with("binary://") {
        return Ok(None);
    }
    BinaryLog::start(&io.stdout, id, namespace).map(Some).map_err(|e| rpc_err(Code::INTERNAL, e))
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
        let io = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let store = Store::new(&root);
        let id = req.id.clone();
        let keep = io.keep_open();
        let made = start_logger(&io, &id, &s.namespace).and_then(|log| {
            let made = spawn_in_helper(&io, log.as_ref(), |console_socket| {
                let opts = CreateOptions { bundle: bundle.clone(), console_socket, ..Default::default() };
                ctr::create(&store, &id, &opts).map(|st| st.pid)
            });
            match made {
                Ok(made) => Ok((made, log)),
                Err(e) => {
                    if let Some(log) = log {
                        s.stop_logger(log);
                    }
                    Err(e)
                }
            }
        });
        let ((pid, pty), log) = match made {
            Ok(p) => p,
            Err(e) => {
                if mounted {
                    unmount_rootfs(&rootfs);
                }
                return Err(e);
            }
        };
        // OOM kills are watched from here, before the process runs (the runc shim's
        // watch begins after Start: a container that outgrows its limit at once is
        // killed before it, and its OOM goes unreported).
        match ctr::load(&store, &id) {
            Ok((_, state, _)) => {
                if let Err(e) = s.oom.add(&id, &state.cgroup) {
                    warn!("{id}: watch OOM kills: {e}");
                }
            }
            Err(e) => warn!("{id}: watch OOM kills: {e}"),
        }
        let init = Proc { io: io.clone(), held: true, keep, log, ..Default::default() };
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
        s.table().proc_mut(&req.id, &req.exec_id)?.keep = io.keep_open();
        let log = start_logger(&io, &req.exec_id, &s.namespace)?;
        let made = spawn_in_helper(&io, log.as_ref(), |console_socket| {
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
        let (pid, pty) = match made {
            Ok(made) => made,
            Err(e) => {
                if let Some(log) = log {
                    s.stop_logger(log);
                }
                return Err(e);
            }
        };
        {
            let mut t = s.table();
            let p = t.proc_mut(&req.id, &req.exec_id)?;
            p.spec = None;
            p.log = log;
        }
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
            let mut p = t.containers.get_mut(&req.id).and_then(|c| c.execs.remove(&req.exec_id)).expect("checked");
            drop(t);
            if let Some(spec) = &p.spec {
                let _ = std::fs::remove_file(spec);
            }
            if let Some(log) = p.log.take() {
                s.stop_logger(log);
            }
            let (code, at) = p.exit.unwrap_or((0, now()));
            return Ok(api::DeleteResponse {
                pid: p.pid as u32,
                exit_status: code,
                exited_at: Some(at).into(),
                ..Default::default()
            });
        }
        let store = s.store(&req.id)?;
        match ctr::delete(&store, &req.id, false) {
            Ok(()) | Err(strata::Error::NotFound(_)) => {}
            Err(e) => return Err(strata_err(e)),
        }
        // The init is dead now; its exit comes from the reaper.
        let exit = s.wait_exit(&req.id, "", Some(Duration::from_secs(5)))?;
        let (code, at) = exit.unwrap_or((128 + libc::SIGKILL as u32, now()));
        s.oom.remove(&req.id);
        let mut c = s.table().containers.remove(&req.id).expect("checked");
        if let Some(log) = c.init.log.take() {
            s.stop_logger(log);
        }
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
        Ok(api::DeleteResponse {
            pid: c.init.pid as u32,
            exit_status: code,
            exited_at: Some(at).into(),
            ..Default::default()
        })
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let s = &self.inner;
        ctr::id::validate(&req.exec_id).map_err(|e| rpc_err(Code::INVALID_ARGUMENT, format!("exec id: {e}")))?;
        let mut t = s.table();
        let c = t
            .containers
            .get_mut(&req.id)
            .ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {} not found", req.id)))?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(rpc_err(Code::ALREADY_EXISTS, format!("exec {} exists", req.exec_id)));
        }
        let spec = c.bundle.join(format!("{}.process.json", req.exec_id));
        let json = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        std::fs::write(&spec, json).map_err(|e| rpc_err(Code::INTERNAL, format!("write {}: {e}", spec.display())))?;
        let io = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
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
        Err(rpc_err(
            Code::UNIMPLEMENTED,
            "checkpoint is not supported by strata's shim (strata has no CRIU integration)",
        ))
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
            return Err(rpc_err(
                Code::NOT_FOUND,
                format!("signal exec {}: {}", req.exec_id, std::io::Error::last_os_error()),
            ));
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
        let resources: oci_spec::runtime::LinuxResources =
            serde_json::from_slice(json).map_err(|e| rpc_err(Code::INVALID_ARGUMENT, format!("resources: {e}")))?;
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
