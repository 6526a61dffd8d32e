//! The id maps of a new user namespace, written by the parent while the init waits.
//! How each map is written is decided before the clone, so a map the caller cannot
//! write fails `create` before anything exists. runc's rules (nsexec's
//! `update_uidmap`/`update_setgroups`, `requiresRootOrMappingTool`):
//! - a privileged caller (root, also root inside a user namespace) writes
//!   /proc/PID/{uid,gid}_map itself;
//! - an unprivileged caller writes a map itself only when it maps its own id alone
//!   (the kernel allows that much); a gid map so written needs /proc/PID/setgroups
//!   set to "deny" first;
//! - any other map of an unprivileged caller goes through the setuid helpers
//!   `newuidmap`/`newgidmap`, which check it against /etc/subuid and /etc/subgid.

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::error::{Error, Result};
use crate::rootless::Caller;

/// How one map reaches the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Written to /proc/PID/{uid,gid}_map by strata.
    Direct,
    /// The setuid helper at this path (newuidmap, newgidmap) writes it.
    Helper(PathBuf),
}

/// One map: the lines as the kernel takes them, and who writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPlan {
    /// "linux.uidMappings" or "linux.gidMappings", for errors.
    pub field: &'static str,
    /// (container id, host id, size) triples.
    pub entries: Vec<(u32, u32, u32)>,
    pub writer: Writer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMapPlan {
    pub uid: MapPlan,
    pub gid: MapPlan,
    /// Write "deny" to /proc/PID/setgroups before the gid map (an unprivileged caller's
    /// own-gid map: the kernel demands it).
    pub deny_setgroups: bool,
}

/// What the plan needs to know of the host besides the caller.
pub struct Host<'a> {
    /// The caller's effective gid.
    pub egid: u32,
    /// The caller's user name, for /etc/subuid lookups (None: no passwd entry).
    pub user_name: Option<&'a str>,
    /// Finds a program on $PATH.
    pub which: &'a dyn Fn(&str) -> Option<PathBuf>,
    /// The text of /etc/subuid or /etc/subgid (None: the file is missing).
    pub subid_file: &'a dyn Fn(&str) -> Option<String>,
}

/// Decides how the config's maps are written (the parent, before the clone).
pub fn plan(spec: &Spec, caller: &Caller, host: &Host) -> Result<IdMapPlan> {
    let linux = spec.linux().as_ref();
    let uid = entries(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = entries(linux.and_then(|l| l.gid_mappings().as_ref()));
    let unprivileged = caller.euid != 0;
    let self_only = |entries: &[(u32, u32, u32)], own: u32| matches!(entries, [(_, host, 1)] if *host == own);
    let uid_direct = !unprivileged || self_only(&uid, caller.euid);
    let gid_direct = !unprivileged || self_only(&gid, host.egid);
    let uid_writer = writer(uid_direct, "linux.uidMappings", "newuidmap", "/etc/subuid", caller, host)?;
    let gid_writer = writer(gid_direct, "linux.gidMappings", "newgidmap", "/etc/subgid", caller, host)?;
    Ok(IdMapPlan {
        uid: MapPlan { field: "linux.uidMappings", entries: uid, writer: uid_writer },
        gid: MapPlan { field: "linux.gidMappings", entries: gid, writer: gid_writer },
        deny_setgroups: unprivileged && gid_direct,
    })
}

fn entries(maps: Option<&Vec<LinuxIdMapping>>) -> Vec<(u32, u32, u32)> {
    maps.into_iter().flatten().map(|m| (m.container_id(), m.host_id(), m.size())).collect()
}

/// Direct, or the helper when it exists and the caller has a subordinate range: the
/// error names what is missing.
fn writer(direct: bool, field: &str, helper: &str, subid: &str, caller: &Caller, host: &Host) -> Result<Writer> {
    if direct {
        return Ok(Writer::Direct);
    }
    let uid = caller.euid;
    let Some(path) = (host.which)(helper) else {
        return Err(Error::field(
            field,
            format!("maps more than uid {uid}'s own id, which needs {helper} (install the uidmap package)"),
        ));
    };
    let has_range = (host.subid_file)(subid).is_some_and(|text| {
        text.lines().any(|l| {
            let owner = l.split(':').next().unwrap_or_default();
            owner == uid.to_string() || Some(owner) == host.user_name
        })
    });
    if !has_range {
        let who = host.user_name.map(|n| format!("user {n}")).unwrap_or_else(|| format!("uid {uid}"));
        return Err(Error::field(
            field,
            format!("maps more than the caller's own id, but {who} has no subordinate range in {subid}"),
        ));
    }
    Ok(Writer::Helper(path))
}

/// The host as it is: $PATH, /etc/subuid, /etc/subgid, the passwd entry.
pub fn plan_for_current(spec: &Spec, caller: &Caller) -> Result<IdMapPlan> {
    // A privileged caller writes its maps itself: no passwd lookup on its create path.
    let name = if caller.euid != 0 {
        nix::unistd::User::from_uid(nix::unistd::geteuid()).ok().flatten().map(|u| u.name)
    } else {
        None
    };
    let which = |prog: &str| {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin:/usr/sbin:/sbin".into());
        std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
    };
    let subid_file = |file: &str| std::fs::read_to_string(file).ok();
    let host = Host {
        egid: nix::unistd::getegid().as_raw(),
        user_name: name.as_deref(),
        which: &which,
        subid_file: &subid_file,
    };
    plan(spec, caller, &host)
}

/// Carries the plan out for the init `pid` (waiting in its new user namespace).
pub fn write(plan: &IdMapPlan, pid: i32) -> Result<()> {
    write_map(&plan.uid, pid, "uid_map")?;
    if plan.deny_setgroups {
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny").map_err(|e| Error::field(plan.gid.field, format!("write {path}: {e}")))?;
    }
    write_map(&plan.gid, pid, "gid_map")
}

fn write_map(map: &MapPlan, pid: i32, file: &str) -> Result<()> {
    match &map.writer {
        Writer::Direct => {
            let text: String = map.entries.iter().map(|(c, h, n)| format!("{c} {h} {n}\n")).collect();
            std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| Error::field(map.field, e.to_string()))
        }
        Writer::Helper(helper) => run_helper(helper, pid, map),
    }
}

fn run_helper(helper: &Path, pid: i32, map: &MapPlan) -> Result<()> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for (c, h, n) in &map.entries {
        cmd.args([c.to_string(), h.to_string(), n.to_string()]);
    }
    let out = cmd.output().map_err(|e| Error::field(map.field, format!("run {}: {e}", helper.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
    Err(Error::field(map.field, format!("{} failed ({}): {said}", helper.display(), out.status)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, SpecBuilder};

    fn spec(uid: &[(u32, u32, u32)], gid: &[(u32, u32, u32)]) -> Spec {
        let m = |v: &[(u32, u32, u32)]| -> Vec<LinuxIdMapping> {
            v.iter()
                .map(|&(c, h, n)| LinuxIdMappingBuilder::default().container_id(c).host_id(h).size(n).build().unwrap())
                .collect()
        };
        let linux = LinuxBuilder::default().uid_mappings(m(uid)).gid_mappings(m(gid)).build().unwrap();
        SpecBuilder::default().linux(linux).build().unwrap()
    }

    fn caller(euid: u32) -> Caller {
        Caller { euid, in_user_ns: false, xdg_runtime_dir: None, user: None }
    }

    fn plan_with(spec: &Spec, euid: u32, helpers: bool, subids: Option<&str>) -> Result<IdMapPlan> {
        let which = |p: &str| helpers.then(|| PathBuf::from("/usr/bin").join(p));
        let subid_file = |_: &str| subids.map(str::to_owned);
        let host = Host { egid: 1000, user_name: Some("alice"), which: &which, subid_file: &subid_file };
        plan(spec, &caller(euid), &host)
    }

    #[test]
    fn an_unprivileged_self_map_is_written_directly_with_setgroups_denied() {
        let s = spec(&[(0, 1000, 1)], &[(0, 1000, 1)]);
        let p = plan_with(&s, 1000, false, None).unwrap();
        assert_eq!((p.uid.writer, p.gid.writer.clone()), (Writer::Direct, Writer::Direct));
        assert!(p.deny_setgroups);
        assert_eq!(p.gid.entries, vec![(0, 1000, 1)]);
    }

    #[test]
    fn root_writes_any_map_itself_and_keeps_setgroups() {
        let s = spec(&[(0, 100000, 65536)], &[(0, 100000, 65536)]);
        let p = plan_with(&s, 0, false, None).unwrap();
        assert_eq!((p.uid.writer, p.gid.writer), (Writer::Direct, Writer::Direct));
        assert!(!p.deny_setgroups);
    }

    #[test]
    fn an_unprivileged_multi_id_map_goes_through_the_helpers() {
        let s = spec(&[(0, 1000, 1), (1, 200000, 65536)], &[(0, 1000, 1), (1, 200000, 65536)]);
        let p = plan_with(&s, 1000, true, Some("alice:200000:65536\n")).unwrap();
        assert_eq!(p.uid.writer, Writer::Helper(PathBuf::from("/usr/bin/newuidmap")));
        assert_eq!(p.gid.writer, Writer::Helper(PathBuf::from("/usr/bin/newgidmap")));
        assert!(!p.deny_setgroups, "newgidmap decides setgroups itself");
    }

    #[test]
    fn only_the_map_beyond_the_own_id_needs_a_helper() {
        let s = spec(&[(0, 1000, 1)], &[(0, 1000, 1), (1, 200000, 10)]);
        let p = plan_with(&s, 1000, true, Some("1000:200000:65536\n")).unwrap();
        assert_eq!(p.uid.writer, Writer::Direct);
        assert_eq!(p.gid.writer, Writer::Helper(PathBuf::from("/usr/bin/newgidmap")));
        assert!(!p.deny_setgroups);
    }

    #[test]
    fn a_missing_helper_is_named() {
        let s = spec(&[(0, 1000, 1), (1, 200000, 10)], &[(0, 1000, 1)]);
        let msg = plan_with(&s, 1000, false, Some("alice:200000:65536\n")).unwrap_err().to_string();
        assert!(msg.contains("linux.uidMappings") && msg.contains("newuidmap"), "{msg}");
    }

    #[test]
    fn a_user_without_a_subordinate_range_is_told_so() {
        let s = spec(&[(0, 1000, 1), (1, 200000, 10)], &[(0, 1000, 1)]);
        let msg = plan_with(&s, 1000, true, Some("bob:200000:65536\n")).unwrap_err().to_string();
        assert!(msg.contains("user alice has no subordinate range in /etc/subuid"), "{msg}");
        let msg = plan_with(&s, 1000, true, None).unwrap_err().to_string();
        assert!(msg.contains("/etc/subuid"), "{msg}");
    }
}
