use std::path::PathBuf;

use crate::container::{self, ContainerState, CreateOptions, Store};
use crate::error::Result;
use crate::hooks::Kind;

#[derive(clap::Args)]
pub struct Args {
    /// The bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for ramdisk roots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the runtime's session keyring instead of making a new one.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3 .. 3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container id.
    pub id: String,
}

impl Args {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            console_fd: None,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup: false,
        }
    }
}

pub fn run(store: &Store, a: &Args, systemd_cgroup: bool) -> Result<()> {
    debug_asked("create", a);
    let state = container::create(store, &a.id, &CreateOptions { systemd_cgroup, ..a.options() })?;
    debug_created(&state);
    Ok(())
}

/// --debug: what `create` (or `run`) was asked.
pub fn debug_asked(command: &str, a: &Args) {
    crate::debug!(
        "{command} {}: bundle {}, console socket {:?}, pid file {:?}, preserve fds {}, no pivot {}",
        a.id,
        a.bundle.display(),
        a.console_socket,
        a.pid_file,
        a.preserve_fds,
        a.no_pivot
    );
}

/// --debug: what the container was made of (namespaces, mounts, cgroup, hooks), as
/// runc's debug lines let one check. Nothing is computed without --debug.
pub fn debug_created(state: &ContainerState) {
    if !crate::logging::debug_enabled() {
        return;
    }
    let spec = &state.config;
    let namespaces: Vec<String> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| ns.iter().map(|n| format!("{}", n.typ())).collect())
        .unwrap_or_default();
    let mounts = spec.mounts().as_ref().map_or(0, Vec::len);
    let cgroups: Vec<String> = state.cgroup.dirs.iter().map(|d| d.full().display().to_string()).collect();
    let hooks: Vec<String> = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ]
    .into_iter()
    .filter(|k| !k.of(spec).is_empty())
    .map(|k| format!("{} {}", k.name(), k.of(spec).len()))
    .collect();
    crate::logging::debug(&format!(
        "created {}: init pid {}, namespaces [{}], {mounts} mounts, cgroup [{}], hooks [{}]",
        state.id,
        state.pid,
        namespaces.join(" "),
        cgroups.join(" "),
        hooks.join(", ")
    ));
}
