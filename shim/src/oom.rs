//! TaskOOM: the kernel's OOM killer striking in a container's cgroup, published as
//! containerd's `/tasks/oom`, as containerd-shim-runc-v2 does (its pkg/oom watchers).
//! The CRI plugin turns that event into the "OOMKilled" reason of ContainerStatus.
//!
//! One epoll, one thread per shim, whatever the number of containers:
//! - cgroup v1: an eventfd registered on `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it at each OOM in the cgroup, and once
//!   more when the cgroup is removed (told apart by the cgroup being gone).
//! - cgroup v2: inotify on `memory.events`; an event is published when its `oom_kill`
//!   count grows (the file changes for other reasons too: `high`, `max`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use strata::cgroups::{self, Cgroup};

/// Every container's OOM notifier, and the epoll that waits on them all.
pub struct Watcher {
    epoll: Epoll,
    watches: Mutex<HashMap<u64, Watch>>,
    next: std::sync::atomic::AtomicU64,
}

struct Watch {
    container_id: String,
    /// The cgroup's memory directory.
    dir: PathBuf,
    kind: Kind,
}

enum Kind {
    /// The eventfd, and memory.oom_control, which must stay open while registered.
    V1 { efd: EventFd, _oom_control: File },
    /// The inotify instance watching memory.events, and the oom_kill count seen last.
    V2 { inotify: Inotify, seen: u64 },
}

impl Watch {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { efd, .. } => efd.as_fd(),
            Kind::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

impl Watcher {
    pub fn new() -> std::io::Result<Watcher> {
        Ok(Watcher {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            watches: Mutex::new(HashMap::new()),
            next: Default::default(),
        })
    }

    /// Starts watching the memory cgroup of a container (none: nothing to watch).
    pub fn add(&self, container_id: &str, cgroup: &Cgroup) -> Result<(), String> {
        let Some((memory, _)) = cgroup.find_controller("memory") else { return Ok(()) };
        let dir = memory.dir;
        let kind = if memory.v2 {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(|e| e.to_string())?;
            let events = dir.join("memory.events");
            inotify
                .add_watch(&events, AddWatchFlags::IN_MODIFY)
                .map_err(|e| format!("watch {}: {e}", events.display()))?;
            Kind::V2 { inotify, seen: oom_kills(&dir) }
        } else {
            let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|e| e.to_string())?;
            let path = dir.join("memory.oom_control");
            let oom_control = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
            let line = format!("{} {}", efd.as_fd().as_raw_fd(), oom_control.as_raw_fd());
            let control = dir.join("cgroup.event_control");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&control)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(|e| format!("write {}: {e}", control.display()))?;
            Kind::V1 { efd, _oom_control: oom_control }
        };
        let watch = Watch { container_id: container_id.to_string(), dir, kind };
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        self.epoll.add(watch.fd(), EpollEvent::new(EpollFlags::EPOLLIN, token)).map_err(|e| e.to_string())?;
        watches.insert(token, watch);
        Ok(())
    }

    /// Stops watching a container (deleted): its cgroup may live on for a while.
    pub fn remove(&self, container_id: &str) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.retain(|_, w| {
            let keep = w.container_id != container_id;
            if !keep {
                let _ = self.epoll.delete(w.fd());
            }
            keep
        });
    }

    /// Blocks until notifiers fire; returns the containers that had an OOM kill.
    pub fn wait(&self) -> Vec<String> {
        let mut events = [EpollEvent::empty(); 16];
        let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(_) => return Vec::new(),
        };
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let mut ooms = Vec::new();
        for ev in &events[..n] {
            let token = ev.data();
            let Some(w) = watches.get_mut(&token) else { continue };
            let gone = !w.dir.exists();
            let oom = match &mut w.kind {
                Kind::V1 { efd, .. } => efd.read().is_ok() && !gone,
                Kind::V2 { inotify, seen } => {
                    let _ = inotify.read_events();
                    let now = oom_kills(&w.dir);
                    std::mem::replace(seen, now) < now
                }
            };
            if oom {
                ooms.push(w.container_id.clone());
            }
            if gone {
                let w = watches.remove(&token).expect("present");
                let _ = self.epoll.delete(w.fd());
            }
        }
        ooms
    }
}

/// v2's count of OOM kills in the cgroup.
fn oom_kills(dir: &std::path::Path) -> u64 {
    cgroups::fs::keyed(dir, "memory.events", "oom_kill").unwrap_or(0)
}
