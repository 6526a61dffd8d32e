//! `linux.resources.unified`: raw cgroup v2 files, written as given. Needs a cgroup v2
//! hierarchy (on a hybrid host, the unified mount: only its controllers can be set);
//! a key that isn't a file of the container's v2 cgroup is an error, never a new file.

use std::collections::HashMap;

use super::super::{fs, v2, Cgroup};
use crate::error::{Error, Result};

pub fn apply(cg: &Cgroup, unified: &HashMap<String, String>) -> Result<()> {
    if unified.is_empty() {
        return Ok(());
    }
    let Some(d) = cg.v2_dir() else {
        return Err(Error::field("linux.resources.unified", "this host has no cgroup v2 hierarchy (unified needs cgroup v2)"));
    };
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.resources.unified[{key:?}]");
        let Some((controller, _)) = key.split_once('.').filter(|_| !key.contains('/') && !key.starts_with('.')) else {
            return Err(Error::field(field, "not a cgroup v2 file name (\"<controller>.<file>\")"));
        };
        let dir = d.full();
        if controller != "cgroup" {
            if !v2::offers(&d.mountpoint, controller) {
                return Err(Error::field(field, format!("the cgroup v2 hierarchy here has no {controller} controller")));
            }
            v2::enable(&field, &d.mountpoint, &dir, controller, &cg.created)?;
        }
        if !fs::exists(&dir, key) {
            return Err(Error::field(field, format!("unknown key: {} has no such file", dir.display())));
        }
        fs::write(&field, &dir, key, &unified[key])?;
    }
    Ok(())
}
