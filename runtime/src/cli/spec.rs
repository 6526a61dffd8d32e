use std::path::PathBuf;

use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write config.json (default: the current directory).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A config for running without root: a user namespace mapping the caller.
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        return Err(Error::Refused(format!("{} exists: remove it first", path.display())));
    }
    let spec = crate::spec::default_spec(a.rootless);
    let text = serde_json::to_string_pretty(&spec).map_err(|e| Error::os("encode config.json", std::io::Error::other(e)))?;
    std::fs::write(&path, text + "\n").ctx(|| format!("write {}", path.display()))
}
