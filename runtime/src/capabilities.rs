//! process.capabilities: the five sets, exactly as configured. The bounding set is cut
//! while the init is still root; the other sets are set after the uid switch (which
//! PR_SET_KEEPCAPS survives), ambient last since it needs permitted and inheritable.

use std::collections::HashSet;

use caps::{CapSet, Capability as Cap};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Error, Result};

fn to_caps(field: &str, set: &Option<Capabilities>) -> Result<HashSet<Cap>> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        out.insert(convert(field, c)?);
    }
    Ok(out)
}

fn convert(field: &str, c: &Capability) -> Result<Cap> {
    let name = format!("CAP_{c}");
    name.parse::<Cap>().map_err(|_| Error::field(field, format!("{name} is not known to this runtime")))
}

/// Drops from the bounding set every capability the config leaves out. Capabilities the
/// running kernel doesn't know are ignored.
pub fn drop_bounding(caps: &LinuxCapabilities) -> Result<()> {
    let keep = to_caps("process.capabilities.bounding", caps.bounding())?;
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| Error::Init(format!("drop {cap} from bounding set: {e}")))?;
        }
    }
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets exactly.
pub fn apply(caps: &LinuxCapabilities) -> Result<()> {
    let effective = to_caps("process.capabilities.effective", caps.effective())?;
    let permitted = to_caps("process.capabilities.permitted", caps.permitted())?;
    let inheritable = to_caps("process.capabilities.inheritable", caps.inheritable())?;
    let ambient = to_caps("process.capabilities.ambient", caps.ambient())?;
    let set = |which: CapSet, name: &str, v: &HashSet<Cap>| {
        caps::set(None, which, v).map_err(|e| Error::field(format!("process.capabilities.{name}"), e.to_string()))
    };
    // Each capset must keep effective within permitted and inheritable within the old
    // permitted: inheritable while permitted is still whole, then effective, then permitted.
    set(CapSet::Inheritable, "inheritable", &inheritable)?;
    set(CapSet::Effective, "effective", &effective)?;
    set(CapSet::Permitted, "permitted", &permitted)?;
    caps::clear(None, CapSet::Ambient).map_err(|e| Error::Init(format!("clear ambient set: {e}")))?;
    for cap in &ambient {
        // The kernel only raises an ambient cap that is also permitted and inheritable.
        // Configs often list ambient alone (docker-style); like runc and crun, skip
        // those rather than fail: the result is narrower than asked, never wider.
        if !(permitted.contains(cap) && inheritable.contains(cap)) {
            crate::logging::debug(&format!("ambient {cap} skipped: not in permitted and inheritable"));
            continue;
        }
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|e| Error::field("process.capabilities.ambient", format!("{cap}: {e}")))?;
    }
    Ok(())
}

/// Names of every capability this runtime knows, for `features`.
pub fn known_names() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}
