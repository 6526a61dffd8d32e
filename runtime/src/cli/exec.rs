//! `exec`: runc's flags, turned into [`crate::container::ExecOptions`].

use std::path::PathBuf;

use crate::container::{self, ExecOptions, ExecProcessArgs, Store};
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// A process.json to run instead of COMMAND (the other process flags are then ignored, as in runc).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY (sent to --console-socket, else proxied to our terminal).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Return once the process has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master with --tty.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// An additional group id, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NAME), repeatable.
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set noNewPrivileges for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile (unsupported: refused when set).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label (unsupported: refused when set).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Pass N extra fds (3 .. 3+N) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec even when the container is paused (the process starts frozen).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in this sub-cgroup of the container (PATH or CONTROLLER[,CONTROLLER]:PATH).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// The container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(store: &Store, a: &Args) -> Result<i32> {
    let opts = ExecOptions {
        process: ExecProcessArgs {
            process_file: a.process.clone(),
            args: a.command.clone(),
            env: a.env.clone(),
            cwd: a.cwd.clone(),
            user: a.user.clone(),
            additional_gids: a.additional_gids.clone(),
            caps: a.cap.clone(),
            no_new_privs: a.no_new_privs,
            tty: a.tty,
        },
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        cgroups: a.cgroup.clone(),
        apparmor: a.apparmor.clone(),
        process_label: a.process_label.clone(),
    };
    crate::debug!(
        "exec {}: {} (detach {}, tty {}, cwd {:?}, user {:?}, cgroup {:?}, preserve fds {})",
        a.id,
        a.process
            .as_ref()
            .map_or_else(|| format!("command {:?}", a.command), |p| format!("process file {}", p.display())),
        a.detach,
        a.tty,
        a.cwd,
        a.user,
        a.cgroup,
        a.preserve_fds
    );
    let code = container::exec(store, &a.id, &opts).map_err(|e| name_the_flag(e, a))?;
    crate::debug!("exec {}: {}", a.id, if a.detach { "started".to_string() } else { format!("exited {code}") });
    Ok(code)
}

/// Errors about the process come back naming config.json's `process.*` fields; the user
/// of `exec` gave a flag, a command or a process.json, so name that instead.
fn name_the_flag(e: Error, a: &Args) -> Error {
    let text = e.to_string();
    let Some(rest) = text.strip_prefix("config.json: process.") else { return e };
    let (field, message) = rest.split_once(": ").unwrap_or((rest, ""));
    let flag = match (&a.process, field) {
        (Some(file), _) => format!("{}: {field}", file.display()),
        (None, "cwd") if a.cwd.is_some() => "--cwd".into(),
        (None, "args[0]") => "command".into(),
        (None, "user") if a.user.is_some() => "--user".into(),
        (None, "env") if !a.env.is_empty() => "--env".into(),
        // From the container's own config: config.json is the right name.
        _ => return e,
    };
    Error::Refused(format!("{flag}: {message}"))
}
