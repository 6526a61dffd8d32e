//! Finds a container's cgroup files on the host (v1, v2 or hybrid) and removes the
//! run's own cgroup parent at the end. Only paths under the run's parent are ever
//! removed: the machine's cgroups are not ours.

use std::path::PathBuf;

const BASE: &str = "/sys/fs/cgroup";

/// True when /sys/fs/cgroup itself is a cgroup2 mount (a pure v2 host).
pub fn is_v2() -> bool {
    std::path::Path::new(BASE).join("cgroup.controllers").exists()
}

/// Every hierarchy root: each v1 controller mount and the cgroup2 mount.
fn roots() -> Vec<PathBuf> {
    if is_v2() {
        return vec![BASE.into()];
    }
    std::fs::read_dir(BASE)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
        .unwrap_or_default()
}

/// The directories that exist for cgroup `path` in any hierarchy.
pub fn dirs_of(path: &str) -> Vec<PathBuf> {
    roots().into_iter().map(|r| r.join(path.trim_start_matches('/'))).filter(|p| p.is_dir()).collect()
}

/// Reads `file` of cgroup `path`: v2 name on a v2 host, else `controller/v1file`.
pub fn read(path: &str, controller: &str, v1file: &str, v2file: &str) -> Result<String, String> {
    let p = if is_v2() {
        PathBuf::from(BASE).join(path.trim_start_matches('/')).join(v2file)
    } else {
        PathBuf::from(BASE).join(controller).join(path.trim_start_matches('/')).join(v1file)
    };
    std::fs::read_to_string(&p).map(|s| s.trim().to_string()).map_err(|e| format!("{}: {e}", p.display()))
}

/// Removes the cgroup `path` and its sub-cgroups in every hierarchy, deepest first.
pub fn remove_tree(path: &str) {
    for d in dirs_of(path) {
        let out = std::process::Command::new("find").arg(&d).args(["-depth", "-type", "d"]).output();
        for sub in out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().lines() {
            let _ = std::fs::remove_dir(sub);
        }
    }
}
