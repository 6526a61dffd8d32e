//! net_cls.classid and net_prio.ifpriomap: v1-only controllers (v2 has neither; use
//! an eBPF program there), so on a host without them these fields are an error.

use oci_spec::runtime::LinuxNetwork;

use super::super::{fs, Cgroup};
use crate::error::Result;

pub fn apply(cg: &Cgroup, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        let field = "linux.resources.network.classID";
        let d = cg.controller(field, "net_cls")?;
        fs::write(field, &d.dir, "net_cls.classid", id.to_string())?;
    }
    for (i, p) in n.priorities().iter().flatten().enumerate() {
        let field = format!("linux.resources.network.priorities[{i}]");
        let d = cg.controller(&field, "net_prio")?;
        fs::write(&field, &d.dir, "net_prio.ifpriomap", format!("{} {}", p.name(), p.priority()))?;
    }
    Ok(())
}
