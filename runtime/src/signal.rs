//! Signal names as `kill` accepts them: "TERM", "SIGTERM", "15", any case.

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        let max = libc::SIGRTMAX();
        if n > 0 && n <= max {
            return Ok(n);
        }
        return Err(Error::Refused(format!("signal {n} is out of range (1-{max})")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        return realtime(libc::SIGRTMIN(), rt, 1, s);
    }
    if let Some(rt) = name.strip_prefix("SIGRTMAX") {
        return realtime(libc::SIGRTMAX(), rt, -1, s);
    }
    name.parse::<Signal>().map(|sig| sig as i32).map_err(|_| Error::Refused(format!("unknown signal {s:?}")))
}

/// SIGRTMIN+N / SIGRTMAX-N.
fn realtime(base: i32, rest: &str, dir: i32, orig: &str) -> Result<i32> {
    if rest.is_empty() {
        return Ok(base);
    }
    let sign = if dir > 0 { '+' } else { '-' };
    let n: i32 = rest
        .strip_prefix(sign)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Refused(format!("unknown signal {orig:?}")))?;
    let sig = base + dir * n;
    if sig < libc::SIGRTMIN() || sig > libc::SIGRTMAX() {
        return Err(Error::Refused(format!("signal {orig:?} is out of range")));
    }
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_realtime() {
        assert_eq!(parse("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("99").is_err());
    }
}
