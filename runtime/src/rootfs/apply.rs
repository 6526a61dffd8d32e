//! Carries out a [`RootfsPlan`] through [`Sys`], in runc's order:
//!
//! 1. make the host's mounts stop propagating in (rslave, or linux.rootfsPropagation)
//! 2. bind the rootfs onto itself so it is a mount point pivot_root accepts
//! 3. config.json mounts, in order, each destination resolved inside the rootfs
//! 4. /dev devices and symlinks, linux.devices
//! 5. masked and read-only paths; a read-only /dev made so last
//! 6. ([`enter`]) pivot_root (or MS_MOVE + chroot with --no-pivot, or chroot), the
//!    configured propagation, root.readonly
//!
//! Steps 3-5 happen before the pivot, through paths inside the rootfs, so they work
//! whether or not the container mounts /proc. Nothing here looks a host path up after
//! the root changed. Each function is one step; errors name the config field.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;

use super::plan::{After, BindHow, BindPlan, CgroupPlan, Fallback, FsPlan, MountOp, MountPlan, RootSwitch, RootfsPlan};
use crate::error::{Context, Error, Result};
use crate::process::syscalls::{At, Device, Src, Sys};

/// Steps 1-5: everything inside the rootfs, before the root changes (createRuntime and
/// createContainer hooks run between this and [`enter`]).
pub fn prepare(plan: &RootfsPlan, sys: &mut impl Sys) -> Result<()> {
    let rootfs = plan.rootfs.as_path();
    // In the runtime's own mount namespace, / is the host's: left alone.
    if let Some(p) = plan.setup_propagation {
        sys.mount(Src::None, At::Host(Path::new("/")), None, p, None).ctx(|| "set / propagation")?;
    }
    sys.mount(Src::Host(rootfs), At::Host(rootfs), None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
        .ctx(|| format!("bind rootfs {}", rootfs.display()))?;
    sys.open_root(rootfs).ctx(|| format!("open rootfs {}", rootfs.display()))?;
    for m in &plan.mounts {
        mount_one(plan, m, sys)?;
    }
    for dev in &plan.default_devices {
        make_device(sys, dev, plan.bind_devices).map_err(|e| Error::os(format!("create {}", dev.path.display()), e))?;
    }
    for (target, link) in &plan.symlinks {
        sys.mkdir_all(Path::new("/dev"), 0o755)?;
        match sys.symlink(target, link) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::os(format!("symlink {}", link.display()), e)),
        }
    }
    for (field, dev) in &plan.devices {
        make_device(sys, dev, plan.bind_devices)
            .map_err(|e| Error::field(field, format!("{}: {}", dev.path.display(), e.desc())))?;
    }
    mask(sys, &plan.masked)?;
    make_readonly(sys, &plan.readonly)?;
    for (field, dest, flags) in &plan.readonly_dev {
        if plan.console {
            sys.create_file(Path::new("/dev/console"), 0o000).map_err(|e| prefix(field, e))?;
        }
        sys.remount_bind(At::Root(dest), *flags).map_err(|e| os(field, e))?;
    }
    Ok(())
}

/// Step 6 and after: switch the root, restore the configured propagation, make the
/// root read-only if asked.
pub fn enter(plan: &RootfsPlan, sys: &mut impl Sys) -> Result<()> {
    match plan.switch {
        // pivot_root or MS_MOVE would change the host's root: chroot, as runc.
        RootSwitch::Chroot => sys.chroot(&plan.rootfs)?,
        RootSwitch::MoveAndChroot => sys.move_root(&plan.rootfs)?,
        RootSwitch::PivotRoot => sys.pivot_root(&plan.rootfs)?,
    }
    let root = At::Host(Path::new("/"));
    if let Some(p) = plan.final_propagation {
        sys.mount(Src::None, root, None, p, None).ctx(|| "set / propagation")?;
    }
    if plan.readonly_root {
        sys.remount_bind(root, MsFlags::MS_RDONLY).ctx(|| "remount / read-only (root.readonly)")?;
    }
    Ok(())
}

fn mount_one(plan: &RootfsPlan, m: &MountPlan, sys: &mut impl Sys) -> Result<()> {
    match &m.op {
        MountOp::Bind(b) => bind(plan, m, b, sys),
        MountOp::Fs(f) => filesystem(m, f, sys),
        MountOp::Cgroup(c) => {
            sys.mkdir_all(&m.dest, 0o755).map_err(|e| prefix(&m.field, e))?;
            cgroup(m, c, sys).map_err(|e| prefix(&m.field, e))
        }
    }
}

fn bind(plan: &RootfsPlan, m: &MountPlan, b: &BindPlan, sys: &mut impl Sys) -> Result<()> {
    let (field, dest) = (m.field.as_str(), m.dest.as_path());
    let is_dir = match b.is_dir {
        Some(d) => d,
        None => sys.stat(At::Host(&b.source)).map(|st| st.is_dir).map_err(|e| {
            Error::field(format!("{field}.source"), format!("{}: {}", b.source.display(), std::io::Error::from(e)))
        })?,
    };
    // runc makes a missing mount point 0755, a file one included.
    if is_dir { sys.mkdir_all(dest, 0o755) } else { sys.create_file(dest, 0o755) }.map_err(|e| prefix(field, e))?;
    match &b.how {
        BindHow::Idmap { recursive, map } => {
            sys.idmap_bind(&b.source, dest, *recursive, map).map_err(|msg| Error::field(field, msg))?
        }
        BindHow::Tree(index) => {
            sys.attach_tree(*index, dest).map_err(|e| os(field, e))?;
            // The copy was made in the host's mount namespace and shares its
            // propagation: give it what a bind made in here gets.
            sys.mount(Src::None, At::Root(dest), None, plan.attached_propagation, None).map_err(|e| os(field, e))?;
        }
        BindHow::Path { recursive } => {
            let flags = if *recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
            sys.mount(Src::Host(&b.source), At::Root(dest), None, flags, None).map_err(|e| os(field, e))?;
        }
    }
    if !b.remount.is_empty() {
        sys.remount_bind(At::Root(dest), b.remount).map_err(|e| os(field, e))?;
    }
    after(sys, dest, &b.after).map_err(|e| prefix(field, e))
}

fn filesystem(m: &MountPlan, f: &FsPlan, sys: &mut impl Sys) -> Result<()> {
    let (field, dest) = (m.field.as_str(), m.dest.as_path());
    let mode = if f.keep_dir_mode { sys.stat(At::Root(dest)).ok().map(|st| st.mode) } else { None };
    sys.mkdir_all(dest, 0o755).map_err(|e| prefix(field, e))?;
    let data = match mode {
        Some(mode) if f.data.is_empty() => format!("mode={mode:04o}"),
        Some(mode) => format!("mode={mode:04o},{}", f.data),
        None => f.data.clone(),
    };
    // tmpcopyup needs the directory's contents from before the mount hides them.
    if f.tmpcopyup {
        sys.hold_dir(dest).map_err(|e| os(field, e))?;
    }
    let data_opt = (!data.is_empty()).then_some(data.as_str());
    match (sys.mount(Src::Host(&f.source), At::Root(dest), Some(&f.fstype), f.flags, data_opt), &f.fallback) {
        (Ok(()), _) => {}
        (Err(Errno::EPERM), Fallback::BindHost(host, remount)) => {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            sys.mount(Src::Host(host), At::Root(dest), None, flags, None).map_err(|e| os(field, e))?;
            sys.remount_bind(At::Root(dest), *remount).map_err(|e| os(field, e))?;
        }
        (Err(Errno::EINVAL), Fallback::Data(other)) => {
            let other = (!other.is_empty()).then_some(other.as_str());
            sys.mount(Src::Host(&f.source), At::Root(dest), Some(&f.fstype), f.flags, other)
                .map_err(|e| os(field, e))?;
        }
        (Err(e), _) => return Err(os(field, e)),
    }
    if f.tmpcopyup {
        sys.copy_held_into(dest).map_err(|e| prefix(field, e))?;
    }
    if let Some(flags) = f.late_remount {
        sys.remount_bind(At::Root(dest), flags).map_err(|e| os(field, e))?;
    }
    after(sys, dest, &f.after).map_err(|e| prefix(field, e))
}

fn cgroup(m: &MountPlan, c: &CgroupPlan, sys: &mut impl Sys) -> Result<()> {
    if c.tmpfs {
        let tmpfs = Path::new("tmpfs");
        sys.mount(Src::Host(tmpfs), At::Root(&m.dest), Some("tmpfs"), c.flags, Some("mode=755"))
            .ctx(|| "mount tmpfs")?;
    }
    let ro = if c.readonly { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    for h in &c.hierarchies {
        let what = || format!("mount cgroup {}", h.dest.display());
        if c.tmpfs {
            sys.mkdir_all(&h.dest, 0o755)?;
        }
        if c.fresh {
            let source = Path::new(&h.source);
            match sys.mount(Src::Host(source), At::Root(&h.dest), Some(h.fstype), c.flags | ro, h.data.as_deref()) {
                Ok(()) => continue,
                // Not allowed from this user namespace: fall back to a bind mount.
                Err(Errno::EPERM) => {}
                Err(e) => return Err(e).ctx(what),
            }
        }
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        sys.mount(Src::Host(&h.host_dir), At::Root(&h.dest), None, bind, None).ctx(what)?;
        let keep = c.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        sys.remount_bind(At::Root(&h.dest), keep | ro).ctx(what)?;
    }
    if c.tmpfs && c.readonly {
        sys.remount_bind(At::Root(&m.dest), MsFlags::MS_RDONLY).ctx(|| "remount read-only")?;
    }
    Ok(())
}

/// Propagation and recursive attributes, applied to the mount now at `dest`.
fn after(sys: &mut impl Sys, dest: &Path, a: &After) -> Result<()> {
    if !a.propagation.is_empty() {
        sys.mount(Src::None, At::Root(dest), None, a.propagation, None).ctx(|| "set propagation")?;
    }
    if a.rec_set != 0 || a.rec_clear != 0 {
        sys.mount_setattr(At::Root(dest), a.rec_set, a.rec_clear).ctx(|| "mount_setattr")?;
    }
    Ok(())
}

/// A device node, or in a user namespace (where mknod is refused) a bind of the
/// host's, as runc does.
fn make_device(sys: &mut impl Sys, dev: &Device, bind: bool) -> std::result::Result<(), Errno> {
    sys.mkdir_all(dev.path.parent().unwrap_or(Path::new("/dev")), 0o755).map_err(|_| Errno::ENOENT)?;
    if bind {
        sys.create_file(&dev.path, 0o000).map_err(|_| Errno::EACCES)?;
        return sys.mount(Src::Host(&dev.path), At::Root(&dev.path), None, MsFlags::MS_BIND, None);
    }
    sys.mknod(dev)
}

/// linux.maskedPaths: files hidden under /dev/null (the container's own, as runc binds
/// it; the host's where there is none), directories under an empty read-only tmpfs.
/// Paths that don't exist in the container are skipped, as the spec allows.
fn mask(sys: &mut impl Sys, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let dev_null = Path::new("/dev/null");
    let null = if sys.stat(At::Root(dev_null)).is_ok() { Src::Root(dev_null) } else { Src::Host(dev_null) };
    for (i, p) in paths.iter().enumerate() {
        let field = || format!("linux.maskedPaths[{i}]");
        let path = Path::new(p);
        let st = match sys.stat(At::Root(path)) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::field(field(), format!("{p}: {}", e.desc()))),
        };
        // An empty read-only tmpfs with the kernel's defaults, as runc mounts it.
        let result = if st.is_dir {
            sys.mount(Src::Host(Path::new("tmpfs")), At::Root(path), Some("tmpfs"), MsFlags::MS_RDONLY, None)
        } else {
            sys.mount(null, At::Root(path), None, MsFlags::MS_BIND, None)
        };
        result.map_err(|e| Error::field(field(), format!("{p}: {}", e.desc())))?;
    }
    Ok(())
}

/// linux.readonlyPaths: bound onto themselves and remounted read-only, keeping the
/// flags they have (runc adds no nosuid/nodev/noexec here).
fn make_readonly(sys: &mut impl Sys, paths: &[String]) -> Result<()> {
    for (i, p) in paths.iter().enumerate() {
        let err = |e: Errno| Error::field(format!("linux.readonlyPaths[{i}]"), format!("{p}: {}", e.desc()));
        let path = Path::new(p);
        match sys.stat(At::Root(path)) {
            Ok(_) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err(e)),
        }
        sys.mount(Src::Root(path), At::Root(path), None, MsFlags::MS_BIND | MsFlags::MS_REC, None).map_err(err)?;
        sys.remount_bind(At::Root(path), MsFlags::MS_RDONLY).map_err(err)?;
    }
    Ok(())
}

fn os(field: &str, e: Errno) -> Error {
    Error::field(field, e.desc())
}

fn prefix(field: &str, e: Error) -> Error {
    Error::field(field, e.to_string())
}
