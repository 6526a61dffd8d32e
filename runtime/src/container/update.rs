//! `update`: new resource limits for a running container. Only the fields given are
//! written to the cgroup (the device rules never change, as in runc), then merged into
//! the config saved in state.json, so a later `update` or `events` sees them.

use oci_spec::runtime::LinuxResources;
use serde_json::Value;

use super::{load, Status, Store};
use crate::cgroups::resources;
use crate::error::{Error, Result};

pub fn update(store: &Store, id: &str, new: &LinuxResources) -> Result<()> {
    let (locked, mut state, status) = load(store, id)?;
    if status == Status::Stopped {
        return Err(Error::WrongStatus { id: id.into(), status: status.to_string(), op: "update (stopped)" });
    }
    state.cgroup.ensure_container_owned("update resources")?;
    let mut new = new.clone();
    new.set_devices(None);
    let old = state.config.linux().as_ref().and_then(|l| l.resources().clone()).unwrap_or_default();
    // A swap limit is memory+swap: on v2 it converts against the limit, old or new.
    if let Some(m) = new.memory_mut() {
        if m.swap().is_some() && m.limit().is_none() {
            m.set_limit(old.memory().as_ref().and_then(|o| o.limit()));
        }
    }
    resources::apply(&state.cgroup, &new, None)?;
    let merged = merge(&old, &new)?;
    let mut linux = state.config.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged));
    state.config.set_linux(Some(linux));
    locked.save(&state)
}

/// `new` over `old`, field by field (objects merge, everything else is replaced).
fn merge(old: &LinuxResources, new: &LinuxResources) -> Result<LinuxResources> {
    let encode = |r: &LinuxResources| {
        serde_json::to_value(r).map_err(|e| Error::os("encode resources", std::io::Error::other(e)))
    };
    let mut base = encode(old)?;
    overlay(&mut base, encode(new)?);
    serde_json::from_value(base).map_err(|e| Error::os("decode resources", std::io::Error::other(e)))
}

fn overlay(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                if v.is_null() {
                    continue;
                }
                overlay(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, t) => *b = t,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn update_merges_into_the_saved_resources() {
        let old: super::LinuxResources =
            serde_json::from_value(json!({ "memory": { "limit": 100, "swap": 200 }, "pids": { "limit": 5 } })).unwrap();
        let new: super::LinuxResources = serde_json::from_value(json!({ "memory": { "limit": 150 } })).unwrap();
        let m = serde_json::to_value(super::merge(&old, &new).unwrap()).unwrap();
        assert_eq!(m["memory"], json!({ "limit": 150, "swap": 200 }));
        assert_eq!(m["pids"]["limit"], 5);
    }
}
