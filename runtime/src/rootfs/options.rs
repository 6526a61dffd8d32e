//! Mount options as config.json spells them, sorted into what mount(2) takes (flags and
//! a data string), propagation changes, and recursive attributes for mount_setattr(2).

use nix::mount::MsFlags;

#[derive(Debug, PartialEq)]
pub struct MountOptions {
    /// Flags for the mount (or, for binds, the read-only remount that follows).
    pub flags: MsFlags,
    /// Flags that an option explicitly clears (rw, suid, dev, exec, atime...).
    pub cleared: MsFlags,
    /// Propagation to apply after mounting (MS_SHARED, MS_SLAVE, ... possibly | MS_REC).
    pub propagation: MsFlags,
    /// mount_setattr attributes to set / clear recursively (rro, rnosuid, ...).
    pub rec_set: u64,
    pub rec_clear: u64,
    pub bind: bool,
    pub recursive_bind: bool,
    /// runc's extension: copy the destination's contents up into a new tmpfs.
    pub tmpcopyup: bool,
    /// An idmapped bind (`idmap`, or `ridmap` for the whole tree).
    pub idmap: bool,
    pub idmap_recursive: bool,
    /// Everything the kernel interprets per filesystem (size=, mode=, newinstance...).
    pub data: Vec<String>,
}

/// Sorts `options` into a [`MountOptions`].
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: MsFlags::empty(),
        rec_set: 0,
        rec_clear: 0,
        bind: false,
        recursive_bind: false,
        tmpcopyup: false,
        idmap: false,
        idmap_recursive: false,
        data: Vec::new(),
    };
    for opt in options {
        if let Some((clear, flag)) = flag_option(opt) {
            if clear {
                o.flags.remove(flag);
                o.cleared |= flag;
            } else {
                o.flags |= flag;
                o.cleared.remove(flag);
            }
        } else if let Some(p) = propagation_option(opt) {
            o.propagation = p;
        } else if let Some((clear, attr)) = recursive_option(opt) {
            if clear {
                o.rec_clear |= attr;
            } else {
                o.rec_set |= attr;
            }
        } else {
            match opt.as_str() {
                "bind" => o.bind = true,
                "rbind" => {
                    o.bind = true;
                    o.recursive_bind = true
                }
                "tmpcopyup" => o.tmpcopyup = true,
                "idmap" => o.idmap = true,
                "ridmap" => {
                    o.idmap = true;
                    o.idmap_recursive = true
                }
                "" | "defaults" => {}
                _ => o.data.push(opt.clone()),
            }
        }
    }
    o
}

fn flag_option(opt: &str) -> Option<(bool, MsFlags)> {
    Some(match opt {
        "ro" => (false, MsFlags::MS_RDONLY),
        "rw" => (true, MsFlags::MS_RDONLY),
        "nosuid" => (false, MsFlags::MS_NOSUID),
        "suid" => (true, MsFlags::MS_NOSUID),
        "nodev" => (false, MsFlags::MS_NODEV),
        "dev" => (true, MsFlags::MS_NODEV),
        "noexec" => (false, MsFlags::MS_NOEXEC),
        "exec" => (true, MsFlags::MS_NOEXEC),
        "sync" => (false, MsFlags::MS_SYNCHRONOUS),
        "async" => (true, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (false, MsFlags::MS_DIRSYNC),
        "remount" => (false, MsFlags::MS_REMOUNT),
        "mand" => (false, MsFlags::MS_MANDLOCK),
        "nomand" => (true, MsFlags::MS_MANDLOCK),
        "noatime" => (false, MsFlags::MS_NOATIME),
        "atime" => (true, MsFlags::MS_NOATIME),
        "nodiratime" => (false, MsFlags::MS_NODIRATIME),
        "diratime" => (true, MsFlags::MS_NODIRATIME),
        "relatime" => (false, MsFlags::MS_RELATIME),
        "norelatime" => (true, MsFlags::MS_RELATIME),
        "strictatime" => (false, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
        "silent" => (false, MsFlags::MS_SILENT),
        "loud" => (true, MsFlags::MS_SILENT),
        _ => return None,
    })
}

pub fn propagation_option(opt: &str) -> Option<MsFlags> {
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

fn recursive_option(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (false, libc::MOUNT_ATTR_RDONLY),
        "rrw" => (true, libc::MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, libc::MOUNT_ATTR_NOSUID),
        "rsuid" => (true, libc::MOUNT_ATTR_NOSUID),
        "rnodev" => (false, libc::MOUNT_ATTR_NODEV),
        "rdev" => (true, libc::MOUNT_ATTR_NODEV),
        "rnoexec" => (false, libc::MOUNT_ATTR_NOEXEC),
        "rexec" => (true, libc::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, libc::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, libc::MOUNT_ATTR_NODIRATIME),
        "rnoatime" => (false, libc::MOUNT_ATTR_NOATIME),
        "rrelatime" => (false, libc::MOUNT_ATTR_RELATIME),
        "rstrictatime" => (false, libc::MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (false, libc::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, libc::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sorts_flags_propagation_and_data() {
        let o = parse(&strings(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave", "ro", "rw"]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let b = parse(&strings(&["rbind", "rro", "rnosuid"]));
        assert!(b.bind && b.recursive_bind);
        assert_eq!(b.rec_set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
    }
}
