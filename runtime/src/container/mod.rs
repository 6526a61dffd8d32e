//! Containers: ids, the state store, and one file per lifecycle operation of
//! runtime-spec runtime.md (create, start, kill, delete, state).

mod create;
mod delete;
mod exec;
mod exec_process;
pub mod events;
pub mod id;
mod kill;
mod pause;
mod ps;
mod start;
pub mod state;
pub mod store;
mod update;

pub use create::{create, CreateOptions};
pub use delete::delete;
pub use exec::{exec, ExecOptions, ExecProcessArgs};
pub use kill::{kill, signal_init};
pub use pause::{pause, resume};
pub use ps::pids;
pub use update::update;
pub use start::start;
pub use state::{ContainerState, OciState, Status};
pub use store::{Locked, Store};

use crate::error::Result;

/// The fifo the init blocks on until `start` (present exactly while "created").
pub const EXEC_FIFO: &str = "exec.fifo";

/// A container's saved state and live status, read under its lock.
pub fn load(store: &Store, id: &str) -> Result<(Locked, ContainerState, Status)> {
    let locked = store.open(id)?;
    let state = locked.load()?;
    let status = state.status(&locked.dir);
    Ok((locked, state, status))
}
