//! rdma.max (v1 and v2): per-device limits on HCA handles and objects.

use std::collections::HashMap;

use oci_spec::runtime::LinuxRdma;

use super::super::{fs, Cgroup};
use crate::error::Result;

pub fn apply(cg: &Cgroup, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    for (device, r) in rdma {
        let field = format!("linux.resources.rdma[{device:?}]");
        let mut parts = vec![device.clone()];
        if let Some(h) = r.hca_handles() {
            parts.push(format!("hca_handle={h}"));
        }
        if let Some(o) = r.hca_objects() {
            parts.push(format!("hca_object={o}"));
        }
        if parts.len() == 1 {
            continue;
        }
        let d = cg.controller(&field, "rdma")?;
        fs::write(&field, &d.dir, "rdma.max", parts.join(" "))?;
    }
    Ok(())
}
