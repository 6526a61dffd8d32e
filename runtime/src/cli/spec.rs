//! `spec`: write the default config.json, the installed runc's unless --hardened.

use std::path::PathBuf;

use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Directory to write config.json in.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A config for running without root: a user namespace mapping the caller.
    #[arg(long)]
    pub rootless: bool,
    /// Also a cgroup namespace and /sys/devices/virtual/powercap masked (not in runc 1.1's default).
    #[arg(long)]
    pub hardened: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        return Err(Error::Refused(format!("{} exists: remove it first", path.display())));
    }
    let text = crate::spec::default_spec_text(a.rootless, a.hardened);
    std::fs::write(&path, text).ctx(|| format!("write {}", path.display()))
}
