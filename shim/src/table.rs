//! What a shim knows of its containers and processes, and their exits: the reaper
//! (containerd-shim's, the shim being a child subreaper) reports each exit to
//! [`Inner::on_exit`], which records it, wakes Wait, and publishes TaskExit through
//! containerd's events service.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageFull;
use containerd_shim::protos::shim::events::{Envelope, ForwardRequest};
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::protos::EventsClient;
use containerd_shim::{ExitSignal, TtrpcResult};
use log::{info, warn};
use strata::container::{self as ctr, Store};

use crate::binlog::BinaryLog;
use crate::service::{now, rpc_err};
use crate::stdio::{Pty, Stdio};

#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) namespace: String,
    pub(crate) exit: Arc<ExitSignal>,
    /// containerd's events service. Not the crate's RemotePublisher: that names each
    /// event's type through its protobuf descriptor, which builds the descriptors of
    /// the whole events API on the heap (~0.4 MiB a shim keeps for its life).
    pub(crate) events: EventsClient,
    pub(crate) table: Mutex<Table>,
    /// Signalled whenever a process's exit is recorded.
    pub(crate) exited: Condvar,
    /// The containers' memory cgroups, for TaskOOM.
    pub(crate) oom: crate::oom::Watcher,
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) containers: HashMap<String, Container>,
    /// Exits of pids no process claimed yet: a process can exit before create/exec
    /// has handed its pid back (and the helpers' own exits land here too).
    pub(crate) unclaimed: HashMap<i32, i32>,
}

pub(crate) struct Container {
    pub(crate) bundle: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) rootfs_mounted: bool,
    /// No pid namespace of its own (it joined the pod's or the host's): when the init
    /// exits, the kernel doesn't end the rest, so the shim kills what is left in the
    /// container's cgroup, as the runc shim does.
    pub(crate) kill_all_on_exit: bool,
    pub(crate) init: Proc,
    pub(crate) execs: HashMap<String, Proc>,
}

#[derive(Default)]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    pub(crate) exit: Option<(u32, Timestamp)>,
    pub(crate) io: Stdio,
    pub(crate) pty: Option<Arc<Pty>>,
    /// The output fifos, held open by the shim until the process has exited: what the
    /// process wrote stays in the fifo even when the client's reader (opened
    /// asynchronously by ctr) was not open yet when the process ended.
    pub(crate) keep: Vec<std::fs::File>,
    /// The logging binary of a `binary://` log, until the process is deleted.
    pub(crate) log: Option<BinaryLog>,
    /// An exec's process.json, until it starts.
    pub(crate) spec: Option<PathBuf>,
    /// While Create/Start/exec start runs: an exit is recorded but its TaskExit waits
    /// until the start event is out (containerd expects start before exit).
    pub(crate) held: bool,
    pub(crate) held_exit: bool,
}

impl Table {
    pub(crate) fn container(&self, id: &str) -> TtrpcResult<&Container> {
        self.containers.get(id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))
    }

    pub(crate) fn proc(&self, id: &str, exec_id: &str) -> TtrpcResult<&Proc> {
        let c = self.container(id)?;
        if exec_id.is_empty() {
            return Ok(&c.init);
        }
        c.execs.get(exec_id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("exec {exec_id} of {id} not found")))
    }

    pub(crate) fn proc_mut(&mut self, id: &str, exec_id: &str) -> TtrpcResult<&mut Proc> {
        let c =
            self.containers.get_mut(id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("container {id} not found")))?;
        if exec_id.is_empty() {
            return Ok(&mut c.init);
        }
        c.execs.get_mut(exec_id).ok_or_else(|| rpc_err(Code::NOT_FOUND, format!("exec {exec_id} of {id} not found")))
    }

    /// Records `pid` for a process; returns its exit code if it already exited.
    pub(crate) fn claim(&mut self, pid: i32) -> Option<i32> {
        self.unclaimed.remove(&pid)
    }
}

impl Inner {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forwards an event to containerd; its type URL is the message's protobuf name.
    pub(crate) fn publish<E: Event + MessageFull>(&self, event: E) {
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

    pub(crate) fn on_exit(&self, pid: i32, code: i32) {
        let mut t = self.table();
        let mut hit = None;
        let mut found_held = false;
        'find: for (cid, c) in t.containers.iter_mut() {
            let procs =
                std::iter::once((cid.clone(), &mut c.init)).chain(c.execs.iter_mut().map(|(e, p)| (e.clone(), p)));
            for (id, p) in procs {
                if p.pid == pid && p.exit.is_none() {
                    p.exit = Some((code as u32, now()));
                    if let Some(pty) = &p.pty {
                        pty.stop();
                    }
                    p.keep.clear();
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

    pub(crate) fn exit_event(&self, container_id: String, id: String, pid: i32, code: u32) {
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
    pub(crate) fn register(&self, id: &str, exec_id: &str, pid: i32, pty: Option<Arc<Pty>>) -> TtrpcResult<()> {
        let mut t = self.table();
        let early = t.claim(pid);
        let p = t.proc_mut(id, exec_id)?;
        p.pid = pid;
        p.pty = pty;
        if let Some(code) = early {
            p.keep.clear();
            p.exit = Some((code as u32, now()));
            p.held_exit = true;
            drop(t);
            self.exited.notify_all();
        }
        Ok(())
    }

    /// Holds a process's exit event until [`Inner::release`].
    pub(crate) fn hold(&self, id: &str, exec_id: &str) -> TtrpcResult<()> {
        self.table().proc_mut(id, exec_id)?.held = true;
        Ok(())
    }

    /// Its start event is out: publish the exit that came meanwhile, if any.
    pub(crate) fn release(&self, id: &str, exec_id: &str) {
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

    /// Ends a process's logging binary as the runc shim does: its pipes close, then
    /// SIGTERM, and SIGKILL if it has not exited 12 s later.
    pub(crate) fn stop_logger(&self, log: BinaryLog) {
        let BinaryLog { pid, .. } = log;
        drop(log);
        let end = std::time::Instant::now() + Duration::from_secs(12);
        let mut t = self.table();
        let mut signal = libc::SIGTERM;
        loop {
            // Its exit lands among the unclaimed ones; until then the pid is still ours.
            if t.unclaimed.remove(&pid).is_some() {
                return;
            }
            if signal != 0 {
                // SAFETY: plain kill(2) of our unreaped child.
                unsafe { libc::kill(pid, signal) };
                signal = 0;
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                warn!("logging binary {pid} ignored SIGTERM for 12 s: killing it");
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            t = self.exited.wait_timeout(t, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    pub(crate) fn store(&self, id: &str) -> TtrpcResult<Store> {
        Ok(Store::new(&self.table().container(id)?.root))
    }

    /// Waits (up to `limit`) until the process's exit is recorded.
    pub(crate) fn wait_exit(
        &self,
        id: &str,
        exec_id: &str,
        limit: Option<Duration>,
    ) -> TtrpcResult<Option<(u32, Timestamp)>> {
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
