use crate::container::{self, Store};
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    container::pause(store, &a.id)
}
