//! Container ids name a directory under `--root`, so they are checked strictly.

use crate::error::{Error, Result};

/// Accepts `[A-Za-z0-9][A-Za-z0-9_.+-]*` up to 1024 bytes; `/` and `..` can never appear.
pub fn validate(id: &str) -> Result<()> {
    let bad = |reason| Err(Error::InvalidId { id: id.to_string(), reason });
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if id.contains("..") {
        return bad("it contains \"..\"");
    }
    let mut chars = id.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return bad("it must start with a letter or digit");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')) {
        return bad("only letters, digits and _ . + - are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        for ok in ["a", "abc-1.2_3+x", "0abc"] {
            assert!(super::validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", "a..b", "-a", ".a", "a b", "a\0b", "é"] {
            assert!(super::validate(bad).is_err(), "{bad:?}");
        }
    }
}
