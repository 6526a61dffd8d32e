use std::path::PathBuf;
use strata_image::platform::PlatformSpec;
use strata_image::reference::Reference;
use strata_image::{image, transfer, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Source image reference.
    image: String,
    /// Destination layout directory, or archive file with --archive.
    #[arg(long, short)]
    output: PathBuf,
    #[arg(long, default_value = "latest")]
    tag: String,
    /// Write an OCI archive tar instead of a layout directory.
    #[arg(long)]
    archive: bool,
    #[arg(long)]
    platform: Option<String>,
    /// Print the saved manifest's descriptor as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let platform = a.platform.as_deref().map(PlatformSpec::parse).transpose()?.unwrap_or_else(PlatformSpec::host);
    let img = image::open(&Reference::parse(&a.image)?, &platform)?;
    let d = transfer::save(&img, &a.output, &a.tag, a.archive)?;
    crate::strata_image_cli::print_written(&d, &format!("{}:{}", a.output.display(), a.tag), a.json)
}
