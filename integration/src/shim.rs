//! Helpers for driving containerd with strata's own shim, `containerd-shim-strata-v2`
//! (crate `strata-shim`), against the runc v2 shim running runc as the control. A world
//! is an [`engines::Containerd`] with the shim's directory on the daemon's PATH.

use std::path::{Path, PathBuf};

use crate::engines::{self, processes_mentioning, Containerd};
use crate::workspace;

/// The shim binary's name: containerd derives it from `io.containerd.strata.v2`.
pub const SHIM_BIN: &str = "containerd-shim-strata-v2";

/// The directory holding the shim under test: $STRATA_SHIM_BIN's, or the debug build's.
pub fn shim_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_SHIM_BIN") {
        return Path::new(&p).parent().unwrap().to_path_buf();
    }
    let dir = workspace().join("target/x86_64-unknown-linux-gnu/debug");
    assert!(dir.join(SHIM_BIN).exists(), "{SHIM_BIN} is missing: run `cargo build --workspace --bins` first");
    dir
}

/// One engine under test: strata's shim (strata in-process) or the runc shim + runc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shim {
    Strata,
    Runc,
}

impl Shim {
    /// A private containerd whose tasks run under this shim.
    pub fn containerd(self) -> Containerd {
        match self {
            Shim::Strata => Containerd::with_shim(&engines::strata(), Some(&shim_dir())),
            Shim::Runc => Containerd::new(&engines::runc()),
        }
    }

    /// The shim processes' name.
    pub fn process_name(self) -> &'static str {
        match self {
            Shim::Strata => SHIM_BIN,
            Shim::Runc => "containerd-shim-runc-v2",
        }
    }
}

/// Pids of the shims serving `c`'s namespace.
pub fn shim_pids(c: &Containerd, shim: Shim) -> Vec<i32> {
    processes_mentioning(&format!("-namespace {} ", c.namespace))
        .iter()
        .filter(|p| p.contains(shim.process_name()))
        .filter_map(|p| p.split(':').next()?.parse().ok())
        .collect()
}

/// A process's resident set size (VmRSS) in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// One `#[test]` per scenario and shim, `strata_shim::NAME` and `runc_shim::NAME`: the
/// runc shim running runc is the control that tells a shim bug from a setup problem.
#[macro_export]
macro_rules! shim_scenarios {
    ($($name:ident),* $(,)?) => {
        mod strata_shim {
            $( #[test] fn $name() { super::$name(strata_integration::shim::Shim::Strata) } )*
        }
        mod runc_shim {
            $( #[test] fn $name() { super::$name(strata_integration::shim::Shim::Runc) } )*
        }
    };
}
