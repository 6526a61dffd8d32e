//! sha256 digests: validation (a digest names a file under blobs/, so it is
//! checked strictly), and streaming verification of size and content.

use crate::error::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};

/// Checks `d` is `sha256:` + 64 lowercase hex and returns the hex part.
pub fn hex_of(d: &str) -> Result<&str> {
    let hex = d.strip_prefix("sha256:").ok_or_else(|| Error::InvalidDigest(d.into()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(Error::InvalidDigest(d.into()));
    }
    Ok(hex)
}

pub fn of_bytes(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// What a failed check is reported as.
#[derive(Clone, Debug)]
pub enum Check {
    /// A blob: digest and (optionally) size as the descriptor says.
    Blob { digest: String, size: Option<u64> },
    /// Uncompressed layer content against the config's diff_id.
    DiffId { layer: String, diff_id: String },
}

/// A reader that hashes and counts what passes through it. Reading past the
/// expected size fails at once; at EOF the digest is compared, and a mismatch
/// is returned as an error from `read` (and from `finish`).
pub struct Verifier<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    check: Check,
    verdict: Option<std::result::Result<(), String>>,
}

impl<R: Read> Verifier<R> {
    pub fn new(inner: R, check: Check) -> Self {
        Verifier { inner, hasher: Sha256::new(), count: 0, check, verdict: None }
    }

    fn mismatch(&self, actual: String) -> Error {
        match &self.check {
            Check::Blob { digest, .. } => Error::DigestMismatch { digest: digest.clone(), actual },
            Check::DiffId { layer, diff_id } => {
                Error::DiffIdMismatch { layer: layer.clone(), expected: diff_id.clone(), actual }
            }
        }
    }

    fn at_eof(&mut self) -> Result<()> {
        if self.verdict.is_none() {
            let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
            let verdict = match &self.check {
                Check::Blob { digest, size: Some(size) } if *size != self.count => {
                    Err(Error::SizeMismatch { digest: digest.clone(), expected: *size, actual: self.count }.to_string())
                }
                Check::Blob { digest, .. } if *digest != actual => Err(self.mismatch(actual).to_string()),
                Check::DiffId { diff_id, .. } if *diff_id != actual => Err(self.mismatch(actual).to_string()),
                _ => Ok(()),
            };
            self.verdict = Some(verdict);
        }
        match self.verdict.as_ref().unwrap() {
            Ok(()) => Ok(()),
            Err(_) => Err(self.rebuild_error()),
        }
    }

    /// Re-creates the typed error (errors are not Clone; the verdict keeps text).
    fn rebuild_error(&self) -> Error {
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        match &self.check {
            Check::Blob { digest, size: Some(size) } if *size != self.count => {
                Error::SizeMismatch { digest: digest.clone(), expected: *size, actual: self.count }
            }
            _ => self.mismatch(actual),
        }
    }

    /// Reads whatever is left and returns the verdict.
    pub fn finish(&mut self) -> Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(Error::io("<stream>", e)),
            }
        }
        self.at_eof()?;
        Ok(self.count)
    }
}

impl<R: Read> Read for Verifier<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.at_eof().map_err(Error::into_io)?;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Check::Blob { digest, size: Some(size) } = &self.check {
            if self.count > *size {
                return Err(
                    Error::SizeMismatch { digest: digest.clone(), expected: *size, actual: self.count }.into_io()
                );
            }
        }
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashWriter<W> {
    pub inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter { inner, hasher: Sha256::new(), count: 0 }
    }
    /// (digest, size) of everything written so far.
    pub fn sum(&self) -> (String, u64) {
        (format!("sha256:{}", hex::encode(self.hasher.clone().finalize())), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_path_like_digests() {
        assert!(hex_of("sha256:../../etc/passwd").is_err());
        assert!(hex_of(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(hex_of(&of_bytes(b"x")).is_ok());
    }

    #[test]
    fn verifier_catches_size_and_digest() {
        let good = of_bytes(b"hello");
        let mut v = Verifier::new(&b"hello"[..], Check::Blob { digest: good.clone(), size: Some(5) });
        assert_eq!(v.finish().unwrap(), 5);
        let mut v = Verifier::new(&b"hellx"[..], Check::Blob { digest: good.clone(), size: Some(5) });
        assert!(matches!(v.finish(), Err(Error::DigestMismatch { .. })));
        let mut v = Verifier::new(&b"hello!"[..], Check::Blob { digest: good.clone(), size: Some(5) });
        assert!(matches!(v.finish(), Err(Error::SizeMismatch { .. })));
        let mut v = Verifier::new(&b"hell"[..], Check::Blob { digest: good, size: Some(5) });
        assert!(matches!(v.finish(), Err(Error::SizeMismatch { .. })));
    }
}
