use crate::container::{self, Store};
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Kill the container first if it is still running.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container id.
    pub id: String,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    crate::debug!("delete {} (force {})", a.id, a.force);
    match container::delete(store, &a.id, a.force) {
        // runc: deleting a container that doesn't exist is fine with --force.
        Err(crate::Error::NotFound(_)) if a.force => Ok(()),
        r => r,
    }
}
