//! cgroup v2 specifics: a controller is usable in a cgroup only once every ancestor
//! lists it in `cgroup.subtree_control`. Controllers are enabled lazily, only when a
//! resource needs one, and only in directories strata created: an ancestor that
//! belongs to the host (its root cgroup, a delegated slice) must already enable the
//! controller, else the field is an error saying where to enable it. runc writes
//! such ancestors itself; strata never changes a cgroup it didn't make.

use std::path::{Path, PathBuf};

use super::fs;
use crate::error::{Error, Result};

/// True when the hierarchy mounted at `mountpoint` offers `controller` at all.
pub fn offers(mountpoint: &Path, controller: &str) -> bool {
    std::fs::read_to_string(mountpoint.join("cgroup.controllers"))
        .is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
}

/// Enables `controller` for `dir` by writing `+controller` to the subtree_control of
/// each ancestor from the mountpoint down where it isn't enabled yet; `created` are the
/// directories strata made (the only ones it writes). `field` names the config field
/// that needs the controller, for the error.
pub fn enable(field: &str, mountpoint: &Path, dir: &Path, controller: &str, created: &[PathBuf]) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Err(Error::field(field, format!("{} is not under {}", dir.display(), mountpoint.display())));
    };
    let mut ancestor = mountpoint.to_path_buf();
    for part in rel.components() {
        let enabled = std::fs::read_to_string(ancestor.join("cgroup.subtree_control")).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == controller) {
            if !created.contains(&ancestor) {
                return Err(Error::field(
                    field,
                    format!(
                        "the {controller} controller is not enabled in {}/cgroup.subtree_control (a cgroup strata did not create)",
                        ancestor.display()
                    ),
                ));
            }
            fs::write(field, &ancestor, "cgroup.subtree_control", format!("+{controller}"))?;
        }
        ancestor.push(part);
    }
    Ok(())
}
