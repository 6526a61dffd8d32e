//! Block I/O. v1: blkio.weight (or blkio.bfq.weight), leaf weights, weight_device and
//! the throttle files. v2: io.bfq.weight when BFQ is there (it takes blkio's scale),
//! else io.weight converted from blkio's [10, 1000] to [1, 10000] as runc does, and
//! io.max for throttling. v2 has no leaf weights.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::super::{fs, Cgroup};
use crate::error::{Error, Result};

const P: &str = "linux.resources.blockIO";

pub fn apply(cg: &Cgroup, b: &LinuxBlockIo) -> Result<()> {
    let Some(first) = first_set(b) else { return Ok(()) };
    let field = format!("{P}.{first}");
    let v1 = cg.find_controller("blkio").is_some();
    let d = cg.controller(&field, if v1 { "blkio" } else { "io" })?;
    for (name, w) in [("weight", b.weight()), ("leafWeight", b.leaf_weight())] {
        if let Some(w) = w.filter(|w| *w != 0 && !(10..=1000).contains(w)) {
            return Err(Error::field(format!("{P}.{name}"), format!("{w} is out of range 10-1000")));
        }
    }
    if d.v2 {
        apply_v2(&d.dir, b)
    } else {
        apply_v1(&d.dir, b)
    }
}

/// The first field that is set (named in errors), None when nothing is.
fn first_set(b: &LinuxBlockIo) -> Option<&'static str> {
    let list = [
        ("weight", b.weight().is_some()),
        ("leafWeight", b.leaf_weight().is_some()),
        ("weightDevice", b.weight_device().as_ref().is_some_and(|v| !v.is_empty())),
        ("throttleReadBpsDevice", b.throttle_read_bps_device().as_ref().is_some_and(|v| !v.is_empty())),
        ("throttleWriteBpsDevice", b.throttle_write_bps_device().as_ref().is_some_and(|v| !v.is_empty())),
        ("throttleReadIOPSDevice", b.throttle_read_iops_device().as_ref().is_some_and(|v| !v.is_empty())),
        ("throttleWriteIOPSDevice", b.throttle_write_iops_device().as_ref().is_some_and(|v| !v.is_empty())),
    ];
    list.iter().find(|(_, set)| *set).map(|(n, _)| *n)
}

fn throttles(b: &LinuxBlockIo) -> [(&'static str, &Option<Vec<LinuxThrottleDevice>>, &'static str, &'static str); 4] {
    [
        ("throttleReadBpsDevice", b.throttle_read_bps_device(), "blkio.throttle.read_bps_device", "rbps"),
        ("throttleWriteBpsDevice", b.throttle_write_bps_device(), "blkio.throttle.write_bps_device", "wbps"),
        ("throttleReadIOPSDevice", b.throttle_read_iops_device(), "blkio.throttle.read_iops_device", "riops"),
        ("throttleWriteIOPSDevice", b.throttle_write_iops_device(), "blkio.throttle.write_iops_device", "wiops"),
    ]
}

fn apply_v1(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let weight_file = ["blkio.weight", "blkio.bfq.weight"].into_iter().find(|f| fs::exists(dir, f));
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let Some(file) = weight_file else {
            return Err(Error::field(
                format!("{P}.weight"),
                "this host's blkio controller has no weight (no CFQ or BFQ scheduler)",
            ));
        };
        fs::write(&format!("{P}.weight"), dir, file, w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        fs::write(&format!("{P}.leafWeight"), dir, "blkio.leaf_weight", w.to_string())?;
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("{P}.weightDevice[{i}]");
        if let Some(w) = wd.weight() {
            let file = weight_file.map(|f| format!("{f}_device")).unwrap_or_else(|| "blkio.weight_device".into());
            fs::write(&field, dir, &file, format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
        if let Some(w) = wd.leaf_weight() {
            fs::write(&field, dir, "blkio.leaf_weight_device", format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
    }
    for (name, list, file, _) in throttles(b) {
        for (i, t) in list.iter().flatten().enumerate() {
            fs::write(&format!("{P}.{name}[{i}]"), dir, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
        }
    }
    Ok(())
}

fn apply_v2(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if b.leaf_weight().is_some_and(|w| w != 0) || b.weight_device().iter().flatten().any(|d| d.leaf_weight().is_some())
    {
        return Err(Error::field(format!("{P}.leafWeight"), "cgroup v2 has no leaf weights"));
    }
    let bfq = fs::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let (file, value) = if bfq {
            ("io.bfq.weight", w.to_string())
        } else {
            ("io.weight", format!("default {}", blkio_weight_to_io_weight(w)))
        };
        fs::write(&format!("{P}.weight"), dir, file, value)?;
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        if let Some(w) = wd.weight() {
            let (file, w) = if bfq { ("io.bfq.weight", w as u64) } else { ("io.weight", blkio_weight_to_io_weight(w)) };
            fs::write(&format!("{P}.weightDevice[{i}]"), dir, file, format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
    }
    for (name, list, _, key) in throttles(b) {
        for (i, t) in list.iter().flatten().enumerate() {
            fs::write(
                &format!("{P}.{name}[{i}]"),
                dir,
                "io.max",
                format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// runc's ConvertBlkIOToIOWeightValue: [10, 1000] onto [1, 10000].
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    #[test]
    fn blkio_weight_maps_onto_io_weight() {
        assert_eq!(super::blkio_weight_to_io_weight(10), 1);
        assert_eq!(super::blkio_weight_to_io_weight(500), 4950);
        assert_eq!(super::blkio_weight_to_io_weight(1000), 10000);
    }
}
