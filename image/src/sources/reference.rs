//! Image references: where an image lives and which manifest in it.
//!
//! `DIR:TAG`, `DIR@sha256:HEX`, `DIR` (the only image, or tag `latest`),
//! and the same forms for archive files. skopeo's transport prefixes
//! `oci:`, `oci-archive:` and `docker-archive:` are accepted and stripped.

use crate::digest;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The single image of the source, or the one tagged `latest`.
    Default,
    Tag(String),
    Digest(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub path: PathBuf,
    pub selector: Selector,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::Reference { reference: s.to_string(), reason: reason.to_string() };
        let mut rest = s;
        for prefix in ["oci-archive:", "docker-archive:", "oci:"] {
            if let Some(r) = rest.strip_prefix(prefix) {
                rest = r;
                break;
            }
        }
        if rest.is_empty() {
            return Err(bad("empty reference"));
        }
        if let Some((path, d)) = rest.rsplit_once('@') {
            digest::hex_of(d).map_err(|_| bad("not a sha256 digest after '@'"))?;
            return Ok(Reference { path: path.into(), selector: Selector::Digest(d.to_string()) });
        }
        // A tag never contains '/', so `a/b:c` splits at the last ':' only
        // when what follows is a tag, and a path such as `./x:y/z` stays whole.
        if let Some((path, tag)) = rest.rsplit_once(':') {
            if !tag.is_empty() && !tag.contains('/') && !path.is_empty() {
                return Ok(Reference { path: path.into(), selector: Selector::Tag(tag.to_string()) });
            }
        }
        Ok(Reference { path: rest.into(), selector: Selector::Default })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tag to write to, for commands that create images.
    pub fn tag_or_latest(&self) -> Result<String> {
        match &self.selector {
            Selector::Tag(t) => Ok(t.clone()),
            Selector::Default => Ok("latest".into()),
            Selector::Digest(_) => Err(Error::Reference {
                reference: self.to_string(),
                reason: "a digest cannot be a destination; use DIR:TAG".into(),
            }),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Default => write!(f, "{}", self.path.display()),
            Selector::Tag(t) => write!(f, "{}:{t}", self.path.display()),
            Selector::Digest(d) => write!(f, "{}@{d}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let r = Reference::parse("img:v1").unwrap();
        assert_eq!((r.path.to_str().unwrap(), r.selector), ("img", Selector::Tag("v1".into())));
        let r = Reference::parse("oci:/a/b").unwrap();
        assert_eq!((r.path.to_str().unwrap(), r.selector), ("/a/b", Selector::Default));
        let d = digest::of_bytes(b"");
        let r = Reference::parse(&format!("x.tar@{d}")).unwrap();
        assert_eq!(r.selector, Selector::Digest(d));
        assert!(Reference::parse("x@sha256:zz").is_err());
        let r = Reference::parse("./x:y/z").unwrap();
        assert_eq!(r.selector, Selector::Default);
    }
}
