//! runc's command line, one file per subcommand. Each file turns its flags into a call
//! on the library; errors come back typed and are printed here, once.

mod completion;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::container::Store;
use crate::error::Result;
use crate::logging;

#[derive(Parser)]
#[command(
    name = "strata",
    about = "An OCI container runtime with runc's command line",
    disable_version_flag = true,
    after_help = "Engines (containerd, podman, docker, Kubernetes) call strata as they call runc."
)]
pub struct Cli {
    /// Directory for container state (tmpfs recommended) [default: /run/strata, or
    /// $XDG_RUNTIME_DIR/strata when run unprivileged].
    #[arg(long, global = true, help_heading = GLOBAL)]
    root: Option<PathBuf>,
    /// Write log lines (errors, and debug with --debug) to this file instead of stderr.
    #[arg(long, global = true, help_heading = GLOBAL)]
    log: Option<PathBuf>,
    /// Format of log lines (runc's logrus shape).
    #[arg(long = "log-format", global = true, value_enum, default_value = "text", help_heading = GLOBAL)]
    log_format: LogFormat,
    /// Log each step at debug level.
    #[arg(long, global = true, help_heading = GLOBAL)]
    debug: bool,
    /// Use the systemd cgroup driver: cgroupsPath is "slice:prefix:name", the cgroup a transient scope.
    #[arg(long = "systemd-cgroup", global = true, help_heading = GLOBAL)]
    systemd_cgroup: bool,
    /// Print the version (-V too, as strata-image and most tools take it).
    #[arg(short = 'v', long, short_alias = 'V')]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The help heading of the flags every command takes, apart from a command's own.
const GLOBAL: &str = "Global options";

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; it waits for `start`.
    Create(create::Args),
    /// Run another process in a running container.
    Exec(Box<exec::Args>),
    /// Run the user-defined process of a created container.
    Start(start::Args),
    /// Create and start a container (in the foreground unless --detach).
    Run(run::RunArgs),
    /// Print a container's state as JSON.
    State(state::Args),
    /// List containers.
    List(list::Args),
    /// Send a signal to a container's init (or, with --all, to all its processes).
    Kill(kill::Args),
    /// Delete a container and everything it holds.
    Delete(delete::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(resume::Args),
    /// List a container's processes.
    Ps(ps::Args),
    /// Report a container's resource usage and OOM kills as JSON lines.
    Events(events::Args),
    /// Change a running container's resource limits.
    Update(Box<update::Args>),
    /// Write a default config.json.
    Spec(spec::Args),
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::Args),
}

/// Parses argv, runs the command, prints any error; returns the exit code.
pub fn main() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&argv, e),
    };
    let format = match cli.log_format {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    };
    // Before anything is cloned: the log descriptor is opened once and inherited.
    if let Err(e) = logging::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("strata: {e}");
        return 1;
    }
    if cli.version {
        print_version();
        return 0;
    }
    let Some(command) = &cli.command else {
        // runc: a bare invocation prints the help.
        let _ = Cli::command().print_help();
        return 0;
    };
    match dispatch(&cli, command) {
        Ok(code) => code,
        Err(e) => {
            // runc exits 255 when `exec` itself fails, so engines can tell it from the
            // status of the program it ran; every other failure is 1.
            let (msg, code) = match command {
                Command::Exec(_) => (format!("exec failed: {e}"), 255),
                _ => (e.to_string(), 1),
            };
            if logging::to_file() {
                logging::error(&msg);
            }
            eprintln!("strata: {msg}");
            code
        }
    }
}

/// A command line clap refused (or --help): clap's text on the terminal, and, as runc
/// does, the one-line error in the --log file engines read. Exit codes are runc's:
/// 0 for help, 3 for an unknown command, 1 otherwise.
fn usage_error(argv: &[OsString], e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let (log, format) = scan_log_flags(argv);
    if let Err(le) = logging::init(log.as_deref(), format, false) {
        eprintln!("strata: {le}");
    } else if logging::to_file() {
        let rendered = e.to_string();
        logging::error(rendered.lines().next().unwrap_or_default().trim_start_matches("error: "));
    }
    let _ = e.print();
    if e.kind() == ErrorKind::InvalidSubcommand {
        3
    } else {
        1
    }
}

/// --log and --log-format read by hand, for when clap refused the command line.
fn scan_log_flags(argv: &[OsString]) -> (Option<PathBuf>, logging::Format) {
    let (mut log, mut format) = (None, logging::Format::Text);
    let mut it = argv.iter().skip(1).map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "--" => break,
            "--log" => log = inline.or_else(|| it.next()).map(PathBuf::from),
            "--log-format" => {
                let json = inline.or_else(|| it.next()).as_deref() == Some("json");
                format = if json { logging::Format::Json } else { logging::Format::Text };
            }
            _ => {}
        }
    }
    (log, format)
}

fn dispatch(cli: &Cli, command: &Command) -> Result<i32> {
    let root = match &cli.root {
        Some(root) => root.clone(),
        None => {
            let caller = crate::rootless::Caller::current();
            let root = caller.default_root();
            if caller.honors_xdg_runtime_dir() {
                crate::rootless::prepare_xdg_root(&root)?;
            }
            root
        }
    };
    let store = Store::new(&root);
    match command {
        Command::Create(a) => create::run(&store, a, cli.systemd_cgroup).map(|_| 0),
        Command::Exec(a) => exec::run(&store, a),
        Command::Start(a) => start::run(&store, a).map(|_| 0),
        Command::Run(a) => run::run(&store, a, cli.systemd_cgroup),
        Command::State(a) => state::run(&store, a).map(|_| 0),
        Command::List(a) => list::run(&store, a).map(|_| 0),
        Command::Kill(a) => kill::run(&store, a).map(|_| 0),
        Command::Delete(a) => delete::run(&store, a).map(|_| 0),
        Command::Pause(a) => pause::run(&store, a).map(|_| 0),
        Command::Resume(a) => resume::run(&store, a).map(|_| 0),
        Command::Ps(a) => ps::run(&store, a).map(|_| 0),
        Command::Events(a) => events::run(&store, a).map(|_| 0),
        Command::Update(a) => update::run(&store, a).map(|_| 0),
        Command::Spec(a) => spec::run(a).map(|_| 0),
        Command::Features => features::run().map(|_| 0),
        Command::Completion(a) => {
            completion::run(a);
            Ok(0)
        }
    }
}

/// The command-line definition, for tools that generate man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

fn print_version() {
    println!("strata version {}", env!("CARGO_PKG_VERSION"));
    println!("commit: {}", option_env!("STRATA_COMMIT").unwrap_or("unknown"));
    println!("spec: {}", crate::OCI_VERSION);
}

/// Prints JSON the way runc does (indented) to stdout.
fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| crate::Error::os("encode JSON", std::io::Error::other(e)))?;
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
