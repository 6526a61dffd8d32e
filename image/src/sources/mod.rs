//! Where images come from: OCI layout directories, OCI and docker-save
//! archives, the references that name an image in them, platforms and
//! digests. Each source yields a `ResolvedImage`; `image` picks the source
//! for a reference, so no source depends on what resolves it.

pub mod archive;
pub mod digest;
pub mod layout;
pub mod platform;
pub mod reference;

use crate::error::{Error, Result};
use oci_spec::image::ImageConfiguration;
use std::path::PathBuf;

/// One layer as stored: where its bytes are and what they must hash to.
#[derive(Clone, Debug)]
pub struct LayerBlob {
    pub path: PathBuf,
    pub media_type: String,
    /// Digest of the stored (possibly compressed) blob; None for docker-save
    /// layers, which only the diff_id identifies.
    pub digest: Option<String>,
    pub size: Option<u64>,
    pub diff_id: String,
    pub urls: Vec<String>,
}

impl LayerBlob {
    /// The name errors use for this layer.
    pub fn name(&self) -> &str {
        self.digest.as_deref().unwrap_or(&self.diff_id)
    }
}

pub struct ResolvedImage {
    pub manifest_digest: Option<String>,
    pub manifest_raw: Option<Vec<u8>>,
    pub config_digest: String,
    pub config_raw: Vec<u8>,
    pub config: ImageConfiguration,
    pub layers: Vec<LayerBlob>,
    /// Keeps an extracted archive alive as long as the image is used.
    pub tempdir: Option<tempfile::TempDir>,
}

pub fn parse_config(raw: &[u8], digest: &str) -> Result<ImageConfiguration> {
    serde_json::from_slice(raw).map_err(|e| Error::json(format!("config {digest}"), e))
}
