//! linux.intelRdt: the container's resctrl group (Intel RDT / AMD QoS), as config-linux.md
//! §IntelRdt orders it.
//!
//! - No resctrl filesystem mounted in the runtime's mount namespace: `create` fails
//!   (the spec's "MUST generate an error"), before anything is made.
//! - The group is `<resctrl>/<closID>`, or `<resctrl>/<container id>` without closID.
//!   A missing group is made when schemata are given (or closID is unset); a closID that
//!   exists and comes with l3CacheSchema/memBwSchema must already hold them (compared, not
//!   written); a closID without schemata must exist (a pre-configured group).
//! - schemata writes, in order: l3CacheSchema (its `MB:` lines left out when memBwSchema
//!   is set), memBwSchema, then `schemata` last.
//! - enableMonitoring (and the deprecated enableCMT/enableMBM): a monitoring group
//!   `mon_groups/<container id>` in the group.
//! - The init's pid goes to the group's `tasks` (and the monitoring group's) after the
//!   clone, before the workload runs.
//! - delete removes what strata made: the monitoring group, and the group when it is the
//!   container's own (no closID). A closID group is shared and left, as runc does.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIntelRdt, Spec};

use crate::error::{Error, Result};

/// What create does for linux.intelRdt, computed from the config and the mount point.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The CLOS group directory.
    pub group: PathBuf,
    /// Whether the group may be made when missing (false: a closID without schemata,
    /// which must exist).
    pub may_create: bool,
    /// Lines the existing schemata file must hold (closID with l3/memBw schemas).
    pub expect: Vec<String>,
    /// Values written to `schemata`, one write each, in order (when strata makes the group).
    pub writes: Vec<String>,
    /// `schemata` written last in any case.
    pub schemata: Option<String>,
    /// The monitoring group to make and join.
    pub monitor: Option<PathBuf>,
    /// Whether delete removes the group (the container's own, named by its id).
    pub owned: bool,
}

fn rdt(spec: &Spec) -> Option<&LinuxIntelRdt> {
    spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref())
}

/// Field checks that need no resctrl: closID a plain name, schemas one line each.
pub fn validate(spec: &Spec) -> Result<()> {
    let Some(r) = rdt(spec) else { return Ok(()) };
    if let Some(c) = r.clos_id() {
        if c.is_empty() || c == "." || c == ".." || c.contains('/') || c.contains('\0') {
            return Err(Error::field("linux.intelRdt.closID", format!("{c:?} is not a resctrl group name")));
        }
    }
    if let Some(l3) = r.l3_cache_schema() {
        if l3.contains('\n') {
            return Err(Error::field("linux.intelRdt.l3CacheSchema", "must be one line"));
        }
    }
    if let Some(mb) = r.mem_bw_schema() {
        if !mb.starts_with("MB:") || mb.contains('\n') {
            return Err(Error::field(
                "linux.intelRdt.memBwSchema",
                format!("{mb:?}: must be one line starting with MB:"),
            ));
        }
    }
    Ok(())
}

/// The plan for `create`, or None without linux.intelRdt. `mount` is the resctrl mount
/// point ([`mount_point`]); without one, the spec's error.
pub fn plan(spec: &Spec, id: &str, mount: Option<&Path>) -> Result<Option<Plan>> {
    let Some(r) = rdt(spec) else { return Ok(None) };
    let Some(root) = mount else {
        return Err(Error::field(
            "linux.intelRdt",
            "no resctrl filesystem is mounted in the runtime's mount namespace (Intel RDT is not enabled)",
        ));
    };
    let l3 = r.l3_cache_schema().as_deref().filter(|s| !s.is_empty());
    let mb = r.mem_bw_schema().as_deref().filter(|s| !s.is_empty());
    let schemata = r.schemata().as_ref().filter(|v| !v.is_empty()).map(|v| v.join("\n"));
    let mut writes = Vec::new();
    match (l3, mb) {
        // The MB: line comes from memBwSchema alone.
        (Some(l3), Some(mb)) => {
            let rest: Vec<&str> = l3.split('\n').filter(|l| !l.trim_start().starts_with("MB:")).collect();
            writes.push(format!("{}\n{mb}", rest.join("\n")));
        }
        (Some(one), None) | (None, Some(one)) => writes.push(one.to_string()),
        (None, None) => {}
    }
    let clos = r.clos_id().as_deref();
    let any_schema = !writes.is_empty() || schemata.is_some();
    #[allow(deprecated)]
    let monitoring =
        r.enable_monitoring().unwrap_or(false) || r.enable_cmt().unwrap_or(false) || r.enable_mbm().unwrap_or(false);
    let group = root.join(clos.unwrap_or(id));
    Ok(Some(Plan {
        monitor: monitoring.then(|| group.join("mon_groups").join(id)),
        group,
        may_create: clos.is_none() || any_schema,
        expect: if clos.is_some() {
            writes.iter().flat_map(|w| w.lines().map(str::to_string)).collect()
        } else {
            Vec::new()
        },
        writes,
        schemata,
        owned: clos.is_none(),
    }))
}

impl Plan {
    /// Makes or checks the group and writes its schemata (before the clone).
    pub fn prepare(&self) -> Result<()> {
        let field = |e: std::io::Error, what: &str, p: &Path| {
            Error::field("linux.intelRdt", format!("{what} {}: {e}", p.display()))
        };
        let exists = self.group.is_dir();
        if !exists {
            if !self.may_create {
                return Err(Error::field(
                    "linux.intelRdt.closID",
                    format!(
                        "{} does not exist (a closID without schemata names a pre-configured group)",
                        self.group.display()
                    ),
                ));
            }
            std::fs::create_dir(&self.group).map_err(|e| field(e, "mkdir", &self.group))?;
        }
        let file = self.group.join("schemata");
        if exists && !self.expect.is_empty() {
            let current = std::fs::read_to_string(&file).map_err(|e| field(e, "read", &file))?;
            let have: Vec<String> = current.lines().map(normalize).collect();
            if let Some(l) = self.expect.iter().find(|l| !have.contains(&normalize(l))) {
                return Err(Error::field(
                    "linux.intelRdt",
                    format!(
                        "closID group {} exists with other schemata: no {l:?} in {current:?}",
                        self.group.display()
                    ),
                ));
            }
        } else {
            for w in &self.writes {
                std::fs::write(&file, w).map_err(|e| field(e, "write", &file))?;
            }
        }
        if let Some(s) = &self.schemata {
            std::fs::write(&file, s).map_err(|e| field(e, "write", &file))?;
        }
        if let Some(m) = &self.monitor {
            match std::fs::create_dir(m) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(field(e, "mkdir", m)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Puts the container's init in the group (and its monitoring group).
    pub fn enter(&self, pid: i32) -> Result<()> {
        for dir in std::iter::once(&self.group).chain(self.monitor.as_ref()) {
            let tasks = dir.join("tasks");
            std::fs::write(&tasks, pid.to_string())
                .map_err(|e| Error::field("linux.intelRdt", format!("write {}: {e}", tasks.display())))?;
        }
        Ok(())
    }

    /// Removes what strata made (empty once the container's tasks are gone).
    pub fn remove(&self) {
        if let Some(m) = &self.monitor {
            let _ = std::fs::remove_dir(m);
        }
        if self.owned {
            let _ = std::fs::remove_dir(&self.group);
        }
    }
}

/// Whitespace-insensitive, lower-case form of a schemata line ("L3:0=7f0;1=1f").
fn normalize(l: &str) -> String {
    l.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// The resctrl mount point in our mount namespace, from /proc/self/mountinfo.
pub fn mount_point() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mountpoint = pre.split(' ').nth(4)?;
        (post.split(' ').next()? == "resctrl").then(|| PathBuf::from(mountpoint.replace("\\040", " ")))
    })
}

/// For `create`: the plan for the spec (None without linux.intelRdt; the spec's error
/// without resctrl). Reads mountinfo only when the field is set.
pub fn for_create(spec: &Spec, id: &str) -> Result<Option<Plan>> {
    match rdt(spec) {
        None => Ok(None),
        Some(_) => plan(spec, id, mount_point().as_deref()),
    }
}

/// For `delete`: removes the groups create made for container `id`.
pub fn remove(spec: &Spec, id: &str) {
    if rdt(spec).is_none() {
        return;
    }
    if let Ok(Some(p)) = plan(spec, id, mount_point().as_deref()) {
        p.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rdt: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({ "ociVersion": "1.3.0", "linux": { "intelRdt": rdt } })).unwrap()
    }

    #[test]
    fn without_resctrl_create_is_refused() {
        let e = plan(&spec(serde_json::json!({})), "c1", None).unwrap_err().to_string();
        assert!(e.contains("linux.intelRdt") && e.contains("no resctrl filesystem is mounted"), "{e}");
        assert_eq!(plan(&Spec::default(), "c1", None).unwrap(), None);
    }

    #[test]
    fn container_group_gets_the_combined_schemata_then_schemata_last() {
        let s = spec(serde_json::json!({
            "l3CacheSchema": "L3:0=7f0;1=1f\nMB:0=10",
            "memBwSchema": "MB:0=20;1=70",
            "schemata": ["L2:0=f;1=f"],
            "enableMonitoring": true
        }));
        let p = plan(&s, "c1", Some(Path::new("/sys/fs/resctrl"))).unwrap().unwrap();
        assert_eq!(p.group, Path::new("/sys/fs/resctrl/c1"));
        assert!(p.may_create && p.owned);
        assert_eq!(p.writes, vec!["L3:0=7f0;1=1f\nMB:0=20;1=70".to_string()]);
        assert_eq!(p.schemata.as_deref(), Some("L2:0=f;1=f"));
        assert_eq!(p.monitor.as_deref(), Some(Path::new("/sys/fs/resctrl/c1/mon_groups/c1")));
        assert!(p.expect.is_empty());
    }

    #[test]
    fn clos_groups_are_checked_shared_and_kept() {
        let root = Some(Path::new("/r"));
        let p = plan(&spec(serde_json::json!({ "closID": "gold", "memBwSchema": "MB:0=20" })), "c1", root)
            .unwrap()
            .unwrap();
        assert_eq!(p.group, Path::new("/r/gold"));
        assert!(p.may_create && !p.owned);
        assert_eq!(p.expect, vec!["MB:0=20".to_string()]);
        // Pre-configured: must exist, nothing written.
        let p = plan(&spec(serde_json::json!({ "closID": "gold" })), "c1", root).unwrap().unwrap();
        assert!(!p.may_create && p.writes.is_empty() && p.schemata.is_none() && p.monitor.is_none());
        assert_eq!(normalize(" L3:0=7F0 ; 1=1f"), normalize("L3:0=7f0;1=1f"));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = validate(&spec(serde_json::json!({ "closID": "../x" }))).unwrap_err().to_string();
        assert!(e.contains("linux.intelRdt.closID"), "{e}");
        let e = validate(&spec(serde_json::json!({ "memBwSchema": "L3:0=1" }))).unwrap_err().to_string();
        assert!(e.contains("linux.intelRdt.memBwSchema"), "{e}");
        assert!(validate(&spec(serde_json::json!({ "closID": "gold", "l3CacheSchema": "L3:0=f" }))).is_ok());
    }
}
