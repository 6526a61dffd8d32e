//! Which cgroup hierarchies this host mounts (v1 controllers, a cgroup2 mount, or
//! both), and where the runtime itself sits in each, read from /proc/self/mountinfo
//! and /proc/self/cgroup.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    V1,
    V2,
}

#[derive(Clone, Debug)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    pub version: Version,
    /// v1: the controllers (and `name=...`) of the hierarchy; v2: empty.
    pub controllers: Vec<String>,
    /// The runtime's own cgroup in this hierarchy, as /proc/self/cgroup shows it.
    pub own_cgroup: PathBuf,
}

#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads the host's layout. Each hierarchy is taken once, at its first mountpoint.
    pub fn detect() -> Result<Layout> {
        // Bytes, not text: a non-UTF-8 mount path elsewhere on the machine is no error.
        let mountinfo = std::fs::read("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
        Ok(Self::parse(&mountinfo, &own))
    }

    pub fn parse(mountinfo: &[u8], own_cgroups: &str) -> Layout {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for m in crate::mountinfo::parse(mountinfo) {
            let (version, controllers) = match m.fstype.as_slice() {
                b"cgroup2" => (Version::V2, Vec::new()),
                b"cgroup" => {
                    let ctrls: Vec<String> = m
                        .super_option_list()
                        .map(String::from_utf8_lossy)
                        .filter(|o| is_controller_option(o))
                        .map(|o| o.into_owned())
                        .collect();
                    (Version::V1, ctrls)
                }
                _ => continue,
            };
            let mountpoint = m.mount_point;
            if hierarchies.iter().any(|h| h.version == version && h.controllers == controllers) {
                continue;
            }
            let own_cgroup = own_path(own_cgroups, version, &controllers);
            hierarchies.push(Hierarchy { mountpoint, version, controllers, own_cgroup });
        }
        Layout { hierarchies }
    }

    pub fn is_unified_only(&self) -> bool {
        matches!(self.hierarchies.as_slice(), [h] if h.version == Version::V2)
    }
}

/// v1 super options that name a controller rather than a mount flag.
fn is_controller_option(o: &str) -> bool {
    !matches!(o, "rw" | "ro" | "noprefix" | "xattr" | "clone_children" | "cpuset_v2_mode" | "nsdelegate")
        && !o.starts_with("release_agent=")
}

fn own_path(own: &str, version: Version, controllers: &[String]) -> PathBuf {
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let matches = match version {
            Version::V2 => ctrls.is_empty(),
            Version::V1 => {
                let mut a: Vec<&str> = ctrls.split(',').collect();
                let mut b: Vec<&str> = controllers.iter().map(String::as_str).collect();
                a.sort_unstable();
                b.sort_unstable();
                !ctrls.is_empty() && a == b
            }
        };
        if matches {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_layout_has_v1_controllers_and_the_unified_mount() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        let own = "4:memory:/sandbox/abc\n3:name=systemd:/\n1:cpu:/\n0::/\n";
        let l = Layout::parse(mountinfo.as_bytes(), own);
        assert_eq!(l.hierarchies.len(), 4);
        assert_eq!(l.hierarchies[1].controllers, vec!["memory"]);
        assert_eq!(l.hierarchies[1].own_cgroup, PathBuf::from("/sandbox/abc"));
        assert_eq!(l.hierarchies[2].controllers, vec!["name=systemd"]);
        assert_eq!(l.hierarchies[3].version, Version::V2);
        assert!(!l.is_unified_only());
    }

    #[test]
    fn a_non_utf8_or_escaped_mount_elsewhere_is_no_error() {
        let mut mountinfo = b"29 25 0:25 / /mnt/\xff\xfe rw - ext4 /dev/sda1 rw\n".to_vec();
        mountinfo.extend_from_slice(b"34 30 0:30 / /sys/fs/cgroup/my\\040unified rw - cgroup2 cgroup2 rw\n");
        let l = Layout::parse(&mountinfo, "0::/x\n");
        assert_eq!(l.hierarchies.len(), 1);
        assert_eq!(l.hierarchies[0].mountpoint, PathBuf::from("/sys/fs/cgroup/my unified"));
        assert!(l.is_unified_only());
    }
}
