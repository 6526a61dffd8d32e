//! strata-image: layered OCI images to runtime bundles, and back.
//!
//! An image is a stack of read-only layers; a container is that stack plus
//! one read-write layer. This crate reads images (layout directories, OCI
//! archives, docker-save archives), verifies every blob while streaming it,
//! applies layers exactly per the OCI image-spec without ever writing outside
//! the target, and builds bundles either as a flat copy or as an overlay of
//! a content-addressed layer store.

//!
//! The tree follows the flow, one folder per stage: `sources` (where images
//! come from) → `image` (resolve a reference, stream verified layers) →
//! `apply` (a layer onto a directory) → `bundles` (rootfs + config.json) →
//! `commit` (a bundle's changes back into an image) → `build` (a
//! Containerfile: working containers committed layer by layer) → `upkeep` (du, gc,
//! import/save/export). `error`, `whiteout` and `staging` serve them all.

// The CLI's modules name the library `strata_image::`, as a user of the crate would.
extern crate self as strata_image;

pub mod apply;
pub mod build;
pub mod bundles;
/// The `strata-image` command line (src/main.rs runs it; tools/docgen documents it).
pub mod cli;
pub mod commit;
pub mod error;
pub mod image;
mod layer_stream;
pub mod sources;
pub mod staging;
pub mod upkeep;
pub mod whiteout;

// Each stage's modules, also at the top where callers have always found them.
pub use bundles::{bundle, overlay, passwd, runtime_config, store};
pub use commit::{flatdiff, freeze, history, treetar, writer};
pub use sources::{archive, digest, layout, platform, reference};
pub use upkeep::{gc, transfer, usage};

pub use error::{Error, Result};
