use std::path::PathBuf;
use strata_image::reference::Reference;
use strata_image::{transfer, Result};

#[derive(clap::Args)]
pub struct Args {
    /// A plain rootfs tar.
    tar: PathBuf,
    /// Destination LAYOUT:TAG (created if missing).
    #[arg(long)]
    image: String,
    /// Print the new manifest's descriptor as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let d = transfer::import(&a.tar, &Reference::parse(&a.image)?)?;
    super::print_written(&d, &a.image, a.json)
}
