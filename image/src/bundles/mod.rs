//! Images become bundles: a flat copy of the layers, or an overlay of a
//! content-addressed layer store plus a read-write layer; the config.json
//! generated from the image config (users from the rootfs' passwd); and
//! mounting, unmounting and removing them.

pub mod bundle;
pub mod overlay;
pub mod passwd;
pub mod runtime_config;
mod spread;
pub mod store;
