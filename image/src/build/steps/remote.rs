//! ADD of an http(s) URL, as docker does it: the file is downloaded (never
//! extracted), named after the URL's last path segment, mode 0600, its mtime
//! the server's Last-Modified; `--checksum=sha256:HEX` must match its content.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub(super) fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// The file name a download gets: the URL path's last segment.
pub(super) fn file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split(['?', '#']).next()?;
    let (_, path) = path.split_once('/')?;
    path.rsplit('/').next().filter(|n| !n.is_empty() && *n != "." && *n != "..").map(str::to_string)
}

/// Downloads `url` into `dir` under its file name; checks `checksum`
/// (`sha256:HEX`) when given. Errors are one line naming the URL.
pub(super) fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<PathBuf> {
    let want = match checksum {
        None => None,
        Some(c) => match c.strip_prefix("sha256:") {
            Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => Some(h.to_ascii_lowercase()),
            _ => return Err(Error::Invalid(format!("--checksum={c}: expected sha256: and 64 hex digits"))),
        },
    };
    let name = file_name(url).ok_or_else(|| Error::Invalid(format!("{url}: no file name in the URL's path")))?;
    let fail = |what: String| Error::Invalid(format!("{url}: {what}"));
    // A server that never answers fails the step instead of hanging the build;
    // a slow body is fine (no overall limit, as docker sets none).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let modified = resp.headers().get("last-modified").and_then(|v| v.to_str().ok()).and_then(http_date);
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(&name);
    let mut f = fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut body = resp.body_mut().as_reader();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = body.read(&mut buf).map_err(|e| fail(format!("reading the body: {e}")))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(|e| Error::io(&path, e))?;
    }
    let got = hex::encode(hash.finalize());
    if let Some(want) = want {
        if got != want {
            return Err(fail(format!("checksum mismatch: sha256:{got}, expected sha256:{want}")));
        }
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(&path, e))?;
    if let Some(t) = modified {
        f.set_modified(t).map_err(|e| Error::io(&path, e))?;
    }
    Ok(path)
}

/// An HTTP date in RFC 7231's preferred form: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(s: &str) -> Option<SystemTime> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, hms, "GMT"] = w.as_slice() else { return None };
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = months.iter().position(|x| x == mon)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [hh, mm, ss] = t.as_slice() else { return None };
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("https://h/a/b.tar.gz?x=1#f").as_deref(), Some("b.tar.gz"));
        assert_eq!(file_name("http://h:8080/f"), Some("f".into()));
        assert_eq!(file_name("http://h/dir/"), None);
        assert_eq!(file_name("http://h"), None);
        let t = http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784111777);
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }
}
