//! The filesystem part of the init's plan, built by the parent from config.json before
//! the clone: every mount with its source, destination (inside the rootfs), flags,
//! data, fallbacks and propagation; the devices; masked and read-only paths; how the
//! root changes. [`super::apply`] carries it out and decides nothing but what only the
//! container's filesystem can answer (a mount point's current mode, whether a masked
//! path exists, whether a bind source is a directory when the parent could not open it).

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use super::options::{self, MountOptions};
pub use super::plan_cgroup::{CgroupPlan, Hierarchy};
use super::BindSources;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::process::syscalls::{Device, IdMap};

/// Flags a bind remount keeps; the rest are per-superblock and can't change there.
pub const BIND_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// What the plan needs beyond config.json.
pub struct Inputs<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: &'a Cgroup,
    /// The container has its own cgroup namespace (mount cgroupfs, not binds).
    pub new_cgroup_ns: bool,
    /// The init runs in a user namespace (devices are bind-mounted, not made).
    pub in_user_ns: bool,
    pub no_pivot: bool,
    /// The init has a mount namespace of its own (new or joined).
    pub own_mount_ns: bool,
    /// Bind sources the runtime opened ([`super::open_bind_sources`]).
    pub sources: &'a BindSources,
    /// Whether the host has /proc/kcore (the /dev/core link is made only then).
    pub has_kcore: bool,
}

#[derive(Debug)]
pub struct RootfsPlan {
    pub rootfs: PathBuf,
    /// Propagation of / while setting up (None: the runtime's own mount namespace).
    pub setup_propagation: Option<MsFlags>,
    /// Propagation as configured, applied after the root changed (when it differs).
    pub final_propagation: Option<MsFlags>,
    /// Propagation a bind the parent opened gets once attached.
    pub attached_propagation: MsFlags,
    pub mounts: Vec<MountPlan>,
    pub default_devices: Vec<Device>,
    /// /dev/fd, /dev/stdin ... made with the default devices.
    pub symlinks: Vec<(&'static str, &'static Path)>,
    /// linux.devices, with the field to name on error.
    pub devices: Vec<(String, Device)>,
    /// Devices are bind-mounted from the host (user namespace), not made.
    pub bind_devices: bool,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    /// A read-only /dev mount, remounted read-only last.
    pub readonly_dev: Vec<(String, PathBuf, MsFlags)>,
    /// Make the /dev/console mount point before that (process.terminal).
    pub console: bool,
    pub switch: RootSwitch,
    pub readonly_root: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootSwitch {
    PivotRoot,
    /// --no-pivot.
    MoveAndChroot,
    /// No mount namespace of the container's own.
    Chroot,
}

#[derive(Debug)]
pub struct MountPlan {
    /// "mounts[N] (DEST)", for errors.
    pub field: String,
    pub dest: PathBuf,
    pub op: MountOp,
}

#[derive(Debug)]
pub enum MountOp {
    Bind(BindPlan),
    Fs(FsPlan),
    Cgroup(CgroupPlan),
}

#[derive(Debug)]
pub struct BindPlan {
    pub source: PathBuf,
    /// Directory or file mount point; None: the init looks (the parent did not open it).
    pub is_dir: Option<bool>,
    pub how: BindHow,
    /// The read-only (etc.) remount after the bind, when not empty.
    pub remount: MsFlags,
    pub after: After,
}

#[derive(Debug)]
pub enum BindHow {
    Path {
        recursive: bool,
    },
    /// The parent's detached copy, by mount index.
    Tree(usize),
    Idmap {
        recursive: bool,
        map: IdMap,
    },
}

#[derive(Debug)]
pub struct FsPlan {
    pub source: PathBuf,
    pub fstype: String,
    pub flags: MsFlags,
    pub data: String,
    /// A tmpfs keeps the mode of the directory it covers (prefixed as mode=).
    pub keep_dir_mode: bool,
    pub tmpcopyup: bool,
    /// Remount with these once filled (a read-only tmpfs).
    pub late_remount: Option<MsFlags>,
    pub fallback: Fallback,
    pub after: After,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Fallback {
    None,
    /// EPERM (sysfs, mqueue without their namespace): bind the host's, remount with flags.
    BindHost(&'static Path, MsFlags),
    /// EINVAL from devpts with an unmapped gid=: again with this data.
    Data(String),
}

/// Propagation and recursive attributes once mounted.
#[derive(Debug)]
pub struct After {
    pub propagation: MsFlags,
    pub rec_set: u64,
    pub rec_clear: u64,
}

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const SYMLINKS: [(&str, &str); 6] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
];

pub fn build(i: &Inputs) -> Result<RootfsPlan> {
    let linux = i.spec.linux().as_ref();
    let propagation = propagation(i.spec)?;
    let setup = first_propagation(propagation);
    let spec_mounts = i.spec.mounts().as_deref().unwrap_or(&[]);
    let mounts = spec_mounts.iter().enumerate().map(|(n, m)| plan_mount(i, n, m)).collect::<Result<_>>()?;
    let wants_defaults = wants_default_devices(spec_mounts);
    let default_devices = if wants_defaults {
        DEFAULT_DEVICES
            .iter()
            .map(|&(p, major, minor)| Device {
                path: p.into(),
                kind: SFlag::S_IFCHR,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            })
            .collect()
    } else {
        Vec::new()
    };
    // A kernel without CONFIG_PROC_KCORE has no /proc/kcore: no dangling link (runc's rule).
    let symlinks = if wants_defaults {
        SYMLINKS.iter().filter(|(_, l)| *l != "/dev/core" || i.has_kcore).map(|&(t, l)| (t, Path::new(l))).collect()
    } else {
        Vec::new()
    };
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or_default();
    let devices = devices.iter().enumerate().map(|(n, d)| configured_device(n, d)).collect::<Result<_>>()?;
    let readonly_dev = spec_mounts
        .iter()
        .enumerate()
        .filter_map(|(n, m)| {
            let o = options::parse(m.options().as_deref().unwrap_or(&[]));
            let is_bind = o.bind || m.typ().as_deref() == Some("bind");
            (!is_bind && is_dev(m.destination()) && o.flags.contains(MsFlags::MS_RDONLY))
                .then(|| (field(n, m), m.destination().clone(), o.flags & BIND_FLAGS))
        })
        .collect();
    Ok(RootfsPlan {
        rootfs: i.rootfs.to_path_buf(),
        setup_propagation: i.own_mount_ns.then_some(setup | MsFlags::MS_REC),
        final_propagation: (propagation != setup).then_some(propagation),
        attached_propagation: setup,
        mounts,
        default_devices,
        symlinks,
        devices,
        bind_devices: i.in_user_ns,
        masked: linux.and_then(|l| l.masked_paths().clone()).unwrap_or_default(),
        readonly: linux.and_then(|l| l.readonly_paths().clone()).unwrap_or_default(),
        readonly_dev,
        console: i.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false),
        switch: match (i.own_mount_ns, i.no_pivot) {
            (false, _) => RootSwitch::Chroot,
            (true, true) => RootSwitch::MoveAndChroot,
            (true, false) => RootSwitch::PivotRoot,
        },
        readonly_root: i.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
    })
}

fn field(n: usize, m: &Mount) -> String {
    format!("mounts[{n}] ({})", m.destination().display())
}

fn plan_mount(i: &Inputs, n: usize, m: &Mount) -> Result<MountPlan> {
    let field = field(n, m);
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination().clone();
    let op = if typ == "cgroup" {
        MountOp::Cgroup(super::plan_cgroup::build(i, &dest, &opts))
    } else if opts.bind || typ == "bind" {
        MountOp::Bind(plan_bind(i, n, m, &field, opts)?)
    } else {
        MountOp::Fs(plan_fs(m, &field, typ, opts)?)
    };
    Ok(MountPlan { field, dest, op })
}

fn plan_bind(i: &Inputs, n: usize, m: &Mount, field: &str, opts: MountOptions) -> Result<BindPlan> {
    let source =
        m.source().as_ref().ok_or_else(|| Error::field(format!("{field}.source"), "a bind mount needs a source"))?;
    let source = if source.is_relative() { i.bundle.join(source) } else { source.clone() };
    let tree = i.sources.get(n);
    // Options the runtime doesn't know are filesystem data (config.md), which a bind
    // has none of: the kernel ignores them, and so does runc. Not an error.
    let how = if opts.idmap || m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        // The mount's own maps, else the container's (runc's rule).
        let linux = i.spec.linux().as_ref();
        let uid = m.uid_mappings().as_ref().or_else(|| linux.and_then(|l| l.uid_mappings().as_ref()));
        let gid = m.gid_mappings().as_ref().or_else(|| linux.and_then(|l| l.gid_mappings().as_ref()));
        match (uid, gid) {
            (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => BindHow::Idmap {
                recursive: opts.idmap_recursive || opts.recursive_bind,
                map: IdMap { uid: u.clone(), gid: g.clone() },
            },
            _ => return Err(Error::field(field, "an idmapped mount needs uidMappings and gidMappings")),
        }
    } else if tree.is_some() {
        BindHow::Tree(n)
    } else {
        BindHow::Path { recursive: opts.recursive_bind }
    };
    Ok(BindPlan { source, is_dir: tree.map(|t| t.is_dir), how, remount: opts.flags & BIND_FLAGS, after: after(&opts) })
}

fn plan_fs(m: &Mount, field: &str, typ: &str, opts: MountOptions) -> Result<FsPlan> {
    if opts.tmpcopyup && typ != "tmpfs" {
        return Err(Error::field(format!("{field}.options"), "tmpcopyup only applies to tmpfs"));
    }
    // As runc: a tmpfs is made read-only only once filled (tmpcopyup), and /dev only
    // after its devices, symlinks and mount points below it are made (readonly_dev).
    let dev = is_dev(m.destination());
    let late_ro = (typ == "tmpfs" || dev) && opts.flags.contains(MsFlags::MS_RDONLY);
    let mut flags = opts.flags - MsFlags::MS_REMOUNT;
    if late_ro {
        flags.remove(MsFlags::MS_RDONLY);
    }
    let data = opts.data.join(",");
    let fallback = match typ {
        // Without a private network/ipc namespace (or in a user namespace) the kernel
        // refuses a new sysfs/mqueue: runc binds the host's, and so do we.
        "sysfs" => Fallback::BindHost(Path::new("/sys"), flags & BIND_FLAGS),
        "mqueue" => Fallback::BindHost(Path::new("/dev/mqueue"), flags & BIND_FLAGS),
        // A devpts gid= that isn't mapped in the user namespace: drop it, as runc does.
        "devpts" if data.contains("gid=") => {
            Fallback::Data(opts.data.iter().filter(|o| !o.starts_with("gid=")).cloned().collect::<Vec<_>>().join(","))
        }
        _ => Fallback::None,
    };
    Ok(FsPlan {
        source: m.source().clone().unwrap_or_else(|| PathBuf::from(typ)),
        fstype: typ.to_string(),
        flags,
        data,
        // A tmpfs over an existing directory keeps the directory's mode unless the
        // options set one (runc; 1.1 chmods after mounting: conformance/README.md).
        keep_dir_mode: typ == "tmpfs",
        tmpcopyup: opts.tmpcopyup,
        late_remount: (late_ro && !dev).then_some(opts.flags & BIND_FLAGS),
        fallback,
        after: after(&opts),
    })
}

fn after(opts: &MountOptions) -> After {
    let mut rec_clear = opts.rec_clear;
    // Changing the atime mode needs the whole atime field cleared first.
    if opts.rec_set & libc::MOUNT_ATTR__ATIME != 0 {
        rec_clear |= libc::MOUNT_ATTR__ATIME;
    }
    After { propagation: opts.propagation, rec_set: opts.rec_set, rec_clear }
}

fn configured_device(n: usize, d: &oci_spec::runtime::LinuxDevice) -> Result<(String, Device)> {
    let field = format!("linux.devices[{n}]");
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(Error::field(format!("{field}.type"), "\"a\" is not a device type")),
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::field(format!("{field}.path"), format!("{} is not under /dev", d.path().display())));
    }
    let dev = Device {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    };
    Ok((field, dev))
}

/// runc's rule: the default devices are made unless the config bind-mounts /dev itself.
fn wants_default_devices(mounts: &[Mount]) -> bool {
    !mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options().as_ref().is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind")))
    })
}

fn is_dev(dest: &Path) -> bool {
    dest.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .eq(Path::new("/dev").components().skip(1))
}

/// linux.rootfsPropagation, rslave by default (runc's).
fn propagation(spec: &Spec) -> Result<MsFlags> {
    match spec.linux().as_ref().and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        Some(p) => options::propagation_option(p)
            .ok_or_else(|| Error::field("linux.rootfsPropagation", format!("{p:?} is not a propagation mode"))),
    }
}

/// The propagation while setting up: never shared (what we mount must not reach back
/// into the host), never unbindable (the rootfs is bind-mounted onto itself). The
/// configured one is applied to / after pivot_root.
fn first_propagation(p: MsFlags) -> MsFlags {
    if p.contains(MsFlags::MS_SHARED) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else if p.contains(MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_PRIVATE | MsFlags::MS_REC
    } else {
        p
    }
}
