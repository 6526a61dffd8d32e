//! strata: an OCI runtime library. The `strata` binary (src/main.rs + cli/) is a thin
//! layer over this API so that tests and the image crate can drive containers directly.
//!
//! Module map, one concern each:
//! - [`config`]: load and validate a bundle's config.json before touching the system
//! - [`container`]: ids, the state store under `--root`, and the lifecycle operations
//! - [`process`]: cloning the container init and the in-container setup sequence
//! - [`rootfs`]: mounts, devices, pivot_root, masked and read-only paths
//! - [`namespaces`], [`cgroups`], [`capabilities`], [`user`]: one kernel interface each
//! - [`netdev`], [`mempolicy`], [`intelrdt`]: runtime-spec 1.3's netDevices, memoryPolicy, intelRdt
//! - [`spec`], [`features`]: the default config.json and the features document
//! - [`rootless`]: what an unprivileged caller changes (state root, best-effort cgroups)
//! - [`mountinfo`]: the one /proc/PID/mountinfo parser (bytes, octal escapes undone)

pub mod capabilities;
pub mod cgroups;
pub mod cli;
pub mod config;
pub mod console;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub mod intelrdt;
pub mod logging;
pub mod mempolicy;
pub mod mountinfo;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod sys;
pub mod sysctl;
pub mod user;

pub use error::{Error, Result};

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.3.0";
