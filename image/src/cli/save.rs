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
    /// The image's name in an archive (what `podman load` and `ctr import` call it);
    /// without a tag, --tag's [default: localhost/<source file name>:<tag>]
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    platform: Option<String>,
    /// Print the saved manifest's descriptor as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let platform = a.platform.as_deref().map(PlatformSpec::parse).transpose()?.unwrap_or_else(PlatformSpec::host);
    let source = Reference::parse(&a.image)?;
    let img = image::open(&source, &platform)?;
    let name = match a.name {
        // A tag is what follows the last ':' when no '/' comes after it (a registry port is not one).
        Some(n) if n.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/')) => Some(n),
        Some(n) => Some(format!("{n}:{}", a.tag)),
        None => a.archive.then(|| transfer::default_name(&source, &a.tag)),
    };
    let d = transfer::save(&img, &a.output, &a.tag, name.as_deref(), a.archive)?;
    super::print_written(&d, &format!("{}:{}", a.output.display(), a.tag), a.json)
}
