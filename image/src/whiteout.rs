//! Whiteouts in their two forms: OCI (`.wh.NAME`, `.wh..wh..opq` entries in
//! a layer tar) and overlayfs (a 0:0 character device; a directory with
//! `trusted.overlay.opaque=y`).

pub const PREFIX: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// Hide `NAME` of the lower layers.
    File(&'a [u8]),
    /// Hide every lower entry of the directory holding the marker.
    Opaque,
    /// Other `.wh..wh.` names (aufs metadata): ignored.
    Meta,
}

/// Classifies the last component of a layer entry's name.
pub fn classify(base: &[u8]) -> Option<Whiteout<'_>> {
    let rest = base.strip_prefix(PREFIX.as_bytes())?;
    if base == OPAQUE.as_bytes() {
        Some(Whiteout::Opaque)
    } else if rest.starts_with(PREFIX.as_bytes()) || rest.is_empty() {
        Some(Whiteout::Meta)
    } else {
        Some(Whiteout::File(rest))
    }
}

/// Xattrs a layer may not set: overlayfs reads its own `trusted.overlay.*`
/// (opaque, redirect, metacopy...) from the layer dirs, so letting a tar set
/// them would let it rewire the union view.
pub fn is_reserved_xattr(key: &str) -> bool {
    key.starts_with("trusted.overlay.")
}

/// Whether a stat result is an overlay whiteout (char device 0:0).
pub fn is_overlay_whiteout(st: &nix::sys::stat::FileStat) -> bool {
    use nix::sys::stat::SFlag;
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR && st.st_rdev == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify(b".wh.foo"), Some(Whiteout::File(b"foo")));
        assert_eq!(classify(b".wh..wh..opq"), Some(Whiteout::Opaque));
        assert_eq!(classify(b".wh..wh.plnk"), Some(Whiteout::Meta));
        assert_eq!(classify(b"foo.wh."), None);
    }
}
