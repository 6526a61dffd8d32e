//! ADD's local archives: a tar, plain or compressed (gzip, bzip2, xz, zstd, as
//! docker extracts them), re-written under the destination into the step's tar.

use crate::error::{Error, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Archive {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// The compression `magic` (a file's first bytes) says, as docker detects it.
fn compression(magic: &[u8]) -> Archive {
    match magic {
        [0x1f, 0x8b, ..] => Archive::Gzip,
        [b'B', b'Z', b'h', ..] => Archive::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Archive::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Archive::Zstd,
        _ => Archive::Tar,
    }
}

fn decoder<'a>(kind: Archive, f: impl std::io::BufRead + 'a, p: &Path) -> Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Archive::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Archive::Xz => Box::new(lzma_rust2::XzReader::new(f, true)),
        Archive::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(f).map_err(|e| Error::io(p, e))?),
        Archive::Tar => Box::new(f),
    })
}

/// Whether ADD extracts `p`: a tar, plain or compressed with gzip, bzip2, xz or
/// zstd (docker's list). A compressed file that is not a tar inside is copied as is.
pub(super) fn archive_kind(p: &Path) -> Result<Option<Archive>> {
    let open = || fs::File::open(p).map(std::io::BufReader::new).map_err(|e| Error::io(p, e));
    let mut magic = [0u8; 6];
    let n = read_full(&mut open()?, &mut magic).map_err(|e| Error::io(p, e))?;
    let kind = compression(&magic[..n]);
    let mut head = [0u8; 512];
    // A stream that fails to decode is no archive (a file that only starts like one).
    let n = read_full(&mut decoder(kind, open()?, p)?, &mut head).unwrap_or(0);
    Ok((n == 512 && &head[257..262] == b"ustar").then_some(kind))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Copies the entries of the archive at `p` into `out`, under `prefix`.
pub(super) fn retar<W: Write>(p: &Path, kind: Archive, prefix: &str, out: &mut tar::Builder<W>) -> Result<()> {
    let f = std::io::BufReader::new(fs::File::open(p).map_err(|e| Error::io(p, e))?);
    let rd = decoder(kind, f, p)?;
    let mut a = tar::Archive::new(rd);
    let io = |e| Error::io(p, e);
    let under = |name: &[u8]| -> PathBuf {
        let mut c = vec![prefix.to_string()];
        c.extend(crate::apply::clean(name).iter().map(|s| s.to_string_lossy().into_owned()));
        c.iter().filter(|s| !s.is_empty()).collect()
    };
    for e in a.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        let name = under(&e.path_bytes());
        let mut pax: Vec<(String, Vec<u8>)> = vec![];
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts.flatten() {
                if let Ok(k) = x.key() {
                    if k.starts_with("SCHILY.xattr.") {
                        pax.push((k.to_string(), x.value_bytes().to_vec()));
                    }
                }
            }
        }
        if !pax.is_empty() {
            out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).map_err(io)?;
        }
        let mut h = e.header().clone();
        match h.entry_type() {
            tar::EntryType::Link => {
                let target = under(&e.link_name_bytes().unwrap_or_default());
                out.append_link(&mut h, &name, target).map_err(io)?;
            }
            tar::EntryType::Symlink => {
                let target =
                    PathBuf::from(String::from_utf8_lossy(&e.link_name_bytes().unwrap_or_default()).into_owned());
                out.append_link(&mut h, &name, target).map_err(io)?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            _ => out.append_data(&mut h, &name, &mut e).map_err(io)?,
        }
    }
    Ok(())
}
