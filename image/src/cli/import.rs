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
}

pub fn run(a: Args) -> Result<()> {
    let d = transfer::import(&a.tar, &Reference::parse(&a.image)?)?;
    println!("{}", d.digest());
    Ok(())
}
