use std::path::PathBuf;
use strata_image::commit::{self, CommitOptions};
use strata_image::reference::Reference;
use strata_image::Result;

#[derive(clap::Args)]
pub struct Args {
    bundle: PathBuf,
    /// Destination LAYOUT:TAG (created if missing).
    #[arg(long)]
    image: String,
    /// Print the new manifest's descriptor as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    message: Option<String>,
    #[arg(long)]
    author: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let d = commit::commit(&a.bundle, &Reference::parse(&a.image)?, &CommitOptions { message: a.message, author: a.author })?;
    crate::strata_image_cli::print_written(&d, &a.image, a.json)
}
