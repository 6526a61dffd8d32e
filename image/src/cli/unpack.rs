use std::io::IsTerminal;
use std::path::PathBuf;
use strata_image::bundle::{self, UnpackOptions};
use strata_image::platform::PlatformSpec;
use strata_image::reference::Reference;
use strata_image::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Image reference: DIR[:TAG], DIR@sha256:..., or an OCI/docker archive file.
    #[arg(long)]
    image: String,
    /// Share layers through an overlay mount instead of copying them.
    #[arg(long)]
    overlay: bool,
    /// Layer store for --overlay.
    #[arg(long, default_value = strata_image::store::DEFAULT_STORE)]
    store: PathBuf,
    /// os/arch[/variant] to pick from an index (default: this host).
    #[arg(long)]
    platform: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    bundle: PathBuf,
    /// Command to run instead of the image's Entrypoint+Cmd.
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let r = Reference::parse(&a.image)?;
    let platform = match &a.platform {
        Some(p) => PlatformSpec::parse(p)?,
        None => PlatformSpec::host(),
    };
    let tty = std::io::stderr().is_terminal();
    let opts = UnpackOptions {
        platform,
        overlay: a.overlay,
        store: a.store,
        args: (!a.args.is_empty()).then_some(a.args),
        progress: tty.then(|| {
            Box::new(|i: usize, n: usize, d: &str, fresh: bool| {
                eprint!("\r\x1b[Klayer {}/{} {} {}", i + 1, n, &d[..d.len().min(19)], if fresh { "extracted" } else { "cached" });
                if i + 1 == n {
                    eprintln!();
                }
            }) as Box<dyn Fn(usize, usize, &str, bool)>
        }),
    };
    let meta = bundle::unpack(&r, &a.bundle, &opts)?;
    if a.json {
        crate::strata_image_cli::print_json(&meta)?;
    }
    Ok(())
}
