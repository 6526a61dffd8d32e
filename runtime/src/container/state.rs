//! What strata remembers about a container (state.json under `--root`), and the
//! runtime-spec state document derived from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::sys::proc_stat;

/// The runtime-spec statuses, plus runc's "paused".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Persisted as `<root>/<id>/state.json` (written atomically).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// The init's pid in the runtime's pid namespace.
    pub pid: i32,
    /// The init's start time (/proc/PID/stat field 22): a pid whose start time differs
    /// is a recycled pid, and the container is stopped.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time, UTC.
    pub created: String,
    pub cgroup: Cgroup,
    /// The config the container was created from (hooks, annotations, exec defaults).
    pub config: Spec,
}

/// The state document of runtime-spec runtime.md ("state"), as runc prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'static str,
    pub pid: i32,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a HashMap<String, String>>,
}

impl ContainerState {
    /// The status from the live system: the init's pid and start time, the exec fifo
    /// (present until `start`), and the freezer.
    pub fn status(&self, state_dir: &Path) -> Status {
        let alive = proc_stat(self.pid)
            .is_some_and(|s| s.start_time == self.pid_start_time && !matches!(s.state, 'Z' | 'X' | 'x'));
        if !alive {
            Status::Stopped
        } else if state_dir.join(crate::container::EXEC_FIFO).exists() {
            Status::Created
        } else if self.cgroup.is_frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    pub fn oci<'a>(&'a self, status: Status, owner: String) -> OciState<'a> {
        OciState {
            oci_version: self.config.version(),
            id: &self.id,
            status: status.as_str(),
            pid: if status == Status::Stopped { 0 } else { self.pid },
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner,
            annotations: self.config.annotations().as_ref().filter(|a| !a.is_empty()),
        }
    }
}

/// Now, as RFC 3339 with nanoseconds (what runc writes).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
