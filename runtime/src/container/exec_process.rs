//! The process `exec` starts: the container's own process with runc's flag overrides
//! applied (args, env, cwd, user, groups, capabilities, noNewPrivileges), or a whole
//! process.json given with --process.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use crate::error::{Error, Result};

/// What `exec` was asked to run (runc's flags).
#[derive(Clone, Debug, Default)]
pub struct ExecProcessArgs {
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// "UID[:GID]"
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
}

pub fn build(spec: &Spec, a: &ExecProcessArgs) -> Result<Process> {
    let mut p = match &a.process_file {
        // runc: the file is the whole process; the other process flags are ignored.
        Some(file) => return with_args(read_process_file(file)?),
        None => {
            let mut p = spec.process().clone().unwrap_or_default();
            if a.args.is_empty() {
                return Err(Error::Refused("no command given (pass COMMAND [ARGS...] or --process FILE)".into()));
            }
            p.set_args(Some(a.args.clone()));
            p
        }
    };
    p.set_terminal(Some(a.tty));
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &a.env {
            let key = e.split('=').next().unwrap_or(e);
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        if !cwd.is_absolute() {
            return Err(Error::Refused(format!("--cwd {}: must be an absolute path", cwd.display())));
        }
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (u.as_str(), None),
        };
        let num =
            |s: &str| s.parse::<u32>().map_err(|_| Error::Refused(format!("--user {u}: expected UID[:GID] (numbers)")));
        user.set_uid(num(uid)?);
        if let Some(g) = gid {
            user.set_gid(num(g)?);
        }
    }
    if !a.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&a.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !a.caps.is_empty() {
        p.set_capabilities(Some(add_caps(p.capabilities().clone().unwrap_or_default(), &a.caps)?));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    with_args(p)
}

fn with_args(p: Process) -> Result<Process> {
    match p.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => Ok(p),
        _ => Err(Error::Refused("process args cannot be empty".into())),
    }
}

/// Reads --process FILE. A missing `user` is uid 0, gid 0, as in runc (Go's zero value).
fn read_process_file(file: &Path) -> Result<Process> {
    let bad = |message: String| Error::Config { file: file.into(), message };
    let bytes = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if let Some(obj) = v.as_object_mut() {
        obj.entry("user").or_insert_with(|| serde_json::json!({}));
    }
    serde_path_to_error::deserialize(v).map_err(|e| bad(e.to_string()))
}

/// runc's --cap: added to bounding, effective and permitted, and to ambient when the
/// process has inheritable capabilities at all.
fn add_caps(mut c: LinuxCapabilities, names: &[String]) -> Result<LinuxCapabilities> {
    let mut add = HashSet::new();
    for n in names {
        let full = if n.starts_with("CAP_") { n.clone() } else { format!("CAP_{n}") };
        let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
            .map_err(|_| Error::Refused(format!("--cap {n}: unknown capability")))?;
        add.insert(cap);
    }
    let grow = |set: &Option<HashSet<Capability>>| -> Option<HashSet<Capability>> {
        Some(set.clone().unwrap_or_default().union(&add).cloned().collect())
    };
    c.set_bounding(grow(c.bounding()));
    c.set_effective(grow(c.effective()));
    c.set_permitted(grow(c.permitted()));
    if c.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
        c.set_ambient(grow(c.ambient()));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.1",
            "process": { "args": ["sleep", "1"], "cwd": "/", "env": ["PATH=/bin", "A=1"], "user": { "uid": 0, "gid": 0, "additionalGids": [3] },
                         "capabilities": { "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"] } }
        }))
        .unwrap()
    }

    #[test]
    fn flags_override_the_containers_process_like_runc() {
        let a = ExecProcessArgs {
            args: vec!["ls".into()],
            env: vec!["A=2".into(), "B=3".into()],
            cwd: Some("/tmp".into()),
            user: Some("1000:1001".into()),
            additional_gids: vec![44],
            caps: vec!["CAP_SYS_ADMIN".into()],
            no_new_privs: true,
            ..Default::default()
        };
        let p = build(&spec(), &a).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["ls"]);
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1001));
        assert_eq!(p.user().additional_gids().as_deref().unwrap(), [3, 44]);
        let c = p.capabilities().as_ref().unwrap();
        for set in [c.bounding(), c.effective(), c.permitted(), c.ambient()] {
            assert!(set.as_ref().unwrap().contains(&Capability::SysAdmin));
        }
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.terminal(), Some(false));
    }

    #[test]
    fn bad_flags_are_refused() {
        let base = ExecProcessArgs { args: vec!["ls".into()], ..Default::default() };
        assert!(build(&spec(), &ExecProcessArgs { args: vec![], ..base.clone() }).is_err());
        assert!(build(&spec(), &ExecProcessArgs { user: Some("root".into()), ..base.clone() }).is_err());
        assert!(build(&spec(), &ExecProcessArgs { cwd: Some("rel".into()), ..base.clone() }).is_err());
        let e = build(&spec(), &ExecProcessArgs { caps: vec!["CAP_NOPE".into()], ..base }).unwrap_err();
        assert!(e.to_string().contains("CAP_NOPE"), "{e}");
    }
}
