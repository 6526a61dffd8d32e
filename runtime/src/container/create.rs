//! `create`: validate everything, take the id, make the cgroup, clone the init and wait
//! until it is ready; on any failure undo all of it (init, cgroup, state directory).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::state::{now_rfc3339, ContainerState};
use super::{checkpoint, Footprint, Store, EXEC_FIFO};
use crate::cgroups::{self, Cgroup, Layout};
use crate::config;
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::process::{self, InitOptions, EXEC_FIFO_MODE};
use crate::sys::proc_stat;

#[derive(Default, Clone, Debug)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Instead of --console-socket: an already connected socket (`run`'s own console).
    pub console_fd: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: the cgroup is a systemd unit.
    pub systemd_cgroup: bool,
}

pub fn create(store: &Store, id: &str, opts: &CreateOptions) -> Result<ContainerState> {
    super::id::validate(id)?;
    // Socket activation (systemd's LISTEN_FDS): those fds go first, then --preserve-fds.
    let listen_fds = listen_fds();
    let preserve_fds = listen_fds + opts.preserve_fds;
    process::check_preserved_fds(preserve_fds)?;
    let mut bundle = config::load_bundle(&opts.bundle)?;
    if listen_fds > 0 {
        if let Some(p) = bundle.spec.process_mut().as_mut() {
            let env = p.env_mut().get_or_insert_with(Vec::new);
            env.push(format!("LISTEN_FDS={listen_fds}"));
            env.push("LISTEN_PID=1".into());
        }
    }
    let process = bundle.spec.process().as_ref().expect("validated");
    if process.terminal().unwrap_or(false) && opts.console_socket.is_none() && opts.console_fd.is_none() {
        return Err(Error::field("process.terminal", "a terminal needs --console-socket (or set terminal to false)"));
    }
    let plan = namespaces::plan(&bundle.spec)?;
    let seccomp = crate::seccomp::compile(&bundle.spec, process.no_new_privileges().unwrap_or(false))?;
    let layout = Layout::detect()?;
    let caller = crate::rootless::Caller::current();
    let rootless = caller.is_rootless();
    let cgroups_path = bundle.spec.linux().as_ref().and_then(|l| l.cgroups_path().as_deref());
    let mut cgroup = cgroups::resolve_for(&layout, cgroups_path, id, opts.systemd_cgroup)?;
    let linux = bundle.spec.linux().as_ref();
    let resources = linux.and_then(|l| l.resources().clone()).unwrap_or_default();
    let device_rules = cgroups::resources::devices::rules(
        resources.devices().as_deref().unwrap_or_default(),
        linux.and_then(|l| l.devices().as_deref()).unwrap_or_default(),
    )?;

    let rdt = crate::intelrdt::for_create(&bundle.spec, id)?;

    let console_socket = match (&opts.console_fd, &opts.console_socket, process.terminal().unwrap_or(false)) {
        (Some(fd), _, true) => Some(fd.try_clone().ctx(|| "dup the console socket")?),
        (None, Some(path), true) => Some(crate::console::connect(path)?),
        _ => None,
    };

    // From here on every step is recorded in the state directory before it is made, so
    // `delete -f` undoes a create killed at any point (see Footprint).
    let locked = store.reserve(id)?;
    checkpoint("create:reserved");
    let mut pid = None;
    let mut footprint = Footprint::default();
    let result = (|| {
        make_exec_fifo(&locked.dir.join(EXEC_FIFO))?;
        let fifo = open_for_init(&locked.dir.join(EXEC_FIFO), preserve_fds)?;
        footprint.cgroup = Some(planned(&cgroup));
        locked.record(&footprint)?;
        checkpoint("create:cgroup-recorded");
        if cgroup.systemd.is_some() {
            // systemd makes the cgroup when the unit starts, with the init's pid: the
            // limits come then, still before the init goes on.
            cgroup.defer_to_systemd(id, &resources, &device_rules, bundle.spec.annotations().iter().flatten())?;
        } else if rootless {
            let denied = cgroup.create_permitted()?;
            cgroups::rootless::check_denials(&denied, &resources, cgroups_path.is_some())?;
            cgroups::resources::apply(&cgroup, &resources, None)?;
        } else {
            cgroup.create()?;
            // Limits before the init is placed in the cgroup: it never runs unlimited.
            cgroups::resources::apply(&cgroup, &resources, Some(&device_rules))?;
        }
        checkpoint("create:cgroup-made");
        if let Some(r) = &rdt {
            r.prepare()?;
        }
        let init = InitOptions {
            id,
            spec: &bundle.spec,
            bundle: &bundle.dir,
            rootfs: &bundle.rootfs,
            exec_fifo: PathBuf::from(format!("/proc/self/fd/{}", fifo.as_raw_fd())),
            cgroup: &cgroup,
            namespaces: plan,
            no_pivot: opts.no_pivot,
            preserve_fds,
            no_new_keyring: opts.no_new_keyring,
            console_socket,
            seccomp,
            caller: caller.clone(),
        };
        let (p, channel) = process::spawn_init(&init).map_err(|(p, e)| {
            pid = p;
            explain_init_death(&cgroup, &resources, e)
        })?;
        pid = Some(p);
        if let Some(r) = &rdt {
            r.enter(p)?;
        }
        let start = proc_stat(p).ok_or_else(|| Error::Init("container init exited right after setup".into()))?;
        footprint.cgroup = Some(cgroup.clone());
        footprint.pid = Some(p);
        footprint.pid_start_time = Some(start.start_time);
        locked.record(&footprint)?;
        checkpoint("create:init-ready");
        let state = ContainerState {
            id: id.to_string(),
            pid: p,
            pid_start_time: start.start_time,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: now_rfc3339(),
            cgroup: cgroup.clone(),
            config: bundle.spec.clone(),
        };
        locked.save(&state)?;
        checkpoint("create:state-saved");
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, p)?;
        }
        checkpoint("create:pid-file-written");
        // Recorded: the init may outlive us now (until this Go it exits if we die).
        channel.send(&process::sync::Message::Go)?;
        Ok(state)
    })();
    if result.is_err() {
        undo(pid, &cgroup);
        if let Some(r) = &rdt {
            r.remove();
        }
        let _ = locked.remove();
    }
    result
}

/// systemd socket activation: fds from 3 are ours to pass only when LISTEN_PID names
/// this very process (sd_listen_fds' rule, and runc's); otherwise LISTEN_FDS was meant
/// for another process and fd 3 may be anything, a host secret included.
fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|v| v.parse::<u32>().ok()) == Some(std::process::id());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The cgroup as it will be once made: `created` lists the directories missing now,
/// parents first, so a record written before the mkdirs covers them.
fn planned(cgroup: &Cgroup) -> Cgroup {
    let mut planned = cgroup.clone();
    for dir in &cgroup.dirs {
        let mut missing = Vec::new();
        let mut p = dir.full();
        while !p.exists() && p != dir.mountpoint {
            missing.push(p.clone());
            p = p.parent().unwrap_or(&dir.mountpoint).to_path_buf();
        }
        planned.created.extend(missing.into_iter().rev());
    }
    planned
}

/// Kills and reaps a half-made init and removes the cgroup strata made for it.
fn undo(pid: Option<i32>, cgroup: &Cgroup) {
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
    let _ = cgroup.remove();
}

fn make_exec_fifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(EXEC_FIFO_MODE)).ctx(|| format!("mkfifo {}", path.display()))?;
    // mkfifo honours the umask; the init may open it as a non-root user.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(EXEC_FIFO_MODE))
        .ctx(|| format!("chmod {}", path.display()))
}

/// The exec fifo as an O_PATH fd the init inherits and reopens through /proc/self/fd:
/// an init in a new user namespace can't traverse the private (0700) state root, so it
/// must not need the path (runc hands its init the fifo the same way). Placed above the
/// fds to preserve, close-on-exec.
fn open_for_init(path: &Path, preserve_fds: u32) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))?;
    let above = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3 + preserve_fds as i32))
        .ctx(|| format!("dup {}", path.display()))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(above) })
}

/// Writes the pid atomically, as engines poll for the file and read it at once. The
/// temporary file is made new (O_EXCL, O_NOFOLLOW), never opened if something is already
/// there: the directory may belong to another user who plants a symlink (runc refuses too).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .ctx(|| format!("--pid-file: create {}", tmp.display()))?;
    let written = f.write_all(pid.to_string().as_bytes()).ctx(|| format!("--pid-file: write {}", tmp.display()));
    let result =
        written.and_then(|()| std::fs::rename(&tmp, path).ctx(|| format!("--pid-file: rename to {}", path.display())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An init that died during setup with nothing to say was most often OOM-killed by a
/// memory limit too low for it: say so, naming the field, instead of the broken pipe.
fn explain_init_death(cgroup: &cgroups::Cgroup, resources: &oci_spec::runtime::LinuxResources, e: Error) -> Error {
    if cgroups::stats::oom_kills(cgroup) == 0 {
        return e;
    }
    let limit = resources.memory().as_ref().and_then(|m| m.limit());
    let limit = limit.map(|l| format!(" ({l} bytes)")).unwrap_or_default();
    Error::Init(format!(
        "the container's init was OOM-killed during setup: linux.resources.memory.limit{limit} is too low"
    ))
}
