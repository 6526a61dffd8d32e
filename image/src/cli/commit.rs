use std::path::PathBuf;
use strata_image::commit::{self, CommitOptions};
use strata_image::freeze::Runtime;
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
    /// Pause the bundle's running containers while reading their changes (as docker
    /// commit does). With --pause=false a file that changes size meanwhile fails the commit.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pause: bool,
    /// OCI runtime (runc's command line) that runs the bundle's containers [default: strata]
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// That runtime's state directory (its --root) [default: /run/strata as root, else
    /// $XDG_RUNTIME_DIR/RUNTIME-NAME as rootless runc's]
    #[arg(long)]
    runtime_root: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let pause = a.pause.then(|| {
        let binary = a.runtime.unwrap_or_else(Runtime::default_binary);
        let root = a.runtime_root.unwrap_or_else(|| Runtime::default_root(&binary));
        Runtime { binary, root }
    });
    let d = commit::commit(
        &a.bundle,
        &Reference::parse(&a.image)?,
        &CommitOptions { message: a.message, author: a.author, pause },
    )?;
    super::print_written(&d, &a.image, a.json)
}
