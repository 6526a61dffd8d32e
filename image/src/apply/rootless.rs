//! Rootless extraction, umoci's way: an unprivileged caller cannot chown, so
//! every file stays the caller's and the owner the image gave it is kept in the
//! `user.rootlesscontainers` xattr (github.com/rootless-containers/proto), where
//! rootless tools (umoci repack, PRoot, buildah's rootless mode) read it back.

/// The xattr rootless tools agree on.
pub const XATTR: &str = "user.rootlesscontainers";

/// The proto's "leave it as it is" id: uint32(-1).
const NOOP_ID: u32 = u32::MAX;

/// The xattr value for a file the image gives to `uid:gid`, or None when no
/// xattr is written. As umoci does, owner 0 (the container's root, which the
/// caller becomes in the user namespace) is stored as the no-op id, and an
/// entry owned by 0:0 gets no xattr at all.
pub fn ownership_xattr(uid: u32, gid: u32) -> Option<Vec<u8>> {
    let field = |id: u32| if id == 0 { NOOP_ID } else { id };
    let (uid, gid) = (field(uid), field(gid));
    if uid == NOOP_ID && gid == NOOP_ID {
        return None;
    }
    // protobuf `message Resource { uint32 uid = 1; uint32 gid = 2; }`: each field
    // is its key byte (field number << 3, wire type 0 = varint) and a varint.
    // proto3 leaves out zero values; neither field can be zero here.
    let mut out = Vec::with_capacity(12);
    for (key, v) in [(0x08u8, uid), (0x10, gid)] {
        out.push(key);
        varint(&mut out, v);
    }
    Some(out)
}

fn varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::ownership_xattr;

    #[test]
    fn encodes_what_umoci_writes() {
        // Values read back from `umoci unpack --rootless` trees.
        assert_eq!(ownership_xattr(0, 0), None);
        assert_eq!(ownership_xattr(0, 1000), Some(vec![0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 0xe8, 0x07]));
        assert_eq!(ownership_xattr(1000, 1000), Some(vec![0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07]));
        assert_eq!(ownership_xattr(5, 0), Some(vec![0x08, 0x05, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    }
}
