//! Resolving an image's `User` ("name", "uid", "name:group", "uid:gid") through
//! the rootfs' /etc/passwd and /etc/group, read inside the rootfs.

use crate::apply::fsops::Root;
use crate::error::{Error, Result};
use nix::fcntl::OFlag;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

fn read_in_root(rootfs: &Path, rel: &str) -> Result<String> {
    let root = Root::open(rootfs)?;
    match root.resolve(Path::new(rel), OFlag::O_RDONLY) {
        Ok(fd) => {
            let mut s = String::new();
            std::fs::File::from(fd)
                .take(16 << 20)
                .read_to_string(&mut s)
                .map_err(|e| Error::io(rootfs.join(rel), e))?;
            Ok(s)
        }
        Err(nix::errno::Errno::ENOENT) => Ok(String::new()),
        Err(e) => Err(Error::sys("open", rootfs.join(rel), e)),
    }
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).map(|l| l.split(':').collect())
}

pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    if spec.is_empty() {
        return Ok(User { uid: 0, gid: 0, additional_gids: vec![], home: Some("/root".into()) });
    }
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let group = read_in_root(rootfs, "etc/group")?;
    let (u, g) = spec.split_once(':').map(|(u, g)| (u, Some(g))).unwrap_or((spec, None));
    let pw = records(&passwd).find(|r| r.len() >= 7 && (r[0] == u || r[2] == u));
    let (uid, name, mut gid, home) = match (pw, u.parse::<u32>()) {
        (Some(r), _) => (
            r[2].parse::<u32>().map_err(|_| Error::Invalid(format!("/etc/passwd: bad uid for {}", r[0])))?,
            Some(r[0].to_string()),
            r[3].parse::<u32>().unwrap_or(0),
            Some(r[5].to_string()),
        ),
        (None, Ok(uid)) => (uid, None, 0, None),
        (None, Err(_)) => return Err(Error::Invalid(format!("image user {u:?} not found in the rootfs' /etc/passwd"))),
    };
    if let Some(g) = g {
        gid = match (records(&group).find(|r| r.len() >= 3 && (r[0] == g || r[2] == g)), g.parse::<u32>()) {
            (Some(r), _) => r[2].parse().map_err(|_| Error::Invalid(format!("/etc/group: bad gid for {}", r[0])))?,
            (None, Ok(gid)) => gid,
            (None, Err(_)) => {
                return Err(Error::Invalid(format!("image group {g:?} not found in the rootfs' /etc/group")))
            }
        };
    }
    let mut additional_gids = Vec::new();
    if let (Some(name), None) = (&name, g) {
        for r in records(&group).filter(|r| r.len() >= 4) {
            if r[3].split(',').any(|m| m == name) {
                if let Ok(id) = r[2].parse::<u32>() {
                    if id != gid && !additional_gids.contains(&id) {
                        additional_gids.push(id);
                    }
                }
            }
        }
    }
    Ok(User { uid, gid, additional_gids, home })
}
