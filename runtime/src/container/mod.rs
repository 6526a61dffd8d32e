//! Containers: ids, the state store, and one file per lifecycle operation of
//! runtime-spec runtime.md (create, start, kill, delete, state).

mod create;
mod delete;
pub mod events;
mod exec;
mod exec_process;
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
pub use start::start;
pub use state::{ContainerState, OciState, Status};
pub use store::{Footprint, Listed, Locked, Store};
pub use update::update;

use crate::error::Result;

/// The fifo the init blocks on until `start` (present exactly while "created").
pub const EXEC_FIFO: &str = "exec.fifo";

/// Fault injection for the tests (integration/tests/faults.rs): with
/// `STRATA_TEST_PAUSE_AT=NAME` in its environment, strata stops itself (SIGSTOP) on
/// reaching checkpoint NAME, so a test can SIGKILL it exactly there. The variable is
/// read once; without it a checkpoint is one load and compare.
pub(crate) fn checkpoint(name: &str) {
    static PAUSE_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if PAUSE_AT.get_or_init(|| std::env::var("STRATA_TEST_PAUSE_AT").ok()).as_deref() == Some(name) {
        // SAFETY: raise has no preconditions.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// `list`'s rows (runtime-spec state documents) and, for containers without a usable
/// state.json, a warning each: runc's list prints those to stderr and hides the
/// container; strata lists it too, as "creating" or "unknown", so it can't be forgotten.
pub fn list(store: &Store) -> Result<(Vec<serde_json::Value>, Vec<String>)> {
    let (mut rows, mut warnings) = (Vec::new(), Vec::new());
    for id in store.ids()? {
        let dir = store.root().join(&id);
        let owner = store::owner_of(&dir);
        let placeholder = |status: &str| serde_json::json!({"ociVersion": "", "id": id, "status": status, "pid": 0, "bundle": "", "rootfs": "", "created": "", "owner": owner});
        match store.peek(&id) {
            Listed::Ok(state) => {
                rows.push(serde_json::to_value(state.oci(state.status(&dir), owner.clone())).unwrap_or_default())
            }
            Listed::Creating => rows.push(placeholder("creating")),
            Listed::Broken(e) => {
                warnings.push(format!("load container {id}: {e}"));
                rows.push(placeholder("unknown"));
            }
            Listed::Gone => {}
        }
    }
    Ok((rows, warnings))
}

/// A container's saved state and live status, read under its lock.
pub fn load(store: &Store, id: &str) -> Result<(Locked, ContainerState, Status)> {
    let locked = store.open(id)?;
    let state = locked.load()?;
    let status = state.status(&locked.dir);
    Ok((locked, state, status))
}
