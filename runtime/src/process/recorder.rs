//! A [`Sys`] that makes no system call: it writes each call down as one line
//! ("mount proc /proc proc nosuid,nodev,noexec -") and answers lookups from a small
//! made-up filesystem, so tests check the sequence a config produces without root.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::syscalls::{At, Device, IdMap, ProcWriteError, Src, Stat, Sys};
use crate::error::{Error, Result};
use crate::namespaces::{spec_name, Join};

#[derive(Default)]
pub struct Recorder {
    pub calls: Vec<String>,
    /// Paths (inside the rootfs, or "host:/x") that don't exist.
    pub missing: HashSet<String>,
    /// Paths that are files (everything else that exists is a directory).
    pub files: HashSet<String>,
    /// Modes of existing paths (default 0755).
    pub modes: HashMap<String, u32>,
    /// Calls (by the start of their line) that fail with this errno, once each.
    pub fail: Vec<(String, Errno)>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    fn record(&mut self, line: String) -> nix::Result<()> {
        let failing = self.fail.iter().position(|(prefix, _)| line.starts_with(prefix.as_str()));
        self.calls.push(line);
        match failing {
            Some(i) => Err(self.fail.remove(i).1),
            None => Ok(()),
        }
    }

    fn record_result(&mut self, line: String) -> Result<()> {
        self.record(line.clone()).map_err(|e| Error::os(line, e))
    }

    /// Index of the first call starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.starts_with(prefix))
    }

    pub fn index(&self, prefix: &str) -> usize {
        self.position(prefix).unwrap_or_else(|| panic!("no call {prefix:?} in:\n{}", self.calls.join("\n")))
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.calls.iter().filter(|c| c.starts_with(prefix)).count()
    }

    /// Each prefix matches a call after the previous one's.
    pub fn assert_order(&self, prefixes: &[&str]) {
        let mut from = 0;
        for p in prefixes {
            match self.calls[from..].iter().position(|c| c.starts_with(p)) {
                Some(i) => from += i + 1,
                None => panic!("no call {p:?} after call #{from} in:\n{}", self.calls.join("\n")),
            }
        }
    }

    pub fn has(&self, prefix: &str) -> bool {
        self.position(prefix).is_some()
    }

    fn lookup(&self, key: String) -> nix::Result<Stat> {
        if self.missing.contains(&key) {
            return Err(Errno::ENOENT);
        }
        Ok(Stat { is_dir: !self.files.contains(&key), mode: self.modes.get(&key).copied().unwrap_or(0o755) })
    }
}

pub fn at(a: At) -> String {
    match a {
        At::Root(p) => p.display().to_string(),
        At::Host(p) => format!("host:{}", p.display()),
    }
}

fn src(s: Src) -> String {
    match s {
        Src::None => "none".into(),
        Src::Host(p) => p.display().to_string(),
        Src::Root(p) => format!("root:{}", p.display()),
    }
}

pub fn flags(f: MsFlags) -> String {
    const NAMES: [(MsFlags, &str); 20] = [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_REMOUNT, "remount"),
        (MsFlags::MS_MANDLOCK, "mand"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_MOVE, "move"),
        (MsFlags::MS_SILENT, "silent"),
        (MsFlags::MS_UNBINDABLE, "unbindable"),
        (MsFlags::MS_PRIVATE, "private"),
        (MsFlags::MS_SLAVE, "slave"),
        (MsFlags::MS_SHARED, "shared"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
        (MsFlags::MS_REC, "rec"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(f2, _)| f.contains(*f2)).map(|(_, n)| *n).collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn clone_flags(f: CloneFlags) -> String {
    let names = [
        (CloneFlags::CLONE_NEWUSER, "user"),
        (CloneFlags::CLONE_NEWNS, "mnt"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        (CloneFlags::from_bits_retain(libc::CLONE_NEWTIME), "time"),
    ];
    names.iter().filter(|(f2, _)| f.contains(*f2)).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

fn maps(m: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    m.iter().map(|m| format!("{}:{}:{}", m.container_id(), m.host_id(), m.size())).collect::<Vec<_>>().join(",")
}

impl Sys for Recorder {
    fn setns(&mut self, join: &Join) -> nix::Result<()> {
        self.record(format!("setns {}", spec_name(join.typ)))
    }

    fn unshare(&mut self, f: CloneFlags) -> nix::Result<()> {
        self.record(format!("unshare {}", clone_flags(f)))
    }

    fn become_root(&mut self) -> Result<()> {
        self.record_result("become_root".into())
    }

    fn sethostname(&mut self, name: &str) -> nix::Result<()> {
        self.record(format!("sethostname {name}"))
    }

    fn setdomainname(&mut self, name: &str) -> nix::Result<()> {
        self.record(format!("setdomainname {name}"))
    }

    fn join_session_keyring(&mut self) -> Result<()> {
        self.record_result("keyring".into())
    }

    fn write_proc(&mut self, rel: &str, value: &[u8]) -> std::result::Result<(), ProcWriteError> {
        let v = String::from_utf8_lossy(value).trim_end().replace('\n', ";");
        self.record(format!("write /proc/{rel} {v}")).map_err(ProcWriteError::Write)
    }

    fn setrlimit(&mut self, resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> nix::Result<()> {
        self.record(format!("setrlimit {resource} {soft} {hard}"))
    }

    fn ioprio_set(&mut self, value: i64) -> nix::Result<()> {
        self.record(format!("ioprio_set {value:#x}"))
    }

    fn sched_setattr(&mut self, a: &super::attrs::SchedAttr) -> nix::Result<()> {
        self.record(format!(
            "sched_setattr policy={} nice={} priority={}",
            a.sched_policy, a.sched_nice, a.sched_priority
        ))
    }

    fn personality(&mut self, persona: libc::c_ulong) -> nix::Result<()> {
        self.record(format!("personality {persona:#x}"))
    }

    fn mount(&mut self, s: Src, t: At, fstype: Option<&str>, f: MsFlags, data: Option<&str>) -> nix::Result<()> {
        self.record(format!(
            "mount {} {} {} {} {}",
            src(s),
            at(t),
            fstype.unwrap_or("-"),
            flags(f),
            data.unwrap_or("-")
        ))
    }

    fn remount_bind(&mut self, t: At, f: MsFlags) -> nix::Result<()> {
        self.record(format!("remount_bind {} {}", at(t), flags(f)))
    }

    fn mount_setattr(&mut self, t: At, set: u64, clear: u64) -> nix::Result<()> {
        self.record(format!("mount_setattr {} set={set:#x} clear={clear:#x}", at(t)))
    }

    fn open_root(&mut self, rootfs: &Path) -> nix::Result<()> {
        self.record(format!("open_root {}", rootfs.display()))
    }

    fn stat(&mut self, a: At) -> nix::Result<Stat> {
        let key = at(a);
        self.record(format!("stat {key}"))?;
        self.lookup(key)
    }

    fn mkdir_all(&mut self, path: &Path, mode: u32) -> Result<()> {
        self.record_result(format!("mkdir {} {mode:o}", path.display()))
    }

    fn create_file(&mut self, path: &Path, mode: u32) -> Result<()> {
        self.record_result(format!("create_file {} {mode:o}", path.display()))
    }

    fn mknod(&mut self, d: &Device) -> nix::Result<()> {
        let kind = match d.kind {
            nix::sys::stat::SFlag::S_IFBLK => "b",
            nix::sys::stat::SFlag::S_IFIFO => "p",
            _ => "c",
        };
        self.record(format!(
            "mknod {} {kind} {}:{} {:o} {}:{}",
            d.path.display(),
            d.major,
            d.minor,
            d.mode,
            d.uid,
            d.gid
        ))
    }

    fn symlink(&mut self, target: &str, link: &Path) -> nix::Result<()> {
        self.record(format!("symlink {target} {}", link.display()))
    }

    fn attach_tree(&mut self, index: usize, target: &Path) -> nix::Result<()> {
        self.record(format!("attach_tree {index} {}", target.display()))
    }

    fn idmap_bind(&mut self, source: &Path, target: &Path, rec: bool, m: &IdMap) -> std::result::Result<(), String> {
        let line = format!(
            "idmap_bind {} {} rec={rec} uid={} gid={}",
            source.display(),
            target.display(),
            maps(&m.uid),
            maps(&m.gid)
        );
        self.record(line).map_err(|e| e.desc().to_string())
    }

    fn hold_dir(&mut self, path: &Path) -> nix::Result<()> {
        self.record(format!("hold_dir {}", path.display()))
    }

    fn copy_held_into(&mut self, path: &Path) -> Result<()> {
        self.record_result(format!("copy_up {}", path.display()))
    }

    fn pivot_root(&mut self, rootfs: &Path) -> Result<()> {
        self.record_result(format!("pivot_root {}", rootfs.display()))
    }

    fn move_root(&mut self, rootfs: &Path) -> Result<()> {
        self.record_result(format!("move_root {}", rootfs.display()))
    }

    fn chroot(&mut self, rootfs: &Path) -> Result<()> {
        self.record_result(format!("chroot {}", rootfs.display()))
    }
}

/// A config and what the parent knows besides it, for building plans in tests.
pub struct Setup {
    pub spec: oci_spec::runtime::Spec,
    pub cgroup: crate::cgroups::Cgroup,
    pub sources: crate::rootfs::BindSources,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub caller: crate::rootless::Caller,
}

/// A minimal config (mount and pid namespaces, no mounts) with `extra` merged in: its
/// top-level keys replace the base's, except "linux", whose keys are merged.
pub fn config(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "ociVersion": "1.2.0",
        "root": { "path": "rootfs" },
        "process": { "cwd": "/", "args": ["sh"], "user": { "uid": 0, "gid": 0 } },
        "linux": { "namespaces": [{ "type": "mount" }, { "type": "pid" }] },
    });
    for (k, v) in extra.as_object().expect("an object") {
        match (k.as_str(), v) {
            ("linux", serde_json::Value::Object(l)) => {
                let linux = base["linux"].as_object_mut().expect("object");
                linux.extend(l.clone());
            }
            _ => {
                base[k] = v.clone();
            }
        }
    }
    base
}

/// A cgroup v2 host: the container's cgroup is /strata/t.
pub fn unified_cgroup() -> crate::cgroups::Cgroup {
    use crate::cgroups::{Cgroup, CgroupDir, Version};
    let dir = CgroupDir {
        mountpoint: "/sys/fs/cgroup".into(),
        controllers: vec![],
        version: Version::V2,
        path: "/strata/t".into(),
        runtime_path: "/".into(),
    };
    let mut cgroup = Cgroup::default();
    cgroup.dirs = vec![dir];
    cgroup
}

impl Setup {
    pub fn new(config: serde_json::Value) -> Setup {
        Setup {
            spec: serde_json::from_value(config).expect("a valid config"),
            cgroup: unified_cgroup(),
            sources: crate::rootfs::BindSources::default(),
            no_pivot: false,
            no_new_keyring: false,
            caller: crate::rootless::Caller {
                euid: 0,
                in_user_ns: false,
                xdg_runtime_dir: None,
                user: Some("root".into()),
            },
        }
    }

    /// The namespace plan and the init's plan, as the parent builds them.
    pub fn plan(&self) -> Result<(crate::namespaces::NamespacePlan, super::plan::InitPlan)> {
        let opts = super::InitOptions {
            id: "t",
            spec: &self.spec,
            bundle: Path::new("/b"),
            rootfs: Path::new("/b/rootfs"),
            exec_fifo: PathBuf::new(),
            cgroup: &self.cgroup,
            namespaces: crate::namespaces::plan(&self.spec)?,
            no_pivot: self.no_pivot,
            preserve_fds: 0,
            no_new_keyring: self.no_new_keyring,
            console_socket: None,
            seccomp: None,
            caller: self.caller.clone(),
        };
        let plan = super::plan::build(&opts, &self.sources)?;
        Ok((opts.namespaces, plan))
    }

    /// Runs the whole setup sequence against `rec` (up to the identity change, which
    /// runs under the early seccomp filter); the error, if a step failed.
    pub fn try_run(&self, rec: &mut Recorder) -> Result<()> {
        let (ns, plan) = self.plan()?;
        super::steps::join_namespaces(&ns, rec)?;
        super::steps::after_go(&plan, rec)?;
        super::steps::enter_root(&plan, rec)?;
        // (The console is set up here, outside Sys.)
        super::exec::prepare_unfiltered(&plan.process, rec)
    }

    pub fn run_with(&self, mut rec: Recorder) -> Recorder {
        if let Err(e) = self.try_run(&mut rec) {
            panic!("setup failed: {e}\n{}", rec.calls.join("\n"));
        }
        rec
    }

    pub fn run(&self) -> Recorder {
        self.run_with(Recorder::new())
    }
}
