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

/// The owner a rootless tree's file has in the image, from its xattr value
/// (None: no xattr), as `umoci repack --rootless` reads it: the no-op id and
/// a missing xattr mean 0, the caller's own host ids never count.
pub fn image_owner(xattr: Option<&[u8]>) -> Result<(u32, u32), String> {
    let (mut uid, mut gid) = (NOOP_ID, NOOP_ID);
    let mut rest = xattr.unwrap_or_default();
    while let Some((&key, tail)) = rest.split_first() {
        let (v, tail) = read_varint(tail).ok_or_else(|| format!("{XATTR}: truncated value"))?;
        match key {
            0x08 => uid = v,
            0x10 => gid = v,
            _ => return Err(format!("{XATTR}: unexpected field key {key:#04x}")),
        }
        rest = tail;
    }
    let id = |v: u32| if v == NOOP_ID { 0 } else { v };
    Ok((id(uid), id(gid)))
}

fn read_varint(b: &[u8]) -> Option<(u32, &[u8])> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v as u32, &b[i + 1..]));
        }
    }
    None
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
    use super::{image_owner, ownership_xattr};

    #[test]
    fn encodes_what_umoci_writes() {
        // Values read back from `umoci unpack --rootless` trees.
        assert_eq!(ownership_xattr(0, 0), None);
        assert_eq!(ownership_xattr(0, 1000), Some(vec![0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 0xe8, 0x07]));
        assert_eq!(ownership_xattr(1000, 1000), Some(vec![0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07]));
        assert_eq!(ownership_xattr(5, 0), Some(vec![0x08, 0x05, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    }

    #[test]
    fn reads_back_what_it_writes() {
        for (uid, gid) in [(0, 1000), (1000, 1000), (5, 0), (65534, 70000), (u32::MAX - 1, 1)] {
            assert_eq!(image_owner(ownership_xattr(uid, gid).as_deref()), Ok((uid, gid)));
        }
        assert_eq!(image_owner(None), Ok((0, 0)));
        assert!(image_owner(Some(&[0x08, 0xff])).is_err());
        assert!(image_owner(Some(&[0x1a, 0x01])).is_err());
    }
}
