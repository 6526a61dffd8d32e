//! The build cache: a step's key (its parent's key, the instruction as
//! expanded, and its inputs: hashed COPY sources, the ARG values a RUN sees)
//! names a small file in the store that records the layer the step made, or
//! that it made none. A hit is used only while the destination layout still
//! holds the layer's blob.

use crate::digest;
use crate::error::{Error, Result};
use crate::layout::{write_atomic, Layout};
use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Entry {
    /// None: the step made no layer (a WORKDIR whose directory existed).
    pub layer: Option<Descriptor>,
    pub diff_id: Option<String>,
}

pub struct Cache {
    dir: PathBuf,
}

/// The key of a step after `parent` described by `parts`.
pub fn key(parent: &str, parts: &[&str]) -> String {
    let mut s = parent.to_string();
    for p in parts {
        s.push('\n');
        s.push_str(&p.len().to_string());
        s.push(':');
        s.push_str(p);
    }
    digest::of_bytes(s.as_bytes())
}

impl Cache {
    pub fn open(store_root: &std::path::Path) -> Result<Cache> {
        let dir = store_root.join("build-cache");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Cache { dir })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        Ok(self.dir.join(digest::hex_of(key)?))
    }

    pub fn get(&self, key: &str, layout: &Layout) -> Option<Entry> {
        let text = std::fs::read(self.path(key).ok()?).ok()?;
        let e: Entry = serde_json::from_slice(&text).ok()?;
        match &e.layer {
            Some(d) if !layout.has_blob(d.digest().as_ref()) => None,
            _ => Some(e),
        }
    }

    pub fn put(&self, key: &str, e: &Entry) -> Result<()> {
        let text = serde_json::to_vec(e).map_err(|err| Error::json("build cache entry", err))?;
        write_atomic(&self.path(key)?, &text)
    }
}
