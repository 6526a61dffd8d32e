//! runc's command line, one file per subcommand. Each file turns its flags into a call
//! on the library; errors come back typed and are printed here, once.

mod create;
mod delete;
mod exec;
mod events;
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

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::container::Store;
use crate::error::Result;
use crate::logging;

#[derive(Parser)]
#[command(name = "strata", about = "An OCI container runtime", disable_version_flag = true)]
pub struct Cli {
    /// Directory for container state (tmpfs recommended).
    #[arg(long, global = true, default_value = "/run/strata")]
    root: PathBuf,
    /// Write log lines (errors, and debug with --debug) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of --log lines.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug lines.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (not available: PID 1 must be systemd).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Print the version (-V too, as strata-image and most tools take it).
    #[arg(short = 'v', long, short_alias = 'V')]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

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
}

/// Parses argv, runs the command, prints any error; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    };
    logging::init(cli.log.clone(), format, cli.debug);
    if cli.version {
        print_version();
        return 0;
    }
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            logging::error(&msg);
            eprintln!("strata: {msg}");
            1
        }
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        return Err(crate::Error::Refused(
            "--systemd-cgroup: the systemd cgroup driver is not supported by this build (use cgroupfs paths)".into(),
        ));
    }
    let store = Store::new(&cli.root);
    let Some(command) = &cli.command else {
        print_version();
        return Ok(0);
    };
    match command {
        Command::Create(a) => create::run(&store, a).map(|_| 0),
        Command::Exec(a) => exec::run(&store, a),
        Command::Start(a) => start::run(&store, a).map(|_| 0),
        Command::Run(a) => run::run(&store, a),
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
    }
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
