//! process.capabilities: the five sets, exactly as configured. The bounding set is cut
//! while the init is still root; the other sets are set after the uid switch (which
//! PR_SET_KEEPCAPS survives), ambient last since it needs permitted and inheritable.
//!
//! Capabilities this runtime or the host can't grant are left out with a warning that
//! names the field (config.md: runtimes SHOULD NOT fail for them); the result is only
//! ever narrower than the config, never wider.

use std::collections::HashSet;

use caps::{CapSet, Capability as Cap};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Error, Result};
use crate::logging;

/// The sets to apply, converted and filtered.
#[derive(Debug)]
pub struct CapSets {
    bounding: HashSet<Cap>,
    effective: HashSet<Cap>,
    permitted: HashSet<Cap>,
    inheritable: HashSet<Cap>,
    ambient: HashSet<Cap>,
}

/// Converts the config's sets, dropping (with a warning) what the runtime's own
/// bounding set doesn't hold: such a capability can't be granted.
pub fn resolve(caps: &LinuxCapabilities) -> Result<CapSets> {
    let grantable = caps::read(None, CapSet::Bounding).map_err(|e| Error::Init(format!("read bounding set: {e}")))?;
    let set = |name: &str, v: &Option<Capabilities>| convert(name, v, &grantable);
    Ok(CapSets {
        bounding: set("bounding", caps.bounding()),
        effective: set("effective", caps.effective()),
        permitted: set("permitted", caps.permitted()),
        inheritable: set("inheritable", caps.inheritable()),
        ambient: set("ambient", caps.ambient()),
    })
}

fn convert(name: &str, set: &Option<Capabilities>, grantable: &HashSet<Cap>) -> HashSet<Cap> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let cap_name = format!("CAP_{c}");
        match cap_name.parse::<Cap>() {
            Ok(cap) if grantable.contains(&cap) => {
                out.insert(cap);
            }
            Ok(_) => logging::warn(&format!("process.capabilities.{name}: {cap_name} can't be granted here; left out")),
            Err(_) => {
                logging::warn(&format!("process.capabilities.{name}: {cap_name} is unknown to this runtime; left out"))
            }
        }
    }
    out
}

/// Drops from the bounding set every capability the config leaves out.
pub fn drop_bounding(sets: &CapSets) -> Result<()> {
    for cap in caps::all() {
        if !sets.bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::Init(format!("drop {cap} from bounding set: {e}")))?;
        }
    }
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets exactly.
pub fn apply(sets: &CapSets) -> Result<()> {
    let set = |which: CapSet, name: &str, v: &HashSet<Cap>| {
        caps::set(None, which, v).map_err(|e| Error::field(format!("process.capabilities.{name}"), e.to_string()))
    };
    // Each capset must keep effective within permitted and inheritable within the old
    // permitted: inheritable while permitted is still whole, then effective, then permitted.
    set(CapSet::Inheritable, "inheritable", &sets.inheritable)?;
    set(CapSet::Effective, "effective", &sets.effective)?;
    set(CapSet::Permitted, "permitted", &sets.permitted)?;
    caps::clear(None, CapSet::Ambient).map_err(|e| Error::Init(format!("clear ambient set: {e}")))?;
    for cap in &sets.ambient {
        // The kernel only raises an ambient cap that is also permitted and inheritable.
        // Configs often list ambient alone (docker-style); like runc and crun, skip
        // those rather than fail.
        if !(sets.permitted.contains(cap) && sets.inheritable.contains(cap)) {
            logging::debug(&format!("ambient {cap} skipped: not in permitted and inheritable"));
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

/// Whether oci-spec accepts `name` as a capability (used to skip unknown names
/// before parsing config.json).
pub fn is_known_name(name: &str) -> bool {
    serde_json::from_value::<Capability>(serde_json::Value::String(name.to_string())).is_ok()
}
