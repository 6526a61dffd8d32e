//! `create`: validate everything, take the id, make the cgroup, clone the init and wait
//! until it is ready; on any failure undo all of it (init, cgroup, state directory).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;

use super::state::{now_rfc3339, ContainerState};
use super::{Store, EXEC_FIFO};
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
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: the cgroup is a systemd unit.
    pub systemd_cgroup: bool,
}

pub fn create(store: &Store, id: &str, opts: &CreateOptions) -> Result<ContainerState> {
    super::id::validate(id)?;
    // Socket activation (systemd's LISTEN_FDS): those fds go first, then --preserve-fds.
    let listen_fds: u32 = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let preserve_fds = listen_fds + opts.preserve_fds;
    check_preserved_fds(preserve_fds)?;
    let mut bundle = config::load_bundle(&opts.bundle)?;
    if listen_fds > 0 {
        if let Some(p) = bundle.spec.process_mut().as_mut() {
            let env = p.env_mut().get_or_insert_with(Vec::new);
            env.push(format!("LISTEN_FDS={listen_fds}"));
            env.push("LISTEN_PID=1".into());
        }
    }
    let process = bundle.spec.process().as_ref().expect("validated");
    if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
        return Err(Error::field("process.terminal", "a terminal needs --console-socket (or set terminal to false)"));
    }
    let plan = namespaces::plan(&bundle.spec)?;
    let seccomp = crate::seccomp::compile(&bundle.spec, process.no_new_privileges().unwrap_or(false))?;
    let layout = Layout::detect()?;
    let cgroups_path = bundle.spec.linux().as_ref().and_then(|l| l.cgroups_path().as_deref());
    let mut cgroup = cgroups::resolve_for(&layout, cgroups_path, id, opts.systemd_cgroup)?;
    let linux = bundle.spec.linux().as_ref();
    let resources = linux.and_then(|l| l.resources().clone()).unwrap_or_default();
    let device_rules = cgroups::resources::devices::rules(
        resources.devices().as_deref().unwrap_or_default(),
        linux.and_then(|l| l.devices().as_deref()).unwrap_or_default(),
    )?;

    let console_socket = match (&opts.console_socket, process.terminal().unwrap_or(false)) {
        (Some(path), true) => Some(crate::console::connect(path)?),
        _ => None,
    };

    let locked = store.reserve(id)?;
    let mut pid = None;
    let result = (|| {
        make_exec_fifo(&locked.dir.join(EXEC_FIFO))?;
        if cgroup.systemd.is_some() {
            // systemd makes the cgroup when the unit starts, with the init's pid: the
            // limits come then, still before the init goes on.
            cgroup.defer_to_systemd(id, &resources, &device_rules, bundle.spec.annotations().iter().flatten())?;
        } else {
            cgroup.create()?;
            // Limits before the init is placed in the cgroup: it never runs unlimited.
            cgroups::resources::apply(&cgroup, &resources, Some(&device_rules))?;
        }
        let init = InitOptions {
            id,
            spec: &bundle.spec,
            bundle: &bundle.dir,
            rootfs: &bundle.rootfs,
            exec_fifo: locked.dir.join(EXEC_FIFO),
            cgroup: &cgroup,
            namespaces: plan,
            no_pivot: opts.no_pivot,
            preserve_fds,
            no_new_keyring: opts.no_new_keyring,
            console_socket,
            seccomp,
        };
        let p = process::spawn_init(&init).map_err(|(p, e)| {
            pid = p;
            e
        })?;
        pid = Some(p);
        let start = proc_stat(p).ok_or_else(|| Error::Init("container init exited right after setup".into()))?;
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
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, p)?;
        }
        Ok(state)
    })();
    if result.is_err() {
        undo(pid, &cgroup);
        let _ = locked.remove();
    }
    result
}

/// Kills and reaps a half-made init and removes the cgroup strata made for it.
fn undo(pid: Option<i32>, cgroup: &Cgroup) {
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
    let _ = cgroup.remove();
}

/// The fds to pass on must be open now: otherwise the runtime's own files (the lock,
/// the sync socket) would take those numbers and leak into the container.
fn check_preserved_fds(n: u32) -> Result<()> {
    for fd in 3..3 + n as i32 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Refused(format!("--preserve-fds {n}: fd {fd} is not open")));
        }
    }
    Ok(())
}

fn make_exec_fifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(EXEC_FIFO_MODE)).ctx(|| format!("mkfifo {}", path.display()))?;
    // mkfifo honours the umask; the init may open it as a non-root user.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(EXEC_FIFO_MODE)).ctx(|| format!("chmod {}", path.display()))
}

/// Writes the pid atomically, as engines poll for the file and read it at once.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("write pid file {}", path.display()))
}
