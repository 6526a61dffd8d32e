use crate::container::{self, Store};
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Signal every process in the container's cgroup (also once the init has exited).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The container id.
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number; 0 only checks the container is running.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    // Engines probe liveness with `kill ID 0`, as runc accepts.
    let sig = if a.signal == "0" { 0 } else { crate::signal::parse(&a.signal)? };
    crate::debug!("kill {}: signal {sig} to {}", a.id, if a.all { "every process of its cgroup" } else { "its init" });
    container::kill(store, &a.id, sig, a.all)
}
