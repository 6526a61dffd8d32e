use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    pub bundle: PathBuf,
}
