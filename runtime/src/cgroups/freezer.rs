//! Freezing a container's cgroup (`pause`) and thawing it (`resume`): v1
//! freezer.state, v2 cgroup.freeze. Freezing is asynchronous in the kernel, so both
//! wait until the cgroup reports FROZEN / "frozen 1". Never done to a host cgroup.

use std::time::{Duration, Instant};

use super::{fs, Cgroup, CgroupDir, Version};
use crate::error::{Error, Result};

const FIELD: &str = "freezer";
/// How long `freeze` waits for the kernel to report the cgroup frozen.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
const FREEZE_POLL: Duration = Duration::from_millis(5);

pub fn freeze(cg: &Cgroup) -> Result<()> {
    cg.ensure_container_owned("freeze")?;
    let d = freezer_dir(cg)?;
    let dir = d.full();
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        let frozen = match d.version {
            // Writing FROZEN again nudges tasks that were mid-fork when we started.
            Version::V1 => {
                fs::write(FIELD, &dir, "freezer.state", "FROZEN")?;
                fs::read(&dir, "freezer.state")? == "FROZEN"
            }
            Version::V2 => {
                fs::write(FIELD, &dir, "cgroup.freeze", "1")?;
                fs::keyed(&dir, "cgroup.events", "frozen") == Some(1)
            }
        };
        if frozen {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = thaw(cg);
            return Err(Error::Refused(format!(
                "freezing {} did not complete in {} s",
                dir.display(),
                FREEZE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(FREEZE_POLL);
    }
}

pub fn thaw(cg: &Cgroup) -> Result<()> {
    cg.ensure_container_owned("thaw")?;
    let d = freezer_dir(cg)?;
    let dir = d.full();
    let result = match d.version {
        Version::V1 => fs::write(FIELD, &dir, "freezer.state", "THAWED"),
        Version::V2 => fs::write(FIELD, &dir, "cgroup.freeze", "0"),
    };
    match result {
        // Gone with its last task (systemd removes an emptied scope at once): nothing to thaw.
        Err(_) if cg.systemd.is_some() && !dir.exists() => Ok(()),
        r => r,
    }
}

fn freezer_dir(cg: &Cgroup) -> Result<&CgroupDir> {
    cg.primary()
        .filter(|d| d.version == Version::V2 || d.controllers.iter().any(|c| c == "freezer"))
        .ok_or_else(|| Error::Refused("this host has no freezer (neither a v1 freezer hierarchy nor cgroup v2)".into()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{Cgroup, CgroupDir, Version};

    fn host_cgroup(path: &str, runtime: &str) -> Cgroup {
        let dir = CgroupDir {
            // Nothing under here is touched: the guard refuses first.
            mountpoint: PathBuf::from("/nonexistent-cgroup-mount"),
            controllers: vec!["freezer".into()],
            version: Version::V1,
            path: PathBuf::from(path),
            runtime_path: PathBuf::from(runtime),
        };
        Cgroup { dirs: vec![dir], ..Cgroup::default() }
    }

    #[test]
    fn freezing_the_root_or_the_runtimes_own_cgroup_is_refused() {
        for cg in [host_cgroup("/", "/x"), host_cgroup("/user/session", "/user/session")] {
            let e = super::freeze(&cg).unwrap_err().to_string();
            assert!(e.contains("refusing to freeze"), "{e}");
            assert!(super::thaw(&cg).is_err());
        }
    }
}
