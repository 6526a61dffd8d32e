//! `linux.resources.unified`: raw cgroup v2 files, written as given. Needs a pure cgroup
//! v2 host (runc refuses it on v1 and hybrid hosts alike); a key that isn't a file of the
//! container's v2 cgroup is an error, never a new file.

use std::collections::HashMap;

use super::super::{fs, v2, Cgroup, Version};
use crate::error::{Error, Result};

pub fn apply(cg: &Cgroup, unified: &HashMap<String, String>) -> Result<()> {
    if unified.is_empty() {
        return Ok(());
    }
    // runc's wording. A hybrid host counts as v1, as for runc: its cgroup2 mount is not
    // where the container's limits live.
    let Some(d) = cg.v2_dir().filter(|_| cg.dirs.iter().all(|d| d.version == Version::V2)) else {
        return Err(Error::field("linux.resources.unified", "invalid configuration: cannot use unified on cgroup v1"));
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
                return Err(Error::field(
                    field,
                    format!("the cgroup v2 hierarchy here has no {controller} controller"),
                ));
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
