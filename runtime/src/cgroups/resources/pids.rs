//! pids.max (the same file on v1 and v2): caps the number of tasks, so a fork bomb
//! stops at the limit instead of exhausting the host.

use super::super::{fs, Cgroup};
use crate::error::Result;

const FIELD: &str = "linux.resources.pids.limit";

pub fn apply(cg: &Cgroup, limit: i64) -> Result<()> {
    // runc: 0 means "unset"; any negative value means no limit.
    if limit == 0 {
        return Ok(());
    }
    let c = cg.controller(FIELD, "pids")?;
    let value = if limit < 0 { "max".to_string() } else { limit.to_string() };
    fs::write(FIELD, &c.dir, "pids.max", value)
}
