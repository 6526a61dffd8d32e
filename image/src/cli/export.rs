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
