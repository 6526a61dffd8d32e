use crate::container::{self, Store};
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    let (locked, state, status) = container::load(store, &a.id)?;
    super::print_json(&state.oci(status, locked.owner()))
}
