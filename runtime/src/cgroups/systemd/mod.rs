//! The systemd cgroup driver (`--systemd-cgroup`), as runc's: the container's cgroup
//! is a transient scope `PREFIX-NAME.scope` that systemd starts over D-Bus with the
//! init's pid, `Delegate=yes`, in `Slice=`. `linux.cgroupsPath` is
//! `slice:prefix:name` (empty: `system.slice:strata:ID`); the slice `a-b.slice` lives
//! at `/a.slice/a-b.slice`. Limits go to systemd as unit properties
//! ([`properties`]) and then to cgroupfs, so the files hold what the config says even
//! for fields systemd has no property for. `delete` stops the scope.
//!
//! Nothing here runs, and no connection is made, unless the driver is asked for.

pub mod dbus;
pub mod properties;

use std::path::PathBuf;
use std::time::Instant;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use self::dbus::{CallError, Connection, Value};
use self::properties::Property;
use super::resources::{self, DeviceRule};
use super::{Cgroup, Version};
use crate::error::{Context, Error, Result};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// The scope prefix of the default path (runc's is "runc").
pub const DEFAULT_PREFIX: &str = "strata";
pub const DEFAULT_SLICE: &str = "system.slice";

/// A container's unit, as recorded in its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// "strata-ID.scope" (or a slice's name when the path's name part is one).
    pub name: String,
    /// The parent slice, as `Slice=` takes it ("system.slice").
    pub slice: String,
    /// Where the unit's cgroup is, from the hierarchy's root ("/system.slice/strata-ID.scope").
    pub path: PathBuf,
}

/// Parses runc's `slice:prefix:name` (None or "" means the default for `id`).
pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit> {
    let field = "linux.cgroupsPath";
    let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => (DEFAULT_SLICE, DEFAULT_PREFIX, id),
        Some(p) => match p.split(':').collect::<Vec<_>>().as_slice() {
            [s, p, n] => (*s, *p, *n),
            _ => {
                return Err(Error::field(
                    field,
                    format!(
                    "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead"
                ),
                ))
            }
        },
    };
    let slice = if slice.is_empty() { DEFAULT_SLICE } else { slice };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err(Error::field(field, format!("{name:?}: the unit name part must be non-empty, without \"/\"")));
    }
    let unit = if name.ends_with(".slice") { name.to_string() } else { format!("{prefix}-{name}.scope") };
    let parent = expand_slice(slice).map_err(|e| Error::field(field, e))?;
    Ok(Unit { path: PathBuf::from(parent).join(&unit), name: unit, slice: slice.to_string() })
}

/// systemd's slice nesting: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`; `-.slice`
/// is the root.
pub fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let invalid = || format!("invalid slice name: {slice}");
    let base = slice.strip_suffix(".slice").ok_or_else(invalid)?;
    if slice.contains('/') {
        return Err(invalid());
    }
    if base == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err(invalid());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(part);
        path.push_str(".slice");
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// True when this host was booted by systemd (sd_booted: /run/systemd/system is a dir).
pub fn booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// Reachable for `features`: booted with systemd and a socket to talk to it. No connection.
pub fn available() -> bool {
    booted() && [dbus::SYSTEM_BUS, dbus::SYSTEMD_PRIVATE].iter().any(|p| std::path::Path::new(p).exists())
}

fn err(what: String, e: impl std::fmt::Display) -> Error {
    Error::os(format!("systemd: {what}"), std::io::Error::other(e.to_string()))
}

/// A connection to systemd's manager.
pub struct Manager {
    conn: Connection,
    version: Option<u32>,
}

impl Manager {
    pub fn connect() -> Result<Manager> {
        if !booted() {
            return Err(Error::Refused(
                "--systemd-cgroup: this host was not booted with systemd (no /run/systemd/system)".into(),
            ));
        }
        let conn = Connection::system().map_err(|e| err("connect".into(), e))?;
        Ok(Manager { conn, version: None })
    }

    fn call(&mut self, member: &str, args: &[Value]) -> std::result::Result<Vec<Value>, CallError> {
        self.conn.call(SYSTEMD, MANAGER_PATH, MANAGER, member, args)
    }

    /// systemd's version number ("252 (252.39-1~deb12u1)" is 252); 0 when unreadable.
    pub fn version(&mut self) -> u32 {
        if let Some(v) = self.version {
            return v;
        }
        let args = [Value::str(MANAGER), Value::str("Version")];
        let reply = self.conn.call(SYSTEMD, MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get", &args);
        let v = reply
            .ok()
            .and_then(|b| b.first().and_then(Value::as_str).map(str::to_string))
            .map(|s| s.trim_start_matches(['"', 'v']).chars().take_while(char::is_ascii_digit).collect::<String>())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        self.version = Some(v);
        v
    }

    /// Starts `unit` with `props` and waits for its job; a leftover failed unit of the
    /// same name is reset and the start retried once (runc's startUnit).
    pub fn start(&mut self, unit: &str, props: Vec<Property>) -> Result<()> {
        let props = Value::Array(
            "(sv)".into(),
            props.into_iter().map(|(n, v)| Value::Struct(vec![Value::Str(n), Value::variant(v)])).collect(),
        );
        let args = [Value::str(unit), Value::str("replace"), props, Value::Array("(sa(sv))".into(), Vec::new())];
        self.watch_jobs()?;
        let mut retried = false;
        let job = loop {
            match self.call("StartTransientUnit", &args) {
                Ok(reply) => break reply,
                Err(e) if e.is("org.freedesktop.systemd1.UnitExists") && !retried => {
                    self.reset_failed(unit);
                    retried = true;
                }
                Err(e) => return Err(err(format!("start unit {unit}"), e)),
            }
        };
        let result = self.wait_job(&job).map_err(|e| err(format!("start unit {unit}: waiting for its job"), e))?;
        if result != "done" {
            self.reset_failed(unit);
            return Err(err(format!("start unit {unit}"), format!("the job ended with \"{result}\"")));
        }
        Ok(())
    }

    /// Stops `unit` and waits for its job; a unit that no longer exists is fine.
    pub fn stop(&mut self, unit: &str) -> Result<()> {
        self.watch_jobs()?;
        match self.call("StopUnit", &[Value::str(unit), Value::str("replace")]) {
            Ok(job) => {
                let result =
                    self.wait_job(&job).map_err(|e| err(format!("stop unit {unit}: waiting for its job"), e))?;
                if result != "done" {
                    crate::logging::warn(&format!("systemd: stopping {unit}: the job ended with \"{result}\""));
                }
            }
            Err(e) if e.is("org.freedesktop.systemd1.NoSuchUnit") => {}
            Err(e) => return Err(err(format!("stop unit {unit}"), e)),
        }
        self.reset_failed(unit);
        Ok(())
    }

    /// Changes a running unit's properties (runtime only, as runc's SetUnitProperties).
    pub fn set(&mut self, unit: &str, props: Vec<Property>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let props = Value::Array(
            "(sv)".into(),
            props.into_iter().map(|(n, v)| Value::Struct(vec![Value::Str(n), Value::variant(v)])).collect(),
        );
        self.call("SetUnitProperties", &[Value::str(unit), Value::Bool(true), props])
            .map(drop)
            .map_err(|e| err(format!("set properties of {unit}"), e))
    }

    fn reset_failed(&mut self, unit: &str) {
        let _ = self.call("ResetFailedUnit", &[Value::str(unit)]);
    }

    /// On the bus, signals reach us only through a match rule.
    fn watch_jobs(&mut self) -> Result<()> {
        if !self.conn.bus {
            return Ok(());
        }
        let rule =
            format!("type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'");
        self.conn
            .call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                &[Value::Str(rule)],
            )
            .map(drop)
            .map_err(|e| err("subscribe to JobRemoved".into(), e))
    }

    /// JobRemoved(u id, o job, s unit, s result) for the job in `reply`: its result.
    fn wait_job(&mut self, reply: &[Value]) -> std::io::Result<String> {
        let job = reply.first().and_then(Value::as_str).unwrap_or_default().to_string();
        let body = self.conn.wait_signal(|m| {
            m.member.as_deref() == Some("JobRemoved") && m.body.get(1).and_then(Value::as_str) == Some(job.as_str())
        })?;
        Ok(body.get(3).and_then(Value::as_str).unwrap_or_default().to_string())
    }
}

/// What the unit starts with, kept from `create` until the init's pid is known.
#[derive(Clone, Debug)]
pub struct Pending {
    id: String,
    resources: LinuxResources,
    devices: Vec<DeviceRule>,
    /// From `org.systemd.property.*` annotations.
    extra: Vec<Property>,
}

impl Cgroup {
    /// systemd driver: the unit can only start with the init's pid, so the limits wait
    /// for [`Cgroup::add_pid`], which runs before the init goes on. Annotations are
    /// checked here, before anything is made.
    pub fn defer_to_systemd<'a>(
        &mut self,
        id: &str,
        resources: &LinuxResources,
        devices: &[DeviceRule],
        annotations: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Result<()> {
        let extra = properties::from_annotations(annotations)?;
        self.pending =
            Some(Box::new(Pending { id: id.into(), resources: resources.clone(), devices: devices.to_vec(), extra }));
        Ok(())
    }

    fn unified(&self) -> bool {
        matches!(self.dirs.as_slice(), [d] if d.version == Version::V2)
    }
}

/// Starts the container's unit with `pid` in it and the limits as properties; joins the
/// hierarchies systemd doesn't manage (v1), then writes every limit to cgroupfs too.
pub(super) fn start(cg: &Cgroup, unit: &Unit, pending: &Pending, pid: i32) -> Result<()> {
    let mut m = Manager::connect()?;
    let v2 = cg.unified();
    let mut props = start_properties(unit, &pending.id, pid, v2, Vec::new());
    props.extend(properties::resources(&pending.resources, Some(&pending.devices), m.version(), v2)?);
    props.extend(pending.extra.iter().cloned());
    m.start(&unit.name, props)?;
    // systemd made the unit's cgroup where it manages the hierarchy; the others (v1's
    // cpuset, freezer ...) are joined as runc joins them.
    let mut joined = cg.clone();
    for dir in &cg.dirs {
        if !dir.full().is_dir() && !joined.create_dir(dir)? {
            return Err(Error::os(
                format!("create cgroup {}", dir.full().display()),
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        let procs = dir.full().join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).ctx(|| format!("write {}", procs.display()))?;
    }
    resources::write_files(cg, &pending.resources, Some(&pending.devices))
}

/// `update`: the new limits as unit properties, then (by the caller) in the files.
pub(crate) fn set_resources(
    cg: &Cgroup,
    unit: &Unit,
    r: &LinuxResources,
    devices: Option<&[DeviceRule]>,
) -> Result<()> {
    let mut m = Manager::connect()?;
    let props = properties::resources(r, devices, m.version(), cg.unified())?;
    m.set(&unit.name, props)
}

/// Stops the unit (systemd kills what is left and removes its cgroup), then removes the
/// directories strata made in hierarchies systemd doesn't manage.
pub(super) fn remove(cg: &Cgroup, unit: &Unit) -> Result<()> {
    Manager::connect()?.stop(&unit.name)?;
    for dir in &cg.dirs {
        super::remove_tree(&dir.full(), Instant::now() + super::REMOVE_BUSY_TIMEOUT)?;
    }
    Ok(())
}

/// runc's unit properties for a new container unit: its description, its slice (or,
/// for a slice, what it wants), the pid, delegation, accounting, no default
/// dependencies; then the `org.systemd.property.*` annotations.
pub fn start_properties(unit: &Unit, id: &str, pid: i32, v2: bool, extra: Vec<Property>) -> Vec<Property> {
    let p = |n: &str, v: Value| (n.to_string(), v);
    let mut out = vec![p("Description", Value::str(format!("strata container {id}")))];
    let is_slice = unit.name.ends_with(".slice");
    out.push(p(if is_slice { "Wants" } else { "Slice" }, Value::str(unit.slice.clone())));
    out.push(p("PIDs", Value::Array("u".into(), vec![Value::U32(pid as u32)])));
    if !is_slice {
        out.push(p("Delegate", Value::Bool(true)));
    }
    out.push(p("MemoryAccounting", Value::Bool(true)));
    out.push(p("CPUAccounting", Value::Bool(true)));
    out.push(p(if v2 { "IOAccounting" } else { "BlockIOAccounting" }, Value::Bool(true)));
    out.push(p("TasksAccounting", Value::Bool(true)));
    out.push(p("DefaultDependencies", Value::Bool(false)));
    out.extend(extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_paths_parse_as_runcs() {
        let u = parse(Some("system.slice:cri-containerd:abc"), "x").unwrap();
        assert_eq!(u.name, "cri-containerd-abc.scope");
        assert_eq!(u.slice, "system.slice");
        assert_eq!(u.path, PathBuf::from("/system.slice/cri-containerd-abc.scope"));
        let u = parse(Some("kubepods-burstable-pod1234.slice:cri-containerd:abc"), "x").unwrap();
        assert_eq!(
            u.path,
            PathBuf::from(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-abc.scope"
            )
        );
        let u = parse(None, "id1").unwrap();
        assert_eq!((u.name.as_str(), u.slice.as_str()), ("strata-id1.scope", "system.slice"));
        assert_eq!(parse(Some(""), "id1").unwrap(), u);
        // An empty slice is the default one; a name ending in .slice is a slice unit.
        assert_eq!(parse(Some(":p:n"), "x").unwrap().path, PathBuf::from("/system.slice/p-n.scope"));
        assert_eq!(parse(Some("-.slice:p:n"), "x").unwrap().path, PathBuf::from("/p-n.scope"));
        assert_eq!(parse(Some("a.slice:p:a-b.slice"), "x").unwrap().name, "a-b.slice");
        let e = parse(Some("/sys/fs/cgroup/x"), "x").unwrap_err().to_string();
        assert!(e.contains("slice:prefix:name"), "{e}");
        assert!(parse(Some("a:b:c:d"), "x").is_err());
        assert!(parse(Some("nope:p:n"), "x").is_err());
    }

    #[test]
    fn slices_expand_as_systemd_nests_them() {
        assert_eq!(expand_slice("a-b-c.slice").unwrap(), "/a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in ["a--b.slice", "-a.slice", "a-.slice", "a.slice/b.slice", "a", ".slice"] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_scope_is_delegated_into_its_slice() {
        let u = parse(Some("system.slice:strata:c1"), "c1").unwrap();
        let p = start_properties(&u, "c1", 42, true, vec![("CollectMode".into(), Value::str("inactive-or-failed"))]);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Description",
                "Slice",
                "PIDs",
                "Delegate",
                "MemoryAccounting",
                "CPUAccounting",
                "IOAccounting",
                "TasksAccounting",
                "DefaultDependencies",
                "CollectMode"
            ]
        );
        assert_eq!(p[2].1, Value::Array("u".into(), vec![Value::U32(42)]));
    }
}
