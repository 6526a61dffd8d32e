//! Cgroups on v1, v2 and hybrid hosts behind one interface.
//!
//! [`layout`] finds the hierarchies this host mounts. A container's cgroup is one
//! directory per hierarchy ([`Cgroup`]); it is made when the container is created,
//! the init is placed in it before it runs any container code, and it is removed on
//! delete, only where strata made it.
//!
//! Path rules (runc's): an absolute `linux.cgroupsPath` is taken from each hierarchy's
//! root; a relative one from the runtime's own cgroup; an absent one means
//! `strata/<id>` relative to it.
//!
//! Module map: [`resources`] writes `linux.resources` (one file per controller, each
//! knowing its v1 and v2 files), [`bpf`] is the v2 device filter, [`freezer`] pauses,
//! [`stats`] reads usage for `events`, [`v2`] enables controllers down a v2 tree, [`fs`]
//! reads and writes interface files with errors that name the config field,
//! [`rootless`] judges what a caller without cgroup rights can have,
//! [`systemd`] is the systemd driver (`--systemd-cgroup`): systemd makes and removes the
//! cgroup (a transient scope), the rest of this module works on it as on any other.
//!
//! On a hybrid host a controller is used where it is mounted: v1 first, else the
//! cgroup2 mount (here only hugetlb lives there, and strata enables it only in
//! directories it created: a host whose root doesn't delegate it gets an error).

pub mod bpf;
pub mod freezer;
pub mod fs;
pub mod layout;
pub mod resources;
pub mod rootless;
pub mod stats;
pub mod systemd;
pub mod v2;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
pub use fs::ControllerDir;
pub use layout::{Hierarchy, Layout, Version};

/// A container's cgroup: its directory in every hierarchy, and which of those
/// directories strata created (and so may remove).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cgroup {
    /// (hierarchy mountpoint, cgroup path inside it, e.g. "/strata/abc")
    pub dirs: Vec<CgroupDir>,
    /// Directories strata made, parents before children.
    pub created: Vec<PathBuf>,
    /// The default path's `strata/` parent is shared by every container that uses it:
    /// the last one out removes it, whoever made it.
    #[serde(default)]
    pub shared_parent: bool,
    /// The systemd unit that owns the cgroup (the systemd driver), else None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
    /// Rootless: the hierarchies where the caller could not make the container's cgroup
    /// ([`Cgroup::create_permitted`]). The container stays in the runtime's own cgroup
    /// there (`path` is it); nothing is written to or removed from these, they are
    /// only what a `cgroup` mount shows the container, as runc binds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<CgroupDir>,
    /// systemd driver: what `add_pid` starts the unit with (not saved).
    #[serde(skip)]
    pending: Option<Box<systemd::Pending>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CgroupDir {
    pub mountpoint: PathBuf,
    /// Controllers of the hierarchy ("cpu", "name=systemd"; empty for cgroup2).
    pub controllers: Vec<String>,
    pub version: Version,
    /// The cgroup's path as /proc/PID/cgroup shows it.
    pub path: PathBuf,
    /// The runtime's own cgroup in this hierarchy at creation time (for safety guards).
    pub runtime_path: PathBuf,
}

impl CgroupDir {
    pub fn full(&self) -> PathBuf {
        self.mountpoint.join(self.path.strip_prefix("/").unwrap_or(&self.path))
    }

    /// True when this directory is the hierarchy's root or the cgroup the runtime itself
    /// runs in: such a cgroup belongs to the host, never to a container.
    pub fn is_host_owned(&self) -> bool {
        self.path == Path::new("/") || self.path == self.runtime_path
    }
}

/// Resolves `cgroups_path` (None: the default) for container `id` on this host.
pub fn resolve(layout: &Layout, cgroups_path: Option<&Path>, id: &str) -> Result<Cgroup> {
    let default = PathBuf::from("strata").join(id);
    let wanted = cgroups_path.unwrap_or(&default);
    if wanted.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::field("linux.cgroupsPath", format!("{} must not contain \"..\"", wanted.display())));
    }
    if wanted.to_str().is_some_and(|s| s.contains(':')) {
        return Err(Error::field(
            "linux.cgroupsPath",
            "\"slice:prefix:name\" is a systemd cgroup path: it needs --systemd-cgroup",
        ));
    }
    let dirs = layout
        .hierarchies
        .iter()
        .map(|h| {
            let path = if wanted.is_absolute() { wanted.to_path_buf() } else { h.own_cgroup.join(wanted) };
            CgroupDir {
                mountpoint: h.mountpoint.clone(),
                controllers: h.controllers.clone(),
                version: h.version,
                path,
                runtime_path: h.own_cgroup.clone(),
            }
        })
        .collect();
    Ok(Cgroup { dirs, created: Vec::new(), shared_parent: cgroups_path.is_none(), ..Cgroup::default() })
}

/// Selects the driver: with `systemd`, `linux.cgroupsPath` is runc's "slice:prefix:name"
/// and the cgroup is the unit's, in every hierarchy; else [`resolve`]'s cgroupfs paths.
pub fn resolve_for(layout: &Layout, cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Cgroup> {
    if !systemd {
        return resolve(layout, cgroups_path, id);
    }
    let unit = systemd::parse(cgroups_path.and_then(Path::to_str), id)?;
    if !systemd::booted() {
        return Err(Error::Refused(
            "--systemd-cgroup: this host was not booted with systemd (no /run/systemd/system)".into(),
        ));
    }
    let dirs = layout
        .hierarchies
        .iter()
        .map(|h| CgroupDir {
            mountpoint: h.mountpoint.clone(),
            controllers: h.controllers.clone(),
            version: h.version,
            path: unit.path.clone(),
            runtime_path: h.own_cgroup.clone(),
        })
        .collect();
    Ok(Cgroup { dirs, systemd: Some(unit), ..Cgroup::default() })
}

impl Cgroup {
    /// Makes every missing directory, recording what it made so `remove` undoes only that.
    /// A frozen cgroup (its own freezer, or a frozen parent's) is refused, as runc refuses
    /// it: the init would hang inside, holding the caller's output. An existing cgroup
    /// that already has processes gets runc's warning.
    pub fn create(&mut self) -> Result<()> {
        self.create_dirs(false).map(|_| ())
    }

    /// A rootless caller's [`create`](Self::create): a hierarchy where the caller may not
    /// make its cgroup (v1, or v2 without delegation) is dropped from this cgroup, as
    /// runc's rootless cgroup manager drops it, and the refusals are returned for the
    /// caller to judge (a limit that needed one is an error, see [`rootless`]).
    pub fn create_permitted(&mut self) -> Result<Vec<Error>> {
        self.create_dirs(true)
    }

    fn create_dirs(&mut self, drop_denied: bool) -> Result<Vec<Error>> {
        let existed = self.primary().is_some_and(|d| d.full().is_dir());
        let mut denied = Vec::new();
        for dir in self.dirs.clone() {
            match self.create_with_retries(&dir) {
                Ok(()) => {}
                Err(e) if drop_denied && rootless::is_denial(&e) => {
                    self.dirs.retain(|d| d.mountpoint != dir.mountpoint);
                    self.left_out.push(CgroupDir { path: dir.runtime_path.clone(), ..dir });
                    denied.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        if self.freezer_state_frozen() {
            let path = self.primary().map(|d| d.full()).unwrap_or_default();
            return Err(Error::Refused(format!("container's cgroup unexpectedly frozen ({})", path.display())));
        }
        if existed {
            let n = self.pids().map(|p| p.len()).unwrap_or(0);
            if n > 0 {
                crate::logging::warn(&format!("container's cgroup is not empty: {n} process(es) found"));
            }
        }
        Ok(denied)
    }

    /// A shared parent removed by another container's delete between our check and
    /// our mkdir shows up as ENOENT: start over for this hierarchy.
    fn create_with_retries(&mut self, dir: &CgroupDir) -> Result<()> {
        let mut tries = 0;
        while !self.create_dir(dir)? {
            tries += 1;
            if tries == CREATE_TRIES {
                return Err(Error::os(
                    format!("create cgroup {}", dir.full().display()),
                    std::io::Error::from_raw_os_error(libc::ENOENT),
                ));
            }
        }
        Ok(())
    }

    /// True when the freezer holds the cgroup frozen or freezing, its own or through a
    /// parent's (v1 reports the effective state; v2's cgroup.events says "frozen 1").
    fn freezer_state_frozen(&self) -> bool {
        let Some(dir) = self.primary() else { return false };
        let full = dir.full();
        match dir.version {
            Version::V1 => std::fs::read_to_string(full.join("freezer.state"))
                .is_ok_and(|s| s.trim() != "THAWED" && !s.trim().is_empty()),
            Version::V2 => {
                fs::keyed(&full, "cgroup.events", "frozen") == Some(1)
                    || std::fs::read_to_string(full.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
        }
    }

    /// Makes the missing part of one hierarchy's path; false when a parent vanished
    /// (a shared parent removed by another container's delete: the caller starts over).
    fn create_dir(&mut self, dir: &CgroupDir) -> Result<bool> {
        let full = dir.full();
        // The common case, the parent already there, takes one mkdir; only ENOENT (a
        // parent missing) walks up to find what else to make.
        match std::fs::create_dir(&full) {
            Ok(()) => {
                self.created.push(full.clone());
                return self.init_cpuset_if_any(dir, &full);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return self.init_cpuset_if_any(dir, &full),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::os(format!("create cgroup {}", full.display()), e)),
        }
        let mut missing = Vec::new();
        let mut p = full.as_path();
        while !p.exists() && p != dir.mountpoint {
            missing.push(p.to_path_buf());
            p = p.parent().unwrap_or(&dir.mountpoint);
        }
        for m in missing.into_iter().rev() {
            match std::fs::create_dir(&m) {
                Ok(()) if m != full => {
                    self.created.push(m.clone());
                    // The window a sibling's delete may remove this new, still empty
                    // parent in (integration/tests/cgroup_fidelity.rs stops here, on the
                    // first try only: the retry must run through).
                    static FIRST_TRY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
                    if dir.controllers.iter().any(|c| c == "cpuset")
                        && FIRST_TRY.swap(false, std::sync::atomic::Ordering::Relaxed)
                    {
                        crate::container::checkpoint("cgroup:cpuset-parent-made");
                    }
                }
                Ok(()) => self.created.push(m.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(Error::os(format!("create cgroup {}", m.display()), e)),
            }
        }
        self.init_cpuset_if_any(dir, &full)
    }

    /// A v1 cpuset cgroup starts with empty cpus and mems: copy them down. False when a
    /// parent vanished meanwhile (the caller starts over).
    fn init_cpuset_if_any(&self, dir: &CgroupDir, full: &Path) -> Result<bool> {
        if dir.controllers.iter().any(|c| c == "cpuset") {
            match init_cpuset(&dir.mountpoint, full) {
                Ok(()) => {}
                Err((_, e)) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err((what, e)) => return Err(Error::os(what, e)),
            }
        }
        Ok(true)
    }

    /// Moves `pid` into the cgroup in every hierarchy. With the systemd driver this is
    /// where the unit starts (it needs the pid) and gets its limits.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        if let (Some(unit), Some(pending)) = (&self.systemd, &self.pending) {
            return systemd::start(self, unit, pending, pid);
        }
        for dir in &self.dirs {
            let procs = dir.full().join("cgroup.procs");
            std::fs::write(&procs, pid.to_string()).ctx(|| format!("write {}", procs.display()))?;
        }
        Ok(())
    }

    /// The cgroup v2 directory when the host is unified-only (for CLONE_INTO_CGROUP).
    pub fn unified_only_dir(&self) -> Option<PathBuf> {
        if self.systemd.is_some() {
            return None;
        }
        match self.dirs.as_slice() {
            [d] if d.version == Version::V2 => Some(d.full()),
            _ => None,
        }
    }

    /// Where `controller` lives for this container: its v1 hierarchy, or the v2 directory
    /// when the unified hierarchy offers it. None when the host has no such controller.
    pub fn find_controller(&self, controller: &str) -> Option<(ControllerDir, &CgroupDir)> {
        if let Some(d) =
            self.dirs.iter().find(|d| d.version == Version::V1 && d.controllers.iter().any(|c| c == controller))
        {
            return Some((ControllerDir { dir: d.full(), v2: false }, d));
        }
        self.dirs
            .iter()
            .find(|d| d.version == Version::V2 && v2::offers(&d.mountpoint, controller))
            .map(|d| (ControllerDir { dir: d.full(), v2: true }, d))
    }

    /// Like [`find_controller`](Self::find_controller), for applying `field`: a missing
    /// controller is an error naming the field, and on v2 the controller is enabled.
    pub fn controller(&self, field: &str, controller: &str) -> Result<ControllerDir> {
        let Some((cd, d)) = self.find_controller(controller) else {
            return Err(Error::field(field, format!("this host has no {controller} cgroup controller")));
        };
        if cd.v2 {
            v2::enable(field, &d.mountpoint, &cd.dir, controller, &self.created)?;
        }
        Ok(cd)
    }

    /// The cgroup v2 directory of the container, on a unified or hybrid host.
    pub fn v2_dir(&self) -> Option<&CgroupDir> {
        self.dirs.iter().find(|d| d.version == Version::V2)
    }

    /// The directory used to list processes and freeze: v1 freezer if mounted, else v2.
    pub(crate) fn primary(&self) -> Option<&CgroupDir> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == "freezer"))
            .or_else(|| self.dirs.iter().find(|d| d.version == Version::V2))
            .or_else(|| self.dirs.first())
    }

    /// Refuses operations that would reach processes outside the container.
    pub fn ensure_container_owned(&self, op: &str) -> Result<()> {
        match self.primary() {
            Some(d) if d.is_host_owned() => Err(Error::Refused(format!(
                "refusing to {op}: cgroup {} is the host's root cgroup or the runtime's own",
                d.path.display()
            ))),
            Some(_) => Ok(()),
            None => Err(Error::Refused(format!("refusing to {op}: the container has no cgroup"))),
        }
    }

    /// Every pid in the container's cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.primary() else { return Ok(Vec::new()) };
        let mut pids = Vec::new();
        collect_pids(&dir.full(), &mut pids)?;
        Ok(pids)
    }

    /// True when the freezer holds the cgroup frozen.
    pub fn is_frozen(&self) -> bool {
        let Some(dir) = self.primary() else { return false };
        let full = dir.full();
        match dir.version {
            Version::V1 => std::fs::read_to_string(full.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN"),
            Version::V2 => std::fs::read_to_string(full.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1"),
        }
    }

    /// Removes the directories strata created (and the container's leaf even when it was
    /// there before, once empty, as runc does), children first, retrying briefly while
    /// exiting tasks still hold them. The container's own cgroup goes with every cgroup
    /// below it, deepest first: a container may make its own (systemd, docker-in-docker)
    /// and cgroupfs refuses to remove a cgroup that has children (runc removes them too).
    pub fn remove(&self) -> Result<()> {
        if let Some(unit) = &self.systemd {
            return systemd::remove(self, unit);
        }
        let leaves: Vec<PathBuf> = self.dirs.iter().map(CgroupDir::full).collect();
        // Every hierarchy is tried even if one fails: a leak in one is no reason to
        // leak in the others. The first error is returned.
        let mut first_error = None;
        for dir in self.created.iter().rev() {
            if !leaves.contains(dir) {
                // A parent strata made, maybe shared by other containers by now: cgroupfs
                // answers EBUSY (v1) or ENOTEMPTY while it has children. Not ours yet.
                let _ = std::fs::remove_dir(dir);
                continue;
            }
            if let Err(e) = remove_tree(dir, Instant::now() + REMOVE_BUSY_TIMEOUT) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        // A leaf that was there before (made by another container of a pod sharing this
        // cgroupsPath, or by an engine) goes too once empty, as runc removes it: rmdir
        // of a cgroup fails while it has tasks or children, so a busy one stays.
        if self.ensure_container_owned("remove").is_ok() {
            for leaf in leaves.iter().filter(|l| !self.created.contains(l)) {
                let _ = std::fs::remove_dir(leaf);
            }
        }
        if self.shared_parent {
            for dir in &self.dirs {
                // Still in use by another container (ENOTEMPTY) or already gone: fine.
                if let Some(parent) = dir.full().parent() {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
        Ok(())
    }
}

/// How often `create` makes a hierarchy's path again when a shared parent vanished.
const CREATE_TRIES: u32 = 5;
/// How long removal waits for a cgroup that exiting tasks still hold (EBUSY).
const REMOVE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
const REMOVE_RETRY: Duration = Duration::from_millis(10);

/// Removes `dir` and every cgroup below it, deepest first, retrying on EBUSY until
/// `deadline` (tasks still exiting).
pub(crate) fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path(), deadline)?;
        }
    }
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(REMOVE_RETRY)
            }
            Err(e) => return Err(Error::os(format!("remove cgroup {}", dir.display()), e)),
        }
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::os(format!("read {}/cgroup.procs", dir.display()), e)),
    };
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus/mems and accepts no task until they are
/// set. Every level from the hierarchy's root down to `dir` that is still empty gets its
/// parent's, top down, as runc does: a parent may exist and yet be empty, made a moment
/// ago by a concurrent create that hasn't filled it yet. Filling an empty cpuset changes
/// nothing for anyone (it can hold no task). NotFound means a level vanished under us.
fn init_cpuset(mountpoint: &Path, dir: &Path) -> std::result::Result<(), (String, std::io::Error)> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else { return Ok(()) };
    let mut parent = mountpoint.to_path_buf();
    for part in rel.components() {
        let level = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = std::fs::read_to_string(level.join(file))
                .map_err(|e| (format!("read {}/{file}", level.display()), e))?;
            if own.trim().is_empty() {
                let value = std::fs::read_to_string(parent.join(file))
                    .map_err(|e| (format!("read {}/{file}", parent.display()), e))?;
                std::fs::write(level.join(file), value.trim())
                    .map_err(|e| (format!("write {}/{file}", level.display()), e))?;
            }
        }
        parent = level;
    }
    Ok(())
}
