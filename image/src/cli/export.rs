use std::io::Write;
use std::path::PathBuf;
use strata_image::{transfer, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    bundle: PathBuf,
    /// Output file (default: stdout).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    private_mounts();
    match &a.output {
        Some(p) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?);
            transfer::export(&a.bundle, &mut f)?;
            f.flush().map_err(|e| Error::io(p, e))
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            transfer::export(&a.bundle, &mut out)?;
            out.flush().map_err(|e| Error::io("stdout", e))
        }
    }
}

/// An unmounted overlay bundle is mounted for the export and unmounted after;
/// in a mount namespace of our own that mount goes with the process however it
/// ends (`export | head` kills it with SIGPIPE mid-write, or a `kill -9`), so
/// it is never left on the host. Without the privilege for one, the export
/// works as before (it could not mount either).
fn private_mounts() {
    use nix::mount::{mount, MsFlags};
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_ok() {
        // Unshared mounts still propagate to the host's peers until made private.
        let _ = mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>);
    }
}
